package nativecopy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/galera-supervisor/galera-supervisor/schema"
	"github.com/galera-supervisor/galera-supervisor/sst"
	"github.com/galera-supervisor/galera-supervisor/sst/progress"
	"github.com/galera-supervisor/galera-supervisor/sst/transfer"
)

// The delta compares blocks of the donor's innodb_page_size (its hello's
// delta_block), read from its system tablespace's header (sst.Preflight;
// the preflight has refused a joiner of another page size by then): a
// changed page costs one block sent, where a 1 MiB block sent 64 pages for
// it (with 2 % of the pages changed at random, about 73 % of 1 MiB blocks
// differ). defaultBlock, InnoDB's default page size, when the donor cannot
// tell. Every set of hashes carries the block it was made with: a donor
// uses only those of its own block, and sends the other files whole (an
// older joiner's, of 1 MiB blocks in hex, name none), so a mismatch costs
// a full transfer, never a wrong patch.
const defaultBlock = 16 << 10

// validBlock is a block size a peer may name: InnoDB's page sizes (4 to
// 64 KiB) and up to 1 MiB, each a power of two, so that every block is
// whole within hashRead.
func validBlock(n int64) bool { return n >= 4<<10 && n <= 1<<20 && n&(n-1) == 0 }

// deltaBlockFor is the block of a donor whose pages are pageSize bytes.
func deltaBlockFor(pageSize int64) int64 {
	if validBlock(pageSize) {
		return pageSize
	}
	return defaultBlock
}

// sumLen is the bytes of one block's hash on the wire and in memory:
// CRC-32C and CRC-32/IEEE side by side, big-endian. Equal means "do not
// send", so one 32-bit CRC would be too weak; two CRCs of different
// polynomials run at memory speed (SHA-256 manages a fraction of that
// here) and make an accidental match of a changed block about 2^-64
// likely. The blocks compared are the donor's own data against an earlier
// copy of it, not adversarial input.
const sumLen = 8

// deltaFile is a file the joiner holds: its size and the hashes of its
// blocks. The hashes travel as bytes (base64 in the JSON, 11 bytes a
// block: 2.7 MiB for 4 GiB in 16 KiB blocks, where hex strings took 19);
// a big file's go in parts (From, see deltaBatches).
type deltaFile struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
	// Block is the bytes of each block hashed; an older joiner's hashes
	// (1 MiB blocks, hex in "blocks") carry none.
	Block int64 `json:"block,omitempty"`
	// From is the index of the block Sums starts at.
	From int64 `json:"from,omitempty"`
	// Sums holds sumLen bytes per block, in order; a block left out of
	// the comparison (see hashHandle's only) has zeros.
	Sums []byte `json:"sums,omitempty"`
}

// blocks is the count of blocks hashed.
func (df deltaFile) blocks() int64 { return int64(len(df.Sums)) / sumLen }

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// blockHash puts the hash of b into sum (sumLen bytes).
func blockHash(b, sum []byte) {
	binary.BigEndian.PutUint32(sum[:4], crc32.Checksum(b, castagnoli))
	binary.BigEndian.PutUint32(sum[4:sumLen], crc32.ChecksumIEEE(b))
}

// hashFile hashes the blocks of a file of size bytes (those overlapping
// only, when given; see hashHandle): a staged file or a base.
func hashFile(r sizedReaderAt, name string, block int64, only []transfer.Range) (deltaFile, error) {
	size := r.Size()
	sums, err := hashHandle(r, size, block, only)
	if err != nil {
		return deltaFile{}, err
	}
	size = min(size, int64(len(sums))/sumLen*block)
	return deltaFile{Name: name, Size: size, Block: block, Sums: sums}, nil
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

// openSized opens the file at path with its size.
func openSized(path string) (fileSize, error) {
	f, err := os.Open(path)
	if err != nil {
		return fileSize{}, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fileSize{}, err
	}
	return fileSize{f, fi.Size()}, nil
}

// hashPath hashes the blocks of the file at path.
func hashPath(path, name string, block int64, only []transfer.Range) (deltaFile, error) {
	f, err := openSized(path)
	if err != nil {
		return deltaFile{}, err
	}
	defer f.Close()
	return hashFile(f, name, block, only)
}

// hashRead is what hashing reads at once, a multiple of every valid
// block: small blocks cost a CRC call each, not a read each. (hashAll's
// files times hashHandle's pieces are in memory at once: 16 MiB.)
const hashRead = 1 << 20

// hashWorkers is how many pieces of hashRead bytes are read and hashed
// at once, within a file and across files (hashAll): the CRCs run at
// memory speed, and a disk or the page cache serves a few reads at once
// faster than one.
func hashWorkers() int { return max(2, min(4, runtime.GOMAXPROCS(0))) }

// hashHandle hashes the blocks of f's first size bytes; given only, just
// those that overlap its ranges (the others keep a zero hash: every caller
// compares within only). A file that shrank meanwhile yields fewer hashes;
// the blocks without one count as changed (and a later pass corrects the
// size).
func hashHandle(f io.ReaderAt, size, block int64, only []transfer.Range) ([]byte, error) {
	if size <= 0 {
		return nil, nil
	}
	out := make([]byte, (size+block-1)/block*sumLen)
	pieces := (size + hashRead - 1) / hashRead
	var (
		next  atomic.Int64
		mu    sync.Mutex
		short = int64(len(out)) / sumLen // the first block not read whole
		first error
		wg    sync.WaitGroup
	)
	work := func() {
		defer wg.Done()
		buf := make([]byte, min(hashRead, size))
		for {
			i := next.Add(1) - 1
			if i >= pieces {
				return
			}
			off := i * hashRead
			n, err := hashPiece(f, buf, off, min(off+hashRead, size), block, only, out[off/block*sumLen:])
			mu.Lock()
			if err != nil && first == nil {
				first = err
			}
			if end := (min(off+hashRead, size) - off + block - 1) / block; n < end {
				short = min(short, off/block+n)
			}
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}
	for range min(int64(hashWorkers()), pieces) {
		wg.Add(1)
		go work()
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	return out[:short*sumLen], nil
}

// hashPiece hashes the blocks of f in [off, end) into out, the first
// block's hash first, and returns how many blocks it covered: fewer when
// the file ends early (it shrank while read).
func hashPiece(f io.ReaderAt, buf []byte, off, end, block int64, only []transfer.Range, out []byte) (int64, error) {
	nb := (end - off + block - 1) / block
	wanted := func(lo, hi int64) bool {
		return only == nil || len(intersect([]transfer.Range{{Off: lo, Len: hi - lo}}, only)) > 0
	}
	if !wanted(off, end) {
		return nb, nil
	}
	m, err := f.ReadAt(buf[:end-off], off)
	if int64(m) < end-off && !errors.Is(err, io.EOF) {
		return 0, err
	}
	for i := int64(0); i < nb; i++ {
		lo, hi := i*block, min((i+1)*block, end-off)
		if hi > int64(m) {
			return i, nil
		}
		if wanted(off+lo, off+hi) {
			blockHash(buf[lo:hi], out[i*sumLen:])
		}
	}
	return nb, nil
}

// rangesFrom compares the donor's block hashes (mine) of a size-byte file
// with the joiner's copy, both of block bytes a block, and returns the
// ranges to send, adjacent blocks merged into one range.
func rangesFrom(size, block int64, mine []byte, theirs deltaFile) []transfer.Range {
	var out []transfer.Range
	add := func(off, n int64) {
		if k := len(out); k > 0 && out[k-1].Off+out[k-1].Len == off {
			out[k-1].Len += n
			return
		}
		out = append(out, transfer.Range{Off: off, Len: n})
	}
	nMine, nTheirs := int64(len(mine))/sumLen, theirs.blocks()
	for i, off := int64(0), int64(0); off < size; i, off = i+1, off+block {
		n := min(block, size-off)
		if off+n > theirs.Size || i >= nTheirs {
			add(off, size-off)
			break
		}
		at := i * sumLen
		if i >= nMine || !bytes.Equal(mine[at:at+sumLen], theirs.Sums[at:at+sumLen]) {
			add(off, n)
		}
	}
	return out
}

// maxBatchBytes bounds a control message of block hashes (before base64,
// names counted): transfer's limit is 16 MiB.
const maxBatchBytes = 6 << 20

// deltaBatch is one control message of block hashes: the joiner's
// "delta" messages before its plan, and each of its "hashes" answers.
type deltaBatch struct {
	Files []deltaFile `json:"files"`
	// More: another "hashes" message follows for the same request.
	More bool `json:"more,omitempty"`
}

// deltaBatches splits files into batches of about limit bytes each; a
// file with more hashes than fit goes in parts, each saying the block it
// starts at (From), in order.
func deltaBatches(files []deltaFile, limit int) [][]deltaFile {
	var out [][]deltaFile
	var cur []deltaFile
	used := 0
	flush := func() {
		if len(cur) > 0 {
			out = append(out, cur)
		}
		cur, used = nil, 0
	}
	for _, df := range files {
		sums, from := df.Sums, int64(0)
		for {
			cost := 64 + len(df.Name)
			take := min(len(sums), max(0, limit-used-cost)/sumLen*sumLen)
			if take == 0 && len(sums) > 0 {
				if len(cur) > 0 {
					flush()
					continue
				}
				take = sumLen // a limit below one block: one a message
			}
			part := df
			part.From, part.Sums = from, sums[:take]
			cur = append(cur, part)
			used += cost + take
			sums, from = sums[take:], from+int64(take/sumLen)
			if len(sums) == 0 {
				break
			}
			flush()
		}
	}
	flush()
	return out
}

// blockMismatch: the joiner hashed a file in other blocks than the
// donor compares; the donor sends that file whole.
type blockMismatch struct {
	name         string
	theirs, mine int64
}

func (e *blockMismatch) Error() string {
	if e.theirs == 0 {
		return fmt.Sprintf("the joiner's hashes of %s name no block size (an older version, which hashes 1 MiB blocks); this donor compares %d-byte blocks", e.name, e.mine)
	}
	return fmt.Sprintf("the joiner hashed %s in %d-byte blocks; this donor compares %d-byte blocks", e.name, e.theirs, e.mine)
}

// deltaSet is the joiner's files as the donor holds them, by name.
type deltaSet map[string]deltaFile

// add takes one part of a file's hashes: the first (From 0) replaces
// what the set held for it, a later one must follow on the last. A part
// hashed in other blocks than block is refused with a *blockMismatch.
func (m deltaSet) add(df deltaFile, block int64) error {
	if df.Block != block {
		delete(m, df.Name)
		return &blockMismatch{name: df.Name, theirs: df.Block, mine: block}
	}
	if len(df.Sums)%sumLen != 0 || df.Size < 0 || df.From < 0 {
		return fmt.Errorf("hashes of %s: %d bytes of hashes for size %d from block %d", df.Name, len(df.Sums), df.Size, df.From)
	}
	if df.From == 0 {
		m[df.Name] = df
		return nil
	}
	prev, ok := m[df.Name]
	if !ok || prev.blocks() != df.From || prev.Size != df.Size {
		return fmt.Errorf("hashes of %s from block %d do not follow the %d before", df.Name, df.From, prev.blocks())
	}
	prev.Sums = append(prev.Sums, df.Sums...)
	m[df.Name] = prev
	return nil
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

// hashJob is one file to hash for the plan: its name on the wire, and
// how to open it (a base, or a file a staging kept).
type hashJob struct {
	name string
	open func() (sizedReaderAt, func(), error)
}

// baseJob hashes base b as the swap would leave it.
func baseJob(name string, b *sst.Patch) hashJob {
	return hashJob{name: name, open: func() (sizedReaderAt, func(), error) { return b, func() {}, nil }}
}

// pathJob hashes the file at path.
func pathJob(name, path string) hashJob {
	return hashJob{name: name, open: func() (sizedReaderAt, func(), error) {
		f, err := openSized(path)
		if err != nil {
			return nil, nil, err
		}
		return f, func() { f.Close() }, nil
	}}
}

// hashAll hashes the jobs' files in blocks of block bytes, a few files at
// once (many small tables cost a read each, not a CPU), and returns them
// in the jobs' order.
func hashAll(jobs []hashJob, block int64) ([]deltaFile, error) {
	out := make([]deltaFile, len(jobs))
	errs := make([]error, len(jobs))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(hashWorkers(), len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(jobs) {
					return
				}
				r, done, err := jobs[i].open()
				if err == nil {
					out[i], err = hashFile(r, jobs[i].name, block, nil)
					done()
				}
				if err != nil {
					errs[i] = fmt.Errorf("%s: %w", jobs[i].name, err)
					next.Store(int64(len(jobs))) // the others need not finish
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// prepareDelta declares the joiner's own copy of every file a donor would
// send a base of its staging (sst.Patch), in place: nothing is copied.
// The donor then sends the blocks that differ; a base's staging stores
// only the pages of those that differ from it, and the swap writes them
// into it in place under an undo journal (see package sst's patch.go), so
// the old datadir stays whole until the new one is verified. It returns
// the bases to hash (hashAll), once the space is checked.
func prepareDelta(pl *sst.Placement) ([]hashJob, error) {
	files, err := listFiles(pl.Layout, nil, nil)
	if err != nil {
		return nil, err
	}
	var out []hashJob
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
			continue // kept from an earlier SST: resumeJobs offers it
		}
		b, err := st.Base(rel)
		if err != nil {
			return nil, sst.Errorf(sst.EIO, "native-copy: delta: %w", err)
		}
		out = append(out, baseJob(f.Name, b))
	}
	return out, nil
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
func hashStaged(pl *sst.Placement, name string, block int64, only []transfer.Range) (deltaFile, error) {
	x, rel, err := pl.Route(name)
	if err != nil {
		return deltaFile{}, err
	}
	if b := x.BaseOf(rel); b != nil {
		return hashFile(b, name, block, only)
	}
	path, err := x.Path(rel)
	if err != nil {
		return deltaFile{}, err
	}
	return hashPath(path, name, block, only)
}
