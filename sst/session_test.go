package sst

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/notify/logging/logtest"
)

func TestExitCode(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{Errorf(ENOSPC, "x"), 28},
		{WithErrno(EBUSY, errors.New("port")), 16},
		{WithErrno(EBUSY, Errorf(EPROTO, "inner wins")), 71},
		{context.Canceled, 4},
		{&os.PathError{Op: "open", Path: "x", Err: syscall.ENOENT}, 2},
		{errors.New("plain"), 32},
	} {
		if got := ExitCode(tt.err); got != tt.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestPIDFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, PIDFile)
	ctx := context.Background()
	l, err := AcquirePIDFile(ctx, path, time.Second, logtest.New(t))
	if err != nil {
		t.Fatal(err)
	}
	// Held by us (alive): a second instance waits, then EALREADY.
	_, err = AcquirePIDFile(ctx, path, 200*time.Millisecond, logtest.New(t))
	if ExitCode(err) != int(EALREADY) {
		t.Fatalf("second acquire: %v", err)
	}
	l.Release()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("pid file not removed")
	}
	// Stale: the process is gone.
	cmd := exec.Command("true")
	cmd.Run()
	os.WriteFile(path, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)
	l, err = AcquirePIDFile(ctx, path, time.Second, logtest.New(t))
	if err != nil {
		t.Fatalf("stale pid file not taken over: %v", err)
	}
	l.Release()
}

func TestWatchParent(t *testing.T) {
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, stop := WatchParent(context.Background(), cmd.Process.Pid, 10*time.Millisecond)
	defer stop()
	select {
	case <-ctx.Done():
		t.Fatal("cancelled while the parent lives")
	case <-time.After(50 * time.Millisecond):
	}
	cmd.Process.Kill()
	cmd.Wait()
	select {
	case <-ctx.Done():
		if c := context.Cause(ctx); c == nil || !contains(c.Error(), "terminated unexpectedly") {
			t.Fatalf("cause = %v", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not cancelled after the parent died")
	}
}

func contains(s, sub string) bool {
	return len(s) >= len(sub) && (s == sub || len(sub) == 0 || indexOf(s, sub) >= 0)
}
func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func TestDirsFrom(t *testing.T) {
	opts := map[string]string{
		"innodb-log-group-home-dir": "redo",      // relative: under the datadir
		"innodb-undo-directory":     "/srv/undo", // absolute
		"aria-log-dir-path":         "/data/db/", // the datadir, spelt otherwise
	}
	d := DirsFrom("/data/db", func(o string) string { return opts[o] })
	want := Dirs{Data: "/data/db", InnoDBData: "/data/db", InnoDBLog: "/data/db/redo", InnoDBUndo: "/srv/undo", AriaLog: "/data/db"}
	if d != want {
		t.Errorf("DirsFrom = %+v, want %+v", d, want)
	}
	if got := d.Roots(); !slices.Equal(got, []string{"/data/db", "/data/db/redo", "/srv/undo"}) {
		t.Errorf("Roots = %q", got)
	}
}
