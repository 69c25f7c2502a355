package nativecopy

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/galera-supervisor/galera-supervisor/schema"
	"github.com/galera-supervisor/galera-supervisor/sst"
	"github.com/galera-supervisor/galera-supervisor/sst/progress"
	"github.com/galera-supervisor/galera-supervisor/sst/transfer"
)

// blockSize is the unit of delta mode: a joiner's block is kept when its
// hash equals the donor's block at the same offset.
const blockSize = 1 << 20

// deltaFile is a file the joiner already holds: its size and a 64-bit
// checksum of each block (CRC-32C and CRC-32/IEEE side by side, hex).
// Equal means "do not send", so one 32-bit CRC would be too weak; two CRCs
// of different polynomials run at memory speed (SHA-256 manages a fraction
// of that here) and make an accidental match of a changed block about
// 2^-64 likely. The blocks compared are the donor's own data against an
// earlier copy of it, not adversarial input.
type deltaFile struct {
	Name   string   `json:"name"`
	Size   int64    `json:"size"`
	Blocks []string `json:"blocks"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func blockHash(b []byte) string {
	var sum [8]byte
	binary.BigEndian.PutUint32(sum[:4], crc32.Checksum(b, castagnoli))
	binary.BigEndian.PutUint32(sum[4:], crc32.ChecksumIEEE(b))
	return hex.EncodeToString(sum[:])
}

// hashFile hashes the blocks of a file of size bytes (those overlapping
// only, when given; see hashHandle): a staged file or a base.
func hashFile(r sizedReaderAt, name string, only []transfer.Range) (deltaFile, error) {
	size := r.Size()
	blocks, err := hashHandle(r, size, only)
	if err != nil {
		return deltaFile{}, err
	}
	size = min(size, int64(len(blocks))*blockSize)
	return deltaFile{Name: name, Size: size, Blocks: blocks}, nil
}

// sizedReaderAt is a file to hash: a staged file (fileSize), or a base,
// read as the swap will leave it (*sst.Patch).
type sizedReaderAt interface {
	io.ReaderAt
	Size() int64
}

// fileSize is an open file with its size at open.
type fileSize struct {
	*os.File
	size int64
}

func (f fileSize) Size() int64 { return f.size }

// hashPath hashes the blocks of the file at path.
func hashPath(path, name string, only []transfer.Range) (deltaFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return deltaFile{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return deltaFile{}, err
	}
	return hashFile(fileSize{f, fi.Size()}, name, only)
}

// diffRanges reads f (size bytes) and returns the ranges whose blocks
// differ from the joiner's, merged where adjacent; bytes past the joiner's
// size are always sent.
func diffRanges(f *os.File, size int64, df deltaFile) ([]transfer.Range, error) {
	mine, err := hashHandle(f, size, nil)
	if err != nil {
		return nil, err
	}
	return rangesFrom(size, mine, df), nil
}

// hashHandle hashes the blocks of f's first size bytes; given only, just
// those that overlap its ranges (the others get an empty hash, which
// matches none). A file that shrank meanwhile yields fewer hashes; the
// blocks without one count as changed (and a later pass corrects the size).
func hashHandle(f io.ReaderAt, size int64, only []transfer.Range) ([]string, error) {
	var out []string
	buf := make([]byte, blockSize)
	for off := int64(0); off < size; off += blockSize {
		n := min(blockSize, size-off)
		if only != nil && len(intersect([]transfer.Range{{Off: off, Len: n}}, only)) == 0 {
			out = append(out, "")
			continue
		}
		m, err := f.ReadAt(buf[:n], off)
		if int64(m) == n {
			out = append(out, blockHash(buf[:n]))
			continue
		}
		if errors.Is(err, io.EOF) {
			break
		}
		return nil, err
	}
	return out, nil
}

// rangesFrom compares the donor's block hashes of a size-byte file with
// the joiner's copy and returns the ranges to send, merged where adjacent.
func rangesFrom(size int64, mine []string, theirs deltaFile) []transfer.Range {
	var out []transfer.Range
	add := func(off, n int64) {
		if k := len(out); k > 0 && out[k-1].Off+out[k-1].Len == off {
			out[k-1].Len += n
			return
		}
		out = append(out, transfer.Range{Off: off, Len: n})
	}
	for i, off := 0, int64(0); off < size; i, off = i+1, off+blockSize {
		n := min(blockSize, size-off)
		if off+n > theirs.Size || i >= len(theirs.Blocks) {
			add(off, size-off)
			break
		}
		if i >= len(mine) || mine[i] != theirs.Blocks[i] {
			add(off, n)
		}
	}
	return out
}

// intersect returns the parts of a that lie in b; both sorted by offset,
// without overlaps.
func intersect(a, b []transfer.Range) []transfer.Range {
	var out []transfer.Range
	for i, j := 0, 0; i < len(a) && j < len(b); {
		lo := max(a[i].Off, b[j].Off)
		hi := min(a[i].Off+a[i].Len, b[j].Off+b[j].Len)
		if lo < hi {
			out = append(out, transfer.Range{Off: lo, Len: hi - lo})
		}
		if a[i].Off+a[i].Len < b[j].Off+b[j].Len {
			i++
		} else {
			j++
		}
	}
	return out
}

// prepareDelta hashes the joiner's own copy of every file a donor would
// send, in place, and declares each a base of its staging (sst.Patch):
// nothing is copied. The donor then sends the blocks that differ; a
// base's staging stores only the pages of those that differ from it, and
// the swap writes them into it in place under an undo journal (see
// package sst's patch.go), so the old datadir stays whole until the new
// one is verified.
func prepareDelta(pl *sst.Placement, log *slog.Logger) ([]deltaFile, int64, error) {
	files, err := listFiles(pl.Layout, nil, nil)
	if err != nil {
		return nil, 0, err
	}
	var out []deltaFile
	var bytes int64
	for _, f := range files {
		// The redo log goes as the donor's live part over zeros, as in a
		// full SST: over an old log instead, recovery could read on past
		// the end into old records that still check out (baseFor). A file
		// the donor's would not replace in place is sent whole.
		st, rel, ok := baseFor(pl, f)
		if !ok {
			continue
		}
		if _, err := os.Lstat(filepath.Join(st.Dir, rel)); err == nil {
			continue // kept from an earlier SST: resumeBasis offers it
		}
		b, err := st.Base(rel)
		if err != nil {
			return nil, 0, sst.Errorf(sst.EIO, "native-copy: delta: %w", err)
		}
		df, err := hashFile(b, f.Name, nil)
		if err != nil {
			return nil, 0, sst.Errorf(sst.EIO, "native-copy: delta: read %s: %w", f.Path, err)
		}
		out = append(out, df)
		bytes += df.Size
	}
	log.Info("delta mode: hashed existing files in place; staging keeps only the pages that differ",
		slog.Int("files", len(out)), slog.Int64("delta_base_bytes", bytes))
	return out, bytes, nil
}

// deltaChoice says whether this joiner asks the donor for the blocks that
// differ from its old datadir ([sst] delta, default auto), and why. auto
// wants an old datadir of the donor's cluster that no SST left half
// written: anything else shares few blocks with the donor's, and hashing
// it all would only add a full local read to a full transfer. (Any base
// gives a correct result: every block is compared.) The native methods
// never leave a datadir half written, they stage and swap.
func deltaChoice(s *sst.Session, donorCluster string) (bool, string) {
	mode, _, err := s.Values().String("delta")
	if err != nil {
		return false, err.Error() // refused at the SST's start already
	}
	switch mode {
	case "0":
		return false, "[sst] delta=0"
	case "1":
		return true, "[sst] delta=1"
	}
	datadir := s.Datadir
	if _, err := os.Stat(filepath.Join(s.Dirs().InnoDBData, "ibdata1")); err != nil {
		return false, "no old datadir (no ibdata1)"
	}
	if s.IncompleteBefore != "" {
		return false, "the old datadir holds an incomplete SST: " + s.IncompleteBefore
	}
	old, err := oldCluster(datadir)
	switch {
	case err != nil:
		return false, fmt.Sprintf("the old datadir's cluster is unknown: %v", err)
	case donorCluster == "":
		return false, "the donor did not say its cluster UUID"
	case old != donorCluster:
		return false, fmt.Sprintf("the old datadir is of cluster %s, the donor of %s", old, donorCluster)
	}
	return true, "an old datadir of cluster " + old
}

// gcacheFile is Galera's write-set cache in the datadir (gcache.name).
const gcacheFile = "galera.cache"

// oldCluster is the cluster the joiner's datadir last belonged to. Before
// it asks for an SST, Galera sets grastate.dat to the zero UUID; the
// gcache's preamble ("GID: <uuid>", Galera 4) still names the history its
// write-sets, and so the datadir, belong to.
func oldCluster(datadir string) (string, error) {
	f, err := os.Open(filepath.Join(datadir, gcacheFile))
	if err != nil {
		return "", fmt.Errorf("no gcache to tell: %w", err)
	}
	defer f.Close()
	head := make([]byte, 1024)
	n, _ := io.ReadFull(f, head)
	for _, line := range strings.Split(string(head[:n]), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && strings.EqualFold(k, "GID") {
			if u := strings.ToLower(strings.TrimSpace(v)); u != schema.ZeroUUID && schema.ValidUUID(u) {
				return u, nil
			}
		}
	}
	return "", fmt.Errorf("%s names no cluster", f.Name())
}

// logDelta says how much of the datadir a delta SST moved (what was sent,
// new files and passes included, against the donor's datadir).
func logDelta(log *slog.Logger, differ, total int64) {
	log.Info("delta: bytes that differ", progress.DeltaAttrs(differ, total)...)
}

// baseFor is where the joiner's own file f is a delta's base: the staging
// whose root holds it at the path the donor's file of that name goes to.
// The redo log never is (see prepareDelta).
func baseFor(pl *sst.Placement, f *file) (*sst.Staging, string, bool) {
	if f.Redo {
		return nil, "", false
	}
	x, rel, err := pl.Route(f.Name)
	if err != nil || filepath.Join(x.Root, rel) != f.Path {
		return nil, "", false
	}
	return x, rel, true
}

// patcher is the Sink's Patch: a base takes the ranges of its file; a
// file sent whole is staged whole, its base dropped.
func patcher(pl *sst.Placement) func(name string, whole bool) (transfer.Patcher, error) {
	return func(name string, whole bool) (transfer.Patcher, error) {
		x, rel, err := pl.Route(name)
		if err != nil {
			return nil, err
		}
		if whole {
			x.Unbase(rel)
			return nil, nil
		}
		if b := x.BaseOf(rel); b != nil {
			return b, nil
		}
		return nil, nil
	}
}

// hashStaged hashes the blocks of name as staged: its base with its
// patch, or the staged file.
func hashStaged(pl *sst.Placement, name string, only []transfer.Range) (deltaFile, error) {
	x, rel, err := pl.Route(name)
	if err != nil {
		return deltaFile{}, err
	}
	if b := x.BaseOf(rel); b != nil {
		return hashFile(b, name, only)
	}
	path, err := x.Path(rel)
	if err != nil {
		return deltaFile{}, err
	}
	return hashPath(path, name, only)
}
