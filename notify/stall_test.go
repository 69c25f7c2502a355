package notify

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/notify/logging/logtest"
)

func TestChooseStallWindow(t *testing.T) {
	answer := func(unit string, timeout time.Duration, err error) StartTimeoutFunc {
		return func(ctx context.Context) (string, time.Duration, error) {
			if _, ok := ctx.Deadline(); !ok {
				t.Error("lookup without a deadline: a bus that does not answer would hold the start")
			}
			return unit, timeout, err
		}
	}
	unused := func(context.Context) (string, time.Duration, error) {
		t.Error("lookup called")
		return "", 0, errors.New("unused")
	}
	for _, c := range []struct {
		name     string
		override time.Duration
		notUnder string
		lookup   StartTimeoutFunc
		want     time.Duration
		level    slog.Level
		msg      []string          // in the line
		attrs    map[string]string // among the attributes
	}{
		{"unit", 0, "", answer("galera-supervisor@n2.service", 20*time.Second, nil), 20 * time.Second, slog.LevelInfo,
			[]string{"SST stall window from the unit's TimeoutStartSec stall_window=20s stall_window_source=unit unit=galera-supervisor@n2.service timeout_start=20s"},
			map[string]string{"unit": "galera-supervisor@n2.service", "timeout_start": "20s", "stall_window": "20s", "stall_window_source": "unit"}},
		{"shipped 300s", 0, "", answer("galera-supervisor.service", 300*time.Second, nil), 300 * time.Second, slog.LevelInfo,
			[]string{"stall_window=5m0s", "timeout_start=5m0s"}, map[string]string{"stall_window": "5m0s"}},
		{"short timeout", 0, "", answer("x.service", 3*time.Second, nil), MinStallWindow, slog.LevelInfo,
			[]string{"stall_window=10s", "timeout_start=3s", "at least min_stall_window", "min_stall_window=10s"}, map[string]string{"stall_window": "10s", "timeout_start": "3s"}},
		{"infinity", 0, "", answer("x.service", 0, nil), NoStallWindow, slog.LevelInfo,
			[]string{"no SST stall window", "unit=x.service timeout_start=infinity", "no extension"},
			map[string]string{"unit": "x.service", "timeout_start": "infinity"}},
		{"flag", 45 * time.Second, "", unused, 45 * time.Second, slog.LevelInfo,
			[]string{"SST stall window set by --sst-stall-timeout stall_window=45s"}, map[string]string{"stall_window": "45s", "stall_window_source": "flag"}},
		{"flag outside systemd", 7 * time.Second, "$NOTIFY_SOCKET is unset", unused, 7 * time.Second, slog.LevelInfo,
			[]string{"stall_window=7s", "--sst-stall-timeout"}, map[string]string{"stall_window_source": "flag"}},
		{"no systemd", 0, "$NOTIFY_SOCKET is unset", unused, DefaultStallWindow, slog.LevelInfo,
			[]string{"SST stall window: the default, not under systemd stall_window=1m0s", `reason="$NOTIFY_SOCKET is unset"`}, map[string]string{"stall_window_source": "default"}},
		{"no bus", 0, "", answer("", 0, errors.New("connect to the system bus: no such file")), DefaultStallWindow, slog.LevelWarn,
			[]string{"SST stall window: the default, cannot read the unit's TimeoutStartSec stall_window=1m0s", `error="connect to the system bus: no such file"`},
			map[string]string{"stall_window": "1m0s", "error": "connect to the system bus: no such file"}},
	} {
		rec := logtest.NewRecorder()
		got := ChooseStallWindow(context.Background(), rec.Logger(), c.override, c.notUnder, c.lookup)
		if got != c.want {
			t.Errorf("%s: window %v, want %v", c.name, got, c.want)
		}
		rs := rec.Records()
		if len(rs) != 1 {
			t.Errorf("%s: want one record, got %+v", c.name, rs)
			continue
		}
		r := rs[0]
		if r.Level != c.level {
			t.Errorf("%s: level %v, want %v", c.name, r.Level, c.level)
		}
		for _, w := range c.msg {
			if !strings.Contains(r.Line, w) {
				t.Errorf("%s: line %q lacks %q", c.name, r.Line, w)
			}
		}
		for k, v := range c.attrs {
			if r.Attrs[k] != v {
				t.Errorf("%s: attribute %s=%q, want %q (all: %v)", c.name, k, r.Attrs[k], v, r.Attrs)
			}
		}
	}
}

// A start cancelled while the bus is asked is not a failure to log.
func TestChooseStallWindowCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	rec := logtest.NewRecorder()
	got := ChooseStallWindow(ctx, rec.Logger(), 0, "", func(ctx context.Context) (string, time.Duration, error) {
		cancel()
		<-ctx.Done()
		return "", 0, ctx.Err()
	})
	if got != DefaultStallWindow || len(rec.Records()) != 0 {
		t.Errorf("cancelled: window %v, log %q", got, rec.Messages())
	}
}

// TestStallWindowArithmetic: with the derived window, a stall at any point
// of a transfer that reports progress often fails the start at most one
// window after its last progress, and a transfer whose progress comes
// slower than the extensions but faster than 3/4 of the window survives.
func TestStallWindowArithmetic(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const timeoutStart = 20 * time.Second
	w := StallWindowFor(timeoutStart)
	for _, every := range []time.Duration{200 * time.Millisecond, time.Second, 7 * time.Second, w * 3 / 4} {
		k := Keepalive{Window: w}
		deadline := t0.Add(timeoutStart) // systemd's own, from the start
		var last time.Time
		for now := t0; now.Before(t0.Add(5 * time.Minute)); now = now.Add(every) {
			if now.After(deadline) {
				t.Fatalf("progress every %v: start timed out at %v while the transfer moved", every, deadline.Sub(t0))
			}
			last = now
			if k.Advanced(now) {
				deadline = maxTime(deadline, now.Add(w)) // systemd never shortens it
			}
		}
		// The transfer stalls after its last progress at last.
		if d := deadline.Sub(last); d > w || d <= 0 {
			t.Errorf("progress every %v: start fails %v after the last progress, want within (0, %v]", every, d, w)
		}
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func TestNotUnderSystemd(t *testing.T) {
	t.Setenv(EnvSocket, "")
	if got := NotUnderSystemd(); got != "$NOTIFY_SOCKET is unset" {
		t.Errorf("without NOTIFY_SOCKET: %q", got)
	}
	t.Setenv(EnvSocket, "/run/systemd/notify")
	_, err := os.Stat("/run/systemd/system")
	if got := NotUnderSystemd(); (got == "") != (err == nil) || (got != "" && !strings.Contains(got, "/run/systemd/system")) {
		t.Errorf("with NOTIFY_SOCKET, /run/systemd/system: %v: %q", err, got)
	}
}
