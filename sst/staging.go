package sst

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/galera-supervisor/galera-supervisor/notify/logging"
	"golang.org/x/sys/unix"
)

// Names of the joiner's work directories and files inside each root (the
// datadir or a separate InnoDB/Aria directory). They live inside the root
// so that they are on its filesystem (renames are atomic) and writable by
// mariadbd's user, which a datadir's parent often is not. Donors never
// send them; the keep rule never moves them.
const (
	StagingDirName = ".sst-native"       // the new snapshot as it arrives
	OldDirName     = ".sst-native-old"   // the previous contents during a swap
	TrashDirName   = ".sst-native-trash" // the previous contents once committed
	JournalName    = ".sst-native-swap"  // what a swap moves in, for recovery
	// RootsName, in the first root of a swap, lists the swap's other
	// roots (directories outside the node's own: a DATA DIRECTORY, the
	// binlog index's), so that Cleanup of the first finds them.
	RootsName = ".sst-native-roots"
	// MoveName names the source and destination of an entry moved by a
	// copy (rename failed with EXDEV) whose destination is complete and
	// whose source is being removed: recovery finishes that removal.
	MoveName = ".sst-native-move"
	// CopyPrefix starts the name of an entry's copy in progress, next to
	// its destination; recovery removes it (its source is intact).
	CopyPrefix = ".sst-native-copy-"
)

// DefaultCpat is the stock scripts' cpat: top-level paths a joiner keeps
// when it replaces its datadir (wsrep_sst_mariabackup.sh).
const DefaultCpat = `.*\.pem$|.*galera\.cache$|.*sst_in_progress$|.*\.sst$|.*gvwstate\.dat$|.*grastate\.dat$|.*\.err$|.*\.log$|.*RPM_UPGRADE_MARKER$|.*RPM_UPGRADE_HISTORY$`

// alwaysKept are top-level names never replaced, whatever cpat says:
// markers of the SST itself, the server's pid file, filesystem furniture.
var alwaysKept = map[string]bool{
	PIDFile: true, InProgressFile: true, TablesFlushedFile: true, SSTErrorFile: true,
	"lost+found": true, ".zfs": true, ".snapshot": true,
	StagingDirName: true, OldDirName: true, TrashDirName: true, JournalName: true, RootsName: true, MoveName: true, ResumeName: true,
	UndoName: true, UndoName + ".tmp": true,
}

// KeepRule reports whether a top-level entry of a root survives a swap.
type KeepRule func(name string) bool

// NewKeepRule builds the rule from a cpat regular expression (the [sst]
// cpat option; DefaultCpat when empty), matched against the full path as
// find(1) sees it, plus the names no SST may replace.
func NewKeepRule(root, cpat string) (KeepRule, error) {
	if cpat == "" {
		cpat = DefaultCpat
	}
	re, err := regexp.Compile("^(?:" + cpat + ")$")
	if err != nil {
		return nil, Errorf(EINVAL, "sst: [sst] cpat %q: %w", cpat, err)
	}
	return func(name string) bool {
		if ownFile(name) {
			return true
		}
		return re.MatchString(filepath.Join(root, name))
	}, nil
}

// Excluded reports whether a donor must not send the top-level entry
// name of a root: what the joiner keeps, its own work directories, and the
// donor's SST markers.
func Excluded(name string) bool {
	if ownFile(name) {
		return true
	}
	return defaultCpatRe.MatchString(name)
}

// ownFile: a name no SST replaces or sends, whatever cpat says: the SST's
// own markers, pid files, and the supervisor's state (galera-supervisor.*:
// its last decision, its incomplete-SST marker), which is the node's own,
// and the SST's logs.
func ownFile(name string) bool {
	return alwaysKept[name] || strings.HasPrefix(name, CopyPrefix) || strings.HasSuffix(name, ".pid") || strings.HasPrefix(name, "galera-supervisor.") || IsSessionLog(name)
}

var defaultCpatRe = regexp.MustCompile("^(?:" + DefaultCpat + ")$")

// Staging receives a snapshot for one root directory without touching it,
// then swaps it in. The root's previous contents stay where they are until
// the new snapshot is complete and verified; a failed or interrupted swap
// is rolled back, leaving the root as it was.
//
// Use: NewStaging (recovers an interrupted swap, clears stale staging),
// CheckSpace, Create for each file, Written as each completes, Verify
// against the donor's manifest, then Swap (or Abort on any failure).
type Staging struct {
	Root string // the directory being replaced
	Dir  string // Root/.sst-native
	keep KeepRule
	log  *slog.Logger

	lock *os.File // flock on Root while this SST works in it

	// Resumed: the staging holds what an earlier SST of the same cluster
	// left (ResumeStaging).
	Resumed bool

	mu      sync.Mutex
	written map[string]Written
	bases   map[string]*Patch // the root's own files kept by a delta (patch.go)

	// failpoint, when set, is called before each step of a swap with the
	// step's name; an error makes the step fail (tests).
	failpoint func(step string) error
	// rename is os.Rename unless a test replaces it (to inject EXDEV).
	rename func(oldpath, newpath string) error
}

// Written is what the receiver recorded for one staged file.
type Written struct {
	Size int64
	Sum  string // method-defined checksum, compared verbatim
}

// ManifestEntry is a file the donor announced: its path relative to the
// root, size and checksum (same form as Written.Sum).
type ManifestEntry struct {
	Path string
	Size int64
	Sum  string
}

// NewStaging prepares a fresh staging directory in root. An interrupted
// earlier swap is rolled back first, so the root holds its old contents.
func NewStaging(root string, keep KeepRule, log *slog.Logger) (*Staging, error) {
	return newStaging(root, keep, log, "")
}

func newStaging(root string, keep KeepRule, log *slog.Logger, cluster string) (*Staging, error) {
	log = logging.OrDiscard(log)
	root = filepath.Clean(root)
	if keep == nil {
		var err error
		if keep, err = NewKeepRule(root, ""); err != nil {
			return nil, err
		}
	}
	s := &Staging{Root: root, Dir: filepath.Join(root, StagingDirName), keep: keep, log: log, written: map[string]Written{}}
	lock, err := lockRoot(root)
	if err != nil {
		return nil, err
	}
	s.lock = lock
	if err := s.recover(); err != nil {
		s.unlock()
		return nil, err
	}
	resume, why := s.takeOver(cluster)
	if resume {
		s.Resumed = true
	} else {
		if why != "" {
			log.Info("removing the staging directory an earlier SST left", slog.String("path", s.Dir), slog.String("reason", why))
		}
		os.Remove(filepath.Join(root, ResumeName))
		if err := os.RemoveAll(s.Dir); err != nil {
			s.unlock()
			return nil, Errorf(EACCES, "sst: remove stale staging %s: %w", s.Dir, err)
		}
		if err := os.Mkdir(s.Dir, 0o750); err != nil {
			s.unlock()
			return nil, Errorf(EACCES, "sst: create staging %s: %w", s.Dir, err)
		}
	}
	if cluster != "" {
		if err := writeResume(root, resumeMark{Cluster: cluster, Since: time.Now().UTC()}); err != nil {
			s.unlock()
			return nil, Errorf(EIO, "sst: mark staging %s: %w", s.Dir, err)
		}
	}
	return s, nil
}

// lockRoot takes an exclusive flock on the directory root: a joiner holds
// it from NewStaging to the end of its swap, so that Cleanup (another
// process) leaves a running SST's work alone. The kernel drops it when the
// joiner dies, however it dies.
func lockRoot(root string) (*os.File, error) {
	f, err := os.Open(root)
	if err != nil {
		return nil, Errorf(EACCES, "sst: open %s: %w", root, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, Errorf(EBUSY, "sst: another SST is working in %s", root)
		}
		return nil, Errorf(EIO, "sst: lock %s: %w", root, err)
	}
	return f, nil
}

func (s *Staging) unlock() {
	if s.lock != nil {
		s.lock.Close()
		s.lock = nil
	}
}

// Recover rolls back a swap in root that a crash interrupted, and clears
// a committed swap's leftovers. NewStaging calls it; a joiner that only
// needs the old datadir back (IST) may call it alone.
func Recover(root string, log *slog.Logger) error {
	s := &Staging{Root: filepath.Clean(root), log: logging.OrDiscard(log)}
	s.Dir = filepath.Join(s.Root, StagingDirName)
	return s.recover()
}

// Cleanup is what a node's supervisor runs before anything reads root: it
// rolls back an interrupted swap (Recover) and removes a staging directory
// left by a joiner that was killed, unless its resume marker names the
// cluster whose next SST is to resume from it. No SST may be running in
// root.
func Cleanup(root string, log *slog.Logger) error {
	log = logging.OrDiscard(log)
	lock, err := lockRoot(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if e := (*Error)(nil); errors.As(err, &e) && e.Errno == EBUSY {
		log.Info("an SST is working in the datadir; its leftovers are its own", slog.String("path", root))
		return nil
	}
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := cleanOthers(root, log); err != nil {
		return err
	}
	if err := Recover(root, log); err != nil {
		return err
	}
	dir := filepath.Join(filepath.Clean(root), StagingDirName)
	if _, err := os.Lstat(dir); err != nil {
		os.Remove(filepath.Join(root, ResumeName))
		return nil
	}
	m, err := readResume(root)
	if err == nil {
		log.Info("keeping the staging directory an interrupted SST left: the next SST from a donor of that cluster resumes from it", slog.String("path", dir), slog.String("cluster", m.Cluster))
		return nil
	}
	log.Info("removing the staging directory an interrupted SST left", slog.String("path", dir), slog.Any("reason", err))
	os.Remove(filepath.Join(root, ResumeName))
	if err := os.RemoveAll(dir); err != nil {
		return Errorf(EACCES, "sst: remove stale staging %s: %w", dir, err)
	}
	return nil
}

// cleanOthers runs Cleanup on the other roots of a swap that root's
// RootsName lists, and removes the list.
func cleanOthers(root string, log *slog.Logger) error {
	list := filepath.Join(root, RootsName)
	b, err := os.ReadFile(list)
	if err != nil {
		return nil
	}
	for _, other := range strings.Split(string(b), "\n") {
		if other = filepath.Clean(other); other == "." || !filepath.IsAbs(other) || other == filepath.Clean(root) {
			continue
		}
		if err := Cleanup(other, log); err != nil {
			return err
		}
	}
	os.Remove(list)
	return nil
}

func (s *Staging) recover() error {
	if err := s.finishMove(); err != nil {
		return err
	}
	trash := filepath.Join(s.Root, TrashDirName)
	if _, err := os.Lstat(trash); err == nil {
		s.log.Info("removing what a committed swap left", slog.String("path", trash))
		if err := os.RemoveAll(trash); err != nil {
			return Errorf(EACCES, "sst: remove %s: %w", trash, err)
		}
		// The rename to trash was the commit point: the journals are stale.
		os.Remove(filepath.Join(s.Root, JournalName))
		os.Remove(filepath.Join(s.Root, UndoName))
		return syncDir(s.Root)
	}
	old := filepath.Join(s.Root, OldDirName)
	journal := filepath.Join(s.Root, JournalName)
	_, oerr := os.Lstat(old)
	_, jerr := os.Lstat(journal)
	if oerr != nil && jerr != nil {
		return undoPatches(s.Root, s.log)
	}
	s.log.Warn("rolling back an interrupted swap", slog.String("path", s.Root))
	if names, err := readJournal(journal); err == nil {
		for _, n := range names {
			p := filepath.Join(s.Root, n)
			if _, err := os.Lstat(p); err == nil {
				if err := os.RemoveAll(p); err != nil {
					return Errorf(EACCES, "sst: roll back swap: remove %s: %w", p, err)
				}
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Errorf(EIO, "sst: roll back swap: read %s: %w", journal, err)
	}
	if oerr == nil {
		ents, err := os.ReadDir(old)
		if err != nil {
			return Errorf(EACCES, "sst: roll back swap: %w", err)
		}
		for _, e := range ents {
			dst := filepath.Join(s.Root, e.Name())
			if _, err := os.Lstat(dst); err == nil {
				return Errorf(EEXIST, "sst: roll back swap: %s exists both in %s and %s; resolve by hand", e.Name(), s.Root, old)
			}
			if _, err := s.move(filepath.Join(old, e.Name()), dst); err != nil {
				return Errorf(EACCES, "sst: roll back swap: %w", err)
			}
		}
		if err := os.Remove(old); err != nil {
			return Errorf(EACCES, "sst: roll back swap: %w", err)
		}
	}
	os.Remove(journal)
	if err := syncDir(s.Root); err != nil {
		return err
	}
	return undoPatches(s.Root, s.log)
}

// Extra errnos used here.
const (
	EIO    = unix.EIO
	EEXIST = unix.EEXIST
)

// SpaceReserve is kept free beyond the announced payload so the server can
// still start (redo, galera.cache, error log).
const SpaceReserve = 64 << 20

// CheckSpace fails with ENOSPC unless the root's filesystem can take need
// more bytes plus SpaceReserve.
func (s *Staging) CheckSpace(need int64, peer string) error {
	free, err := FreeSpace(s.Dir)
	if err != nil {
		return Errorf(EIO, "sst: statfs %s: %w", s.Dir, err)
	}
	if need+SpaceReserve > free {
		return Errorf(ENOSPC, "sst: not enough space in %s for the snapshot from %s: need %d MB (+%d MB reserve), %d MB free; the old datadir is kept until the new one is complete",
			s.Root, peer, need>>20, SpaceReserve>>20, free>>20)
	}
	return nil
}

// FreeSpace is the space an unprivileged user may still use at path.
func FreeSpace(path string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// CheckPath validates a path sent by a donor: relative, clean, no "..",
// and not one of the joiner's own work entries.
func CheckPath(rel string) error {
	if rel == "" || !filepath.IsLocal(rel) || filepath.Clean(rel) != rel || strings.ContainsRune(rel, 0) || strings.Contains(rel, `\`) {
		return Errorf(EPROTO, "sst: path %q escapes the datadir or is not clean", rel)
	}
	top, _, _ := strings.Cut(rel, "/")
	switch {
	case top == StagingDirName, top == OldDirName, top == TrashDirName, top == JournalName, top == MoveName, top == ResumeName, top == PatchDirName,
		top == UndoName, top == UndoName+".tmp", strings.HasPrefix(top, CopyPrefix):
		return Errorf(EPROTO, "sst: path %q names the joiner's work directory", rel)
	}
	return nil
}

// Path returns the staged location of rel after validating it.
func (s *Staging) Path(rel string) (string, error) {
	if err := CheckPath(rel); err != nil {
		return "", err
	}
	return filepath.Join(s.Dir, rel), nil
}

// MkdirAll creates directory rel (and its parents) in staging.
func (s *Staging) MkdirAll(rel string, perm os.FileMode) error {
	p, err := s.Path(rel)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(p, perm|0o700); err != nil {
		return Errorf(EIO, "sst: staging mkdir %s: %w", p, err)
	}
	return nil
}

// Create creates file rel in staging, failing if it exists; parent
// directories are created. Staging is ours alone and holds no symlinks, so
// O_NOFOLLOW on the last component is enough.
func (s *Staging) Create(rel string, perm os.FileMode) (*os.File, error) {
	p, err := s.Path(rel)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		return nil, Errorf(EIO, "sst: staging mkdir %s: %w", filepath.Dir(p), err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, perm&0o777|0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, Errorf(EPROTO, "sst: file %s sent twice", rel)
		}
		return nil, Errorf(EIO, "sst: create %s: %w", p, err)
	}
	return f, nil
}

// OpenExisting opens an already staged file rel for writing (a re-sent or
// patched file), without following symlinks.
func (s *Staging) OpenExisting(rel string) (*os.File, error) {
	p, err := s.Path(rel)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, Errorf(EIO, "sst: open staged %s: %w", p, err)
	}
	return f, nil
}

// Written records that rel is complete with size bytes and checksum sum.
func (s *Staging) Written(rel string, size int64, sum string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.written[rel] = Written{Size: size, Sum: sum}
}

// Verify checks the staged tree against the donor's manifest: every file
// present, recorded complete, with the announced size (on disk too) and
// checksum, and no file the manifest does not name.
func (s *Staging) Verify(manifest []ManifestEntry, peer string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	want := make(map[string]ManifestEntry, len(manifest))
	for _, m := range manifest {
		if err := CheckPath(m.Path); err != nil {
			return err
		}
		want[m.Path] = m
		if b := s.bases[m.Path]; b != nil {
			if size := b.Size(); size != m.Size {
				return Errorf(EPIPE, "sst: %s from %s: %d bytes with its patch, donor announced %d", m.Path, peer, size, m.Size)
			}
			continue
		}
		w, ok := s.written[m.Path]
		if !ok {
			return Errorf(EPIPE, "sst: %s from %s never arrived complete", m.Path, peer)
		}
		if w.Size != m.Size {
			return Errorf(EPIPE, "sst: %s from %s: got %d bytes, donor announced %d", m.Path, peer, w.Size, m.Size)
		}
		if w.Sum != m.Sum {
			return Errorf(EPROTO, "sst: %s from %s: checksum %s, donor announced %s", m.Path, peer, w.Sum, m.Sum)
		}
		fi, err := os.Lstat(filepath.Join(s.Dir, m.Path))
		if err != nil {
			return Errorf(EPIPE, "sst: staged %s: %w", m.Path, err)
		}
		if !fi.Mode().IsRegular() || fi.Size() != m.Size {
			return Errorf(EPIPE, "sst: staged %s is %d bytes (%s), donor announced %d", m.Path, fi.Size(), fi.Mode().Type(), m.Size)
		}
	}
	for rel := range s.bases {
		if _, ok := want[rel]; !ok {
			return Errorf(EPROTO, "sst: %s, kept from %s, is not in %s's manifest", rel, s.Root, peer)
		}
	}
	return filepath.WalkDir(s.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return Errorf(EIO, "sst: verify staging: %w", err)
		}
		rel, _ := filepath.Rel(s.Dir, p)
		if d.IsDir() {
			if rel == PatchDirName {
				return fs.SkipDir
			}
			return nil
		}
		if _, ok := want[rel]; !ok {
			return Errorf(EPROTO, "sst: staged %s is not in %s's manifest", rel, peer)
		}
		if s.bases[rel] != nil {
			return Errorf(EPROTO, "sst: %s is both staged and kept from %s", rel, s.Root)
		}
		return nil
	})
}

// Abort removes the staging directory; the root is untouched.
func (s *Staging) Abort() {
	if s == nil {
		return
	}
	os.Remove(filepath.Join(s.Root, ResumeName))
	os.RemoveAll(s.Dir)
	s.unlock()
}

func (s *Staging) fail(step string) error {
	if s.failpoint == nil {
		return nil
	}
	return s.failpoint(step)
}

// swap is one root's move-aside/move-in, with enough state to undo it.
type swap struct {
	s        *Staging
	old      string
	journal  string
	aside    []string // names moved Root → old
	movedIn  []string // names moved staging → Root
	incoming []string
}

// Swap replaces each staging's root contents with its staged snapshot,
// all or nothing: the previous contents are moved aside (kept entries stay),
// the new ones moved in, everything fsync'd, and only then the previous
// contents deleted. On any error every root is restored as it was.
func Swap(stagings ...*Staging) error {
	var done []*swap
	var roots string
	if len(stagings) > 1 {
		var others []string
		for _, s := range stagings[1:] {
			others = append(others, s.Root)
		}
		roots = filepath.Join(stagings[0].Root, RootsName)
		if err := writeJournal(roots, others); err != nil {
			return Errorf(EIO, "sst: write %s: %w", roots, err)
		}
	}
	rollback := func(cause error) error {
		for i := len(done) - 1; i >= 0; i-- {
			if err := done[i].undo(); err != nil {
				return errors.Join(cause, err)
			}
		}
		if roots != "" {
			os.Remove(roots)
		}
		return cause
	}
	for _, s := range stagings {
		sw := &swap{s: s, old: filepath.Join(s.Root, OldDirName), journal: filepath.Join(s.Root, JournalName)}
		done = append(done, sw)
		if err := sw.do(); err != nil {
			return rollback(err)
		}
	}
	// Commit point: once every old dir is renamed to trash, the swap stands.
	for _, sw := range done {
		if err := sw.s.fail("commit"); err != nil {
			return rollback(Errorf(EIO, "sst: commit swap in %s: %w", sw.s.Root, err))
		}
	}
	for _, sw := range done {
		trash := filepath.Join(sw.s.Root, TrashDirName)
		if err := os.Rename(sw.old, trash); err != nil {
			return rollback(Errorf(EIO, "sst: commit swap in %s: %w", sw.s.Root, err))
		}
		os.Remove(sw.journal)
		// Patched in place, and committed: the undo journal must not
		// run. Removed before the trash, which tells recovery so.
		os.Remove(filepath.Join(sw.s.Root, UndoName))
		if err := syncDir(sw.s.Root); err != nil {
			sw.s.log.Warn("fsync after the swap failed", slog.String("path", sw.s.Root), slog.Any("error", err))
		}
	}
	if roots != "" {
		os.Remove(roots)
	}
	for _, sw := range done {
		if err := os.RemoveAll(filepath.Join(sw.s.Root, TrashDirName)); err != nil {
			sw.s.log.Warn("cannot remove the previous datadir contents", slog.String("path", filepath.Join(sw.s.Root, TrashDirName)), slog.Any("error", err))
		}
		os.RemoveAll(sw.s.Dir)
		os.Remove(filepath.Join(sw.s.Root, ResumeName))
		sw.s.unlock()
	}
	return nil
}

func (sw *swap) do() error {
	s := sw.s
	// A delta's bases get their patches in place under the undo journal
	// (patch.go), then join the staged tree: the old contents, moved aside
	// next, hold the patched files too, until the commit or the rollback's
	// undoPatches. (Patched first, so that a base the filesystem will not
	// link is copied with its patch.)
	if err := s.applyPatches(); err != nil {
		return err
	}
	if err := s.linkBases(); err != nil {
		return err
	}
	ents, err := os.ReadDir(s.Dir)
	if err != nil {
		return Errorf(EIO, "sst: read staging %s: %w", s.Dir, err)
	}
	incoming := map[string]bool{}
	for _, e := range ents {
		if e.Name() == PatchDirName {
			continue
		}
		sw.incoming = append(sw.incoming, e.Name())
		incoming[e.Name()] = true
	}
	if err := s.fail("mkdir-old"); err != nil {
		return err
	}
	if err := os.Mkdir(sw.old, 0o750); err != nil {
		return Errorf(EIO, "sst: create %s: %w", sw.old, err)
	}
	cur, err := os.ReadDir(s.Root)
	if err != nil {
		return Errorf(EIO, "sst: read %s: %w", s.Root, err)
	}
	for _, e := range cur {
		n := e.Name()
		if alwaysKept[n] && !incoming[n] {
			continue
		}
		if s.keep(n) && !incoming[n] {
			continue
		}
		if err := s.fail("move-aside:" + n); err != nil {
			return err
		}
		moved, err := s.move(filepath.Join(s.Root, n), filepath.Join(sw.old, n))
		if moved {
			sw.aside = append(sw.aside, n)
		}
		if err != nil {
			return Errorf(EIO, "sst: move aside %s: %w", n, err)
		}
	}
	// The journal names what moves in; it is written only once everything
	// it names is out of the way, so a recovery that removes those names
	// from the root can only remove new entries.
	if err := s.fail("journal"); err != nil {
		return err
	}
	if err := syncDir(sw.old); err != nil {
		return Errorf(EIO, "sst: fsync %s: %w", sw.old, err)
	}
	if err := writeJournal(sw.journal, sw.incoming); err != nil {
		return Errorf(EIO, "sst: write %s: %w", sw.journal, err)
	}
	for _, n := range sw.incoming {
		if err := s.fail("move-in:" + n); err != nil {
			return err
		}
		moved, err := s.move(filepath.Join(s.Dir, n), filepath.Join(s.Root, n))
		if moved {
			sw.movedIn = append(sw.movedIn, n)
		}
		if err != nil {
			return Errorf(EIO, "sst: move in %s: %w", n, err)
		}
	}
	if err := s.fail("sync"); err != nil {
		return err
	}
	if err := syncTree(s.Root, sw.incoming); err != nil {
		return Errorf(EIO, "sst: fsync %s: %w", s.Root, err)
	}
	return nil
}

func (sw *swap) undo() error {
	s := sw.s
	var errs []error
	for i := len(sw.movedIn) - 1; i >= 0; i-- {
		n := sw.movedIn[i]
		if _, err := s.move(filepath.Join(s.Root, n), filepath.Join(s.Dir, n)); err != nil {
			errs = append(errs, err)
		}
	}
	for i := len(sw.aside) - 1; i >= 0; i-- {
		n := sw.aside[i]
		if _, err := s.move(filepath.Join(sw.old, n), filepath.Join(s.Root, n)); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		os.Remove(sw.old)
		os.Remove(sw.journal)
		syncDir(s.Root)
		return undoPatches(s.Root, s.log)
	}
	return Errorf(EIO, "sst: roll back swap in %s (left %s for the next start to restore): %w", s.Root, sw.old, errors.Join(errs...))
}

func writeJournal(path string, names []string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, n := range names {
		fmt.Fprintln(w, n)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func readJournal(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, n := range strings.Split(string(b), "\n") {
		if n == "" || CheckPath(n) != nil || strings.Contains(n, "/") {
			continue
		}
		names = append(names, n)
	}
	return names, nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// syncTree fsyncs the directories under root/names and root itself; file
// data is synced by the receiver as each file completes.
func syncTree(root string, names []string) error {
	sort.Strings(names)
	for _, n := range names {
		err := filepath.WalkDir(filepath.Join(root, n), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				return syncDir(p)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return syncDir(root)
}

// RecordTree records every file now in staging as written with its size
// on disk and an empty checksum: for receivers (such as sst/transfer's
// Sink) that verify each chunk's checksum themselves and count the bytes
// of each file, so that Verify checks presence, size and completeness.
func (s *Staging) RecordTree() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return filepath.WalkDir(s.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return Errorf(EIO, "sst: scan staging: %w", err)
		}
		if d.IsDir() && p == filepath.Join(s.Dir, PatchDirName) {
			return fs.SkipDir
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return Errorf(EIO, "sst: scan staging: %w", err)
			}
			rel, _ := filepath.Rel(s.Dir, p)
			s.written[rel] = Written{Size: fi.Size()}
		}
		return nil
	})
}

// Prune removes staged files not named in keep (a file the donor sent
// and later found deleted, or an old file copied for a delta that the
// donor no longer has), and the directories that this leaves empty: a
// database dropped on the donor must not come back as an empty one, which
// mariadbd would list. A directory that was empty before is left alone,
// as a full transfer leaves it. It returns the files removed.
func (s *Staging) Prune(keep map[string]bool) ([]string, error) {
	var removed []string
	err := filepath.WalkDir(s.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p == filepath.Join(s.Dir, PatchDirName) {
				return fs.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(s.Dir, p)
		if !keep[rel] {
			if err := os.Remove(p); err != nil {
				return err
			}
			removed = append(removed, rel)
		}
		return nil
	})
	if err != nil {
		return removed, Errorf(EIO, "sst: prune staging %s: %w", s.Dir, err)
	}
	if err := s.removeEmptied(removed); err != nil {
		return removed, err
	}
	s.mu.Lock()
	var gone []string
	for rel := range s.bases {
		if !keep[rel] {
			gone = append(gone, rel)
		}
	}
	s.mu.Unlock()
	sort.Strings(gone)
	for _, rel := range gone {
		s.Unbase(rel) // the donor no longer has it: it goes with the old contents
	}
	removed = append(removed, gone...)
	s.mu.Lock()
	for _, r := range removed {
		delete(s.written, r)
	}
	s.mu.Unlock()
	return removed, nil
}

// removeEmptied removes the directories above the removed files that no
// longer hold anything, deepest first.
func (s *Staging) removeEmptied(removed []string) error {
	dirs := map[string]bool{}
	for _, r := range removed {
		for d := filepath.Dir(r); d != "." && d != "/"; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	order := slices.Collect(maps.Keys(dirs))
	// Deeper paths first: a parent can be empty only once its children
	// are gone.
	slices.SortFunc(order, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	for _, d := range order {
		err := os.Remove(filepath.Join(s.Dir, d))
		if err != nil && !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) && !errors.Is(err, fs.ErrNotExist) {
			return Errorf(EIO, "sst: prune staging %s: %w", s.Dir, err)
		}
	}
	return nil
}
