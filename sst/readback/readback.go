// Package readback checks that the files a joiner wrote hold what the
// donor read. The donor's digest of a file is the CRC of each piece it read
// and sent (a transfer chunk's CRC-32C, an mbstream payload's CRC-32),
// computed over the bytes as it read them; they already travel with the
// data, so the wire does not change. The joiner checks each piece against
// the network as it arrives (the transfer engine, the mbstream reader);
// this package checks it again against the disk: it reads the file back
// as it is written, in parts and once complete, and compares the CRC of
// each piece with the donor's. Between them every byte of the file is covered, from the
// donor's read to the joiner's disk.
//
// A Checker runs those reads beside the transfer, a few files at a time,
// so the read-back overlaps the network rather than following it; Wait
// gathers the verdicts before the joiner acknowledges the data.
package readback

import (
	"cmp"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Piece is a range of a file with the donor's CRC of its bytes.
type Piece struct {
	Off, Len int64
	Sum      uint32
}

// File is a complete file to read back.
type File struct {
	Name string // the donor's name for it
	Path string // where it is on the joiner, for messages
	// Open opens it for reading (through the caller's os.Root).
	Open func() (*os.File, error)
	// Size is the size the file must have, or -1.
	Size   int64
	Pieces []Piece
	// Direct reads it with O_DIRECT: it was written that way, and a
	// buffered read would fill the page cache the writer kept clean.
	Direct bool
}

// MismatchError is a file whose content on disk is not what the donor read.
type MismatchError struct {
	Name      string
	Path      string
	Algo      string // "CRC-32C", "CRC-32"
	Off, Len  int64
	Want, Got uint32
	// DiskSize, when not Size, is what is wrong: the file's size.
	Size, DiskSize int64
}

func (e *MismatchError) Error() string {
	if e.DiskSize != e.Size {
		return fmt.Sprintf("%s: read back from %s: %d bytes on disk, the donor sent %d", e.Name, e.Path, e.DiskSize, e.Size)
	}
	return fmt.Sprintf("%s: read back from %s: bytes %d to %d are not what the donor read (%s: donor %08x, disk %08x)",
		e.Name, e.Path, e.Off, e.Off+e.Len, e.Algo, e.Want, e.Got)
}

// Attrs are log attributes for err: the file and its path when err is a
// *MismatchError.
func Attrs(err error) []any {
	var e *MismatchError
	if !errors.As(err, &e) {
		return nil
	}
	return []any{"file", e.Name, "path", e.Path}
}

// FlipEnv names a test seam: when set (to a path relative to the staging
// directory, such as "bench/t.ibd"), the joiner flips a byte of that file
// on disk just before it reads it back, as a disk that changed data after
// it was written would. The real tests of each method use it.
const FlipEnv = "GS_TEST_READBACK_FLIP"

// bufSize is each read's size: large enough that syscalls cost nothing
// next to the bytes, small enough to stay in the CPU's caches.
const bufSize = 1 << 20

// Checker reads back files handed to Check, Parallel at a time.
type Checker struct {
	// Failed, when set, is told the first failure as it is found, before
	// Err or Wait return it: a joiner logs it there, since telling the
	// donor may end the SST (and the joiner's server) before the joiner's
	// cleanup gets to log its error.
	Failed func(error)

	table *crc32.Table
	algo  string
	sem   chan struct{}
	flip  string
	bufs  sync.Pool

	mu      sync.Mutex
	busy    map[string]chan struct{} // names with a check queued or running
	pending int                      // checks queued or running
	idle    *sync.Cond
	err     error
	stopped bool
}

// New returns a Checker comparing CRCs of table (named algo in messages)
// with parallel reads at a time.
func New(table *crc32.Table, algo string, parallel int) *Checker {
	c := &Checker{table: table, algo: algo, sem: make(chan struct{}, max(parallel, 1)),
		flip: os.Getenv(FlipEnv), busy: map[string]chan struct{}{}}
	c.idle = sync.NewCond(&c.mu)
	c.bufs.New = func() any { b := alignedBuf(bufSize); return &b }
	return c
}

// Check queues f for reading back. The pieces are the caller's no longer.
// A file may be handed over in parts, as its pieces are written; the
// checks of one name run in the order queued.
func (c *Checker) Check(f File) {
	c.mu.Lock()
	if c.stopped || c.err != nil {
		c.mu.Unlock()
		return
	}
	done := make(chan struct{})
	prev := c.busy[f.Name]
	c.busy[f.Name] = done
	c.pending++
	c.mu.Unlock()
	go func() {
		if prev != nil {
			<-prev
		}
		c.sem <- struct{}{}
		err := c.run(f)
		<-c.sem
		if err != nil && c.Failed != nil && !c.isStopped() {
			c.Failed(err)
		}
		c.mu.Lock()
		if err != nil && c.err == nil && !c.stopped {
			c.err = err
		}
		if c.busy[f.Name] == done {
			delete(c.busy, f.Name)
		}
		close(done)
		c.pending--
		c.idle.Broadcast()
		c.mu.Unlock()
	}()
}

// Idle waits until no check of name is queued or running: before the file
// is written, renamed or removed again.
func (c *Checker) Idle(name string) {
	c.mu.Lock()
	done := c.busy[name]
	c.mu.Unlock()
	if done != nil {
		<-done
	}
}

// Wait waits for every check queued so far and returns the first mismatch
// or read error.
func (c *Checker) Wait() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.pending > 0 {
		c.idle.Wait()
	}
	return c.err
}

// Err is the first failure so far, without waiting.
func (c *Checker) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Stop makes queued checks return unread and waits for those running: the
// transfer failed, its files are about to be removed.
func (c *Checker) Stop() {
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	c.Wait()
}

func (c *Checker) isStopped() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopped || c.err != nil
}

func (c *Checker) run(f File) error {
	if c.isStopped() || len(f.Pieces) == 0 && f.Size < 0 {
		return nil
	}
	if c.flip != "" && strings.HasSuffix(f.Path, "/"+c.flip) {
		if err := flipByte(f.Path, f.Pieces); err != nil {
			return fmt.Errorf("%s: test seam %s: %w", f.Name, FlipEnv, err)
		}
	}
	fh, err := f.Open()
	if err != nil {
		return fmt.Errorf("%s: open %s to read it back: %w", f.Name, f.Path, err)
	}
	defer fh.Close()
	if f.Size >= 0 {
		fi, err := fh.Stat()
		if err != nil {
			return fmt.Errorf("%s: stat %s: %w", f.Name, f.Path, err)
		}
		if fi.Size() != f.Size {
			return &MismatchError{Name: f.Name, Path: f.Path, Algo: c.algo, Size: f.Size, DiskSize: fi.Size()}
		}
	}
	r := &reader{f: fh}
	if f.Direct {
		r.d, _ = os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", fh.Fd()), os.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
		if r.d != nil {
			defer r.d.Close()
		}
	}
	bp := c.bufs.Get().(*[]byte)
	defer c.bufs.Put(bp)
	pieces := slices.Clone(f.Pieces)
	slices.SortFunc(pieces, func(a, b Piece) int { return cmp.Compare(a.Off, b.Off) })
	for _, p := range pieces {
		if c.isStopped() {
			return nil
		}
		got, err := r.crc(*bp, p.Off, p.Len, c.table)
		if err != nil {
			return fmt.Errorf("%s: read back %s at offset %d: %w", f.Name, f.Path, p.Off, err)
		}
		if got != p.Sum {
			return &MismatchError{Name: f.Name, Path: f.Path, Algo: c.algo, Off: p.Off, Len: p.Len, Want: p.Sum, Got: got}
		}
	}
	return nil
}

// reader reads a file's ranges, by direct I/O where the file system and
// the offset allow it.
type reader struct {
	f, d *os.File
}

// crc returns the CRC of n bytes at off, read in buf-sized reads.
func (r *reader) crc(buf []byte, off, n int64, table *crc32.Table) (uint32, error) {
	var sum uint32
	for n > 0 {
		k := min(int64(len(buf)), n)
		if err := r.readAt(buf[:k], off); err != nil {
			return 0, err
		}
		sum = crc32.Update(sum, table, buf[:k])
		off += k
		n -= k
	}
	return sum, nil
}

func (r *reader) readAt(b []byte, off int64) error {
	if r.d != nil && off%align == 0 {
		full := b[:min(alignUp(int64(len(b))), int64(cap(b)))]
		got := 0
		for got < len(b) {
			m, err := unix.Pread(int(r.d.Fd()), full[got:], off+int64(got))
			if err == unix.EINTR {
				continue
			}
			if err != nil || m == 0 || m%align != 0 && got+m < len(b) {
				break // refused, or an unaligned end: buffered from here
			}
			got += m
		}
		if got >= len(b) {
			return nil
		}
		b, off = b[got:], off+int64(got)
	}
	n, err := r.f.ReadAt(b, off)
	if errors.Is(err, io.EOF) {
		// Not there yet: a file still arriving, whose writer left the
		// zeros it received as a hole not yet covered by the final size.
		// A file that ends short of the donor's bytes fails the size
		// check, or compares zeros with the donor's data.
		clear(b[n:])
		return nil
	}
	return err
}

// flipByte changes the first byte of the first of pieces that is in the
// file at path yet (the test seam).
func flipByte(path string, pieces []Piece) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	var b [1]byte
	for _, p := range pieces {
		if _, err := f.ReadAt(b[:], p.Off); err == nil {
			b[0] ^= 0x01
			_, err = f.WriteAt(b[:], p.Off)
			return err
		}
	}
	return nil
}

const align = 4096

func alignUp(n int64) int64 { return (n + align - 1) &^ (align - 1) }

// alignedBuf returns n bytes (n a multiple of align) starting on an
// aligned address, as O_DIRECT wants.
func alignedBuf(n int) []byte {
	b := make([]byte, n+align)
	skip := 0
	if r := int(uintptr(unsafe.Pointer(unsafe.SliceData(b))) & (align - 1)); r != 0 {
		skip = align - r
	}
	return b[skip : skip+n : skip+n]
}
