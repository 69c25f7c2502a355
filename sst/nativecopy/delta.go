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

	"github.com/galera-supervisor/galera-supervisor/sst"
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

// stageForDelta copies the joiner's existing file src into staging as rel
// (a reflink where the filesystem can, else a copy) and hashes its blocks
// in the same read; name is its wire name. The copy, not the original, is
// what the donor's ranges patch: the old datadir stays intact until the
// swap.
func stageForDelta(st *sst.Staging, name, rel, src string) (deltaFile, error) {
	in, err := os.Open(src)
	if err != nil {
		return deltaFile{}, err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return deltaFile{}, err
	}
	out, err := st.Create(rel, fi.Mode().Perm())
	if err != nil {
		return deltaFile{}, err
	}
	df := deltaFile{Name: name, Size: fi.Size()}
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
func prepareDelta(pl *placement, log *slog.Logger) ([]deltaFile, int64, error) {
	files, err := listFiles(pl.d, nil, nil)
	if err != nil {
		return nil, 0, err
	}
	var out []deltaFile
	var bytes int64
	for _, f := range files {
		if filepath.Base(f.Name) == "" {
			continue
		}
		st, rel, err := pl.route(f.Name)
		if err != nil {
			continue // the donor sends nothing there: nothing to patch
		}
		df, err := stageForDelta(st, f.Name, rel, f.Path)
		if err != nil {
			return nil, 0, sst.Errorf(sst.EIO, "native-copy: delta: %w", err)
		}
		out = append(out, df)
		bytes += df.Size
	}
	log.Info(fmt.Sprintf("delta mode: staged %d existing files (%s) to be patched", len(out), mb(bytes)), slog.Int("files", len(out)), slog.Int64("bytes", bytes))
	return out, bytes, nil
}
