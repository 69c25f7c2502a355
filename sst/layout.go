package sst

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/galera-supervisor/galera-supervisor/notify/logging"
)

// Directory tags name the directories of a node that may live outside its
// datadir. A file of such a directory travels as "@<tag>/<name>" and each
// side maps the tag to its own directory, so that the joiner puts it where
// its own configuration says, which may differ from the donor's; files of
// the datadir travel under their path relative to it.
const (
	TagInnoDBData = "innodb-data"
	TagInnoDBLog  = "innodb-log"
	TagInnoDBUndo = "innodb-undo"
	TagAriaLog    = "aria-log"
	TagBinlog     = "binlog"
	// TagExt: a file outside every directory of the node, which the
	// joiner puts at the same absolute path as the donor has it: an InnoDB
	// tablespace created with DATA DIRECTORY (its .isl names it), or the
	// target of a MyISAM/Aria DATA/INDEX DIRECTORY symlink. It travels as
	// "@ext/<path without the leading slash>".
	TagExt = "ext"
)

// Top-level file patterns of each tagged directory, as the rsync method's
// passes select them (wsrep_sst_rsync.sh passes b-e).
var (
	ReInnoDBData = regexp.MustCompile(`^ibdata[0-9]*$`)
	ReRedo       = regexp.MustCompile(`^ib_logfile[0-9]+$`)
	ReUndo       = regexp.MustCompile(`^undo[0-9]+$`)
	ReAria       = regexp.MustCompile(`^aria_log(_control|\.[0-9]+)$`)
)

// Layout is where each tagged directory lives on this node.
type Layout struct {
	Data string
	Tags map[string]string // tag → absolute directory
}

// Layout is this node's: its InnoDB and Aria directories (Dirs) and, when
// binary logging is on, the binlog's.
func (s *Session) Layout() Layout {
	d := s.Dirs()
	t := map[string]string{
		TagInnoDBData: d.InnoDBData,
		TagInnoDBLog:  d.InnoDBLog,
		TagInnoDBUndo: d.InnoDBUndo,
		TagAriaLog:    d.AriaLog,
	}
	if base, _ := s.Binlog(); base != "" {
		t[TagBinlog] = filepath.Dir(base)
	}
	return Layout{Data: d.Data, Tags: t}
}

// WireName names file base of the directory tagged tag.
func WireName(tag, base string) string { return "@" + tag + "/" + base }

// TagOf is the tag of a top-level file name of a tagged directory ("" for
// none): the InnoDB system tablespace, redo and undo logs, the Aria logs,
// and binlogs of basename binlogBase (empty when binary logging is off).
func TagOf(name, binlogBase string) string {
	switch {
	case ReInnoDBData.MatchString(name):
		return TagInnoDBData
	case ReRedo.MatchString(name):
		return TagInnoDBLog
	case ReUndo.MatchString(name):
		return TagInnoDBUndo
	case ReAria.MatchString(name):
		return TagAriaLog
	case binlogBase != "" && binlogRe(binlogBase, `[0-9]+`).MatchString(name):
		return TagBinlog
	}
	return ""
}

func binlogRe(base, suffixes string) *regexp.Regexp {
	return regexp.MustCompile(`^` + regexp.QuoteMeta(filepath.Base(base)) + `\.(` + suffixes + `)$`)
}

// OptionOf is the server option that sets a tag's directory.
func OptionOf(tag string) string {
	switch tag {
	case TagInnoDBData:
		return "innodb_data_home_dir"
	case TagInnoDBLog:
		return "innodb_log_group_home_dir"
	case TagInnoDBUndo:
		return "innodb_undo_directory"
	case TagAriaLog:
		return "aria_log_dir_path"
	case TagBinlog:
		return "log_bin"
	}
	return tag
}

// KeepOnly is the keep rule of a directory outside the datadir: only the
// files of tag are replaced; anything else there (error logs, other
// servers' files) stays.
func KeepOnly(tag, binlogBase string) KeepRule {
	var re *regexp.Regexp
	switch tag {
	case TagInnoDBData:
		re = ReInnoDBData
	case TagInnoDBLog:
		re = ReRedo
	case TagInnoDBUndo:
		re = ReUndo
	case TagAriaLog:
		re = ReAria
	case TagBinlog:
		re = binlogRe(binlogBase, `[0-9]+|index|state`)
	default:
		return func(string) bool { return true }
	}
	return func(name string) bool { return !re.MatchString(name) }
}

// ExtFile announces a file that goes outside the joiner's directories, so
// that the joiner can check its path before any byte moves.
type ExtFile struct {
	Name  string `json:"name"`           // wire name, "@ext/..."
	Path  string `json:"path"`           // absolute, the same on both nodes
	Table string `json:"table"`          // "db/t", for messages
	Link  string `json:"link,omitempty"` // the datadir's symlink to Path
	Size  int64  `json:"size"`
}

// ExtName is the wire name of a file at absolute path p.
func ExtName(p string) string { return "@" + TagExt + p }

// TableOf names the table of a file of the datadir ("db/t.isl" → "db/t").
func TableOf(rel string) string {
	return strings.TrimSuffix(rel, filepath.Ext(rel))
}

// ISLTarget reads an InnoDB .isl file: the absolute path of the
// tablespace it points to.
func ISLTarget(p string) (string, error) {
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

// LinkTarget resolves a symlink of the datadir to the absolute path of
// the regular file it points to (a MyISAM/Aria DATA or INDEX DIRECTORY).
func LinkTarget(p string) (string, error) {
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

// WalkData calls fn for every entry below the datadir's database
// directories (the mysql and sys schemas too), with its path relative to
// the datadir: what a donor sends of the datadir, except top-level
// entries a joiner keeps (Excluded), the SST's work directories, and the
// tagged directories inside the datadir (their files go by tag).
func (l Layout) WalkData(fn func(rel, path string, de fs.DirEntry) error) error {
	ents, err := os.ReadDir(l.Data)
	if err != nil {
		return Errorf(ENOENT, "sst: read datadir %s: %w", l.Data, err)
	}
	special := map[string]bool{}
	for _, dir := range l.Tags {
		special[dir] = true
	}
	for _, e := range ents {
		if !e.IsDir() || Excluded(e.Name()) || strings.HasPrefix(e.Name(), ".sst") {
			continue
		}
		top := filepath.Join(l.Data, e.Name())
		err := filepath.WalkDir(top, func(p string, de fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil // dropped meanwhile
				}
				return err
			}
			if de.IsDir() {
				if p != top && special[p] {
					return fs.SkipDir
				}
				return nil
			}
			rel, _ := filepath.Rel(l.Data, p)
			return fn(filepath.ToSlash(rel), p, de)
		})
		if err != nil {
			return Errorf(EIO, "sst: walk %s: %w", top, err)
		}
	}
	return nil
}

// ScanExt lists the files outside the node's directories that its tables
// point to (see ExtOf). One that cannot be read is skipped with a warning.
func (l Layout) ScanExt(warn *slog.Logger) ([]ExtFile, error) {
	warn = logging.OrDiscard(warn)
	var out []ExtFile
	seen := map[string]bool{}
	err := l.WalkData(func(rel, p string, de fs.DirEntry) error {
		e, fi, err := ExtOf(rel, p, de)
		if err != nil {
			warn.Warn("skipping a file a table points to", slog.String("path", p), slog.Any("error", err))
		}
		if fi != nil && !seen[e.Name] {
			seen[e.Name] = true
			out = append(out, e)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// ExtOf is the file outside the node's directories that the datadir
// entry rel (at p, as WalkData gives it) points to: the tablespace an .isl
// names, the target of a symlink (MyISAM/Aria DATA/INDEX DIRECTORY). Its
// FileInfo is nil for an entry that points nowhere, or to a file that
// cannot be read (then with an error to warn of: the file is skipped).
func ExtOf(rel, p string, de fs.DirEntry) (ExtFile, fs.FileInfo, error) {
	var target, link string
	var err error
	switch {
	case de.Type()&fs.ModeSymlink != 0:
		target, err = LinkTarget(p)
		link = rel
	case de.Type().IsRegular() && strings.HasSuffix(p, ".isl"):
		target, err = ISLTarget(p)
	default:
		return ExtFile{}, nil, nil
	}
	if err != nil {
		return ExtFile{}, nil, fmt.Errorf("skipping the file %s points to: %w", p, err)
	}
	fi, err := os.Stat(target)
	if err != nil {
		return ExtFile{}, nil, fmt.Errorf("skipping %s, named by %s: %w", target, rel, err)
	}
	return ExtFile{Name: ExtName(target), Path: target, Table: TableOf(rel), Link: link, Size: fi.Size()}, fi, nil
}
