package sst

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/sst/progress"
)

// TestProgressAndTime: [sst] progress=FILE gets pv's lines from the
// method's progress events, every 10 s and at the end; time=1 adds the
// stock "Total time on <role>" line; progress=1 writes to stderr.
func TestProgressAndTime(t *testing.T) {
	dd := t.TempDir()
	pfile := filepath.Join(t.TempDir(), "sst.progress")
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	fake.donor = func(ctx context.Context, s *Session) error {
		for i := int64(1); i <= 4; i++ {
			clock = clock.Add(5 * time.Second)
			s.Report(progress.Event{Phase: progress.PhaseSending, Done: i << 20, Total: 4 << 20})
		}
		return nil
	}
	run := func(opts map[string]string) string {
		t.Helper()
		var o, e bytes.Buffer
		err := Run(context.Background(), "fake-test", []string{"--address", "h:1/x", "--datadir", dd}, Config{Stdout: &o, Stderr: &e, Now: now,
			Options: func(*Args) Options { return MapOptions{"sst": opts} }})
		if err != nil {
			t.Fatalf("Run: %v\n%s", err, e.String())
		}
		return e.String()
	}
	errOut := run(map[string]string{"sst-log-archive": "0", "progress": pfile, "time": "1"})
	b, err := os.ReadFile(pfile)
	if err != nil {
		t.Fatal(err)
	}
	want := "donor => Rate:205KiB/s Avg:205KiB/s Elapsed:0:00:05 Bytes: 1.00MiB 25%\n" +
		"donor => Rate:205KiB/s Avg:205KiB/s Elapsed:0:00:15 Bytes: 3.00MiB 75%\n" +
		"donor => Rate:205KiB/s Avg:205KiB/s Elapsed:0:00:20 Bytes: 4.00MiB 100%\n" // Done: the last count
	if got := string(b); got != want {
		t.Errorf("progress file:\n%s\nwant\n%s", got, want)
	}
	if !strings.Contains(errOut, "Total time on donor: 20 seconds") {
		t.Errorf("time=1: no total line:\n%s", errOut)
	}
	errOut = run(map[string]string{"sst-log-archive": "0", "progress": "1"})
	if !strings.Contains(errOut, "donor => Rate:") || strings.Contains(errOut, "Total time") {
		t.Errorf("progress=1, time unset: stderr\n%s", errOut)
	}
}
