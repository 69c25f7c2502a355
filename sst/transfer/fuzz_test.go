package transfer

import (
	"bytes"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// discardConn is a control connection to nowhere.
type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error)      { return len(p), nil }
func (discardConn) Read(p []byte) (int, error)       { return 0, io.EOF }
func (discardConn) Close() error                     { return nil }
func (discardConn) SetDeadline(time.Time) error      { return nil }
func (discardConn) SetReadDeadline(time.Time) error  { return nil }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }
func (discardConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }

// decodeInto runs the joiner's frame handling over data into sink.
func decodeInto(data []byte, sink *Sink, chunk int) error {
	s := newSession(Options{Role: Joiner, IdleTimeout: -1, NoSync: true}, "donor fuzz", "fuzz", chunk, "")
	s.ctrl = discardConn{}
	s.peerWait = 0
	s.data = []*dataConn{{conn: discardConn{}, r: bytes.NewReader(data)}}
	// No goroutines, so that coverage is deterministic: nothing reads the
	// raw streams, and a chunk that would wait for a reader fails.
	s.noWait = true
	err := s.serveConn(s.data[0], sink)
	s.fail(errClosed)
	return err
}

// frames encodes a sequence of frames as a donor would.
type frameBuf struct {
	bytes.Buffer
	fw *frameWriter
}

func newFrameBuf(lz bool) *frameBuf {
	b := &frameBuf{}
	b.fw = &frameWriter{w: &b.Buffer, hdr: make([]byte, headerSize+maxName+4096), lz4: lz}
	return b
}

func (b *frameBuf) add(kind, flags byte, name string, id, off uint64, mode uint32, payload []byte) *frameBuf {
	f := frame{kind: kind, flags: flags, id: id, off: off, mode: mode}
	b.fw.write(&f, name, payload)
	return b
}

func le8(n uint64) []byte {
	b := make([]byte, 8)
	for i := range b {
		b[i] = byte(n >> (8 * i))
	}
	return b
}

func seedFrames() [][]byte {
	data := bytes.Repeat([]byte("innodb page "), 60)
	var out [][]byte
	for _, lz := range []bool{false, true} {
		b := newFrameBuf(lz).
			add(kindDir, 0, "db", 0, 0, 0o750, nil).
			add(kindChunk, flagWhole, "db/t.ibd", 1, 0, 0o640, data[:600]).
			add(kindChunk, flagWhole|flagEOF, "db/t.ibd", 1, 600, 0o640, data[600:]).
			add(kindChunk, flagWhole|flagEOF, "empty", 2, 0, 0o600, nil).
			add(kindChunk, 0, "patched", 3, 10, 0o600, data[:100]).
			add(kindFileEnd, 0, "patched", 3, 200, 0o600, le8(100)).
			add(kindSymlink, 0, "db/link", 0, 0, 0, []byte("../empty")).
			add(kindStream, 0, "", 5, 1, 0, data[:50]).
			add(kindStream, 0, "", 5, 0, 0, data[:70]).
			add(kindStreamEnd, 0, "", 5, 2, 0, le8(120)).
			add(kindPing, 0, "", 0, 0, 0, nil).
			add(kindBarrier, 0, "", 1, 3, 0, nil).
			add(kindChunk, flagWhole|flagEOF, "../escape", 4, 0, 0o600, data[:10]).
			add(kindEnd, 0, "", 2, 4, 0, nil)
		out = append(out, b.Bytes())
	}
	return out
}

func TestDecodeSeed(t *testing.T) {
	for i, seed := range seedFrames() {
		root := t.TempDir()
		sink, _ := OpenSink(root, SinkOptions{AllowSymlinks: true, NoSync: true})
		err := decodeInto(seed, sink, 64<<10)
		sink.Close()
		// Everything before the escape attempt lands; the attempt fails.
		if err == nil || !strings.Contains(err.Error(), "../escape") {
			t.Fatalf("seed %d: %v", i, err)
		}
		b, _ := os.ReadFile(filepath.Join(root, "db/t.ibd"))
		if len(b) != 720 {
			t.Fatalf("seed %d: t.ibd has %d bytes", i, len(b))
		}
		if fi, err := os.Stat(filepath.Join(root, "patched")); err != nil || fi.Size() != 200 {
			t.Fatalf("seed %d: patched: %v %v", i, fi, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range seedFrames() {
		f.Add(s)
		f.Add(s[:len(s)/2])
	}
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{1}, 100))
	// One tree for all inputs, cleaned after each: a fresh temporary
	// directory per input would cost more than the decoding.
	base := f.TempDir()
	root := filepath.Join(base, "root")
	os.Mkdir(filepath.Join(base, "outside"), 0o755)
	os.WriteFile(filepath.Join(base, "outside", "sentinel"), []byte("x"), 0o644)
	reset := func() {
		os.RemoveAll(root)
		os.Mkdir(root, 0o755)
		os.Symlink("../outside", filepath.Join(root, "trap"))
	}
	reset()
	f.Fuzz(func(t *testing.T, data []byte) {
		// Clean up after this input, not before the next: coverage must
		// depend on the input alone.
		defer func() {
			if ents, _ := os.ReadDir(root); len(ents) != 1 {
				reset()
			}
		}()
		sink, err := OpenSink(root, SinkOptions{AllowSymlinks: true, NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		decodeInto(data, sink, 16<<10)
		sink.Close()
		// Nothing may appear outside the root.
		filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			rel, _ := filepath.Rel(base, p)
			switch {
			case rel == "." || rel == "root" || strings.HasPrefix(rel, "root/"):
			case rel == "outside" || rel == "outside/sentinel":
			default:
				t.Fatalf("written outside the root: %s", rel)
			}
			return nil
		})
		if b, _ := os.ReadFile(filepath.Join(base, "outside", "sentinel")); string(b) != "x" {
			t.Fatal("sentinel changed")
		}
	})
}
