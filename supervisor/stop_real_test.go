package supervisor

import (
	"context"
	"os"
	"path/filepath"
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
	// rlimit 8M: 8 MiB/s on the wire; a line far above it is a spike.
	checkSSTStatuses(t, sd2.statuses(), 40)
	if code := sup2.stop(t, 2*time.Minute); code != ExitOK {
		t.Fatalf("exit %d after SIGTERM", code)
	}
}

// TestRealNativeBackupStatus joins node2 by native-backup at 8 MiB/s under
// the supervisor: its STATUS lines show a rate that is the transfer's, and
// the phases go forward only.
func TestRealNativeBackupStatus(t *testing.T) {
	galeratest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	c := galeratest.NewTest(t, galeratest.Config{
		Nodes:       2,
		SSTMethod:   "native-backup",
		SST:         map[string]string{"rlimit": "8M"},
		PathPrepend: []string{filepath.Dir(builtSupervisor(t))},
	})
	if err := c.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Node(1).LoadData(ctx, 32<<20); err != nil {
		t.Fatal(err)
	}
	sd := newSystemdSocket(t)
	sup := startSupervisor(t, c.Node(2), sd)
	if _, err := sd.waitFor(ctx, "READY=1", sup.exited); err != nil {
		t.Fatal(err)
	}
	checkSSTStatuses(t, sd.statuses(), 40)
	if code := sup.stop(t, 2*time.Minute); code != ExitOK {
		t.Fatalf("exit %d after SIGTERM", code)
	}
}

// checkSSTStatuses checks the STATUS lines of a join by SST: the phases
// never go back from verifying, preparing or moving to receiving, and at
// least two lines show a rate, none above maxMBps.
func checkSSTStatuses(t *testing.T, statuses []string, maxMBps int) {
	t.Helper()
	t.Logf("STATUS lines: %q", statuses)
	rate := regexp.MustCompile(` (\d+) MB/s`)
	later, rated := "", 0
	for _, s := range statuses {
		switch {
		case strings.HasPrefix(s, "verifying"), strings.HasPrefix(s, "preparing"), strings.HasPrefix(s, "moving"):
			later = s
		case strings.HasPrefix(s, "receiving SST") && later != "":
			t.Errorf("STATUS=%s after STATUS=%s", s, later)
		}
		if m := rate.FindStringSubmatch(s); m != nil {
			rated++
			if r, _ := strconv.Atoi(m[1]); r > maxMBps {
				t.Errorf("STATUS=%s: %d MB/s, above %d", s, r, maxMBps)
			}
		}
	}
	if rated < 2 {
		t.Errorf("%d STATUS lines with a rate, want 2 or more", rated)
	}
}
