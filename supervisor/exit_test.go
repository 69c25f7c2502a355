package supervisor

import (
	"strings"
	"testing"
	"time"
)

// TestStopDuringSST: a stop asked for while the joiner receives its SST
// exits 0, though mariadbd, its SST cancelled, exits 1.
func TestStopDuringSST(t *testing.T) {
	n := startFake(t, "sst-stop", nil)
	n.waitFile("in-sst")
	pid := n.sup.PID()
	n.stop()
	if err := n.result(10 * time.Second); err != nil {
		t.Fatalf("Run stopped during an SST: %v (exit %d), want nil", err, exitCode(err))
	}
	if alive(pid) {
		t.Errorf("mariadbd %d still alive", pid)
	}
}

// TestStopDuringSSTAbortHangs: mariadbd hangs in its abort after the stop
// cancelled its SST; it is killed after the abort grace rather than at the
// stop timeout, and the stop still exits 0.
func TestStopDuringSSTAbortHangs(t *testing.T) {
	n := startFake(t, "sst-stop-hang", func(c *Config, _ string) {
		c.AbortGrace = time.Second
		c.StopTimeout = time.Minute
	})
	n.waitFile("in-sst")
	pid := n.sup.PID()
	n.stop()
	if err := n.result(15 * time.Second); err != nil {
		t.Fatalf("Run: %v (exit %d), want nil", err, exitCode(err))
	}
	if alive(pid) {
		t.Errorf("mariadbd %d still alive", pid)
	}
}

// TestStopDuringStockSSTAbortHangs: a stop cuts a stock method's SST
// short (its script reports no failure) and mariadbd hangs in its abort:
// it is killed after stopCutGrace, not at the stop timeout, and the
// stop exits 0.
func TestStopDuringStockSSTAbortHangs(t *testing.T) {
	n := startFake(t, "stock-sst-stop-hang", func(c *Config, _ string) { c.StopTimeout = time.Minute })
	n.waitFile("in-sst")
	time.Sleep(200 * time.Millisecond) // the supervisor sees the script
	pid := n.sup.PID()
	t0 := time.Now()
	n.stop()
	if err := n.result(20 * time.Second); err != nil {
		t.Fatalf("Run: %v (exit %d), want nil", err, exitCode(err))
	}
	if d := time.Since(t0); d < stopCutGrace || d > stopCutGrace+5*time.Second {
		t.Errorf("mariadbd killed %s after the stop, want about %s", d.Round(100*time.Millisecond), stopCutGrace)
	}
	if alive(pid) {
		t.Errorf("mariadbd %d still alive", pid)
	}
}

// TestStopAfterSSTFailed: an SST that failed on its own before the stop is
// still a failed SST.
func TestStopAfterSSTFailed(t *testing.T) {
	n := startFake(t, "sst-fail-slow", nil)
	n.waitFile("in-sst")
	time.Sleep(50 * time.Millisecond)
	n.stop()
	err := n.result(10 * time.Second)
	if code := exitCode(err); code != ExitSST {
		t.Fatalf("exit code %d (%v), want %d", code, err, ExitSST)
	}
	if !strings.Contains(err.Error(), "donor went away") {
		t.Errorf("error does not carry the SST's: %v", err)
	}
}

// TestStopAbortUnready: a node that never joined and dies of SIGABRT when
// told to stop was stopped, not crashed.
func TestStopAbortUnready(t *testing.T) {
	n := startFake(t, "unready-abort", nil)
	n.waitFile("waiting-term")
	n.stop()
	if err := n.result(10 * time.Second); err != nil {
		t.Fatalf("Run: %v (exit %d), want nil", err, exitCode(err))
	}
}

// TestStopCrashWhenReady: a ready node that crashes while stopping exits
// ExitMariadbd, naming the signal.
func TestStopCrashWhenReady(t *testing.T) {
	n := startFake(t, "abort-on-term", nil)
	n.waitReady()
	n.stop()
	err := n.result(10 * time.Second)
	if code := exitCode(err); code != ExitMariadbd || !strings.Contains(err.Error(), "aborted") {
		t.Fatalf("exit %d (%v), want %d naming SIGABRT", code, err, ExitMariadbd)
	}
}
