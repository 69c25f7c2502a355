package sst

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// Incoming is what a donor announces it sends, for the joiner to place
// before any byte moves.
type Incoming struct {
	Total int64
	// Tags holds the bytes of each tagged directory's files (the rest of
	// Total goes to the datadir); nil for a donor that does not say, when
	// every tagged directory is staged.
	Tags map[string]int64
	// Ext is the files that go outside the joiner's directories.
	Ext []ExtFile
	// InData says the whole payload lands in the datadir's staging first
	// (native-backup extracts and prepares it there), and only then moves
	// beside its targets.
	InData bool
	// Cluster is the donor's cluster UUID: a staging an earlier SST of it
	// left is kept to resume from (ResumeStaging); "" resumes nothing.
	Cluster string
	// SpaceLater leaves the space check to CheckSpace, once the joiner
	// has declared its delta's bases (Staging.Base).
	SpaceLater bool
}

// Placement is where a joiner stages each name a donor sends: files of
// the datadir in its staging; "@tag/name" in this joiner's directory for
// tag (its own innodb_data_home_dir, log_bin, ... which may differ from
// the donor's); "@ext/<path>" beside that same path. Every directory
// outside the datadir gets a staging of its own, so each file is written
// once, on its target's filesystem, and swapped with the same journal and
// rollback as the datadir.
type Placement struct {
	Layout Layout
	Data   *Staging // the datadir's

	s     *Session
	peer  string
	in    Incoming
	byDir map[string]*Staging // directory outside the datadir → staging
	tag   map[*Staging]bool   // a tagged directory the donor announced
	ext   map[string]ExtFile  // wire name → the donor's announcement
	index string              // the binlog index, when binary logging is on
}

// stagingsFor lists the directories outside the datadir this joiner
// stages into, with the keep rule of each: a tag's directory replaces only
// the tag's files; a DATA DIRECTORY's, or the binlog index's, only what
// arrives. (A directory serving several keeps what every rule keeps.)
func (p *Placement) stagingsFor(in Incoming) (rules map[string][]KeepRule, tagged map[string]bool) {
	rules, tagged = map[string][]KeepRule{}, map[string]bool{}
	base, index := p.s.Binlog()
	for tag, dir := range p.Layout.Tags {
		if _, sent := in.Tags[tag]; p.inData(dir) || (in.Tags != nil && !sent) {
			continue // nothing comes for it: what is there stays
		}
		rules[dir] = append(rules[dir], KeepOnly(tag, base))
		tagged[dir] = true
	}
	keepAll := func(string) bool { return true }
	if _, sent := in.Tags[TagBinlog]; index != "" && (in.Tags == nil || sent) {
		p.index = index
		if dir := filepath.Dir(index); !p.inData(dir) {
			rules[dir] = append(rules[dir], keepAll)
		}
	}
	for _, e := range in.Ext {
		rules[filepath.Dir(e.Path)] = append(rules[filepath.Dir(e.Path)], keepAll)
	}
	return rules, tagged
}

// NewPlacement checks, before any byte moves, every place the donor's
// files go, creates a staging beside each, and checks each filesystem's
// space. On error every staging it made is removed.
func NewPlacement(s *Session, l Layout, data *Staging, in Incoming, peer string) (_ *Placement, err error) {
	p := &Placement{Layout: l, Data: data, s: s, peer: peer, in: in, byDir: map[string]*Staging{}, tag: map[*Staging]bool{}, ext: map[string]ExtFile{}}
	defer func() {
		if err != nil {
			p.AbortOthers()
		}
	}()
	if err := p.checkExt(in.Ext); err != nil {
		return nil, err
	}
	rules, tagged := p.stagingsFor(in)
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
			return nil, Errorf(EACCES, "%s: create %s (%s): %w; create it writable by the server's user", s.Method, dir, p.what(dir), err)
		}
		x, err := newStaging(dir, keep, s.Log, in.Cluster)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w; the directory must be writable by the server's user, as on the donor", s.Method, p.what(dir), err)
		}
		p.byDir[dir] = x
		p.tag[x] = tagged[dir]
	}
	if in.SpaceLater {
		return p, nil
	}
	if err := p.checkSpace(in); err != nil {
		return nil, err
	}
	return p, nil
}

// CheckSpace checks the space of a placement made with SpaceLater, once
// the bases are declared. On error the stagings it made beside the
// datadir are removed, as NewPlacement's own check does.
func (p *Placement) CheckSpace() error {
	if err := p.checkSpace(p.in); err != nil {
		p.AbortOthers()
		return err
	}
	return nil
}

// what names what goes into dir, for messages: a table, a directory
// option, the binlog index.
func (p *Placement) what(dir string) string {
	var out []string
	for _, e := range p.ext {
		if filepath.Dir(e.Path) == dir {
			out = append(out, fmt.Sprintf("table %s's file %s", e.Table, e.Path))
		}
	}
	sort.Strings(out)
	for tag, d := range p.Layout.Tags {
		if d == dir {
			out = append(out, OptionOf(tag)+"="+dir)
		}
	}
	if p.index != "" && filepath.Dir(p.index) == dir {
		out = append(out, "log_bin_index="+p.index)
	}
	return strings.Join(out, ", ")
}

// checkExt checks the files that go outside the joiner's directories: a
// clean absolute path, outside the datadir, and nothing there yet that is
// not this node's own (named by an .isl or a symlink of its datadir).
func (p *Placement) checkExt(ext []ExtFile) error {
	if len(ext) == 0 {
		return nil
	}
	own := map[string]bool{}
	mine, _ := p.Layout.ScanExt(nil)
	for _, e := range mine {
		own[e.Path] = true
	}
	for _, e := range ext {
		if !filepath.IsAbs(e.Path) || filepath.Clean(e.Path) != e.Path || e.Name != ExtName(e.Path) || CheckPath(e.Name[1:]) != nil {
			return Errorf(EPROTO, "%s: %s announced table %s at %q: not a clean absolute path", p.s.Method, p.peer, e.Table, e.Path)
		}
		if e.Link != "" && (CheckPath(e.Link) != nil || !strings.Contains(e.Link, "/")) {
			return Errorf(EPROTO, "%s: %s announced table %s with a symlink %q outside its database directory", p.s.Method, p.peer, e.Table, e.Link)
		}
		if p.inData(e.Path) || p.inTagDir(e.Path) {
			return Errorf(EEXIST, "%s: table %s: its file %s would land in this node's datadir or one of its InnoDB/Aria/binlog directories; move the table's DATA DIRECTORY elsewhere on the donor", p.s.Method, e.Table, e.Path)
		}
		if fi, err := os.Lstat(e.Path); err == nil && !own[e.Path] {
			return Errorf(EEXIST, "%s: table %s: %s already exists here (%s) and is not this node's: no .isl or symlink of the datadir names it; the SST would overwrite it: move it away, or give the table another DATA DIRECTORY on the donor", p.s.Method, e.Table, e.Path, fi.Mode().Type())
		}
		p.ext[e.Name] = e
	}
	return nil
}

func (p *Placement) inData(path string) bool {
	rel, err := filepath.Rel(p.Layout.Data, path)
	return err == nil && (rel == "." || filepath.IsLocal(rel))
}

func (p *Placement) inTagDir(path string) bool {
	for _, dir := range p.Layout.Tags {
		if filepath.Dir(path) == dir {
			return true
		}
	}
	return false
}

// needs is the bytes headed for each directory that need room there: the
// donor's Total spread over the directories it goes to, less what the
// stagings hold already. That is what a staging kept from an earlier SST
// holds (ResumedBytes), and the files a delta keeps in place (BaseBytes):
// the donor's copy of a base arrives as a patch of the pages that differ,
// whose bytes, and their undo journal's, are known only once they arrive
// (the Sink stores them as they come; the swap checks the journal's room
// before it writes: applyPatches). The joiner does not know the donor's
// file names here: a base the donor no longer has (a dropped table) is
// subtracted all the same, and if the disk then fills during the
// transfer, that fails as any ENOSPC does, the old datadir kept.
func (p *Placement) needs(in Incoming) map[string]int64 {
	need := map[string]int64{p.Data.Root: in.Total}
	away := func(dir string, n int64) {
		need[dir] += n
		if !in.InData {
			need[p.Data.Root] -= n
		}
	}
	if in.Tags != nil {
		for tag, n := range in.Tags {
			if dir, ok := p.Layout.Tags[tag]; ok && p.byDir[dir] != nil {
				away(dir, n)
			}
		}
		for _, e := range in.Ext {
			away(filepath.Dir(e.Path), e.Size)
		}
	}
	for _, x := range p.All() {
		if n := x.ResumedBytes() + x.BaseBytes(); n > 0 {
			need[x.Root] = max(need[x.Root]-n, 0)
		}
	}
	return need
}

// checkSpace checks each filesystem the files go to for the bytes headed
// there (plus SpaceReserve on the datadir's), and logs each need.
func (p *Placement) checkSpace(in Incoming) error {
	need := p.needs(in)
	if in.Tags == nil {
		return p.Data.CheckSpace(need[p.Data.Root], p.peer) // a donor that does not say where
	}
	type fsNeed struct {
		dirs []string
		need int64
		path string
	}
	var dataDev uint64
	var st syscall.Stat_t
	if err := syscall.Stat(p.Data.Root, &st); err != nil {
		return Errorf(EIO, "%s: stat %s: %w", p.s.Method, p.Data.Root, err)
	}
	dataDev = st.Dev
	byFS := map[uint64]*fsNeed{}
	var order []uint64
	for dir, n := range need {
		if err := syscall.Stat(dir, &st); err != nil {
			return Errorf(EIO, "%s: stat %s: %w", p.s.Method, dir, err)
		}
		x := byFS[st.Dev]
		if x == nil {
			x = &fsNeed{path: dir}
			byFS[st.Dev] = x
			order = append(order, st.Dev)
		}
		x.dirs = append(x.dirs, dir)
		// Staged in the datadir first, a file moves by rename to a
		// directory on the datadir's filesystem: counted once.
		if !in.InData || dir == p.Data.Root || st.Dev != dataDev {
			x.need += n
		}
		if dir == p.Data.Root {
			x.need += SpaceReserve
		}
		p.s.Log.Info("preflight: space the SST needs", "sst_peer", p.peer, "dir", dir, "bytes", n)
	}
	sort.Slice(order, func(i, j int) bool { return order[i] < order[j] })
	for _, dev := range order {
		x := byFS[dev]
		free, err := FreeSpace(x.path)
		if err != nil {
			return Errorf(EIO, "%s: statfs %s: %w", p.s.Method, x.path, err)
		}
		if x.need > free {
			sort.Strings(x.dirs)
			return Errorf(ENOSPC, "%s: not enough space for the snapshot from %s in %s: need %d MB (with %d MB reserve on the datadir's), %d MB free; the old datadir is kept until the new one is complete",
				p.s.Method, p.peer, strings.Join(x.dirs, ", "), x.need>>20, SpaceReserve>>20, free>>20)
		}
	}
	return nil
}

// NoSpace is the error of a disk that filled during the transfer: which
// file (its wire name; "" for the datadir), how much of the snapshot's
// total arrived, and how much more it needed.
func (p *Placement) NoSpace(name string, total, got int64) error {
	where := p.Data.Root
	if name != "" {
		if x, rel, err := p.Route(name); err == nil {
			where = filepath.Join(x.Root, rel)
		}
	}
	return Errorf(ENOSPC, "%s: not enough space: the disk filled while writing %s, with %s of the snapshot's %s received; its filesystem needs at least %s more (plus %d MB reserve on the datadir's); the old datadir is kept, the staging removed",
		p.s.Method, where, MB(got), MB(total), MB(max(total-got, 0)), SpaceReserve>>20)
}

// Route is the staging a wire name goes into and its name there.
func (p *Placement) Route(name string) (*Staging, string, error) {
	if !strings.HasPrefix(name, "@") {
		return p.Data, name, nil
	}
	tag, rest, ok := strings.Cut(name[1:], "/")
	if !ok {
		return nil, "", Errorf(EPROTO, "%s: %s sent %q", p.s.Method, p.peer, name)
	}
	if tag == TagExt {
		e, ok := p.ext[name]
		if !ok {
			return nil, "", Errorf(EPROTO, "%s: %s sent %s, which it did not announce (a table created with DATA DIRECTORY during the SST?); try again", p.s.Method, p.peer, name)
		}
		return p.byDir[filepath.Dir(e.Path)], filepath.Base(e.Path), nil
	}
	dir, known := p.Layout.Tags[tag]
	if !known {
		if tag == TagBinlog {
			return p.Data, name, nil // binary logging is off here: dropped at the end
		}
		return nil, "", Errorf(EPROTO, "%s: %s sent %s for an unknown directory", p.s.Method, p.peer, name)
	}
	if strings.Contains(rest, "/") {
		return nil, "", Errorf(EPROTO, "%s: %s sent %q: a directory inside %s", p.s.Method, p.peer, name, tag)
	}
	if p.inData(dir) {
		rel, _ := filepath.Rel(p.Layout.Data, dir)
		return p.Data, filepath.ToSlash(filepath.Join(rel, rest)), nil
	}
	x := p.byDir[dir]
	if x == nil {
		return nil, "", Errorf(EPROTO, "%s: %s sent %s, which it did not announce", p.s.Method, p.peer, name)
	}
	return x, rest, nil
}

// SinkRoute is Route for a receiver whose root is the datadir's staging:
// the directory (empty for that root) and the name there.
func (p *Placement) SinkRoute(name string) (string, string, error) {
	x, rel, err := p.Route(name)
	if err != nil {
		return "", "", err
	}
	if x == p.Data && rel == name {
		return "", name, nil
	}
	return x.Dir, rel, nil
}

// Path is the staged path of a wire name.
func (p *Placement) Path(name string) (string, error) {
	x, rel, err := p.Route(name)
	if err != nil {
		return "", err
	}
	return x.Path(rel)
}

// All is every staging, the datadir's first.
func (p *Placement) All() []*Staging {
	out := []*Staging{p.Data}
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

// AbortOthers removes the stagings outside the datadir.
func (p *Placement) AbortOthers() {
	for _, x := range p.byDir {
		x.Abort()
	}
}

// Finish checks every staging against the donor's manifest (wire names
// and sizes), drops the binlogs a joiner without binary logging does not
// want, creates the MyISAM/Aria symlinks and writes the binlog index. It
// returns the stagings to swap: those outside the datadir that received
// nothing, and whose directory the donor did not announce, are removed
// instead.
func (p *Placement) Finish(files []ManifestEntry) ([]*Staging, error) {
	want := map[*Staging]map[string]bool{}
	entries := map[*Staging][]ManifestEntry{}
	var binlogs []string
	for _, f := range files {
		if err := CheckPath(f.Path); err != nil {
			return nil, Errorf(EPROTO, "%s: manifest from %s: %v", p.s.Method, p.peer, err)
		}
		x, rel, err := p.Route(f.Path)
		if err != nil {
			return nil, err
		}
		if want[x] == nil {
			want[x] = map[string]bool{}
		}
		want[x][rel] = true
		entries[x] = append(entries[x], ManifestEntry{Path: rel, Size: f.Size, Sum: f.Sum})
		if tag, name, _ := strings.Cut(f.Path, "/"); tag == "@"+TagBinlog {
			if dir, ok := p.Layout.Tags[TagBinlog]; ok {
				binlogs = append(binlogs, filepath.Join(dir, name))
			}
		}
	}
	var out []*Staging
	for _, x := range p.All() {
		removed, err := x.Prune(want[x])
		if err != nil {
			return nil, err
		}
		if len(removed) > 0 {
			p.s.Log.Info("dropped staged files the donor no longer has", "dir", x.Root, "files", len(removed))
		}
		if err := x.RecordTree(); err != nil {
			return nil, err
		}
		if err := x.Verify(entries[x], p.peer); err != nil {
			return nil, err
		}
		if x == p.Data || len(want[x]) > 0 || p.tag[x] || (p.index != "" && x.Root == filepath.Dir(p.index) && len(binlogs) > 0) {
			out = append(out, x)
		} else {
			x.Abort()
		}
	}
	if _, err := os.Lstat(filepath.Join(p.Data.Dir, "@"+TagBinlog)); err == nil {
		p.s.Log.Warn("binary logging is off here: dropping the donor's binlogs", "peer", p.peer)
		os.RemoveAll(filepath.Join(p.Data.Dir, "@"+TagBinlog))
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
func (p *Placement) links() error {
	for _, e := range p.ext {
		if e.Link == "" {
			continue
		}
		x := p.byDir[filepath.Dir(e.Path)]
		if _, err := os.Lstat(filepath.Join(x.Dir, filepath.Base(e.Path))); err != nil {
			continue // the table went away during the SST
		}
		link, err := p.Data.Path(e.Link)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(link), 0o750); err != nil {
			return Errorf(EIO, "%s: table %s: %w", p.s.Method, e.Table, err)
		}
		if err := os.Symlink(e.Path, link); err != nil {
			return Errorf(EIO, "%s: table %s: symlink %s: %w", p.s.Method, e.Table, e.Link, err)
		}
	}
	return nil
}

// writeIndex writes the binlog index listing the received binlogs, in the
// form mariadbd writes it, into the staging of the index's directory.
func (p *Placement) writeIndex(binlogs []string) error {
	var b strings.Builder
	for _, bl := range binlogs {
		if filepath.Dir(bl) == p.Layout.Data {
			fmt.Fprintf(&b, "./%s\n", filepath.Base(bl))
		} else {
			fmt.Fprintf(&b, "%s\n", bl)
		}
	}
	dir := filepath.Dir(p.index)
	var target string
	if p.inData(dir) {
		rel, _ := filepath.Rel(p.Layout.Data, dir)
		target = filepath.Join(p.Data.Dir, rel, filepath.Base(p.index))
	} else {
		target = filepath.Join(p.byDir[dir].Dir, filepath.Base(p.index))
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o750); err != nil {
		return Errorf(EIO, "%s: binlog index: %w", p.s.Method, err)
	}
	if err := os.WriteFile(target, []byte(b.String()), 0o640); err != nil {
		return Errorf(EIO, "%s: binlog index %s: %w", p.s.Method, p.index, err)
	}
	return nil
}

// Adopt moves the file src, staged somewhere else on this node, into
// staging x as rel: by rename on one filesystem, else by a copy that is
// fsync'd before src goes.
func (x *Staging) Adopt(src, rel string) error {
	dst, err := x.Path(rel)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return Errorf(EIO, "sst: staging mkdir %s: %w", filepath.Dir(dst), err)
	}
	err = os.Rename(src, dst)
	if err == nil || !errors.Is(err, syscall.EXDEV) {
		if err != nil {
			return Errorf(EIO, "sst: move %s to %s: %w", src, dst, err)
		}
		return nil
	}
	fi, err := os.Lstat(src)
	if err != nil {
		return Errorf(EIO, "sst: %w", err)
	}
	if err := copyFile(src, dst, fi); err != nil {
		os.Remove(dst)
		return Errorf(EIO, "sst: copy %s to %s: %w", src, dst, err)
	}
	if err := os.Remove(src); err != nil {
		return Errorf(EIO, "sst: remove %s once copied: %w", src, err)
	}
	return nil
}

// MB renders n bytes in decimal megabytes, for messages.
func MB(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
