package transfer

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestDirectIO moves files of awkward sizes with direct I/O on both sides,
// then patches them with ranges that end mid-block, and checks every byte:
// a padded tail must never overwrite data past a range.
func TestDirectIO(t *testing.T) {
	for _, c := range []struct {
		chunk, streams int
		direct         bool // chunks aligned: the direct path must be taken
	}{
		{1 << 20, 4, true},
		{64 << 10, 3, true},
		{64<<10 + 100, 2, false}, // unaligned offsets: buffered, still correct
	} {
		t.Run(fmt.Sprintf("chunk%d", c.chunk), func(t *testing.T) {
			ctx := testCtx(t)
			src, dst := t.TempDir(), t.TempDir()
			sizes := map[string]int{
				"small":    dioMin - 1,
				"min":      dioMin,
				"odd":      3<<20 + 123,
				"aligned":  4 << 20,
				"tail":     1<<20 + 4095,
				"redo.log": 2<<20 + 5,
			}
			seed := uint64(7)
			for name, size := range sizes {
				writeFile(t, filepath.Join(src, name), size, seed)
				seed++
			}
			// Free extents: zeros from 1 MiB to 3 MiB, then data again.
			sparse := make([]byte, 4<<20+1)
			for i := range sparse {
				if i < 1<<20 || i >= 3<<20 {
					sparse[i] = byte(i*7 + 1)
				}
			}
			os.WriteFile(filepath.Join(src, "sparse.ibd"), sparse, 0o640)
			sizes["sparse.ibd"] = len(sparse)
			j, d := pair(t, "127.0.0.1", Options{}, Options{Streams: c.streams, ChunkSize: c.chunk})
			d.Cache(func(name string) bool { return name == "redo.log" })
			sink, err := OpenSink(dst, SinkOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer sink.Close()
			served := make(chan error, 1)
			go func() { _, err := j.Serve(ctx, sink); served <- err }()
			r0, w0, z0 := directReads.Load(), directWrites.Load(), zeroSkipped.Load()
			sendTree(ctx, t, d, src)
			if _, err := d.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			compareTrees(t, src, dst)
			if z := zeroSkipped.Load() - z0; z < 1<<20 {
				t.Errorf("%d bytes of zeros skipped, want at least 1 MiB", z)
			}
			if c.direct && (directReads.Load() == r0 || directWrites.Load() == w0) {
				t.Errorf("direct I/O not used: %d reads, %d writes", directReads.Load()-r0, directWrites.Load()-w0)
			}

			// The donor's files change; ranges that start aligned and end
			// mid-block go as patches over the joiner's copies.
			for _, name := range []string{"odd", "aligned", "tail"} {
				p := filepath.Join(src, name)
				b, _ := os.ReadFile(p)
				for i := 1 << 20; i < 2<<20+77 && i < len(b); i++ {
					b[i] ^= 0x5a
				}
				os.WriteFile(p, b, 0o640)
				f, _ := os.Open(p)
				end := min(2<<20+77, len(b))
				if err := d.SendRanges(ctx, name, f, []Range{{1 << 20, int64(end - 1<<20)}}, int64(len(b))); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := d.Finish(ctx); err != nil {
				t.Fatal(err)
			}
			if err := <-served; err != nil {
				t.Fatal(err)
			}
			for name := range sizes {
				a, _ := os.ReadFile(filepath.Join(src, name))
				b, _ := os.ReadFile(filepath.Join(dst, name))
				if !bytes.Equal(a, b) {
					t.Errorf("%s differs (%d vs %d bytes)", name, len(a), len(b))
				}
			}
		})
	}
}

func TestAlignedBuf(t *testing.T) {
	for _, n := range []int{1, 4095, 4096, 4097, 1 << 20, 64<<10 + 100} {
		b := alignedBuf(n)
		if len(b) != n || !isAligned(b) || int64(cap(b)) != alignUp(int64(n)) {
			t.Errorf("alignedBuf(%d): len %d cap %d aligned %v", n, len(b), cap(b), isAligned(b))
		}
	}
}
