package transfer

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/galera-supervisor/galera-supervisor/sst/readback"
	"golang.org/x/sys/unix"
)

// writeBehindMin is the least chunk for which writeback starts at once.
const writeBehindMin = 256 << 10

var writeBehind = true // benchmarks compare without it

// SinkOptions configure a Sink.
type SinkOptions struct {
	// AllowSymlinks lets the donor create symlinks whose target stays
	// inside the root; otherwise any symlink is refused.
	AllowSymlinks bool
	// NoSync skips the syncfs at the end of Serve.
	NoSync bool
	// Log, when set, gets a file whose read-back failed the moment it is
	// found (readback.Checker.Failed).
	Log *slog.Logger
	// Route, when set, names the directory a received file goes into and
	// its name there (dir "" means the root, name unchanged): the joiner
	// stages files of other directories beside their targets. Each such
	// directory is opened with os.Root too and synced at the end.
	Route func(name string) (dir, rel string, err error)
	// Patch, when set, is asked first for each file opened: a non-nil
	// Patcher takes the ranges of a file the donor patches (whole false)
	// instead of the file under the root. Told of a whole file, it drops
	// any patch of it and returns nil.
	Patch func(name string, whole bool) (Patcher, error)
}

// FileError is a received file the sink could not write: Name is the
// donor's name for it, so that the receiver can say where it was going
// (a full disk: which filesystem).
type FileError struct {
	Op   string
	Name string
	Err  error
}

func (e *FileError) Error() string { return e.Op + " " + e.Name + ": " + e.Err.Error() }
func (e *FileError) Unwrap() error { return e.Err }

// Sink writes received files under a root directory and nowhere else:
// absolute names, ".." components and symlinks leading out are refused
// (the tree is opened with os.Root). What it writes is read back from disk
// beside the transfer (every 32 MiB of a file, and when it is complete)
// and each chunk's CRC compared with the donor's (package readback); each
// barrier waits for those checks.
type Sink struct {
	root  string
	o     SinkOptions
	r     *os.Root
	check *readback.Checker

	openMu sync.Mutex // makes open-or-create atomic: a second O_TRUNC would lose data
	mu     sync.Mutex
	files  map[uint64]*rxFile
	stats  Stats
	routed map[string]*os.Root // by directory, opened on first use (under mu)
}

// Patcher receives the ranges of a patched file, and its final size once
// they are all in (a joiner that keeps its old file and stores only the
// ranges that differ from it); ReadAt reads the file as patched, for the
// read-back.
type Patcher interface {
	WriteAt(b []byte, off int64) error
	End(size int64) error
	ReadAt(b []byte, off int64) (int, error)
}

type rxFile struct {
	name   string
	r      *os.Root // where it is: r, rel; path for messages
	rel    string
	path   string
	f      *os.File
	w      *directWriter
	p      Patcher // instead of f and w
	mode   fs.FileMode
	whole  bool
	ended  bool
	size   int64 // final size, known once ended
	want   int64 // bytes the donor sent, known once ended
	got    int64 // bytes written
	maxEnd int64
	have   spans // byte ranges received, so that none arrives twice
	// pieces are the chunks written and not yet handed to the read-back,
	// with the donor's CRC-32C of each; queued counts their bytes.
	pieces []readback.Piece
	queued int64
}

// readbackParallel is how many files are read back at once: the reads
// overlap the transfer; more would compete with its writes for the disk.
const readbackParallel = 2

// readbackBatch is how much of a file's written chunks is handed to the
// read-back before the file is complete: a big file is checked while it
// arrives, not all after its last chunk.
const readbackBatch = 32 << 20

// OpenSink opens root, which must exist, as the destination of a Serve.
func OpenSink(root string, o SinkOptions) (*Sink, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("open sink: %w", err)
	}
	k := &Sink{root: root, o: o, r: r, files: make(map[uint64]*rxFile),
		check: readback.New(castagnoli, "CRC-32C", readbackParallel)}
	if o.Log != nil {
		k.check.Failed = func(err error) { o.Log.Error("read back failed", append(readback.Attrs(err), "error", err)...) }
	}
	return k, nil
}

// Root is the directory files go into.
func (k *Sink) Root() string { return k.root }

// Stats are the counts so far.
func (k *Sink) Stats() Stats {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.stats
}

// Close closes the root and any file left open by a failed transfer; it
// stops the read-back of files not yet checked.
func (k *Sink) Close() error {
	k.check.Stop()
	k.mu.Lock()
	defer k.mu.Unlock()
	for id, rf := range k.files {
		if rf.w != nil {
			rf.w.Close()
		}
		delete(k.files, id)
	}
	for dir, r := range k.routed {
		r.Close()
		delete(k.routed, dir)
	}
	return k.r.Close()
}

// rootFor is the root a received name is written under, and its name
// there. Called without k.mu held.
func (k *Sink) rootFor(name string) (*os.Root, string, error) {
	r, rel, _, err := k.placeOf(name)
	return r, rel, err
}

// placeOf is rootFor with the root's directory.
func (k *Sink) placeOf(name string) (*os.Root, string, string, error) {
	if k.o.Route == nil {
		return k.r, name, k.root, nil
	}
	dir, rel, err := k.o.Route(name)
	if err != nil {
		return nil, "", "", err
	}
	if dir == "" {
		return k.r, name, k.root, nil
	}
	if err := checkName(rel); err != nil {
		return nil, "", "", err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if r := k.routed[dir]; r != nil {
		return r, rel, dir, nil
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, "", "", fmt.Errorf("open sink for %s: %w", name, err)
	}
	if k.routed == nil {
		k.routed = map[string]*os.Root{}
	}
	k.routed[dir] = r
	return r, rel, dir, nil
}

// maxDepth bounds the levels of a received path: a datadir is shallow, and
// thousands of levels would only make the joiner create directories.
const maxDepth = 64

// checkName accepts slash-separated relative names without ".", ".." or
// empty components.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty file name")
	case strings.HasPrefix(name, "/"):
		return fmt.Errorf("absolute path %q", name)
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("NUL in path %q", name)
	case !fs.ValidPath(name) || name == ".":
		return fmt.Errorf("path %q escapes the root or is not clean", name)
	case strings.Count(name, "/") >= maxDepth:
		return fmt.Errorf("path %.60q...: more than %d levels deep", name, maxDepth)
	}
	return nil
}

func mkdirParent(r *os.Root, name string) error {
	if dir := path.Dir(name); dir != "." {
		if err := r.MkdirAll(dir, 0o750); err != nil {
			return err
		}
	}
	return nil
}

// chunkSum writes data at off into file id (opened on first sight); sum
// is the donor's CRC-32C of data, already compared with it.
func (k *Sink) chunkSum(id uint64, name string, mode uint32, flags byte, off int64, data []byte, sum uint32) error {
	if err := checkName(name); err != nil {
		return err
	}
	// A file read back wrong fails the transfer now, not at the barrier.
	if err := k.check.Err(); err != nil {
		return err
	}
	end := off + int64(len(data))
	if off < 0 || end < off {
		return fmt.Errorf("%s: bad offset %d", name, off)
	}
	rf, err := k.open(id, name, mode, flags&flagWhole != 0, flags&flagCache != 0)
	if err != nil {
		return err
	}
	if len(data) > 0 {
		k.mu.Lock()
		dup := !rf.have.add(off, end)
		k.mu.Unlock()
		if dup {
			return fmt.Errorf("%s: data at offset %d (%d bytes) overlaps data already received", name, off, len(data))
		}
		if rf.p != nil {
			if err := rf.p.WriteAt(data, off); err != nil {
				return &FileError{Op: "write", Name: name, Err: err}
			}
		} else if err := rf.w.WriteAt(data, off, flags&(flagWhole|flagEOF) == flagWhole|flagEOF); err != nil {
			return &FileError{Op: "write", Name: name, Err: err}
		}
		if rf.p == nil && writeBehind && !k.o.NoSync && len(data) >= writeBehindMin && rf.w.buffered() {
			// Start writeback now, so the disk works while the network
			// does and the final syncfs has little left; without it,
			// gigabytes pile up in the page cache and are written only at
			// the end. Advisory: failures show up at syncfs.
			unix.SyncFileRange(int(rf.f.Fd()), off, int64(len(data)), unix.SYNC_FILE_RANGE_WRITE)
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(data) > 0 {
		rf.pieces = append(rf.pieces, readback.Piece{Off: off, Len: int64(len(data)), Sum: sum})
		if rf.queued += int64(len(data)); rf.queued >= readbackBatch && rf.p == nil {
			k.readBack(rf, -1)
		}
	}
	rf.got += int64(len(data))
	rf.maxEnd = max(rf.maxEnd, end)
	k.stats.Bytes += int64(len(data))
	if flags&flagEOF != 0 {
		if rf.ended {
			return fmt.Errorf("%s: second end of file", name)
		}
		rf.ended, rf.size, rf.want = true, end, end
	}
	return k.maybeDone(id, rf)
}

// fileEnd records the final size of a patched file and the bytes sent.
// flags are its chunks' (flagWhole: created anew, by SendSparse).
func (k *Sink) fileEnd(id uint64, name string, mode uint32, flags byte, size, sent int64) error {
	if err := checkName(name); err != nil {
		return err
	}
	if size < 0 || sent < 0 {
		return fmt.Errorf("%s: bad end record (size %d, sent %d)", name, size, sent)
	}
	rf, err := k.open(id, name, mode, flags&flagWhole != 0, flags&flagCache != 0)
	if err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if rf.ended {
		return fmt.Errorf("%s: second end of file", name)
	}
	rf.ended, rf.size, rf.want = true, size, sent
	return k.maybeDone(id, rf)
}

func (k *Sink) open(id uint64, name string, mode uint32, whole, cache bool) (*rxFile, error) {
	k.openMu.Lock()
	defer k.openMu.Unlock()
	k.mu.Lock()
	rf := k.files[id]
	k.mu.Unlock()
	if rf != nil {
		if rf.name != name {
			return nil, fmt.Errorf("file id %d is %s, not %s", id, rf.name, name)
		}
		return rf, nil
	}
	if k.o.Patch != nil {
		p, err := k.o.Patch(name, whole)
		if err != nil {
			return nil, &FileError{Op: "open", Name: name, Err: err}
		}
		if p != nil {
			_, rel, dir, err := k.placeOf(name)
			if err != nil {
				return nil, err
			}
			k.mu.Lock()
			defer k.mu.Unlock()
			// path: where the patched file is staged at the swap.
			rf = &rxFile{name: name, path: filepath.Join(dir, filepath.FromSlash(rel)), p: p, mode: fs.FileMode(mode) & fs.ModePerm}
			k.files[id] = rf
			return rf, nil
		}
	}
	r, rel, dir, err := k.placeOf(name)
	if err != nil {
		return nil, err
	}
	// A file sent again waits for the read-back of its previous copy.
	k.check.Idle(name)
	if err := mkdirParent(r, rel); err != nil {
		return nil, &FileError{Op: "create parent of", Name: name, Err: err}
	}
	flag := os.O_WRONLY | os.O_CREATE
	if whole {
		flag |= os.O_TRUNC
	}
	perm := fs.FileMode(mode) & fs.ModePerm
	f, err := r.OpenFile(rel, flag, perm|0o200)
	if err != nil {
		return nil, &FileError{Op: "open", Name: name, Err: err}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	rf = &rxFile{name: name, r: r, rel: rel, path: filepath.Join(dir, filepath.FromSlash(rel)),
		f: f, w: newDirectWriter(f, whole, cache), mode: perm, whole: whole}
	k.files[id] = rf
	return rf, nil
}

// maybeDone closes a file once its end is known and all its bytes are in.
// Called with k.mu held.
func (k *Sink) maybeDone(id uint64, rf *rxFile) error {
	if !rf.ended {
		return nil
	}
	if rf.maxEnd > rf.size && (rf.whole || rf.got > 0) {
		return fmt.Errorf("%s: data at offset %d beyond the final size %d", rf.name, rf.maxEnd, rf.size)
	}
	if rf.got > rf.want {
		return fmt.Errorf("%s: received %d bytes, the donor sent %d", rf.name, rf.got, rf.want)
	}
	if rf.got < rf.want {
		return nil
	}
	delete(k.files, id)
	if rf.p != nil {
		err := rf.p.End(rf.size)
		if err == nil {
			err = k.readBackPatch(rf)
		}
		if err != nil {
			return &FileError{Op: "finish", Name: rf.name, Err: err}
		}
		k.stats.Files++
		return nil
	}
	err := rf.f.Truncate(rf.size)
	if err == nil {
		err = rf.f.Chmod(rf.mode)
	}
	if err == nil {
		k.readBack(rf, rf.size)
	}
	if cerr := rf.w.Close(); err == nil {
		err = cerr
	}
	rf.f, rf.w = nil, nil
	if err != nil {
		return &FileError{Op: "finish", Name: rf.name, Err: err}
	}
	k.stats.Files++
	return nil
}

// readBack hands rf's chunks written so far to the read-back; size is the
// file's final size once it is complete, else -1. Called with k.mu held.
func (k *Sink) readBack(rf *rxFile, size int64) {
	r, rel := rf.r, rf.rel
	k.check.Check(readback.File{Name: rf.name, Path: rf.path, Size: size, Pieces: rf.pieces, Direct: !rf.w.buffered(),
		Open: func() (*os.File, error) { return r.Open(rel) }})
	rf.pieces, rf.queued = nil, 0
}

// readBackPatch reads a patched file back as patched (its old file with
// the ranges that differed) and compares it with the donor's CRCs, now:
// a delta's patches are its few changed pages. Called with k.mu held.
func (k *Sink) readBackPatch(rf *rxFile) error {
	// The test seam (readback.FlipEnv) flips a byte as read, as if on disk.
	flip := os.Getenv(readback.FlipEnv)
	flip1 := flip != "" && strings.HasSuffix(rf.path, "/"+flip)
	var buf []byte
	for _, p := range rf.pieces {
		if int64(cap(buf)) < p.Len {
			buf = make([]byte, p.Len)
		}
		b := buf[:p.Len]
		n, err := rf.p.ReadAt(b, p.Off)
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read back: %w", err)
		}
		clear(b[n:])
		if flip1 && len(b) > 0 {
			b[0] ^= 1
			flip1 = false
		}
		if got := crc32.Checksum(b, castagnoli); got != p.Sum {
			err := &readback.MismatchError{Name: rf.name, Path: rf.path, Algo: "CRC-32C", Off: p.Off, Len: p.Len, Want: p.Sum, Got: got, Size: rf.size, DiskSize: rf.size}
			if k.o.Log != nil {
				k.o.Log.Error("read back failed", append(readback.Attrs(err), "error", err)...)
			}
			return err
		}
	}
	rf.pieces = nil
	return nil
}

// verified waits until every complete file has been read back and
// returns the first whose content on disk is not the donor's.
func (k *Sink) verified() error {
	return k.check.Wait()
}

// incomplete describes files still waiting for data, for a barrier.
func (k *Sink) incomplete() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	var first *rxFile
	var firstID uint64
	for id, rf := range k.files {
		if first == nil || id < firstID {
			first, firstID = rf, id
		}
	}
	switch {
	case first == nil:
		return nil
	case !first.ended:
		return fmt.Errorf("%s: %d bytes received, end of file missing", first.name, first.got)
	}
	return fmt.Errorf("%s: truncated: %d of %d bytes received", first.name, first.got, first.want)
}

func (k *Sink) dir(name string, mode uint32) error {
	if err := checkName(name); err != nil {
		return err
	}
	perm := fs.FileMode(mode) & fs.ModePerm
	r, rel, err := k.rootFor(name)
	if err != nil {
		return err
	}
	if err := r.MkdirAll(rel, perm|0o700); err != nil {
		return fmt.Errorf("create directory %s: %w", name, err)
	}
	if err := r.Chmod(rel, perm|0o700); err != nil {
		return fmt.Errorf("chmod directory %s: %w", name, err)
	}
	k.mu.Lock()
	k.stats.Dirs++
	k.mu.Unlock()
	return nil
}

func (k *Sink) symlink(name, target string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if !k.o.AllowSymlinks {
		return fmt.Errorf("symlink %s -> %s refused: symlinks are not allowed", name, target)
	}
	if target == "" || strings.HasPrefix(target, "/") || strings.IndexByte(target, 0) >= 0 {
		return fmt.Errorf("symlink %s -> %s refused: target must be relative", name, target)
	}
	if resolved := path.Join(path.Dir(name), target); resolved == ".." || strings.HasPrefix(resolved, "../") {
		return fmt.Errorf("symlink %s -> %s refused: target leaves the root", name, target)
	}
	if err := mkdirParent(k.r, name); err != nil {
		return fmt.Errorf("create parent of %s: %w", name, err)
	}
	if err := k.r.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("replace %s: %w", name, err)
	}
	if err := k.r.Symlink(target, name); err != nil {
		return fmt.Errorf("symlink %s: %w", name, err)
	}
	k.mu.Lock()
	k.stats.Symlinks++
	k.mu.Unlock()
	return nil
}

// sync flushes the file system holding the root: one syncfs instead of an
// fsync per file.
func (k *Sink) sync() error {
	if k.o.NoSync {
		return nil
	}
	t0 := time.Now()
	k.mu.Lock()
	roots := map[string]*os.Root{k.root: k.r}
	for dir, r := range k.routed {
		roots[dir] = r
	}
	k.mu.Unlock()
	for dir, r := range roots {
		d, err := r.Open(".")
		if err != nil {
			return fmt.Errorf("sync %s: %w", dir, err)
		}
		err = unix.Syncfs(int(d.Fd()))
		d.Close()
		if err != nil {
			return fmt.Errorf("syncfs %s: %w", dir, err)
		}
	}
	k.mu.Lock()
	k.stats.SyncTime += time.Since(t0)
	k.mu.Unlock()
	return nil
}
