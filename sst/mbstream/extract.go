package mbstream

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path"
	"path/filepath"
	"syscall"

	"github.com/galera-supervisor/galera-supervisor/sst/readback"
	"golang.org/x/sys/unix"
)

// Options tune Extract. The zero value is usable.
type Options struct {
	FileMode os.FileMode // default 0o640
	DirMode  os.FileMode // default 0o750
	// MaxOpen bounds the files open at once (parallel backups interleave
	// a few); default 1024.
	MaxOpen int
	// Progress, when set, is called after each payload chunk with the
	// payload bytes written so far.
	Progress func(written int64)
	// NoSync skips the final syncfs of the target's filesystem.
	NoSync bool
	// ReadBackFailed, when set, is told a file whose read-back failed the
	// moment it is found (readback.Checker.Failed).
	ReadBackFailed func(error)
}

// Stats describe an extraction.
type Stats struct {
	Files  int   // files completed by an E chunk
	Bytes  int64 // payload bytes written
	Chunks int
}

type openFile struct {
	f    *os.File
	next uint64 // next expected payload offset
	// pieces are the payloads written and not yet handed to the
	// read-back, each with the donor's CRC-32 of it; queued counts their
	// bytes.
	pieces []readback.Piece
	queued int64
}

// Extract reads an mbstream from r and writes its files under dir, which
// must exist. It never writes outside dir: every path is validated and all
// access goes through an os.Root. Memory is bounded by one copy buffer; each
// payload is checksummed as it streams to disk, and read back beside the
// extraction (every 32 MiB of a file, and at its end chunk) to compare its
// CRC again (package readback): a file whose content on disk is not the
// donor's fails Extract with a *readback.MismatchError, before the caller
// prepares anything.
// On error the partial files stay in dir, for the caller's staging to
// discard.
func Extract(ctx context.Context, r io.Reader, dir string, opt Options) (Stats, error) {
	if opt.FileMode == 0 {
		opt.FileMode = 0o640
	}
	if opt.DirMode == 0 {
		opt.DirMode = 0o750
	}
	if opt.MaxOpen <= 0 {
		opt.MaxOpen = 1024
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return Stats{}, fmt.Errorf("mbstream: open target: %w", err)
	}
	defer root.Close()
	x := &extractor{root: root, dir: dir, opt: opt, open: make(map[string]*openFile), buf: make([]byte, 256<<10),
		check: readback.New(ieee, "CRC-32", readbackParallel)}
	x.check.Failed = opt.ReadBackFailed
	defer x.check.Stop()
	err = x.run(ctx, NewReader(r))
	if err != nil {
		x.check.Stop() // the partial files are not worth reading back
	}
	if cerr := x.closeAll(); err == nil {
		err = cerr
	}
	if err == nil {
		err = x.check.Wait()
	}
	if err == nil && !opt.NoSync {
		err = syncfs(dir)
	}
	return x.stats, err
}

type extractor struct {
	root  *os.Root
	dir   string
	opt   Options
	open  map[string]*openFile
	buf   []byte
	stats Stats
	check *readback.Checker
}

var ieee = crc32.IEEETable

// readbackParallel is how many files are read back at once, beside the
// extraction (they were just written: the page cache has them).
const readbackParallel = 2

// readbackBatch is how much of a file's payloads is handed to the
// read-back before its end chunk: a big file is checked while it arrives.
const readbackBatch = 32 << 20

func (x *extractor) run(ctx context.Context, rd *Reader) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		// A file read back wrong fails the extraction now.
		if err := x.check.Err(); err != nil {
			return err
		}
		c, err := rd.Next()
		if err == io.EOF {
			if len(x.open) > 0 {
				for p := range x.open {
					return fmt.Errorf("%w: stream ended at offset %d with %d file(s) unfinished, e.g. %q", ErrFormat, rd.Offset(), len(x.open), p)
				}
			}
			return nil
		}
		if err != nil {
			return err
		}
		x.stats.Chunks++
		if !known(c.Type) {
			continue // ignorable; Next skips and verifies its payload
		}
		if err := ValidPath(c.Path); err != nil {
			return fmt.Errorf("%w: chunk at offset %d: %v", ErrFormat, c.Pos, err)
		}
		switch c.Type {
		case TypePayload:
			err = x.payload(c, rd)
		case TypeSeek:
			var of *openFile
			if of, err = x.file(c); err == nil {
				// What follows may overwrite bytes being read back.
				x.check.Idle(c.Path)
				if _, err = of.f.Seek(int64(c.Offset), io.SeekStart); err != nil {
					err = fmt.Errorf("mbstream: seek %s: %w", c.Path, err)
				}
				of.next = c.Offset
			}
		case TypeEOF:
			if _, err = x.file(c); err == nil {
				err = x.close(c.Path)
				x.stats.Files++
			}
		case TypeRename:
			if err = ValidPath(c.NewPath); err != nil {
				return fmt.Errorf("%w: rename chunk at offset %d: %v", ErrFormat, c.Pos, err)
			}
			if x.open[c.Path] != nil || x.open[c.NewPath] != nil {
				return fmt.Errorf("%w: rename chunk at offset %d: %q or %q is still open", ErrFormat, c.Pos, c.Path, c.NewPath)
			}
			x.check.Idle(c.Path)
			x.check.Idle(c.NewPath)
			if err = x.mkdirs(c.NewPath); err == nil {
				if err = x.root.Rename(c.Path, c.NewPath); err != nil {
					err = fmt.Errorf("mbstream: rename %s to %s: %w", c.Path, c.NewPath, err)
				}
			}
		case TypeRemove:
			if x.open[c.Path] != nil {
				return fmt.Errorf("%w: remove chunk at offset %d: %q is still open", ErrFormat, c.Pos, c.Path)
			}
			x.check.Idle(c.Path)
			if err = x.root.Remove(c.Path); err != nil {
				err = fmt.Errorf("mbstream: remove %s: %w", c.Path, err)
			}
		}
		if err != nil {
			return err
		}
	}
}

func (x *extractor) payload(c *Chunk, rd *Reader) error {
	of, err := x.file(c)
	if err != nil {
		return err
	}
	if c.Offset != of.next {
		return fmt.Errorf("%w: chunk at offset %d for %q: file offset %d, expected %d", ErrFormat, c.Pos, c.Path, c.Offset, of.next)
	}
	for {
		n, rerr := rd.Read(x.buf)
		if n > 0 {
			if _, err := of.f.Write(x.buf[:n]); err != nil {
				return fmt.Errorf("mbstream: write %s: %w", c.Path, err)
			}
			of.next += uint64(n)
			x.stats.Bytes += int64(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if of.written(readback.Piece{Off: int64(c.Offset), Len: int64(c.Length), Sum: c.CRC}) >= readbackBatch {
		x.readBack(c.Path, of)
	}
	if x.opt.Progress != nil {
		x.opt.Progress(x.stats.Bytes)
	}
	return nil
}

// file returns the open file for c.Path, creating it as mbstream -x does:
// exclusively, unless the chunk asks for a rewrite.
func (x *extractor) file(c *Chunk) (*openFile, error) {
	if of := x.open[c.Path]; of != nil {
		return of, nil
	}
	if len(x.open) >= x.opt.MaxOpen {
		return nil, fmt.Errorf("%w: chunk at offset %d: more than %d files open at once", ErrFormat, c.Pos, x.opt.MaxOpen)
	}
	if err := x.mkdirs(c.Path); err != nil {
		return nil, err
	}
	x.check.Idle(c.Path) // written again: its last copy's read-back first
	flag := os.O_WRONLY | os.O_CREATE | syscall.O_NOFOLLOW
	if c.Flags&FlagRewrite != 0 {
		flag |= os.O_TRUNC
	} else {
		flag |= os.O_EXCL
	}
	f, err := x.root.OpenFile(c.Path, flag, x.opt.FileMode)
	if err != nil {
		return nil, fmt.Errorf("mbstream: create %s in %s: %w", c.Path, x.dir, err)
	}
	of := &openFile{f: f}
	x.open[c.Path] = of
	return of, nil
}

func (x *extractor) mkdirs(p string) error {
	d := path.Dir(p)
	if d == "." {
		return nil
	}
	if err := x.root.MkdirAll(d, x.opt.DirMode); err != nil {
		return fmt.Errorf("mbstream: create directory %s in %s: %w", d, x.dir, err)
	}
	return nil
}

// written records a payload and returns the bytes not yet handed to the
// read-back. One written over earlier ones (after a seek back) replaces
// those still here, whose CRCs no longer describe the file; a payload
// over one already read back is checked again with the rest.
func (of *openFile) written(p readback.Piece) int64 {
	if p.Len == 0 {
		return of.queued
	}
	kept := of.pieces[:0]
	for _, q := range of.pieces {
		if q.Off+q.Len <= p.Off || p.Off+p.Len <= q.Off {
			kept = append(kept, q)
		} else {
			of.queued -= q.Len
		}
	}
	of.pieces = append(kept, p)
	of.queued += p.Len
	return of.queued
}

// readBack hands the payloads of p written so far to the read-back.
func (x *extractor) readBack(p string, of *openFile) {
	root := x.root
	x.check.Check(readback.File{Name: p, Path: filepath.Join(x.dir, filepath.FromSlash(p)), Size: -1, Pieces: of.pieces,
		Open: func() (*os.File, error) { return root.Open(p) }})
	of.pieces, of.queued = nil, 0
}

func (x *extractor) close(p string) error {
	of := x.open[p]
	delete(x.open, p)
	if err := of.f.Close(); err != nil {
		return fmt.Errorf("mbstream: close %s: %w", p, err)
	}
	x.readBack(p, of)
	return nil
}

func (x *extractor) closeAll() error {
	var errs []error
	for p := range x.open {
		if err := x.close(p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// syncfs flushes the filesystem holding dir: one call instead of an fsync
// per file, and it covers the directory entries too.
func syncfs(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("mbstream: open %s for sync: %w", dir, err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("mbstream: syncfs %s: %w", dir, err)
	}
	return nil
}
