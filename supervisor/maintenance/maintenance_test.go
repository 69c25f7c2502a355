package maintenance

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFile(t *testing.T) {
	dir := t.TempDir()
	if st, err := Read(dir); st != nil || err != nil {
		t.Fatalf("Read of nothing: %v %v", st, err)
	}
	want := State{Since: time.Date(2026, 12, 7, 17, 0, 0, 0, time.UTC), By: "root@db1", Reason: "kernel update"}
	if err := Write(dir, want); err != nil {
		t.Fatal(err)
	}
	st, err := Read(dir)
	if err != nil || st == nil || *st != want {
		t.Fatalf("Read = %+v, %v; want %+v", st, err, want)
	}
	if err := Clear(dir); err != nil {
		t.Fatal(err)
	}
	if err := Clear(dir); err != nil {
		t.Fatalf("second Clear: %v", err)
	}
	if st, _ := Read(dir); st != nil {
		t.Fatalf("after Clear: %+v", st)
	}
	// A file made by hand (touch) means on.
	os.WriteFile(filepath.Join(dir, File), nil, 0o644)
	if st, err := Read(dir); err != nil || st == nil || !strings.Contains(st.Reason, "not JSON") {
		t.Fatalf("touched file: %+v %v", st, err)
	}
}

func TestControlSocket(t *testing.T) {
	run, data := t.TempDir(), t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := Tell(ctx, run, data); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Tell with no supervisor: %v, want ErrNotRunning", err)
	}
	applied := 0
	srv, err := Listen(run, data, -1, -1, func() (*State, error) { applied++; return Read(data) })
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { srv.Serve(sctx); close(done) }()
	defer func() { stop(); <-done }()
	if fi, err := os.Stat(filepath.Join(run, SocketName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket: %v %v", fi, err)
	}

	Write(data, State{Since: time.Now().UTC(), By: "test"})
	st, err := Tell(ctx, run, data)
	if err != nil || st == nil || st.By != "test" {
		t.Fatalf("Tell on: %+v %v", st, err)
	}
	Clear(data)
	if st, err := Tell(ctx, run, data); err != nil || st != nil {
		t.Fatalf("Tell off: %+v %v", st, err)
	}
	if _, err := Tell(ctx, run, "/var/lib/other"); err == nil || !strings.Contains(err.Error(), "not /var/lib/other") {
		t.Fatalf("Tell for another datadir: %v", err)
	}
	if applied != 2 {
		t.Fatalf("applied %d times, want 2", applied)
	}
}

// FuzzRead: whatever the file holds, the mode is on and Read does not fail.
func FuzzRead(f *testing.F) {
	f.Add([]byte(`{"since":"2026-12-07T17:00:00Z","by":"root@db1","reason":"kernel"}`))
	f.Add([]byte(""))
	f.Add([]byte(`{"since":"not a time"}`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, File), b, 0o644); err != nil {
			t.Fatal(err)
		}
		st, err := Read(dir)
		if err != nil || st == nil {
			t.Fatalf("Read(%q) = %v, %v; want the mode on", b, st, err)
		}
	})
}
