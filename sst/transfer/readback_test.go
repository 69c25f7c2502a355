package transfer

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/galera-supervisor/galera-supervisor/sst/readback"
)

// A file changed on the joiner's disk after its chunks were checked
// against the network (the test seam flips a byte just before the
// read-back) fails the transfer, naming the file and where it is, on both
// sides; whole files and patched ranges alike.
func TestReadBackMismatch(t *testing.T) {
	for _, tc := range []struct{ name, flip string }{
		{"whole file", "bench/t.ibd"},
		{"patched range", "patched"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(readback.FlipEnv, tc.flip)
			ctx := testCtx(t)
			src, dst := t.TempDir(), t.TempDir()
			makeTree(t, src, 64<<10)
			writeFile(t, filepath.Join(src, "patched"), 300<<10, 7)
			writeFile(t, filepath.Join(dst, "patched"), 300<<10, 8)
			j, d := pair(t, "127.0.0.1", Options{ChunkSize: 64 << 10}, Options{ChunkSize: 64 << 10, Streams: 2})
			sink, err := OpenSink(dst, SinkOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer sink.Close()
			served := make(chan error, 1)
			go func() { _, err := j.Serve(ctx, sink); served <- err }()
			send := func() error {
				f, err := os.Open(filepath.Join(src, "patched"))
				if err != nil {
					return err
				}
				if err := d.SendRanges(ctx, "patched", f, []Range{{100 << 10, 128 << 10}}, 300<<10); err != nil {
					return err
				}
				for _, name := range []string{"ibdata1", "bench/t.ibd", "mysql/user.MYD"} {
					f, err := os.Open(filepath.Join(src, name))
					if err != nil {
						return err
					}
					if err := d.SendFile(ctx, name, f); err != nil {
						return err
					}
				}
				_, err = d.Finish(ctx)
				return err
			}
			derr := send()
			jerr := <-served
			where := filepath.Join(dst, tc.flip)
			wantErr(t, "joiner", jerr, tc.flip+": read back from "+where, "not what the donor read", "CRC-32C")
			var bad *readback.MismatchError
			if !errors.As(jerr, &bad) {
				t.Errorf("joiner: %T is no *readback.MismatchError", jerr)
			}
			wantErr(t, "donor", derr, "joiner 127.0.0.1", where)
		})
	}
}

// Without the seam the same transfers read back clean: the checks find
// what was written.
func TestReadBackClean(t *testing.T) {
	ctx := testCtx(t)
	src, dst := t.TempDir(), t.TempDir()
	makeTree(t, src, 64<<10)
	j, d := pair(t, "127.0.0.1", Options{ChunkSize: 64 << 10}, Options{ChunkSize: 64 << 10, Streams: 3})
	sink, err := OpenSink(dst, SinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	served := make(chan error, 1)
	go func() { _, err := j.Serve(ctx, sink); served <- err }()
	sendTree(ctx, t, d, src)
	if _, err := d.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// Sent again: the read-back of the first copy is done before the
	// second truncates it.
	f, err := os.Open(filepath.Join(src, "bench/t.ibd"))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SendFile(ctx, "bench/t.ibd", f); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	compareTrees(t, src, dst)
}
