package nativecopy

import (
	"bufio"
	"errors"
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
	// (sst.TagExt): the table it belongs to, and for a MyISAM/Aria symlink,
	// the link's name in the datadir.
	Table, Link string
}

// extFiles lists the files of files that go outside the joiner's
// directories.
func extFiles(files []*file) []sst.ExtFile {
	var out []sst.ExtFile
	for _, f := range files {
		if strings.HasPrefix(f.Name, "@"+sst.TagExt+"/") {
			out = append(out, sst.ExtFile{Name: f.Name, Path: f.Path, Table: f.Table, Link: f.Link, Size: f.Size})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// listFiles lists what a joiner receives from this donor: the datadir's
// directories (databases, the mysql and sys schemas, ...) except those a
// joiner must not receive, the InnoDB system tablespaces, redo and undo
// logs, the Aria logs, the last maxBinlogs binlogs, and the files outside
// the datadir that tables point to (.isl files, MyISAM/Aria symlinks).
// Other symlinks are skipped with a warning.
func listFiles(d sst.Layout, binlogs []string, warn *slog.Logger) ([]*file, error) {
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
	// Flat files of the special directories.
	type sel struct {
		tag string
		re  *regexp.Regexp
		log bool
	}
	for _, s := range []sel{{sst.TagInnoDBData, sst.ReInnoDBData, false}, {sst.TagInnoDBLog, sst.ReRedo, true}, {sst.TagInnoDBUndo, sst.ReUndo, false}, {sst.TagAriaLog, sst.ReAria, true}} {
		dir := d.Tags[s.tag]
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
			add(sst.WireName(s.tag, e.Name()), filepath.Join(dir, e.Name()), fi, s.log, s.re == sst.ReRedo)
		}
	}
	for _, b := range binlogs {
		fi, err := os.Stat(b)
		if err != nil {
			return nil, sst.Errorf(sst.ENOENT, "native-copy: binlog %s: %w", b, err)
		}
		add(sst.WireName(sst.TagBinlog, filepath.Base(b)), b, fi, false, false)
	}
	// The datadir's directories, recursively, and the files outside the
	// node's directories that their .isl files and symlinks point to.
	err := d.WalkData(func(rel, p string, de fs.DirEntry) error {
		if de.Type().IsRegular() {
			if fi, err := de.Info(); err == nil {
				add(rel, p, fi, false, false)
			}
		}
		e, fi, err := sst.ExtOf(rel, p, de)
		if err != nil {
			warn.Warn("skipping a file a table points to", slog.String("path", p), slog.Any("error", err))
		}
		if fi != nil {
			if f := add(e.Name, e.Path, fi, false, false); f != nil {
				f.Table, f.Link = e.Table, e.Link
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
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
