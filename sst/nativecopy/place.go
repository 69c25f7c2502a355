package nativecopy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/galera-supervisor/galera-supervisor/sst"
	"github.com/galera-supervisor/galera-supervisor/sst/transfer"
)

// placement is where this joiner stages each name the donor sends: files
// of the datadir in its staging; "@tag/name" in this joiner's directory
// for tag (its own innodb_data_home_dir, log_bin, ... which may differ
// from the donor's); "@ext/<path>" beside that same path. Every directory
// outside the datadir gets a staging of its own, so each file is written
// once, on its target's filesystem, and swapped with the same journal and
// rollback as the datadir.
type placement struct {
	s     *sst.Session
	d     dirs
	peer  string
	data  *sst.Staging
	byDir map[string]*sst.Staging // directory outside the datadir → staging
	ext   map[string]extFile      // wire name → the donor's announcement
	index string                  // the binlog index, when binary logging is on
}

// stagingsFor lists the directories outside the datadir this joiner
// stages into, with the keep rule of each: a tag's directory replaces only
// the tag's files; a DATA DIRECTORY's, or the binlog index's, only what
// arrives. (A directory serving several keeps what every rule keeps.)
func (p *placement) stagingsFor(h hello) map[string][]sst.KeepRule {
	rules := map[string][]sst.KeepRule{}
	base, index := p.s.Binlog()
	for tag, dir := range p.d.tags {
		if _, sent := h.Tags[tag]; p.inData(dir) || (h.Tags != nil && !sent) {
			continue // nothing comes for it: what is there stays
		}
		rules[dir] = append(rules[dir], keepOnly(tag, base))
	}
	keepAll := func(string) bool { return true }
	if _, sent := h.Tags[tagBinlog]; index != "" && (h.Tags == nil || sent) {
		p.index = index
		if dir := filepath.Dir(index); !p.inData(dir) {
			rules[dir] = append(rules[dir], keepAll)
		}
	}
	for _, e := range h.Ext {
		rules[filepath.Dir(e.Path)] = append(rules[filepath.Dir(e.Path)], keepAll)
	}
	return rules
}

// newPlacement checks, before any byte moves, every place the donor's
// files go, creates a staging beside each, and checks each filesystem's
// space. On error every staging made is removed.
func newPlacement(s *sst.Session, d dirs, data *sst.Staging, h hello, peer string) (_ *placement, err error) {
	p := &placement{s: s, d: d, peer: peer, data: data, byDir: map[string]*sst.Staging{}, ext: map[string]extFile{}}
	defer func() {
		if err != nil {
			p.abortOthers()
		}
	}()
	if err := p.checkExt(h.Ext); err != nil {
		return nil, err
	}
	rules := p.stagingsFor(h)
	dirs := make([]string, 0, len(rules))
	for dir := range rules {
		dirs = append(dirs, dir)
	}
	sort.Strings(dirs)
	for _, dir := range dirs {
		rs := rules[dir]
		keep := func(name string) bool {
			for _, r := range rs {
				if !r(name) {
					return false
				}
			}
			return true
		}
		// Missing directories are created, as the stock create_dirs does.
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, sst.Errorf(sst.EACCES, "%s: create %s (%s): %w; create it writable by the server's user", s.Method, dir, p.what(dir), err)
		}
		x, err := sst.NewStaging(dir, keep, s.Log)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w; the directory must be writable by the server's user, as on the donor", s.Method, p.what(dir), err)
		}
		p.byDir[dir] = x
	}
	if err := p.checkSpace(h); err != nil {
		return nil, err
	}
	return p, nil
}

// what names what goes into dir, for messages: a table, a directory
// option, the binlog index.
func (p *placement) what(dir string) string {
	var out []string
	for _, e := range p.ext {
		if filepath.Dir(e.Path) == dir {
			out = append(out, fmt.Sprintf("table %s's file %s", e.Table, e.Path))
		}
	}
	sort.Strings(out)
	for tag, d := range p.d.tags {
		if d == dir {
			out = append(out, optionOf(tag)+"="+dir)
		}
	}
	if p.index != "" && filepath.Dir(p.index) == dir {
		out = append(out, "log_bin_index="+p.index)
	}
	return strings.Join(out, ", ")
}

// optionOf is the server option that sets a tag's directory.
func optionOf(tag string) string {
	switch tag {
	case tagInnoDBData:
		return "innodb_data_home_dir"
	case tagInnoDBLog:
		return "innodb_log_group_home_dir"
	case tagInnoDBUndo:
		return "innodb_undo_directory"
	case tagAriaLog:
		return "aria_log_dir_path"
	case tagBinlog:
		return "log_bin"
	}
	return tag
}

// checkExt checks the files that go outside the joiner's directories: a
// clean absolute path, outside the datadir, and nothing there yet that is
// not this node's own (named by an .isl or a symlink of its datadir).
func (p *placement) checkExt(ext []extFile) error {
	if len(ext) == 0 {
		return nil
	}
	own := ownExt(p.d)
	for _, e := range ext {
		if !filepath.IsAbs(e.Path) || filepath.Clean(e.Path) != e.Path || e.Name != extName(e.Path) || sst.CheckPath(e.Name[1:]) != nil {
			return sst.Errorf(sst.EPROTO, "%s: %s announced table %s at %q: not a clean absolute path", p.s.Method, p.peer, e.Table, e.Path)
		}
		if e.Link != "" && (sst.CheckPath(e.Link) != nil || !strings.Contains(e.Link, "/")) {
			return sst.Errorf(sst.EPROTO, "%s: %s announced table %s with a symlink %q outside its database directory", p.s.Method, p.peer, e.Table, e.Link)
		}
		if p.inData(e.Path) || p.inTagDir(e.Path) {
			return sst.Errorf(sst.EEXIST, "%s: table %s: its file %s would land in this node's datadir or one of its InnoDB/Aria/binlog directories; move the table's DATA DIRECTORY elsewhere on the donor", p.s.Method, e.Table, e.Path)
		}
		if fi, err := os.Lstat(e.Path); err == nil && !own[e.Path] {
			return sst.Errorf(sst.EEXIST, "%s: table %s: %s already exists here (%s) and is not this node's: no .isl or symlink of the datadir names it; the SST would overwrite it: move it away, or give the table another DATA DIRECTORY on the donor", p.s.Method, e.Table, e.Path, fi.Mode().Type())
		}
		p.ext[e.Name] = e
	}
	return nil
}

// ownExt is the set of files outside the datadir that this node's own
// tables point to.
func ownExt(d dirs) map[string]bool {
	own := map[string]bool{}
	files, _ := listFiles(d, nil, nil)
	for _, f := range files {
		if strings.HasPrefix(f.Name, "@"+tagExt+"/") {
			own[f.Path] = true
		}
	}
	return own
}

func (p *placement) inData(path string) bool {
	rel, err := filepath.Rel(p.d.data, path)
	return err == nil && (rel == "." || filepath.IsLocal(rel))
}

func (p *placement) inTagDir(path string) bool {
	for _, dir := range p.d.tags {
		if filepath.Dir(path) == dir {
			return true
		}
	}
	return false
}

// checkSpace checks each filesystem the files go to for the bytes headed
// there (plus sst.SpaceReserve on the datadir's), and logs each need.
func (p *placement) checkSpace(h hello) error {
	if h.Tags == nil {
		return p.data.CheckSpace(h.Total, p.peer) // a donor that does not say where
	}
	need := map[string]int64{p.data.Root: h.Total}
	for tag, n := range h.Tags {
		if dir, ok := p.d.tags[tag]; ok && p.byDir[dir] != nil {
			need[dir] += n
			need[p.data.Root] -= n
		}
	}
	for _, e := range h.Ext {
		need[filepath.Dir(e.Path)] += e.Size
		need[p.data.Root] -= e.Size
	}
	type fsNeed struct {
		dirs []string
		need int64
		path string
	}
	byFS := map[uint64]*fsNeed{}
	var order []uint64
	for dir, n := range need {
		var st syscall.Stat_t
		if err := syscall.Stat(dir, &st); err != nil {
			return sst.Errorf(sst.EIO, "%s: stat %s: %w", p.s.Method, dir, err)
		}
		x := byFS[st.Dev]
		if x == nil {
			x = &fsNeed{path: dir}
			byFS[st.Dev] = x
			order = append(order, st.Dev)
		}
		x.dirs = append(x.dirs, dir)
		x.need += n
		if dir == p.data.Root {
			x.need += sst.SpaceReserve
		}
		p.s.Log.Info(fmt.Sprintf("preflight: %s needs %s in %s", p.peer, mb(n), dir), "dir", dir, "bytes", n)
	}
	sort.Slice(order, func(i, j int) bool { return order[i] < order[j] })
	for _, dev := range order {
		x := byFS[dev]
		free, err := sst.FreeSpace(x.path)
		if err != nil {
			return sst.Errorf(sst.EIO, "%s: statfs %s: %w", p.s.Method, x.path, err)
		}
		if x.need > free {
			sort.Strings(x.dirs)
			return sst.Errorf(sst.ENOSPC, "%s: not enough space for the snapshot from %s in %s: need %d MB (with %d MB reserve on the datadir's), %d MB free; the old datadir is kept until the new one is complete",
				p.s.Method, p.peer, strings.Join(x.dirs, ", "), x.need>>20, sst.SpaceReserve>>20, free>>20)
		}
	}
	return nil
}

// noSpace is the error of a disk that filled during the transfer: which
// file, where, and how much more the snapshot needed.
func (p *placement) noSpace(err error, total, got int64) error {
	where := p.data.Root
	var fe *transfer.FileError
	if errors.As(err, &fe) {
		if x, rel, rerr := p.route(fe.Name); rerr == nil {
			where = filepath.Join(x.Root, rel)
		}
	}
	return sst.Errorf(sst.ENOSPC, "%s: not enough space: the disk filled while writing %s, with %s of the snapshot's %s received; its filesystem needs at least %s more (plus %d MB reserve on the datadir's); the old datadir is kept, the staging removed",
		p.s.Method, where, mb(got), mb(total), mb(max(total-got, 0)), sst.SpaceReserve>>20)
}

// route is the staging a wire name goes into and its name there.
func (p *placement) route(name string) (*sst.Staging, string, error) {
	if !strings.HasPrefix(name, "@") {
		return p.data, name, nil
	}
	tag, rest, ok := strings.Cut(name[1:], "/")
	if !ok {
		return nil, "", sst.Errorf(sst.EPROTO, "%s: %s sent %q", p.s.Method, p.peer, name)
	}
	if tag == tagExt {
		e, ok := p.ext[name]
		if !ok {
			return nil, "", sst.Errorf(sst.EPROTO, "%s: %s sent %s, which it did not announce (a table created with DATA DIRECTORY during the SST?); try again", p.s.Method, p.peer, name)
		}
		return p.byDir[filepath.Dir(e.Path)], filepath.Base(e.Path), nil
	}
	dir, known := p.d.tags[tag]
	if !known {
		if tag == tagBinlog {
			return p.data, name, nil // binary logging is off here: dropped at the end
		}
		return nil, "", sst.Errorf(sst.EPROTO, "%s: %s sent %s for an unknown directory", p.s.Method, p.peer, name)
	}
	if strings.Contains(rest, "/") {
		return nil, "", sst.Errorf(sst.EPROTO, "%s: %s sent %q: a directory inside %s", p.s.Method, p.peer, name, tag)
	}
	if p.inData(dir) {
		rel, _ := filepath.Rel(p.d.data, dir)
		return p.data, filepath.ToSlash(filepath.Join(rel, rest)), nil
	}
	x := p.byDir[dir]
	if x == nil {
		return nil, "", sst.Errorf(sst.EPROTO, "%s: %s sent %s, which it did not announce", p.s.Method, p.peer, name)
	}
	return x, rest, nil
}

// sinkRoute is route for the engine's Sink, whose root is the datadir's
// staging.
func (p *placement) sinkRoute(name string) (string, string, error) {
	x, rel, err := p.route(name)
	if err != nil {
		return "", "", err
	}
	if x == p.data && rel == name {
		return "", name, nil
	}
	return x.Dir, rel, nil
}

// path is the staged path of a wire name.
func (p *placement) path(name string) (string, error) {
	x, rel, err := p.route(name)
	if err != nil {
		return "", err
	}
	return x.Path(rel)
}

// all is every staging, the datadir's first.
func (p *placement) all() []*sst.Staging {
	out := []*sst.Staging{p.data}
	dirs := make([]string, 0, len(p.byDir))
	for dir := range p.byDir {
		dirs = append(dirs, dir)
	}
	sort.Strings(dirs)
	for _, dir := range dirs {
		out = append(out, p.byDir[dir])
	}
	return out
}

// abortOthers removes the stagings outside the datadir.
func (p *placement) abortOthers() {
	for _, x := range p.byDir {
		x.Abort()
	}
}

// finish checks every staging against the donor's manifest, drops the
// binlogs a joiner without binary logging does not want, creates the
// MyISAM/Aria symlinks and writes the binlog index. It returns the
// stagings to swap: those outside the datadir that received nothing are
// removed instead.
func (p *placement) finish(man manifest) ([]*sst.Staging, error) {
	want := map[*sst.Staging]map[string]bool{}
	entries := map[*sst.Staging][]sst.ManifestEntry{}
	var binlogs []string
	for _, f := range man.Files {
		if err := sst.CheckPath(f.Name); err != nil {
			return nil, sst.Errorf(sst.EPROTO, "%s: manifest from %s: %v", p.s.Method, p.peer, err)
		}
		x, rel, err := p.route(f.Name)
		if err != nil {
			return nil, err
		}
		if want[x] == nil {
			want[x] = map[string]bool{}
		}
		want[x][rel] = true
		entries[x] = append(entries[x], sst.ManifestEntry{Path: rel, Size: f.Size})
		if tag, name, _ := strings.Cut(f.Name, "/"); tag == "@"+tagBinlog {
			if dir, ok := p.d.tags[tagBinlog]; ok {
				binlogs = append(binlogs, filepath.Join(dir, name))
			}
		}
	}
	var out []*sst.Staging
	for _, x := range p.all() {
		removed, err := x.Prune(want[x])
		if err != nil {
			return nil, err
		}
		if len(removed) > 0 {
			p.s.Log.Info(fmt.Sprintf("dropped %d staged files the donor no longer has from %s", len(removed), x.Root), "dir", x.Root, "files", len(removed))
		}
		if err := x.RecordTree(); err != nil {
			return nil, err
		}
		if err := x.Verify(entries[x], p.peer); err != nil {
			return nil, err
		}
		if x == p.data || len(want[x]) > 0 || (p.index != "" && x.Root == filepath.Dir(p.index) && len(binlogs) > 0) {
			out = append(out, x)
		} else {
			x.Abort()
		}
	}
	if _, err := os.Lstat(filepath.Join(p.data.Dir, "@"+tagBinlog)); err == nil {
		p.s.Log.Warn("binary logging is off here: dropping the donor's binlogs", "peer", p.peer)
		os.RemoveAll(filepath.Join(p.data.Dir, "@"+tagBinlog))
	}
	if err := p.links(); err != nil {
		return nil, err
	}
	sort.Strings(binlogs)
	if p.index != "" && len(binlogs) > 0 {
		if err := p.writeIndex(binlogs); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// links creates, in the datadir's staging, the MyISAM/Aria symlinks to
// the files received beside their targets.
func (p *placement) links() error {
	for _, e := range p.ext {
		if e.Link == "" {
			continue
		}
		x := p.byDir[filepath.Dir(e.Path)]
		if _, err := os.Lstat(filepath.Join(x.Dir, filepath.Base(e.Path))); err != nil {
			continue // the table went away during the SST
		}
		link, err := p.data.Path(e.Link)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(link), 0o750); err != nil {
			return sst.Errorf(sst.EIO, "%s: table %s: %w", p.s.Method, e.Table, err)
		}
		if err := os.Symlink(e.Path, link); err != nil {
			return sst.Errorf(sst.EIO, "%s: table %s: symlink %s: %w", p.s.Method, e.Table, e.Link, err)
		}
	}
	return nil
}

// writeIndex writes the binlog index listing the received binlogs, in the
// form mariadbd writes it, into the staging of the index's directory.
func (p *placement) writeIndex(binlogs []string) error {
	var b strings.Builder
	for _, bl := range binlogs {
		if filepath.Dir(bl) == p.d.data {
			fmt.Fprintf(&b, "./%s\n", filepath.Base(bl))
		} else {
			fmt.Fprintf(&b, "%s\n", bl)
		}
	}
	dir := filepath.Dir(p.index)
	var target string
	if p.inData(dir) {
		rel, _ := filepath.Rel(p.d.data, dir)
		target = filepath.Join(p.data.Dir, rel, filepath.Base(p.index))
	} else {
		target = filepath.Join(p.byDir[dir].Dir, filepath.Base(p.index))
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o750); err != nil {
		return sst.Errorf(sst.EIO, "%s: binlog index: %w", p.s.Method, err)
	}
	if err := os.WriteFile(target, []byte(b.String()), 0o640); err != nil {
		return sst.Errorf(sst.EIO, "%s: binlog index %s: %w", p.s.Method, p.index, err)
	}
	return nil
}
