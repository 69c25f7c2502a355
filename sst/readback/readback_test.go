package readback

import (
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// pieces cuts b into pieces of n bytes with their CRCs.
func pieces(b []byte, n int) []Piece {
	var ps []Piece
	for off := 0; off < len(b); off += n {
		end := min(off+n, len(b))
		ps = append(ps, Piece{Off: int64(off), Len: int64(end - off), Sum: crc32.Checksum(b[off:end], castagnoli)})
	}
	return ps
}

func file(t *testing.T, dir, name string, b []byte, chunk int, direct bool) File {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return File{Name: name, Path: p, Size: int64(len(b)), Pieces: pieces(b, chunk), Direct: direct,
		Open: func() (*os.File, error) { return os.Open(p) }}
}

func data(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>11)
	}
	return b
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	for _, direct := range []bool{false, true} {
		c := New(castagnoli, "CRC-32C", 2)
		// Pieces larger than the read buffer, unaligned ones, an empty file.
		c.Check(file(t, dir, "a", data(3*bufSize+100), bufSize+4096, direct))
		c.Check(file(t, dir, "b", data(10000), 333, direct))
		c.Check(file(t, dir, "c", nil, 10, direct))
		if err := c.Wait(); err != nil {
			t.Fatalf("direct=%v: %v", direct, err)
		}
	}
}

func TestCheckMismatch(t *testing.T) {
	dir := t.TempDir()
	b := data(2*bufSize + 5000)
	os.MkdirAll(filepath.Join(dir, "db"), 0o755)
	f := file(t, dir, "db/t.ibd", b, 1<<20, false)
	// The disk now holds something else at byte 1<<20+17.
	b[1<<20+17] ^= 0x80
	os.WriteFile(f.Path, b, 0o600)
	c := New(castagnoli, "CRC-32C", 1)
	c.Check(f)
	err := c.Wait()
	var bad *MismatchError
	if !errors.As(err, &bad) {
		t.Fatalf("got %v, want a MismatchError", err)
	}
	for _, want := range []string{"db/t.ibd: read back from " + f.Path, "bytes 1048576 to 2097152", "CRC-32C"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
	// Later checks are not run; Wait keeps the first verdict.
	c.Check(file(t, dir, "ok", data(10), 10, false))
	if err2 := c.Wait(); err2 != err {
		t.Errorf("second Wait: %v", err2)
	}
}

func TestCheckSize(t *testing.T) {
	dir := t.TempDir()
	f := file(t, dir, "f", data(5000), 1000, false)
	f.Size = 6000
	c := New(castagnoli, "CRC-32C", 1)
	c.Check(f)
	if err := c.Wait(); err == nil || !strings.Contains(err.Error(), "5000 bytes on disk, the donor sent 6000") {
		t.Fatalf("got %v", err)
	}
	// A piece past the end of a file still arriving reads as the hole it
	// will be: zeros match, data does not.
	f = file(t, dir, "g", data(5000), 1000, false)
	f.Size, f.Pieces = -1, append(f.Pieces, Piece{Off: 6000, Len: 10, Sum: crc32.Checksum(make([]byte, 10), castagnoli)})
	c = New(castagnoli, "CRC-32C", 1)
	c.Check(f)
	if err := c.Wait(); err != nil {
		t.Fatal(err)
	}
	f.Pieces = append(f.Pieces, Piece{Off: 7000, Len: 10, Sum: crc32.Checksum(data(10), castagnoli)})
	c = New(castagnoli, "CRC-32C", 1)
	c.Check(f)
	if err := c.Wait(); err == nil || !strings.Contains(err.Error(), "bytes 7000 to 7010") {
		t.Fatalf("got %v", err)
	}
}

func TestFlipSeam(t *testing.T) {
	t.Setenv(FlipEnv, "db/x")
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "db"), 0o755)
	c := New(castagnoli, "CRC-32C", 2)
	c.Check(file(t, dir, "other", data(100), 10, false))
	c.Check(file(t, dir, "db/x", data(100), 10, false))
	err := c.Wait()
	if err == nil || !strings.Contains(err.Error(), "db/x: read back from "+filepath.Join(dir, "db/x")) {
		t.Fatalf("got %v", err)
	}
}

// Idle waits for a queued check: the file is not rewritten under it.
func TestIdle(t *testing.T) {
	dir := t.TempDir()
	c := New(castagnoli, "CRC-32C", 1)
	release := make(chan struct{})
	f := file(t, dir, "f", data(100), 10, false)
	open := f.Open
	f.Open = func() (*os.File, error) { <-release; return open() }
	c.Check(f)
	idle := make(chan struct{})
	go func() { c.Idle("f"); close(idle) }()
	select {
	case <-idle:
		t.Fatal("Idle returned while the check was running")
	default:
	}
	close(release)
	<-idle
	if err := c.Wait(); err != nil {
		t.Fatal(err)
	}
}

// Stop skips what is queued.
func TestStop(t *testing.T) {
	dir := t.TempDir()
	c := New(castagnoli, "CRC-32C", 1)
	f := file(t, dir, "f", data(100), 10, false)
	f.Pieces[0].Sum ^= 1
	c.Stop()
	c.Check(f)
	if err := c.Wait(); err != nil {
		t.Fatal(err)
	}
}
