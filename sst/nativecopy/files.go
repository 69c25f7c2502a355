package nativecopy

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/galera-supervisor/galera-supervisor/notify/logging"
	"github.com/galera-supervisor/galera-supervisor/sst"
)

// Root tags name the directories that may live outside the datadir. A file
// from such a directory travels as "@<tag>/<name>" and each side maps the
// tag to its own directory; files of the datadir travel under their path
// relative to it.
const (
	tagInnoDBData = "innodb-data"
	tagInnoDBLog  = "innodb-log"
	tagInnoDBUndo = "innodb-undo"
	tagAriaLog    = "aria-log"
	tagBinlog     = "binlog"
	// tagExt: a file outside every directory of the node, which the
	// joiner puts at the same absolute path as the donor has it: an InnoDB
	// tablespace created with DATA DIRECTORY (its .isl names it), or the
	// target of a MyISAM/Aria DATA/INDEX DIRECTORY symlink. It travels as
	// "@ext/<path without the leading slash>".
	tagExt = "ext"
)

// Top-level file patterns of each directory, as the rsync method's passes
// select them (wsrep_sst_rsync.sh passes b-e).
var (
	reInnoDBData = regexp.MustCompile(`^ibdata[0-9]*$`)
	reRedo       = regexp.MustCompile(`^ib_logfile[0-9]+$`)
	reUndo       = regexp.MustCompile(`^undo[0-9]+$`)
	reAria       = regexp.MustCompile(`^aria_log(_control|\.[0-9]+)$`)
)

// file is one file the donor sends.
type file struct {
	Name  string // wire name
	Path  string // on the donor
	Size  int64
	MTime time.Time
	// Log files (InnoDB redo, Aria log) are re-sent under the lock always.
	Log bool
	// Redo is an InnoDB redo log; Sparse says that only its live part went
	// to the joiner, over zeros (see liveRedo).
	Redo, Sparse bool
	// Read is when the donor queued it; a later change to the file, or an
	// mtime too close to this to tell, means it must be sent again.
	Read time.Time
	// Table and Link describe a file outside the node's directories
	// (tagExt): the table it belongs to, and for a MyISAM/Aria symlink,
	// the link's name in the datadir.
	Table, Link string
}

// extFile announces a file that goes outside the joiner's directories, so
// that the joiner can check its path before any byte moves.
type extFile struct {
	Name  string `json:"name"`           // wire name, "@ext/..."
	Path  string `json:"path"`           // absolute, the same on both nodes
	Table string `json:"table"`          // "db/t", for messages
	Link  string `json:"link,omitempty"` // the datadir's symlink to Path
	Size  int64  `json:"size"`
}

// extName is the wire name of a file at absolute path p.
func extName(p string) string { return "@" + tagExt + p }

// extFiles lists the files of files that go outside the joiner's
// directories.
func extFiles(files []*file) []extFile {
	var out []extFile
	for _, f := range files {
		if strings.HasPrefix(f.Name, "@"+tagExt+"/") {
			out = append(out, extFile{Name: f.Name, Path: f.Path, Table: f.Table, Link: f.Link, Size: f.Size})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// tableOf names the table of a file of the datadir ("db/t.isl" → "db/t").
func tableOf(rel string) string {
	return strings.TrimSuffix(rel, filepath.Ext(rel))
}

// islTarget reads an InnoDB .isl file: the absolute path of the
// tablespace it points to.
func islTarget(p string) (string, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	t := strings.TrimSpace(string(b))
	if !filepath.IsAbs(t) {
		return "", fmt.Errorf("%s names %q, not an absolute path", p, t)
	}
	return filepath.Clean(t), nil
}

// linkTarget resolves a symlink of the datadir to the absolute path of
// the regular file it points to (a MyISAM/Aria DATA or INDEX DIRECTORY).
func linkTarget(p string) (string, error) {
	t, err := os.Readlink(p)
	if err != nil {
		return "", err
	}
	if !filepath.IsAbs(t) {
		t = filepath.Join(filepath.Dir(p), t)
	}
	t = filepath.Clean(t)
	fi, err := os.Stat(t)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s points to %s, not a regular file", p, t)
	}
	return t, nil
}

// dirs is where each tag lives on this node.
type dirs struct {
	data string
	tags map[string]string // tag → absolute dir
}

func newDirs(s *sst.Session) dirs {
	d := s.Dirs()
	t := map[string]string{
		tagInnoDBData: d.InnoDBData,
		tagInnoDBLog:  d.InnoDBLog,
		tagInnoDBUndo: d.InnoDBUndo,
		tagAriaLog:    d.AriaLog,
	}
	if base, _ := s.Binlog(); base != "" {
		t[tagBinlog] = filepath.Dir(base)
	}
	return dirs{data: d.Data, tags: t}
}

// wireName names file base of the directory tagged tag. It is tagged
// wherever the directory is: the joiner puts it where its own
// configuration says, which may differ from the donor's.
func (d dirs) wireName(tag, base string) string {
	return "@" + tag + "/" + base
}

// listFiles lists what a joiner receives from this donor: the datadir's
// directories (databases, the mysql and sys schemas, ...) except those a
// joiner must not receive, the InnoDB system tablespaces, redo and undo
// logs, the Aria logs, the last maxBinlogs binlogs, and the files outside
// the datadir that tables point to (.isl files, MyISAM/Aria symlinks).
// Other symlinks are skipped with a warning.
func listFiles(d dirs, binlogs []string, warn *slog.Logger) ([]*file, error) {
	warn = logging.OrDiscard(warn)
	var out []*file
	seen := map[string]bool{}
	add := func(name, path string, fi fs.FileInfo, log, redo bool) *file {
		if seen[name] {
			return nil
		}
		seen[name] = true
		f := &file{Name: name, Path: path, Size: fi.Size(), MTime: fi.ModTime(), Log: log, Redo: redo}
		out = append(out, f)
		return f
	}
	// addExt adds the file at target that table's entry rel points to.
	addExt := func(rel, target, link string) {
		fi, err := os.Stat(target)
		if err != nil {
			warn.Warn("skipping "+target+", named by "+rel, slog.String("path", target), slog.Any("error", err))
			return
		}
		if f := add(extName(target), target, fi, false, false); f != nil {
			f.Table, f.Link = tableOf(rel), link
		}
	}
	// Flat files of the special directories.
	type sel struct {
		tag string
		re  *regexp.Regexp
		log bool
	}
	for _, s := range []sel{{tagInnoDBData, reInnoDBData, false}, {tagInnoDBLog, reRedo, true}, {tagInnoDBUndo, reUndo, false}, {tagAriaLog, reAria, true}} {
		dir := d.tags[s.tag]
		ents, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue // nothing there yet (a joiner's directory before its first SST)
		}
		if err != nil {
			return nil, sst.Errorf(sst.ENOENT, "native-copy: read %s directory %s: %w", s.tag, dir, err)
		}
		for _, e := range ents {
			if !s.re.MatchString(e.Name()) || !e.Type().IsRegular() {
				continue
			}
			fi, err := e.Info()
			if err != nil {
				continue // removed meanwhile
			}
			add(d.wireName(s.tag, e.Name()), filepath.Join(dir, e.Name()), fi, s.log, s.re == reRedo)
		}
	}
	for _, b := range binlogs {
		fi, err := os.Stat(b)
		if err != nil {
			return nil, sst.Errorf(sst.ENOENT, "native-copy: binlog %s: %w", b, err)
		}
		add("@"+tagBinlog+"/"+filepath.Base(b), b, fi, false, false)
	}
	// The datadir's directories, recursively.
	ents, err := os.ReadDir(d.data)
	if err != nil {
		return nil, sst.Errorf(sst.ENOENT, "native-copy: read datadir %s: %w", d.data, err)
	}
	special := map[string]bool{}
	for _, dir := range d.tags {
		special[dir] = true
	}
	for _, e := range ents {
		if !e.IsDir() || sst.Excluded(e.Name()) || strings.HasPrefix(e.Name(), ".sst") {
			continue
		}
		top := filepath.Join(d.data, e.Name())
		err := filepath.WalkDir(top, func(p string, de fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil // dropped meanwhile
				}
				return err
			}
			if de.IsDir() {
				if p != top && special[p] {
					return fs.SkipDir // a tagged directory inside the datadir: sent above
				}
				return nil
			}
			rel, _ := filepath.Rel(d.data, p)
			rel = filepath.ToSlash(rel)
			if de.Type()&fs.ModeSymlink != 0 {
				target, err := linkTarget(p)
				if err != nil {
					warn.Warn("skipping symlink "+p, slog.String("path", p), slog.Any("error", err))
					return nil
				}
				addExt(rel, target, rel)
				return nil
			}
			if !de.Type().IsRegular() {
				return nil
			}
			fi, err := de.Info()
			if err != nil {
				return nil
			}
			add(rel, p, fi, false, false)
			if strings.HasSuffix(p, ".isl") {
				target, err := islTarget(p)
				if err != nil {
					warn.Warn("skipping the tablespace of "+p, slog.String("path", p), slog.Any("error", err))
					return nil
				}
				addExt(rel, target, "")
			}
			return nil
		})
		if err != nil {
			return nil, sst.Errorf(sst.EIO, "native-copy: walk %s: %w", top, err)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Size > out[j].Size })
	return out, nil
}

// lastBinlogs returns the last n binlogs listed in the index (all when
// n <= 0), as absolute paths; none when binary logging is off.
func lastBinlogs(datadir, index string, n int) ([]string, error) {
	if index == "" {
		return nil, nil
	}
	f, err := os.Open(index)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, sst.Errorf(sst.EIO, "native-copy: binlog index: %w", err)
	}
	defer f.Close()
	var all []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" {
			continue
		}
		if !filepath.IsAbs(l) {
			l = filepath.Join(datadir, l)
		}
		all = append(all, l)
	}
	if err := sc.Err(); err != nil {
		return nil, sst.Errorf(sst.EIO, "native-copy: binlog index %s: %w", index, err)
	}
	if n > 0 && len(all) > n {
		all = all[len(all)-n:]
	}
	return all, nil
}

// changed reports whether f may differ from what was read: its size or
// mtime moved, or its mtime is too close to the read to tell, since file
// timestamps are coarser than the clock.
func (f *file) changed() (bool, error) {
	fi, err := os.Stat(f.Path)
	if err != nil {
		return true, err
	}
	const racy = 2 * time.Second
	return fi.Size() != f.Size || !fi.ModTime().Equal(f.MTime) || !f.MTime.Before(f.Read.Add(-racy)), nil
}

func maxBinlogs(s *sst.Session) (int, error) {
	v := s.OptionIn(sst.EncGroups, "sst-max-binlogs", "1")
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, sst.Errorf(sst.EINVAL, "native-copy: sst-max-binlogs=%s: %v", v, err)
	}
	return n, nil
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
