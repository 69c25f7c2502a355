package nativecopy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"hash/crc32"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/notify/logging/logtest"
	"github.com/galera-supervisor/galera-supervisor/sst"
	"github.com/galera-supervisor/galera-supervisor/sst/transfer"
)

const page = 16 << 10

// diffRanges is what the donor does with a file the joiner holds: hash
// its own copy (f, size bytes) in df's blocks and return the ranges to send.
func diffRanges(t *testing.T, f sizedReaderAt, df deltaFile) []transfer.Range {
	t.Helper()
	mine, err := hashHandle(f, f.Size(), df.Block, nil)
	if err != nil {
		t.Fatal(err)
	}
	return rangesFrom(f.Size(), df.Block, mine, df)
}

// mem is a file in memory.
type mem []byte

func (m mem) Size() int64 { return int64(len(m)) }
func (m mem) ReadAt(b []byte, off int64) (int, error) {
	if off >= int64(len(m)) {
		return 0, io.EOF
	}
	n := copy(b, m[off:])
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func randBytes(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// The donor sends the pages that differ: one page changed in the middle
// of a big file costs that page, not the megabyte around it; adjacent
// changed pages go as one range; a file that grew sends its new tail
// (and its last old page when that was partial); one that shrank sends
// only what differs below its new size.
func TestDeltaSendsChangedPages(t *testing.T) {
	block := deltaBlockFor(16 << 10)
	if block != page {
		t.Errorf("deltaBlockFor(16 KiB) = %d", block)
	}
	old := mem(randBytes(9<<20+5000, 1)) // several hashRead pieces, a partial last page
	theirs, err := hashFile(old, "db/t.ibd", block, nil)
	if err != nil {
		t.Fatal(err)
	}
	if theirs.blocks() != int64((len(old)+page-1)/page) || theirs.Size != int64(len(old)) || theirs.Block != page {
		t.Fatalf("hashFile: %d blocks of %d, size %d", theirs.blocks(), theirs.Block, theirs.Size)
	}
	for _, tc := range []struct {
		name   string
		change func(b []byte) []byte
		want   []transfer.Range
	}{
		{"unchanged", func(b []byte) []byte { return b }, nil},
		{"one page in the middle of a megabyte", func(b []byte) []byte {
			b[5<<20+512<<10+100] ^= 1 // page 352
			return b
		}, []transfer.Range{{Off: 5<<20 + 512<<10, Len: page}}},
		{"adjacent pages merged", func(b []byte) []byte {
			b[page*10+1] ^= 1
			b[page*11] ^= 1
			b[page*12+page-1] ^= 1
			b[page*20] ^= 1
			return b
		}, []transfer.Range{{Off: page * 10, Len: 3 * page}, {Off: page * 20, Len: page}}},
		{"pages across a read piece", func(b []byte) []byte {
			b[hashRead-1] ^= 1
			b[hashRead] ^= 1
			return b
		}, []transfer.Range{{Off: hashRead - page, Len: 2 * page}}},
		{"grew", func(b []byte) []byte { return append(b, randBytes(3*page, 2)...) },
			[]transfer.Range{{Off: int64(len(old)) / page * page, Len: int64(len(old))%page + 3*page}}},
		{"shrank to a page boundary", func(b []byte) []byte { return b[:4<<20] }, nil},
		{"shrank within a page", func(b []byte) []byte { return b[:4<<20+100] },
			[]transfer.Range{{Off: 4 << 20, Len: 100}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cur := mem(tc.change(bytes.Clone(old)))
			got := diffRanges(t, cur, theirs)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ranges = %+v, want %+v", got, tc.want)
			}
			// The joiner's copy with the ranges over it, cut to the new
			// size, is the donor's file.
			b := bytes.Clone(old)
			if len(cur) > len(b) {
				b = append(b, make([]byte, len(cur)-len(b))...)
			}
			for _, r := range got {
				copy(b[r.Off:r.Off+r.Len], cur[r.Off:r.Off+r.Len])
			}
			if !bytes.Equal(b[:len(cur)], cur) {
				t.Fatal("the patched copy differs from the donor's file")
			}
		})
	}
}

// Hashing reads big pieces, several at once, and hashes each block of
// them: the same hashes as one block at a time. A file that turns out
// shorter than its size (it shrank) yields the blocks read whole; with
// only, the blocks outside keep a zero hash.
func TestHashHandle(t *testing.T) {
	data := mem(randBytes(3*hashRead+7*page+123, 3))
	want := func(b []byte, block int64) []byte {
		var out []byte
		for off := int64(0); off < int64(len(b)); off += block {
			var sum [sumLen]byte
			c := b[off:min(off+block, int64(len(b)))]
			crcs := [2]uint32{crc32.Checksum(c, crc32.MakeTable(crc32.Castagnoli)), crc32.ChecksumIEEE(c)}
			for i, v := range crcs {
				sum[4*i], sum[4*i+1], sum[4*i+2], sum[4*i+3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
			}
			out = append(out, sum[:]...)
		}
		return out
	}
	for _, block := range []int64{4 << 10, page, 64 << 10, 1 << 20} {
		got, err := hashHandle(data, data.Size(), block, nil)
		if err != nil || !bytes.Equal(got, want(data, block)) {
			t.Fatalf("block %d: hashes differ (%v)", block, err)
		}
	}
	// Shrank to 2 pieces + 3 pages + 10 bytes after the size was taken.
	short := data[:2*hashRead+3*page+10]
	got, err := hashHandle(short, data.Size(), page, nil)
	if err != nil || !bytes.Equal(got, want(short[:2*hashRead+3*page], page)) {
		t.Fatalf("shrunk: %d hashes (%v), want %d", len(got)/sumLen, err, (2*hashRead+3*page)/page)
	}
	df, _ := hashFile(sized{short, data.Size()}, "f", page, nil)
	if df.Size != 2*hashRead+3*page {
		t.Errorf("shrunk: size %d, want the blocks hashed", df.Size)
	}
	only := []transfer.Range{{Off: hashRead + page, Len: 2 * page}}
	got, _ = hashHandle(data, data.Size(), page, only)
	all := want(data, page)
	for i := int64(0); i < int64(len(got))/sumLen; i++ {
		s, w := got[i*sumLen:(i+1)*sumLen], all[i*sumLen:(i+1)*sumLen]
		in := i*page >= hashRead+page && i*page < hashRead+3*page
		if in && !bytes.Equal(s, w) || !in && !bytes.Equal(s, make([]byte, sumLen)) {
			t.Fatalf("only: block %d hashed %x, want %x (in range: %v)", i, s, w, in)
		}
	}
}

// sized is a reader whose size says more than it holds.
type sized struct {
	mem
	size int64
}

func (s sized) Size() int64 { return s.size }

// The hashes of 4 GiB in 16 KiB blocks go as bytes, some 2.8 MB of JSON
// (hex strings took 5 MB), in batches under the control message limit,
// each file's parts in order; the donor puts them together again and
// refuses a part that does not follow.
func TestDeltaBatches(t *testing.T) {
	big := deltaFile{Name: "db/big.ibd", Size: 4 << 30, Block: page, Sums: randBytes(4<<30/page*sumLen, 4)}
	files := []deltaFile{{Name: "ibdata1", Size: 100, Block: page, Sums: randBytes(sumLen, 5)}, big, {Name: "db/empty.ibd", Block: page}}
	var wire int
	for _, b := range deltaBatches(files, maxBatchBytes) {
		j, err := json.Marshal(deltaBatch{Files: b})
		if err != nil {
			t.Fatal(err)
		}
		if len(j) > 12<<20 {
			t.Errorf("a batch of %d bytes of JSON", len(j))
		}
		wire += len(j)
	}
	if wire > 3<<20 {
		t.Errorf("%d bytes of JSON for 4 GiB of 16 KiB blocks", wire)
	}
	t.Logf("4 GiB in %d-byte blocks: %d bytes of JSON", page, wire)

	for _, limit := range []int{1, 100, 1000, maxBatchBytes} {
		got := deltaSet{}
		small := []deltaFile{files[0], {Name: "db/t.ibd", Size: 50 * page, Block: page, Sums: randBytes(50*sumLen, 6)}, files[2]}
		for _, b := range deltaBatches(small, limit) {
			var back deltaBatch
			j, _ := json.Marshal(deltaBatch{Files: b})
			if err := json.Unmarshal(j, &back); err != nil {
				t.Fatal(err)
			}
			for _, df := range back.Files {
				if err := got.add(df, page); err != nil {
					t.Fatalf("limit %d: %v", limit, err)
				}
			}
		}
		for _, df := range small {
			g := got[df.Name]
			if g.Size != df.Size || !bytes.Equal(g.Sums, df.Sums) {
				t.Fatalf("limit %d: %s came back as %d blocks, size %d", limit, df.Name, g.blocks(), g.Size)
			}
		}
	}
	set := deltaSet{}
	set.add(deltaFile{Name: "f", Size: 10 * page, Block: page, Sums: make([]byte, 2*sumLen)}, page)
	err := set.add(deltaFile{Name: "f", Size: 10 * page, Block: page, From: 5, Sums: make([]byte, sumLen)}, page)
	if err == nil || !strings.Contains(err.Error(), "from block 5 do not follow the 2 before") {
		t.Errorf("a part out of order: %v", err)
	}
}

// Hashes of other blocks than the donor's, or of none (an older joiner's
// 1 MiB blocks in hex), are not compared: the donor says so, naming both
// sizes, and sends those files whole.
func TestDeltaBlockMismatch(t *testing.T) {
	rec := logtest.NewRecorder()
	d := &donor{s: &sst.Session{Method: Name, Log: rec.Logger()}, peer: "10.0.0.2:4444", block: page, delta: deltaSet{}}
	var old plan
	if err := json.Unmarshal([]byte(`{"delta":[{"name":"db/t.ibd","size":3145728,"blocks":["0011223344556677","8899aabbccddeeff","0011223344556677"]}]}`), &old); err != nil {
		t.Fatal(err)
	}
	files := append(old.Delta, deltaFile{Name: "db/u.ibd", Size: 1 << 20, Block: 1 << 20, Sums: make([]byte, sumLen)},
		deltaFile{Name: "db/v.ibd", Size: page, Block: page, Sums: make([]byte, sumLen)})
	if err := d.takeHashes(files); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.delta["db/v.ibd"]; !ok || len(d.delta) != 1 {
		t.Fatalf("the donor took %d files' hashes, want db/v.ibd's only", len(d.delta))
	}
	lines := strings.Join(rec.Lines(), "\n")
	for _, want := range []string{"those files go whole", "files=2", "10.0.0.2:4444",
		"db/t.ibd name no block size (an older version, which hashes 1 MiB blocks); this donor compares 16384-byte blocks"} {
		if !strings.Contains(lines, want) {
			t.Errorf("the log does not say %q:\n%s", want, lines)
		}
	}
	var bm *blockMismatch
	err := deltaSet{}.add(files[1], page)
	if !errors.As(err, &bm) || err.Error() != "the joiner hashed db/u.ibd in 1048576-byte blocks; this donor compares 16384-byte blocks" {
		t.Errorf("mismatch: %v", err)
	}
	for _, n := range []int64{0, 1000, 2 << 10, 3 << 12, 2 << 20} {
		if validBlock(n) || deltaBlockFor(n) != defaultBlock {
			t.Errorf("block %d accepted", n)
		}
	}
	if deltaBlockFor(64<<10) != 64<<10 || deltaBlockFor(4<<10) != 4<<10 {
		t.Error("a page size of 4 or 64 KiB is not the block")
	}
}

// prepareDelta's bases and a kept staging's files are hashed a few at a
// time, in order, and a read error names the file.
func TestHashAll(t *testing.T) {
	dir := t.TempDir()
	var jobs []hashJob
	var want [][]byte
	for i := range 9 {
		b := randBytes(i*page+i, int64(i))
		p := filepath.Join(dir, string(rune('a'+i)))
		os.WriteFile(p, b, 0o600)
		jobs = append(jobs, pathJob(filepath.Base(p), p))
		h, _ := hashHandle(mem(b), int64(len(b)), page, nil)
		want = append(want, h)
	}
	got, err := hashAll(jobs, page)
	if err != nil {
		t.Fatal(err)
	}
	for i, df := range got {
		if df.Name != jobs[i].name || !bytes.Equal(df.Sums, want[i]) || df.Block != page {
			t.Errorf("file %d: %s, %d blocks", i, df.Name, df.blocks())
		}
	}
	jobs = append(jobs, pathJob("db/gone.ibd", filepath.Join(dir, "gone")))
	if _, err := hashAll(jobs, page); err == nil || !strings.Contains(err.Error(), "db/gone.ibd") {
		t.Errorf("a missing file: %v", err)
	}
}

// flip inverts n bytes of the file at path from off on.
func flip(t *testing.T, path string, off int64, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] ^= 0xff
	}
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// Through both sides: what a delta sends beyond an unchanged datadir's
// fixed part (the logs, sent whole) is exactly the pages that differ: one
// page in the middle of a megabyte, two adjacent ones, the page a file
// grew by, and nothing for a file that shrank by two pages.
func TestDeltaSendsOnlyChangedPages(t *testing.T) {
	sent := func(change func(dd string)) int64 {
		jd, dd := newPair(t)
		copyDonorFiles(jd, dd)
		change(dd)
		// Old mtimes: no file counts as changed during the copy, so the
		// locked pass re-sends the logs only, the same in every run.
		old := time.Now().Add(-time.Hour)
		filepath.WalkDir(dd, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				os.Chtimes(p, old, old)
			}
			return nil
		})
		joinerBefore, donorBefore := snapshot(t, jd), snapshot(t, dd)
		r := &sstRun{joinerDir: jd, donorDir: dd, joinerOpts: map[string]string{"delta": "1"}}
		r.run(t, context.Background())
		if r.joinerErr != nil || r.donorErr != nil {
			t.Fatalf("joiner: %v\ndonor: %v\n%s\n%s", r.joinerErr, r.donorErr, r.joiner.stderr, r.donor.stderr)
		}
		if d := diffSnap(wantAfterCopy(donorBefore, joinerBefore), snapshot(t, jd)); d != "" {
			t.Errorf("joiner datadir differs from the donor's:\n%s", d)
		}
		m := regexp.MustCompile(`delta: bytes that differ .*delta_differ_bytes=(\d+)`).FindStringSubmatch(r.donor.stderr.String())
		if m == nil {
			t.Fatalf("no delta line in the donor's log:\n%s", r.donor.stderr)
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		return n
	}
	fixed := sent(func(string) {})
	changed := sent(func(dd string) {
		flip(t, filepath.Join(dd, "bench/t.ibd"), 3<<20+5*page+77, 1)
		flip(t, filepath.Join(dd, "bench/t.ibd"), 5<<20+3*page, 2*page)
		f, _ := os.OpenFile(filepath.Join(dd, "ibdata1"), os.O_WRONLY|os.O_APPEND, 0)
		f.Write(randBytes(page, 7))
		f.Close()
		os.Truncate(filepath.Join(dd, "mysql/innodb_index_stats.ibd"), 64<<10)
	})
	if changed-fixed != 4*page {
		t.Errorf("the delta sent %d bytes more than for an unchanged datadir (%d), want the 4 pages that differ (%d)", changed-fixed, fixed, 4*page)
	}
}

// BenchmarkHashHandle is the CPU cost of hashing, from memory: what both
// sides pay per byte of the datadir beyond reading it.
func BenchmarkHashHandle(b *testing.B) {
	data := mem(randBytes(64<<20, 8))
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := hashHandle(data, data.Size(), page, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzDeltaHashes: whatever a joiner sends as hashes, the donor takes or
// refuses it without panicking, and the ranges it would send lie within
// its file, in order, without overlaps.
func FuzzDeltaHashes(f *testing.F) {
	f.Add([]byte(`{"files":[{"name":"a","size":40000,"block":16384,"sums":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}`), int64(50000))
	f.Add([]byte(`{"files":[{"name":"a","size":40000,"block":16384,"sums":"AAAAAAAAAAA="},{"name":"a","size":40000,"block":16384,"from":1,"sums":"AAAAAAAAAAA="}]}`), int64(30000))
	f.Add([]byte(`{"files":[{"name":"a","size":3145728,"blocks":["0011223344556677"]}]}`), int64(1<<20))
	f.Fuzz(func(t *testing.T, msg []byte, size int64) {
		var b deltaBatch
		if json.Unmarshal(msg, &b) != nil || size < 0 || size > 64<<20 {
			return
		}
		set := deltaSet{}
		for _, df := range b.Files {
			if len(df.Sums) > 1<<20 {
				return
			}
			set.add(df, page)
		}
		mine := make([]byte, (size+page-1)/page*sumLen)
		for _, theirs := range set {
			var end int64
			for _, r := range rangesFrom(size, page, mine, theirs) {
				if r.Off < end || r.Len <= 0 || r.Off+r.Len > size {
					t.Fatalf("range %+v of a %d-byte file (after %d)", r, size, end)
				}
				end = r.Off + r.Len
			}
		}
	})
}
