package transfer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Direct I/O. Files go disk to disk without passing through the page cache
// on either side: on a VM whose host reclaims freed guest memory, filling
// fresh page-cache pages costs more CPU than the network and the checksums
// together, and a donor's cache full of SST data would evict the server's
// working set. InnoDB reads its files with O_DIRECT anyway. Where a file
// system or an offset does not allow it, the buffered path is used.

// dioAlign is the alignment of direct offsets, lengths and buffers: the
// largest logical block size of the disks we meet.
const dioAlign = 4096

// dioMin is the least file size read directly, and dioMinChunk the least
// chunk that makes the joiner open a file for direct writes.
const (
	dioMin      = 256 << 10
	dioMinChunk = 64 << 10
)

var useDirect = true // benchmarks and tests compare without it

// directReads and directWrites count the chunks that went by direct I/O;
// zeroSkipped the bytes of zeros not written.
var directReads, directWrites, zeroSkipped atomic.Int64

var zeros [64 << 10]byte

// allZero is cheap on data: a page's header differs from zero in its
// first bytes, and only a block of zeros is read to the end.
func allZero(b []byte) bool {
	for len(b) > 0 {
		k := min(len(b), len(zeros))
		if !bytes.Equal(b[:k], zeros[:k]) {
			return false
		}
		b = b[k:]
	}
	return true
}

func alignUp(n int64) int64 { return (n + dioAlign - 1) &^ (dioAlign - 1) }

// alignedBuf returns n bytes whose start is aligned and whose capacity
// reaches the next aligned length, so that a tail can be padded.
func alignedBuf(n int) []byte {
	c := int(alignUp(int64(n)))
	b := make([]byte, c+dioAlign)
	skip := 0
	if r := int(uintptr(unsafe.Pointer(unsafe.SliceData(b))) & (dioAlign - 1)); r != 0 {
		skip = dioAlign - r
	}
	return b[skip : skip+n : skip+c]
}

func isAligned(b []byte) bool {
	return uintptr(unsafe.Pointer(unsafe.SliceData(b)))&(dioAlign-1) == 0
}

// reopenDirect opens f's file again, with O_DIRECT, through /proc: the same
// inode even if the name changed since. It returns nil where direct I/O is
// not available.
func reopenDirect(f *os.File, flag int) *os.File {
	if !useDirect {
		return nil
	}
	d, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", f.Fd()), flag|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	return d
}

// directReader reads a donor file's chunks with O_DIRECT when it can.
type directReader struct {
	f   *os.File // buffered; owned by the caller
	d   *os.File // O_DIRECT, or nil
	off atomic.Bool
}

func newDirectReader(f *os.File, size int64, cache bool) *directReader {
	r := &directReader{f: f}
	if size >= dioMin && !cache {
		r.d = reopenDirect(f, os.O_RDONLY)
	}
	return r
}

// ReadAt fills b (whose capacity reaches an aligned length) from off, as
// os.File.ReadAt does.
func (r *directReader) ReadAt(b []byte, off int64) (int, error) {
	if r.d == nil || r.off.Load() || off%dioAlign != 0 || !isAligned(b) || int64(cap(b)) < alignUp(int64(len(b))) {
		return r.f.ReadAt(b, off)
	}
	want := len(b)
	full := b[:alignUp(int64(want))]
	n := 0
	for n < want {
		m, err := unix.Pread(int(r.d.Fd()), full[n:], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			// The file system refused after all: buffered from here on.
			r.off.Store(true)
			k, err := r.f.ReadAt(b[n:], off+int64(n))
			return n + k, err
		}
		if m == 0 {
			return n, io.EOF
		}
		n += m
		directReads.Add(1)
		if m%dioAlign != 0 && n < want {
			// A short read mid-file leaves an unaligned offset; the rest
			// is read buffered.
			k, err := r.f.ReadAt(b[n:want], off+int64(n))
			return n + k, err
		}
	}
	return want, nil
}

func (r *directReader) Close() error {
	if r.d != nil {
		r.d.Close()
	}
	return r.f.Close()
}

// directWriter writes a received file with O_DIRECT when it can. The file
// grows ahead of the writes (fallocate), so that writers on several
// connections overwrite within its size and the file system lets them run
// side by side; the final Truncate trims what was allocated ahead.
type directWriter struct {
	f     *os.File // buffered
	fresh bool     // created empty: a block never written reads as zeros
	cache bool
	dOnce sync.Once
	d     atomic.Pointer[os.File] // O_DIRECT; opened for the first big write
	off   atomic.Bool

	allocMu sync.Mutex
	alloc   atomic.Int64 // size reached by fallocate
}

// growStep caps how far ahead of the writes a file is allocated.
const growStep = 256 << 20

func newDirectWriter(f *os.File, fresh, cache bool) *directWriter {
	w := &directWriter{f: f, fresh: fresh, cache: cache}
	if fi, err := f.Stat(); err == nil {
		w.alloc.Store(fi.Size())
	}
	return w
}

// buffered says whether writes go through the page cache.
func (w *directWriter) buffered() bool {
	return w.d.Load() == nil || w.off.Load()
}

// WriteAt writes data at off. eof says data ends the file, so that its
// last block may be padded with zeros (the caller truncates to the size);
// otherwise an unaligned tail is written buffered.
func (w *directWriter) WriteAt(data []byte, off int64, eof bool) error {
	n := len(data)
	if w.fresh && allZero(data) {
		// Free extents of a tablespace: left as a hole, which the final
		// Truncate covers; nothing is written.
		zeroSkipped.Add(int64(n))
		return nil
	}
	if n >= dioMinChunk {
		w.dOnce.Do(func() {
			if !w.cache {
				w.d.Store(reopenDirect(w.f, os.O_WRONLY))
			}
		})
	}
	if w.buffered() || off%dioAlign != 0 || !isAligned(data) || n < dioAlign && !eof {
		_, err := w.f.WriteAt(data, off)
		return err
	}
	direct := int64(n) &^ (dioAlign - 1)
	if eof && int64(n) != direct && int64(cap(data)) >= alignUp(int64(n)) {
		direct = alignUp(int64(n))
		clear(data[n:direct])
	}
	if direct == 0 {
		_, err := w.f.WriteAt(data, off)
		return err
	}
	w.grow(off + direct)
	buf := data[:direct]
	done := 0
	for done < len(buf) {
		m, err := unix.Pwrite(int(w.d.Load().Fd()), buf[done:], off+int64(done))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			if errors.Is(err, unix.EINVAL) {
				w.off.Store(true)
				break
			}
			return err
		}
		directWrites.Add(1)
		done += m
		if m%dioAlign != 0 {
			break
		}
	}
	if done >= n {
		return nil
	}
	_, err := w.f.WriteAt(data[done:n], off+int64(done))
	return err
}

// grow extends the file to at least end, and ahead of it, unless it is
// there already. Failures only cost concurrency: the writes still work.
func (w *directWriter) grow(end int64) {
	if end <= w.alloc.Load() {
		return
	}
	w.allocMu.Lock()
	defer w.allocMu.Unlock()
	cur := w.alloc.Load()
	if end <= cur {
		return
	}
	to := max(end, min(2*cur, cur+growStep))
	if to > end && unix.Fallocate(int(w.f.Fd()), 0, cur, to-cur) == nil {
		w.alloc.Store(to)
		return
	}
	if unix.Fallocate(int(w.f.Fd()), 0, cur, end-cur) == nil {
		w.alloc.Store(end)
	}
}

func (w *directWriter) Close() error {
	w.dOnce.Do(func() {}) // no direct open after this
	if d := w.d.Load(); d != nil {
		d.Close()
	}
	return w.f.Close()
}
