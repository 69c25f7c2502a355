package mbstream

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/galera-supervisor/galera-supervisor/internal/testutil"
)

// chunk encodes one chunk by hand, so tests can build streams the Writer
// refuses to produce.
func chunk(flags byte, t Type, p string, tail []byte, payload []byte) []byte {
	b := []byte(Magic)
	b = append(b, flags, byte(t))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(p)))
	b = append(b, p...)
	b = append(b, tail...)
	return append(b, payload...)
}

func pchunk(p string, off uint64, data []byte) []byte {
	var t []byte
	t = binary.LittleEndian.AppendUint64(t, uint64(len(data)))
	t = binary.LittleEndian.AppendUint64(t, off)
	t = binary.LittleEndian.AppendUint32(t, crc32.ChecksumIEEE(data))
	return chunk(0, TypePayload, p, t, data)
}

func echunk(p string) []byte { return chunk(0, TypeEOF, p, nil, nil) }

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

// The sample from the reference: CRC32("hello world\n") is stored as 2d 3b 08 af.
func TestWriterBytesLayout(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := w.Bytes("f", []byte("hello world\n")); err != nil {
		t.Fatal(err)
	}
	want := "58425354434b3031" + "00" + "50" + "01000000" + "66" +
		"0c00000000000000" + "0000000000000000" + "2d3b08af" + hex.EncodeToString([]byte("hello world\n")) +
		"58425354434b3031" + "00" + "45" + "01000000" + "66"
	if got := hex.EncodeToString(buf.Bytes()); got != want {
		t.Fatalf("stream\n got %s\nwant %s", got, want)
	}
}

func extractBytes(t *testing.T, stream []byte) (string, Stats, error) {
	t.Helper()
	dir := t.TempDir()
	st, err := Extract(context.Background(), bytes.NewReader(stream), dir, Options{NoSync: true})
	return dir, st, err
}

func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			if rel != "." {
				m[rel+"/"] = ""
			}
			return nil
		}
		b, err := os.ReadFile(p)
		m[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, 3*1000+17)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	var buf bytes.Buffer
	w := NewWriter(&buf)
	// Interleaved files, as a parallel backup emits them.
	testutil.Must(t, w.Payload("db/a.ibd", big[:1000]))
	testutil.Must(t, w.Payload("ibdata1", []byte("system")))
	testutil.Must(t, w.Payload("db/a.ibd", big[1000:2000]))
	testutil.Must(t, w.Close("ibdata1"))
	testutil.Must(t, w.Payload("db/a.ibd", big[2000:]))
	testutil.Must(t, w.Close("db/a.ibd"))
	testutil.Must(t, w.Close("empty"))
	testutil.Must(t, w.WriteFileChunks("deep/er/x", bytes.NewReader(big), 999))
	testutil.Must(t, w.Bytes("tmp", []byte("gone")))
	testutil.Must(t, w.Rename("tmp", "renamed"))
	testutil.Must(t, w.Bytes("doomed", []byte("x")))
	testutil.Must(t, w.Remove("doomed"))

	dir, st, err := extractBytes(t, buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	got := readTree(t, dir)
	want := map[string]string{
		"db/": "", "db/a.ibd": string(big), "ibdata1": "system", "empty": "",
		"deep/": "", "deep/er/": "", "deep/er/x": string(big), "renamed": "gone",
	}
	if len(got) != len(want) {
		t.Errorf("tree has %d entries, want %d: %v", len(got), len(want), keys(got))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %d bytes, want %d", k, len(got[k]), len(v))
		}
	}
	if st.Files != 6 || st.Bytes != int64(2*len(big)+len("system")+len("gone")+1) {
		t.Errorf("stats %+v", st)
	}
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestSeek(t *testing.T) {
	var tail []byte
	tail = binary.LittleEndian.AppendUint64(tail, 10)
	s := cat(pchunk("f", 0, []byte("abc")), chunk(0, TypeSeek, "f", tail, nil), pchunk("f", 10, []byte("xyz")), echunk("f"))
	dir, _, err := extractBytes(t, s)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "f"))
	if want := "abc\x00\x00\x00\x00\x00\x00\x00xyz"; string(b) != want {
		t.Fatalf("got %q, want %q", b, want)
	}
}

func TestIgnorableUnknown(t *testing.T) {
	data := []byte("skip me")
	var tail []byte
	tail = binary.LittleEndian.AppendUint64(tail, uint64(len(data)))
	tail = binary.LittleEndian.AppendUint64(tail, 0)
	tail = binary.LittleEndian.AppendUint32(tail, crc32.ChecksumIEEE(data))
	s := cat(chunk(FlagIgnorable, 'Z', "whatever", tail, data), pchunk("f", 0, []byte("ok")), echunk("f"))
	dir, _, err := extractBytes(t, s)
	if err != nil {
		t.Fatal(err)
	}
	if got := readTree(t, dir); len(got) != 1 || got["f"] != "ok" {
		t.Fatalf("tree %v", got)
	}
}

func TestRewriteFlag(t *testing.T) {
	s := cat(pchunk("f", 0, []byte("first")), echunk("f"))
	var tail []byte
	tail = binary.LittleEndian.AppendUint64(tail, 2)
	tail = binary.LittleEndian.AppendUint64(tail, 0)
	tail = binary.LittleEndian.AppendUint32(tail, crc32.ChecksumIEEE([]byte("2n")))
	s = cat(s, chunk(FlagRewrite, TypePayload, "f", tail, []byte("2n")), echunk("f"))
	dir, _, err := extractBytes(t, s)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "f")); string(b) != "2n" {
		t.Fatalf("got %q", b)
	}
}

func TestBadStreams(t *testing.T) {
	good := pchunk("f", 0, []byte("hello world\n"))
	corrupt := bytes.Clone(good)
	corrupt[len(corrupt)-1] ^= 1
	badcrc := bytes.Clone(good)
	badcrc[len(badcrc)-13] ^= 0x80
	var seekTail []byte
	seekTail = binary.LittleEndian.AppendUint64(seekTail, 5)
	renameTail := binary.LittleEndian.AppendUint32(nil, 4)
	renameTail = append(renameTail, "../x"...)
	longPath := strings.Repeat("a", 512)
	cases := []struct {
		name   string
		stream []byte
		is     error
		msg    string
	}{
		{"payload bit flip", cat(corrupt, echunk("f")), ErrChecksum, "checksum"},
		{"crc bit flip", cat(badcrc, echunk("f")), ErrChecksum, "checksum"},
		{"bad magic", cat([]byte("XBSTCK02"), good[8:]), ErrFormat, "no magic"},
		{"truncated header", good[:10], ErrFormat, "truncated chunk header"},
		{"truncated payload", good[:len(good)-3], ErrFormat, "truncated payload"},
		{"unknown type", chunk(0, 'Z', "f", nil, nil), ErrFormat, "unknown chunk type"},
		{"absolute", cat(pchunk("/etc/passwd", 0, []byte("x")), echunk("/etc/passwd")), ErrFormat, "absolute"},
		{"dotdot", cat(pchunk("a/../../x", 0, []byte("x"))), ErrFormat, `".."`},
		{"leading dot", cat(pchunk("./x", 0, []byte("x"))), ErrFormat, "starts with '.'"},
		{"dot component", cat(pchunk("a/./x", 0, []byte("x"))), ErrFormat, `"."`},
		{"empty component", cat(pchunk("a//x", 0, []byte("x"))), ErrFormat, "empty component"},
		{"empty path", cat(pchunk("", 0, []byte("x"))), ErrFormat, "empty path"},
		{"long path", chunk(0, TypeEOF, longPath, nil, nil), ErrFormat, "path length"},
		{"offset gap", cat(pchunk("f", 0, []byte("ab")), pchunk("f", 3, []byte("c"))), ErrFormat, "expected 2"},
		{"offset not zero", pchunk("f", 7, []byte("ab")), ErrFormat, "expected 0"},
		{"seek truncated", chunk(0, TypeSeek, "f", seekTail[:4], nil), ErrFormat, "truncated seek"},
		{"rename escape", cat(echunk("a"), chunk(0, TypeRename, "a", renameTail, nil)), ErrFormat, "rename chunk"},
		{"rename open", cat(pchunk("a", 0, []byte("x")), chunk(0, TypeRename, "a", append(binary.LittleEndian.AppendUint32(nil, 1), 'b'), nil)), ErrFormat, "still open"},
		{"remove open", cat(pchunk("a", 0, []byte("x")), chunk(0, TypeRemove, "a", nil, nil)), ErrFormat, "still open"},
		{"unfinished", pchunk("f", 0, []byte("x")), ErrFormat, "unfinished"},
		{"exists", cat(echunk("f"), echunk("f")), fs.ErrExist, "create f"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := extractBytes(t, tc.stream)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %q: want %v containing %q", err, tc.is, tc.msg)
			}
		})
	}
}

// A symlink planted inside the target must not lead writes outside it.
func TestSymlinkEscape(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "root")
	outside := filepath.Join(base, "outside")
	testutil.Must(t, os.Mkdir(dir, 0o755))
	testutil.Must(t, os.Mkdir(outside, 0o755))
	testutil.Must(t, os.Symlink(outside, filepath.Join(dir, "link")))
	testutil.Must(t, os.Symlink(filepath.Join(outside, "f"), filepath.Join(dir, "flink")))
	for _, p := range []string{"link/f", "flink"} {
		_, err := Extract(context.Background(), bytes.NewReader(cat(pchunk(p, 0, []byte("x")), echunk(p))), dir, Options{NoSync: true})
		if err == nil {
			t.Errorf("%s: no error", p)
		}
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("wrote outside the root: %v", ents)
	}
}

func TestReaderPayloadSkipVerifies(t *testing.T) {
	good := pchunk("f", 0, []byte("hello"))
	good[len(good)-1] ^= 1
	r := NewReader(bytes.NewReader(cat(good, echunk("f"))))
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	// Not reading the payload: Next must still verify it.
	if _, err := r.Next(); !errors.Is(err, ErrChecksum) {
		t.Fatalf("Next after unread corrupt payload: %v", err)
	}
}

func TestProgressAndCancel(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	testutil.Must(t, w.WriteFileChunks("f", bytes.NewReader(make([]byte, 100)), 10))
	var last int64
	calls := 0
	_, err := Extract(context.Background(), bytes.NewReader(buf.Bytes()), t.TempDir(), Options{NoSync: true, Progress: func(n int64) { last = n; calls++ }})
	if err != nil || last != 100 || calls != 10 {
		t.Fatalf("err %v, last %d, calls %d", err, last, calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Extract(ctx, bytes.NewReader(buf.Bytes()), t.TempDir(), Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestSyncAtEnd(t *testing.T) {
	var buf bytes.Buffer
	testutil.Must(t, NewWriter(&buf).Bytes("f", []byte("x")))
	if _, err := Extract(context.Background(), &buf, t.TempDir(), Options{}); err != nil {
		t.Fatal(err)
	}
}

func FuzzReader(f *testing.F) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.Bytes("a/b", []byte("hello world\n"))
	w.Close("e")
	w.Seek("s", 3)
	w.Payload("s", []byte("z"))
	w.Close("s")
	w.Rename("a/b", "c")
	w.Remove("e")
	f.Add(buf.Bytes())
	f.Add(pchunk("../x", 0, []byte("x")))
	f.Add(cat(pchunk("x", 0, []byte("x")), echunk("x")))
	f.Fuzz(func(t *testing.T, data []byte) {
		// The reader alone: never panics, consumes no more than it has.
		r := NewReader(bytes.NewReader(data))
		for {
			c, err := r.Next()
			if err != nil {
				break
			}
			if _, err := io.Copy(io.Discard, payload{r}); err != nil {
				break
			}
			_ = c
		}
		if r.Offset() > int64(len(data)) {
			t.Fatalf("offset %d past %d bytes", r.Offset(), len(data))
		}
		// The extractor: never writes outside its root.
		base := t.TempDir()
		dir := filepath.Join(base, "root")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		_, _ = Extract(context.Background(), bytes.NewReader(data), dir, Options{NoSync: true, MaxOpen: 16})
		ents, err := os.ReadDir(base)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != 1 || ents[0].Name() != "root" {
			t.Fatalf("entries beside the root: %v", ents)
		}
	})
}
