package supervisor

import (
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/supervisor/galeratest"
)

// TestRealStopDuringSST stops the joiner's supervisor (SIGTERM, as systemctl
// stop does) in the middle of a native-copy SST: mariadbd aborts the SST and
// exits non-zero, which is the stop's doing, so the supervisor exits 0 and
// leaves nothing running. Started again, the node joins by a full SST whose
// STATUS lines never go back from moving to receiving, and whose rate is
// that of the transfer.
func TestRealStopDuringSST(t *testing.T) {
	galeratest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	c, sup := joinerSSTInFlight(t, ctx)
	n2 := c.Node(2)
	if code := sup.stop(t, 2*time.Minute); code != ExitOK {
		log, _ := os.ReadFile(sup.log)
		t.Fatalf("exit %d after SIGTERM during an SST, want 0; log:\n%s", code, log)
	}
	noneLeft(t, n2.DataDir)
	if v, err := c.Node(1).Status(ctx, "wsrep_local_state_comment"); err != nil || v != "Synced" {
		t.Errorf("donor is %q (%v) after the joiner's stop, want Synced", v, err)
	}

	sd2 := newSystemdSocket(t)
	sup2 := startSupervisor(t, n2, sd2)
	if _, err := sd2.waitFor(ctx, "READY=1", sup2.exited); err != nil {
		t.Fatal(err)
	}
	statuses := sd2.statuses()
	t.Logf("STATUS lines: %q", statuses)
	rate := regexp.MustCompile(` (\d+) MB/s`)
	later, rated := "", 0
	for _, s := range statuses {
		switch {
		case strings.HasPrefix(s, "verifying"), strings.HasPrefix(s, "moving"):
			later = s
		case strings.HasPrefix(s, "receiving SST") && later != "":
			t.Errorf("STATUS=%s after STATUS=%s", s, later)
		}
		// rlimit 8M: 8 MiB/s on the wire; a line far above it is a spike.
		if m := rate.FindStringSubmatch(s); m != nil {
			rated++
			if r, _ := strconv.Atoi(m[1]); r > 40 {
				t.Errorf("STATUS=%s: %d MB/s through an 8 MiB/s rate limit", s, r)
			}
		}
	}
	if rated == 0 {
		t.Error("no STATUS with a rate")
	}
	if code := sup2.stop(t, 2*time.Minute); code != ExitOK {
		t.Fatalf("exit %d after SIGTERM", code)
	}
}
