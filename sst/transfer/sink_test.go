package transfer

import (
	"bytes"
	"context"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSinkRejectsEscapes(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	outside := filepath.Join(base, "outside")
	os.Mkdir(root, 0o755)
	os.Mkdir(outside, 0o755)
	// Symlinks planted in the root (say, by an earlier step) lead out.
	os.Symlink(outside, filepath.Join(root, "abs-link"))
	os.Symlink("../outside", filepath.Join(root, "rel-link"))
	k, err := OpenSink(root, SinkOptions{AllowSymlinks: true})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	data := []byte("pwned")
	for i, name := range []string{"../x", "/etc/passwd", "a/../../x", "", ".", "a//b", "./a", "abs-link/x", "rel-link/x", "rel-link/sub/x", "a/\x00b"} {
		err := k.chunk(uint64(100+i), name, 0o644, flagWhole|flagEOF, 0, data)
		if err == nil {
			t.Errorf("chunk %q accepted", name)
		} else {
			t.Logf("chunk %q: %v", name, err)
		}
		if err := k.dir(name, 0o755); err == nil {
			t.Errorf("dir %q accepted", name)
		}
	}
	for _, tc := range []struct{ name, target string }{
		{"l1", "../outside"}, {"l2", "/etc"}, {"a/l3", "../../outside"}, {"l4", "x/../../outside"}, {"../l5", "x"}, {"l6", ""},
	} {
		if err := k.symlink(tc.name, tc.target); err == nil {
			t.Errorf("symlink %s -> %s accepted", tc.name, tc.target)
		} else {
			t.Logf("symlink %s -> %s: %v", tc.name, tc.target, err)
		}
	}
	// A symlink inside the root is fine, and writing through it stays inside.
	if err := k.dir("real", 0o750); err != nil {
		t.Fatal(err)
	}
	if err := k.symlink("db/link", "../real"); err != nil {
		t.Fatal(err)
	}
	if err := k.chunk(1, "db/link/f", 0o640, flagWhole|flagEOF, 0, data); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "real/f")); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("write through an inner symlink: %q %v", b, err)
	}
	ents, _ := os.ReadDir(outside)
	if len(ents) != 0 {
		t.Fatalf("something was written outside the root: %v", ents)
	}
	// Without AllowSymlinks, none at all.
	k2, _ := OpenSink(t.TempDir(), SinkOptions{})
	defer k2.Close()
	if err := k2.symlink("l", "x"); err == nil || !strings.Contains(err.Error(), "not allowed") {
		t.Fatalf("symlink without AllowSymlinks: %v", err)
	}
}

func TestSinkOutOfOrderChunks(t *testing.T) {
	root := t.TempDir()
	k, _ := OpenSink(root, SinkOptions{})
	defer k.Close()
	// The end arrives first, the middle last: the file completes then.
	if err := k.chunk(1, "f", 0o600, flagWhole|flagEOF, 8, []byte("cd")); err != nil {
		t.Fatal(err)
	}
	if err := k.chunk(1, "f", 0o600, flagWhole, 0, []byte("ab")); err != nil {
		t.Fatal(err)
	}
	if err := k.incomplete(); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("incomplete: %v", err)
	}
	if err := k.chunk(1, "f", 0o600, flagWhole, 2, []byte("123456")); err != nil {
		t.Fatal(err)
	}
	if err := k.incomplete(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "f")); string(b) != "ab123456cd" {
		t.Fatalf("got %q", b)
	}
	if st := k.Stats(); st.Files != 1 || st.Bytes != 10 {
		t.Fatalf("stats %+v", st)
	}
	// Data past the announced end is refused.
	k.chunk(2, "g", 0o600, flagWhole|flagEOF, 0, []byte("ab"))
	if err := k.chunk(3, "h", 0o600, flagWhole|flagEOF, 0, []byte("ab")); err != nil {
		t.Fatal(err)
	}
}

// A chunk sent twice while another is lost keeps the byte count right; the
// sink refuses the second copy instead of completing a file with a hole.
func TestSinkDuplicateChunk(t *testing.T) {
	root := t.TempDir()
	k, _ := OpenSink(root, SinkOptions{})
	defer k.Close()
	if err := k.chunk(1, "f", 0o600, flagWhole, 0, []byte("ab")); err != nil {
		t.Fatal(err)
	}
	err := k.chunk(1, "f", 0o600, flagWhole, 1, []byte("bc"))
	if err == nil || !strings.Contains(err.Error(), "f: data at offset 1 (2 bytes) overlaps") {
		t.Fatalf("overlapping chunk: %v", err)
	}
	// The same for a patched file's ranges.
	if err := k.chunk(2, "g", 0o600, 0, 4, []byte("xy")); err != nil {
		t.Fatal(err)
	}
	if err := k.chunk(2, "g", 0o600, 0, 4, []byte("xy")); err == nil {
		t.Fatal("a range received twice was accepted")
	}
}

// The donor's escape attempt fails the session on both sides.
func TestSessionRejectsEscape(t *testing.T) {
	ctx := testCtx(t)
	j, d := pair(t, "127.0.0.1", Options{}, Options{Streams: 2})
	base := t.TempDir()
	root := filepath.Join(base, "root")
	os.Mkdir(root, 0o755)
	sink, _ := OpenSink(root, SinkOptions{})
	defer sink.Close()
	served := make(chan error, 1)
	go func() { _, err := j.Serve(ctx, sink); served <- err }()
	if err := d.SendDir(ctx, "../escape", 0o755); err == nil {
		t.Fatal("donor API accepted ../escape")
	}
	// Bypass the donor's own check, as a hostile or buggy donor would.
	d.enqueue(ctx, job{kind: kindDir, name: "../escape", mode: 0o755})
	_, derr := d.Finish(ctx)
	jerr := <-served
	wantErr(t, "joiner", jerr, "donor 127.0.0.1", "../escape")
	wantErr(t, "donor", derr, "joiner 127.0.0.1", "../escape")
	if _, err := os.Stat(filepath.Join(base, "escape")); err == nil {
		t.Fatal("escape directory created")
	}
}

func TestRawStream(t *testing.T) {
	for _, tc := range []struct {
		name string
		jo   Options
		do   Options
	}{
		{"plain", Options{}, Options{Streams: 4, ChunkSize: 16 << 10}},
		{"lz4", Options{}, Options{Streams: 3, ChunkSize: 32 << 10, Compressor: "lz4"}},
		{"filter", Options{Decompressor: "gzip -dc"}, Options{Streams: 2, ChunkSize: 32 << 10, Compressor: "gzip -1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			j, d := pair(t, "127.0.0.1", tc.jo, tc.do)
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "stream"), 3<<20+77, 9)
			want, _ := os.ReadFile(filepath.Join(dir, "stream"))
			sink, _ := OpenSink(t.TempDir(), SinkOptions{NoSync: true})
			defer sink.Close()
			served := make(chan error, 1)
			go func() { _, err := j.Serve(ctx, sink); served <- err }()
			got := make(chan []byte, 1)
			go func() {
				b, err := io.ReadAll(j.Stream(7))
				if err != nil {
					t.Errorf("read stream: %v", err)
				}
				got <- b
			}()
			// A file rides along with the stream.
			f, _ := os.Open(filepath.Join(dir, "stream"))
			d.SendFile(ctx, "alongside", f)
			n, err := d.SendStream(ctx, 7, bytes.NewReader(want))
			if err != nil || n != int64(len(want)) {
				t.Fatalf("send stream: %d %v", n, err)
			}
			st, err := d.Finish(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := <-served; err != nil {
				t.Fatal(err)
			}
			if b := <-got; !bytes.Equal(b, want) {
				t.Fatalf("stream differs: %d bytes, want %d", len(b), len(want))
			}
			if st.Streams != 1 || st.Files != 1 || st.Bytes != 2*int64(len(want)) {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// A donor that dies mid-stream leaves the reader with an error, not EOF.
func TestRawStreamTruncated(t *testing.T) {
	ctx := testCtx(t)
	j, d := pair(t, "127.0.0.1", Options{}, Options{Streams: 2, ChunkSize: 16 << 10})
	// The source stalls after 200 KiB: the donor cannot finish the
	// stream before it dies, however the goroutines are scheduled.
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	go j.Serve(ctx, nil)
	go d.SendStream(ctx, 1, &stallReader{left: 200 << 10, release: release})
	b, err := io.ReadAll(io.LimitReader(j.Stream(1), 100<<10))
	if err != nil || len(b) != 100<<10 {
		t.Fatalf("first bytes: %d %v", len(b), err)
	}
	d.ctrl.Close()
	for _, dc := range d.data {
		dc.conn.Close()
	}
	_, err = io.ReadAll(j.Stream(1))
	wantErr(t, "stream reader", err, "donor 127.0.0.1")
}

// stallReader reads left zero bytes, then blocks until release.
type stallReader struct {
	left    int
	release chan struct{}
}

func (r *stallReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		<-r.release
		return 0, io.EOF
	}
	n := min(len(p), r.left)
	clear(p[:n])
	r.left -= n
	return n, nil
}

func TestSendRanges(t *testing.T) {
	ctx := testCtx(t)
	j, d := pair(t, "127.0.0.1", Options{}, Options{Streams: 2, ChunkSize: 4 << 10})
	src, dst := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(src, "grow"), 100<<10, 1)
	writeFile(t, filepath.Join(src, "shrink"), 20<<10, 2)
	// The joiner's old copies: same prefix, different elsewhere.
	old := func(name string, size int, seed uint64) {
		b, _ := os.ReadFile(filepath.Join(src, name))
		o := make([]byte, size)
		copy(o, b)
		for i := 10 << 10; i < 12<<10 && i < size; i++ {
			o[i] ^= 0xff
		}
		os.WriteFile(filepath.Join(dst, name), o, 0o640)
	}
	old("grow", 50<<10, 1)
	old("shrink", 40<<10, 2)
	sink, _ := OpenSink(dst, SinkOptions{})
	defer sink.Close()
	served := make(chan error, 1)
	go func() { _, err := j.Serve(ctx, sink); served <- err }()
	f, _ := os.Open(filepath.Join(src, "grow"))
	if err := d.SendRanges(ctx, "grow", f, []Range{{10 << 10, 2 << 10}, {50 << 10, 50 << 10}}, 100<<10); err != nil {
		t.Fatal(err)
	}
	f, _ = os.Open(filepath.Join(src, "shrink"))
	if err := d.SendRanges(ctx, "shrink", f, []Range{{10 << 10, 2 << 10}}, 20<<10); err != nil {
		t.Fatal(err)
	}
	f, _ = os.Open(filepath.Join(src, "shrink"))
	if err := d.SendRanges(ctx, "nothing", f, nil, 0); err != nil {
		t.Fatal(err)
	}
	st, err := d.Finish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if st.Files != 3 || st.Bytes != 2<<10+50<<10+2<<10 {
		t.Fatalf("stats %+v", st)
	}
	for _, n := range []string{"grow", "shrink"} {
		a, _ := os.ReadFile(filepath.Join(src, n))
		b, _ := os.ReadFile(filepath.Join(dst, n))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs after patching", n)
		}
	}
	if fi, err := os.Stat(filepath.Join(dst, "nothing")); err != nil || fi.Size() != 0 {
		t.Errorf("nothing: %v %v", fi, err)
	}
}

// SendSparse creates the file anew even where the joiner held one: bytes
// outside the ranges must read back as zeros, not as the old copy's.
func TestSendSparse(t *testing.T) {
	ctx := testCtx(t)
	j, d := pair(t, "127.0.0.1", Options{}, Options{Streams: 4, ChunkSize: 4 << 10})
	src, dst := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(src, "log"), 256<<10, 7)
	writeFile(t, filepath.Join(dst, "log"), 300<<10, 8) // stale, longer
	sink, _ := OpenSink(dst, SinkOptions{})
	defer sink.Close()
	served := make(chan error, 1)
	go func() { _, err := j.Serve(ctx, sink); served <- err }()
	ranges := []Range{{0, 12 << 10}, {100 << 10, 30<<10 + 5}, {250 << 10, 6 << 10}}
	f, _ := os.Open(filepath.Join(src, "log"))
	if err := d.SendSparse(ctx, "log", f, ranges, 256<<10); err != nil {
		t.Fatal(err)
	}
	f, _ = os.Open(filepath.Join(src, "log"))
	if err := d.SendSparse(ctx, "empty", f, nil, 64<<10); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(filepath.Join(src, "log"))
	want := make([]byte, len(a))
	for _, r := range ranges {
		copy(want[r.Off:r.Off+r.Len], a[r.Off:r.Off+r.Len])
	}
	got, _ := os.ReadFile(filepath.Join(dst, "log"))
	if !bytes.Equal(got, want) {
		t.Errorf("log: %d bytes, differs from the ranges over zeros", len(got))
	}
	if b, err := os.ReadFile(filepath.Join(dst, "empty")); err != nil || len(b) != 64<<10 || !allZero(b) {
		t.Errorf("empty: %d bytes, err %v; want 64 KiB of zeros", len(b), err)
	}
}

var _ = context.Background

// chunk is chunkSum with the CRC the donor would have sent.
func (k *Sink) chunk(id uint64, name string, mode uint32, flags byte, off int64, data []byte) error {
	return k.chunkSum(id, name, mode, flags, off, data, crc32.Checksum(data, castagnoli))
}
