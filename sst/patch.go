package sst

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"golang.org/x/sys/unix"
)

// A delta SST keeps the joiner's own files where they are. Staging holds
// only what differs: new files whole, and for a file the joiner already
// has, a sparse patch of the pages that differ from it (a Base); unchanged
// files nothing. At the swap, after the donor's manifest verified them,
// each base's patch is written into it in place, under an undo journal:
// the original bytes of every range about to be overwritten (and the size)
// are written and fsync'd first, so a failure or a crash before the swap's
// commit puts them back, and the old datadir is as it was. Then every base
// is hard-linked into staging (no data moves) and the swap goes on as for
// a full transfer. After the commit the patched files stand. Extra disk use is the changed pages twice (patch, undo
// journal), and new files: about 4 % of the datadir when 2 % of its pages
// changed. A reflink (FICLONE) would save the undo journal's copy on btrfs
// and XFS only; one path on every filesystem is the one that is tested.

// PatchDirName, inside the staging directory, holds the patches of bases,
// at their paths.
const PatchDirName = ".sst-native-patch"

// UndoName, in a root, is the undo journal of a swap that patches files in
// place; UndoName+".tmp" while it is written (then nothing was patched).
const UndoName = ".sst-native-undo"

// cmpUnit is the unit in which a received range is compared with the
// base: only units that differ are stored. InnoDB pages are 4 to 64 KiB,
// so a changed page is at most a few units; a unit is a filesystem block.
const cmpUnit = 4 << 10

// Patch is a base: a file of the root that the new snapshot keeps, patched
// in place at the swap with the ranges received for it.
type Patch struct {
	s       *Staging
	rel     string
	oldSize int64

	mu    sync.Mutex
	data  *os.File // the patch, sparse; created on the first differing range
	spans []pspan  // ranges of data that differ from the base, sorted, disjoint
	size  int64    // the new file's size
}

type pspan struct{ off, end int64 }

// Base declares that rel, already in the root as a regular file, is part
// of the new snapshot: unchanged, or patched by WriteAt and End.
func (s *Staging) Base(rel string) (*Patch, error) {
	p, err := s.Path(rel)
	if err != nil {
		return nil, err
	}
	fi, err := os.Lstat(filepath.Join(s.Root, rel))
	if err != nil {
		return nil, Errorf(EIO, "sst: base %s: %w", rel, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, Errorf(EIO, "sst: base %s is not a regular file (%s)", rel, fi.Mode().Type())
	}
	if _, err := os.Lstat(p); err == nil {
		return nil, Errorf(EEXIST, "sst: base %s is staged already", rel)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bases == nil {
		s.bases = map[string]*Patch{}
	}
	b := &Patch{s: s, rel: rel, oldSize: fi.Size(), size: fi.Size()}
	s.bases[rel] = b
	return b, nil
}

// BaseBytes is the bytes of the root's files declared bases: they stay
// where they are, so the donor's copies of them take no room but their
// patches' (see Placement.needs).
func (s *Staging) BaseBytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, p := range s.bases {
		n += p.oldSize
	}
	return n
}

// BaseOf is rel's base, nil when rel is none (any more).
func (s *Staging) BaseOf(rel string) *Patch {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bases[rel]
}

// Unbase drops rel's base and its patch: the file arrives whole instead.
func (s *Staging) Unbase(rel string) {
	s.mu.Lock()
	p := s.bases[rel]
	delete(s.bases, rel)
	s.mu.Unlock()
	if p != nil {
		p.drop()
	}
}

func (p *Patch) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.data != nil {
		p.data.Close()
		p.data = nil
	}
	os.Remove(p.patchPath())
}

func (p *Patch) oldPath() string   { return filepath.Join(p.s.Root, p.rel) }
func (p *Patch) patchPath() string { return filepath.Join(p.s.Dir, PatchDirName, p.rel) }

// Size is the new file's size: the base's until End says otherwise.
func (p *Patch) Size() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.size
}

// Stored is the bytes of the patch: the ranges that differ from the base.
func (p *Patch) Stored() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	for _, sp := range p.spans {
		n += sp.end - sp.off
	}
	return n
}

// WriteAt takes the new data at off: units equal to the base are dropped
// (and any earlier patch of them), the others stored in the patch.
func (p *Patch) WriteAt(b []byte, off int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	end := off + int64(len(b))
	old := make([]byte, len(b))
	n, err := readBase(p.oldPath(), old, off, p.oldSize)
	if err != nil {
		return err
	}
	p.cut(off, end)
	// Units aligned on the file, so that a page is always cut the same way.
	for lo := off; lo < end; {
		hi := min(end, (lo/cmpUnit+1)*cmpUnit)
		same := hi-off <= int64(n) && bytes.Equal(b[lo-off:hi-off], old[lo-off:hi-off])
		if same {
			lo = hi
			continue
		}
		// Extend the run of differing units, to write it at once.
		for hi < end {
			nx := min(end, hi+cmpUnit)
			if nx-off <= int64(n) && bytes.Equal(b[hi-off:nx-off], old[hi-off:nx-off]) {
				break
			}
			hi = nx
		}
		if err := p.store(b[lo-off:hi-off], lo); err != nil {
			return err
		}
		lo = hi
	}
	return nil
}

// readBase reads the base's bytes at off into buf (up to its size) and
// returns how many it read.
func readBase(path string, buf []byte, off, size int64) (int, error) {
	if off >= size {
		return 0, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("read base: %w", err)
	}
	defer f.Close()
	want := min(int64(len(buf)), size-off)
	n, err := f.ReadAt(buf[:want], off)
	if err != nil && !errors.Is(err, io.EOF) {
		return n, fmt.Errorf("read base %s: %w", path, err)
	}
	return n, nil
}

func (p *Patch) store(b []byte, off int64) error {
	if p.data == nil {
		path := p.patchPath()
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return fmt.Errorf("patch of %s: %w", p.rel, err)
		}
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, 0o600)
		if err != nil {
			return fmt.Errorf("patch of %s: %w", p.rel, err)
		}
		p.data = f
	}
	if _, err := p.data.WriteAt(b, off); err != nil {
		return fmt.Errorf("patch of %s: %w", p.rel, err)
	}
	p.add(off, off+int64(len(b)))
	return nil
}

// cut removes [off, end) from the spans.
func (p *Patch) cut(off, end int64) {
	var out []pspan
	for _, sp := range p.spans {
		if sp.end <= off || sp.off >= end {
			out = append(out, sp)
			continue
		}
		if sp.off < off {
			out = append(out, pspan{sp.off, off})
		}
		if sp.end > end {
			out = append(out, pspan{end, sp.end})
		}
	}
	p.spans = out
}

// add inserts [off, end), which overlaps no span, merging neighbours.
func (p *Patch) add(off, end int64) {
	i := sort.Search(len(p.spans), func(i int) bool { return p.spans[i].off >= end })
	if i > 0 && p.spans[i-1].end == off {
		p.spans[i-1].end = end
		if i < len(p.spans) && p.spans[i].off == end {
			p.spans[i-1].end = p.spans[i].end
			p.spans = append(p.spans[:i], p.spans[i+1:]...)
		}
		return
	}
	if i < len(p.spans) && p.spans[i].off == end {
		p.spans[i].off = off
		return
	}
	p.spans = append(p.spans, pspan{})
	copy(p.spans[i+1:], p.spans[i:])
	p.spans[i] = pspan{off, end}
}

// End sets the new file's size, once every range of a pass is in.
func (p *Patch) End(size int64) error {
	if size < 0 {
		return fmt.Errorf("patch of %s: size %d", p.rel, size)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.size = size
	p.cut(size, 1<<62)
	return nil
}

// close closes the patch's file: the swap reads it by path.
func (p *Patch) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.data != nil {
		p.data.Close()
		p.data = nil
	}
}

// ReadAt reads the new file as it will be after the swap: the base with
// the patch over it.
func (p *Patch) ReadAt(b []byte, off int64) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if off >= p.size {
		return 0, io.EOF
	}
	want := len(b)
	n := int(min(int64(want), p.size-off))
	b = b[:n]
	m, err := readBase(p.oldPath(), b, off, min(p.oldSize, p.size))
	if err != nil {
		return 0, err
	}
	clear(b[m:])
	end := off + int64(n)
	for _, sp := range p.spans {
		lo, hi := max(sp.off, off), min(sp.end, end)
		if lo >= hi {
			continue
		}
		if err := p.readPatch(b[lo-off:hi-off], lo); err != nil {
			return 0, err
		}
	}
	if n < want {
		return n, io.EOF
	}
	return n, nil
}

func (p *Patch) readPatch(b []byte, off int64) error {
	f := p.data
	if f == nil {
		var err error
		if f, err = os.Open(p.patchPath()); err != nil {
			return fmt.Errorf("patch of %s: %w", p.rel, err)
		}
		defer f.Close()
	}
	if _, err := f.ReadAt(b, off); err != nil {
		return fmt.Errorf("patch of %s: %w", p.rel, err)
	}
	return nil
}

// changed: the swap writes into the base.
func (p *Patch) changed() bool { return len(p.spans) > 0 || p.size != p.oldSize }

// linkBases puts every base into staging by a hard link (the same file:
// no data moves), or, where the filesystem refuses links, a copy.
func (s *Staging) linkBases() error {
	s.mu.Lock()
	rels := make([]string, 0, len(s.bases))
	for rel, p := range s.bases {
		rels = append(rels, rel)
		p.close()
	}
	s.mu.Unlock()
	sort.Strings(rels)
	copied := 0
	for _, rel := range rels {
		if err := s.fail("link:" + rel); err != nil {
			return err
		}
		src, dst := filepath.Join(s.Root, rel), filepath.Join(s.Dir, rel)
		if err := s.mkdirLike(filepath.Dir(rel)); err != nil {
			return err
		}
		if err := os.Link(src, dst); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return Errorf(EEXIST, "sst: base %s is staged already", rel)
			}
			fi, serr := os.Stat(src)
			if serr != nil {
				return Errorf(EIO, "sst: stage %s: %w", rel, serr)
			}
			if err := copyFile(src, dst, fi); err != nil {
				return Errorf(EIO, "sst: stage %s: %w", rel, err)
			}
			copied++
		}
	}
	if copied > 0 {
		s.log.Info("the filesystem refused hard links: copied unchanged files into staging", slog.String("path", s.Root), slog.Int("files", copied))
	}
	return nil
}

// mkdirLike creates directory rel (and parents) in staging with the
// root's modes.
func (s *Staging) mkdirLike(rel string) error {
	if rel == "." {
		return nil
	}
	if _, err := os.Lstat(filepath.Join(s.Dir, rel)); err == nil {
		return nil
	}
	if err := s.mkdirLike(filepath.Dir(rel)); err != nil {
		return err
	}
	mode := fs.FileMode(0o750)
	if fi, err := os.Stat(filepath.Join(s.Root, rel)); err == nil {
		mode = fi.Mode().Perm()
	}
	if err := os.Mkdir(filepath.Join(s.Dir, rel), mode|0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return Errorf(EIO, "sst: staging mkdir %s: %w", rel, err)
	}
	return nil
}

// applyPatches writes every changed base's patch into it in place, after
// the undo journal that reverts them is on disk.
func (s *Staging) applyPatches() error {
	s.mu.Lock()
	var todo []*Patch
	for _, p := range s.bases {
		if p.changed() {
			todo = append(todo, p)
		}
	}
	s.mu.Unlock()
	if len(todo) == 0 {
		return nil
	}
	sort.Slice(todo, func(i, j int) bool { return todo[i].rel < todo[j].rel })
	if err := s.fail("undo"); err != nil {
		return err
	}
	if err := s.checkUndoSpace(todo); err != nil {
		return err
	}
	if err := writeUndo(s.Root, todo); err != nil {
		return Errorf(EIO, "sst: write undo journal in %s: %w", s.Root, err)
	}
	var stored int64
	for _, p := range todo {
		stored += p.Stored()
	}
	var undo int64
	if fi, err := os.Stat(filepath.Join(s.Root, UndoName)); err == nil {
		undo = fi.Size()
	}
	s.log.Info("patching files in place",
		slog.String("path", s.Root), slog.Int("files", len(todo)), slog.Int64("bytes", stored), slog.Int64("undo_bytes", undo))
	for _, p := range todo {
		if err := s.fail("apply:" + p.rel); err != nil {
			return err
		}
		if err := p.apply(s); err != nil {
			return Errorf(EIO, "sst: patch %s in place: %w", p.oldPath(), err)
		}
	}
	return nil
}

// freeSpace is FreeSpace; tests replace it.
var freeSpace = FreeSpace

// checkUndoSpace fails with ENOSPC, before anything is written, unless
// the root's filesystem holds the undo journal of todo and SpaceReserve:
// the patches are on the disk by now, the journal's room is the last the
// delta needs.
func (s *Staging) checkUndoSpace(todo []*Patch) error {
	var need int64 = int64(len(undoMagic)) + 1 + 4
	for _, p := range todo {
		need += p.undoBytes()
	}
	free, err := freeSpace(s.Root)
	if err != nil {
		return Errorf(EIO, "sst: statfs %s: %w", s.Root, err)
	}
	if need+SpaceReserve > free {
		return Errorf(ENOSPC, "sst: not enough space in %s for the undo journal of the files patched in place: need %s (+%d MB reserve), %s free; nothing was patched, the old datadir is kept",
			s.Root, MB(need), SpaceReserve>>20, MB(free))
	}
	return nil
}

// undoBytes is the size of p's record in the undo journal (writeUndo).
func (p *Patch) undoBytes() int64 {
	n := int64(1 + 2 + len(p.rel) + 8 + 8)
	for _, sp := range p.undoRanges() {
		for off := sp.off; off < min(sp.end, p.oldSize); off += undoChunk {
			n += 1 + 8 + 4 + min(undoChunk, min(sp.end, p.oldSize)-off)
		}
	}
	return n
}

// undoRanges is what the undo journal saves of the base: the bytes under
// each span, and the tail a shrink cuts off.
func (p *Patch) undoRanges() []pspan {
	ranges := p.spans
	if p.size < p.oldSize {
		ranges = append(ranges[:len(ranges):len(ranges)], pspan{p.size, p.oldSize})
	}
	return ranges
}

func (p *Patch) apply(s *Staging) error {
	f, err := os.OpenFile(p.oldPath(), os.O_WRONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	var in *os.File
	if len(p.spans) > 0 {
		if in, err = os.Open(p.patchPath()); err != nil {
			return err
		}
		defer in.Close()
	}
	buf := make([]byte, 1<<20)
	for _, sp := range p.spans {
		for off := sp.off; off < sp.end; {
			n := min(int64(len(buf)), sp.end-off)
			if _, err := in.ReadAt(buf[:n], off); err != nil {
				return err
			}
			if _, err := f.WriteAt(buf[:n], off); err != nil {
				return err
			}
			off += n
		}
	}
	if err := s.fail("truncate:" + p.rel); err != nil {
		return err
	}
	if err := f.Truncate(p.size); err != nil {
		return err
	}
	return f.Sync()
}

// The undo journal: undoMagic, then per file 'F', the path's length
// (uint16) and path, its size before and after (int64), and 'R' records,
// each an offset (int64), a length (uint32) and the original bytes; at the
// end 'E' and the CRC-32C of all before it. Written as UndoName+".tmp",
// fsync'd and renamed, so that UndoName exists only complete.
const undoMagic = "GSUNDO1\n"

// undoChunk bounds one 'R' record's bytes.
const undoChunk = 1 << 20

func writeUndo(root string, todo []*Patch) error {
	tmp := filepath.Join(root, UndoName+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // gone once renamed
	crc := crc32.New(castagnoli)
	w := bufio.NewWriterSize(io.MultiWriter(f, crc), 1<<20)
	err = func() error {
		w.WriteString(undoMagic)
		buf := make([]byte, undoChunk)
		for _, p := range todo {
			if err := p.writeUndo(w, buf); err != nil {
				return err
			}
		}
		w.WriteByte('E')
		if err := w.Flush(); err != nil {
			return err
		}
		return binary.Write(f, binary.BigEndian, crc.Sum32())
	}()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(root, UndoName)); err != nil {
		return err
	}
	return syncDir(root)
}

// writeUndo writes p's record: the base's bytes under each span, and the
// tail a shrink cuts off.
func (p *Patch) writeUndo(w *bufio.Writer, buf []byte) error {
	w.WriteByte('F')
	binary.Write(w, binary.BigEndian, uint16(len(p.rel)))
	w.WriteString(p.rel)
	binary.Write(w, binary.BigEndian, p.oldSize)
	binary.Write(w, binary.BigEndian, p.size)
	ranges := p.undoRanges()
	f, err := os.Open(p.oldPath())
	if err != nil {
		return err
	}
	defer f.Close()
	for _, sp := range ranges {
		for off := sp.off; off < min(sp.end, p.oldSize); {
			n := min(int64(len(buf)), min(sp.end, p.oldSize)-off)
			if _, err := f.ReadAt(buf[:n], off); err != nil {
				return fmt.Errorf("read %s: %w", p.oldPath(), err)
			}
			w.WriteByte('R')
			binary.Write(w, binary.BigEndian, off)
			binary.Write(w, binary.BigEndian, uint32(n))
			w.Write(buf[:n])
			off += n
		}
	}
	return nil
}

// undoFile is one file's record in the undo journal.
type undoFile struct {
	Rel           string
	OldSize, Size int64
}

// readUndo parses the undo journal at path. With nil callbacks it only checks it
// (structure and checksum); otherwise it calls file for each file's record
// and data for each range of it, in order.
func readUndo(path string, file func(undoFile) error, data func(off int64, b []byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return parseUndo(f, path, file, data)
}

// parseUndo is readUndo of the journal read from in, named path.
func parseUndo(in io.Reader, path string, file func(undoFile) error, data func(off int64, b []byte) error) error {
	r := &crcReader{r: bufio.NewReaderSize(in, 1<<20), crc: crc32.New(castagnoli)}
	crc := r.crc
	bad := func(what string) error { return fmt.Errorf("%s: %s", path, what) }
	magic := make([]byte, len(undoMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != undoMagic {
		return bad("not an undo journal")
	}
	buf := make([]byte, undoChunk)
	inFile := false
	for {
		kind, err := r.ReadByte()
		if err != nil {
			return bad("truncated")
		}
		switch kind {
		case 'F':
			var n uint16
			if err := binary.Read(r, binary.BigEndian, &n); err != nil {
				return bad("truncated")
			}
			rel := make([]byte, n)
			var uf undoFile
			if _, err := io.ReadFull(r, rel); err != nil {
				return bad("truncated")
			}
			if err := binary.Read(r, binary.BigEndian, &uf.OldSize); err != nil {
				return bad("truncated")
			}
			if err := binary.Read(r, binary.BigEndian, &uf.Size); err != nil {
				return bad("truncated")
			}
			uf.Rel = string(rel)
			if CheckPath(uf.Rel) != nil || uf.OldSize < 0 || uf.Size < 0 {
				return bad(fmt.Sprintf("bad file record %q", uf.Rel))
			}
			inFile = true
			if file != nil {
				if err := file(uf); err != nil {
					return err
				}
			}
		case 'R':
			var off int64
			var n uint32
			if err := binary.Read(r, binary.BigEndian, &off); err != nil {
				return bad("truncated")
			}
			if err := binary.Read(r, binary.BigEndian, &n); err != nil {
				return bad("truncated")
			}
			if !inFile || off < 0 || n > undoChunk {
				return bad(fmt.Sprintf("bad range record at %d (%d bytes)", off, n))
			}
			if _, err := io.ReadFull(r, buf[:n]); err != nil {
				return bad("truncated")
			}
			if data != nil {
				if err := data(off, buf[:n]); err != nil {
					return err
				}
			}
		case 'E':
			sum := crc.Sum32()
			var want uint32
			if err := binary.Read(r, binary.BigEndian, &want); err != nil {
				return bad("truncated")
			}
			if sum != want {
				return bad(fmt.Sprintf("checksum %08x, recorded %08x", sum, want))
			}
			if _, err := r.ReadByte(); err != io.EOF {
				return bad("data after the end")
			}
			return nil
		default:
			return bad(fmt.Sprintf("unknown record %q", kind))
		}
	}
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crcReader checksums the bytes read from it, and no more: a bufio.Reader
// over a TeeReader would checksum what it read ahead.
type crcReader struct {
	r   *bufio.Reader
	crc hash.Hash32
}

func (c *crcReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.crc.Write(p[:n])
	return n, err
}

func (c *crcReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.crc.Write([]byte{b})
	}
	return b, err
}

// undoPatches puts back what applyPatches overwrote in root, from its undo
// journal, and removes the journal: after a failed swap, once its moves are
// rolled back, and at recovery. Applying it twice does no harm.
func undoPatches(root string, log *slog.Logger) error {
	os.Remove(filepath.Join(root, UndoName+".tmp")) // incomplete: nothing was patched
	path := filepath.Join(root, UndoName)
	if _, err := os.Lstat(path); err != nil {
		return nil
	}
	if err := readUndo(path, nil, nil); err != nil {
		return Errorf(EIO, "sst: roll back in-place patches: %w; the files it names may hold the new snapshot's pages: move the datadir aside and let the node take a full SST", err)
	}
	log.Warn("rolling back files patched in place", slog.String("path", root))
	var cur *os.File
	closeCur := func() error {
		if cur == nil {
			return nil
		}
		err := cur.Sync()
		if cerr := cur.Close(); err == nil {
			err = cerr
		}
		cur = nil
		return err
	}
	err := readUndo(path, func(uf undoFile) error {
		if err := closeCur(); err != nil {
			return err
		}
		f, err := os.OpenFile(filepath.Join(root, uf.Rel), os.O_WRONLY|unix.O_NOFOLLOW, 0)
		if err != nil {
			return err
		}
		cur = f
		return f.Truncate(uf.OldSize)
	}, func(off int64, b []byte) error {
		_, err := cur.WriteAt(b, off)
		return err
	})
	if cerr := closeCur(); err == nil {
		err = cerr
	}
	if err != nil {
		return Errorf(EIO, "sst: roll back in-place patches in %s: %w", root, err)
	}
	if err := os.Remove(path); err != nil {
		return Errorf(EIO, "sst: roll back in-place patches: %w", err)
	}
	return syncDir(root)
}
