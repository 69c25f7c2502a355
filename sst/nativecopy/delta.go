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
	"github.com/galera-supervisor/galera-supervisor/sst/transfer"
	"golang.org/x/sys/unix"
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

// hashFile hashes the blocks of the file at path (those overlapping only,
// when given; see hashHandle).
func hashFile(path, name string, only []transfer.Range) (deltaFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return deltaFile{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return deltaFile{}, err
	}
	blocks, err := hashHandle(f, fi.Size(), only)
	if err != nil {
		return deltaFile{}, err
	}
	size := min(fi.Size(), int64(len(blocks))*blockSize)
	return deltaFile{Name: name, Size: size, Blocks: blocks}, nil
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
func hashHandle(f *os.File, size int64, only []transfer.Range) ([]string, error) {
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

// stageForDelta puts the joiner's existing file src into staging as rel
// (name is its wire name) and hashes its blocks: a reflink where the
// filesystem has them (btrfs, XFS: no data is written, and the staged file
// shares the old one's blocks until the donor's ranges patch it), else a
// copy made in the same read as the hashes. The staged file, not the
// original, is what the donor's ranges patch: the old datadir stays intact
// until the swap.
func stageForDelta(st *sst.Staging, name, rel, src string) (deltaFile, bool, error) {
	in, err := os.Open(src)
	if err != nil {
		return deltaFile{}, false, err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return deltaFile{}, false, err
	}
	out, err := st.Create(rel, fi.Mode().Perm())
	if err != nil {
		return deltaFile{}, false, err
	}
	if unix.IoctlFileClone(int(out.Fd()), int(in.Fd())) == nil {
		blocks, err := hashHandle(in, fi.Size(), nil)
		if cerr := out.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("stage %s: %w", name, cerr)
		}
		if err != nil {
			return deltaFile{}, true, fmt.Errorf("read %s: %w", src, err)
		}
		return deltaFile{Name: name, Size: fi.Size(), Blocks: blocks}, true, nil
	}
	df, err := copyHashing(in, out, name, src, fi.Size())
	return df, false, err
}

// copyHashing copies in to out and hashes its blocks in the same read.
func copyHashing(in, out *os.File, name, src string, size int64) (deltaFile, error) {
	df := deltaFile{Name: name, Size: size}
	buf := make([]byte, blockSize)
	var off int64
	for {
		n, err := io.ReadFull(in, buf)
		if n > 0 {
			df.Blocks = append(df.Blocks, blockHash(buf[:n]))
			if _, werr := out.WriteAt(buf[:n], off); werr != nil {
				out.Close()
				return deltaFile{}, fmt.Errorf("stage %s: %w", name, werr)
			}
			off += int64(n)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			out.Close()
			return deltaFile{}, fmt.Errorf("read %s: %w", src, err)
		}
	}
	if err := out.Close(); err != nil {
		return deltaFile{}, fmt.Errorf("stage %s: %w", name, err)
	}
	return df, nil
}

// prepareDelta stages the joiner's own copy of every file a donor would
// send (where the donor's would go) and returns their hashes for the plan.
func prepareDelta(pl *sst.Placement, log *slog.Logger) ([]deltaFile, int64, error) {
	files, err := listFiles(pl.Layout, nil, nil)
	if err != nil {
		return nil, 0, err
	}
	var out []deltaFile
	var bytes, cloned int64
	for _, f := range files {
		// The redo log goes as the donor's live part over zeros, as in a
		// full SST: over an old log instead, recovery could read on past
		// the end into old records that still check out.
		if filepath.Base(f.Name) == "" || f.Redo {
			continue
		}
		st, rel, err := pl.Route(f.Name)
		if err != nil {
			continue // the donor sends nothing there: nothing to patch
		}
		if _, err := os.Lstat(filepath.Join(st.Dir, rel)); err == nil {
			continue // kept from an earlier SST: resumeBasis offers it
		}
		df, reflink, err := stageForDelta(st, f.Name, rel, f.Path)
		if err != nil {
			return nil, 0, sst.Errorf(sst.EIO, "native-copy: delta: %w", err)
		}
		out = append(out, df)
		bytes += df.Size
		if reflink {
			cloned += df.Size
		}
	}
	log.Info("delta mode: staged existing files to be patched (reflinked where the filesystem can, copied otherwise)",
		slog.Int("files", len(out)), slog.Int64("delta_staged_bytes", bytes), slog.Int64("delta_reflinked_bytes", cloned))
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
	log.Info("delta: bytes that differ", slog.Int64("delta_differ_bytes", differ), slog.Int64("delta_total_bytes", total))
}
