package sst

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/internal/testutil"
)

const testUUID = "e1060d8c-a7e1-11ef-9a39-0e5cc7e5c2b4"

func TestProtocolJoiner(t *testing.T) {
	var buf bytes.Buffer
	p := NewProtocol(&buf, Joiner, true)
	if err := p.Total(10); err == nil {
		t.Fatal("progress before ready accepted")
	}
	if err := p.Coordinates(State{UUID: testUUID, Seqno: 1}); err == nil {
		t.Fatal("coordinates before ready accepted")
	}
	testutil.Must(t, p.Ready("127.0.0.1:4444/native-copy"))
	if err := p.Ready("x"); err == nil {
		t.Fatal("second ready accepted")
	}
	testutil.Must(t, p.Total(100))
	testutil.Must(t, p.Complete(50))
	testutil.Must(t, p.Coordinates(State{UUID: testUUID, Seqno: 7, Domain: "0"}))
	if err := p.Complete(100); err == nil {
		t.Fatal("progress after final line accepted")
	}
	want := "ready 127.0.0.1:4444/native-copy\ntotal 100\ncomplete 50\n" + testUUID + ":7 0\n"
	if buf.String() != want {
		t.Fatalf("stdout:\n%s\nwant:\n%s", buf.String(), want)
	}
}

func TestProtocolNoProgress(t *testing.T) {
	var buf bytes.Buffer
	p := NewProtocol(&buf, Donor, false)
	testutil.Must(t, p.Total(1))
	testutil.Must(t, p.FlushTables())
	testutil.Must(t, p.Continue())
	testutil.Must(t, p.Done(State{UUID: testUUID, Seqno: 3, Domain: "0"}))
	if err := p.Continue(); err == nil {
		t.Fatal("line after done accepted")
	}
	if got, want := buf.String(), "flush tables\ncontinue\ndone "+testUUID+":3 0\n"; got != want {
		t.Fatalf("stdout %q, want %q", got, want)
	}
	if err := p.Ready("x"); err == nil {
		t.Fatal("donor printed ready")
	}
}

func TestProtocolLineLimit(t *testing.T) {
	p := NewProtocol(&bytes.Buffer{}, Joiner, false)
	if err := p.Ready(strings.Repeat("a", 600)); err == nil {
		t.Fatal("over-long joiner line accepted")
	}
	if err := p.Ready("a\nb"); err == nil {
		t.Fatal("line break accepted")
	}
}

func TestWaitTablesFlushed(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() {
		time.Sleep(50 * time.Millisecond)
		os.WriteFile(filepath.Join(dir, "tables_flushed.tmp"), []byte(testUUID+":42 0\n"), 0o644)
		os.Rename(filepath.Join(dir, "tables_flushed.tmp"), filepath.Join(dir, TablesFlushedFile))
	}()
	st, err := WaitTablesFlushed(ctx, dir, 5*time.Millisecond)
	if err != nil || st.Seqno != 42 {
		t.Fatalf("WaitTablesFlushed = %+v, %v", st, err)
	}

	dir2 := t.TempDir()
	os.WriteFile(filepath.Join(dir2, SSTErrorFile), nil, 0o644)
	if _, err := WaitTablesFlushed(ctx, dir2, 5*time.Millisecond); err == nil || ExitCode(err) != int(EPIPE) {
		t.Fatalf("sst_error: %v", err)
	}
	short, c2 := context.WithTimeout(ctx, 30*time.Millisecond)
	defer c2()
	if _, err := WaitTablesFlushed(short, t.TempDir(), 5*time.Millisecond); err == nil {
		t.Fatal("no error on timeout")
	}
}

func FuzzParseState(f *testing.F) {
	f.Add(testUUID + ":5 0")
	f.Add(testUUID + ":-1")
	f.Add("x:1 2")
	f.Fuzz(func(t *testing.T, s string) {
		st, err := ParseState(s)
		if err != nil {
			return
		}
		// What parses renders to something that parses to the same state,
		// and is a valid single protocol line.
		again, err := ParseState(st.String())
		if err != nil || again != st {
			t.Fatalf("ParseState(%q) = %+v; round trip %+v, %v", s, st, again, err)
		}
		if len(st.String()) >= maxDonorLine-5 {
			t.Fatalf("state line %q too long for the donor's done line", st)
		}
	})
}
