package supervisor

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/supervisor/galeratest"
)

// waitLog waits for want in path after offset, for at most d.
func waitLog(t *testing.T, path string, offset int, want string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		b, _ := os.ReadFile(path)
		if len(b) > offset && bytes.Contains(b[offset:], []byte(want)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q within %v", path, want, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// escaped is s as it reads inside a quoted value of a text log line.
func escaped(s string) string {
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

func fileSize(path string) int {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return int(fi.Size())
}

// TestRealLiveSSTOptions edits the [sst] group of a supervised donor while
// its mariadbd runs: the next SST (native-copy, to a joiner) uses the new
// transfer-streams, with no restart. Then an edit the SST would reject
// (transfer-streams = 0) is refused, and the SST after it still runs on the
// last good value: read from the files, it would fail.
func TestRealLiveSSTOptions(t *testing.T) {
	galeratest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	c := galeratest.NewTest(t, galeratest.Config{
		Nodes:       2,
		SSTMethod:   "native-copy",
		PathPrepend: []string{filepath.Dir(builtSupervisor(t))},
	})
	n1, n2 := c.Node(1), c.Node(2)
	sd := newSystemdSocket(t)
	sup := startSupervisor(t, n1, sd, "--wsrep-new-cluster")
	if _, err := sd.waitFor(ctx, "READY=1", sup.exited); err != nil {
		t.Fatal(err)
	}
	if err := n1.LoadData(ctx, 8<<20); err != nil {
		t.Fatal(err)
	}
	mpid := mariadbdPID(sup.cmd.Process.Pid)

	// A good edit, seen while mariadbd runs. (The watcher's 1 s is
	// TestLiveOptionFiles'; here other clusters load the machine.)
	off := fileSize(sup.log)
	if err := n1.SetSST(map[string]string{"transfer-streams": "3"}); err != nil {
		t.Fatal(err)
	}
	waitLog(t, sup.log, off, "option=transfer-streams old=unset new=3 option_group=sst option_file="+n1.ConfigFile+" option_line=", 5*time.Second)

	sst := func(want string) {
		t.Helper()
		off := fileSize(n1.ErrorLog)
		if err := n2.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := n2.WaitSynced(ctx); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(n1.ErrorLog)
		donor := b[off:]
		for _, w := range []string{"option_snapshot=" + filepath.Join(n1.Dir, "run") + "/options-", want} {
			if !bytes.Contains(donor, []byte(w)) {
				t.Errorf("donor's log has no %q:\n%s", w, donor)
			}
		}
	}
	sst("streams=3")

	// A refused edit: the next SST keeps the last good value.
	off = fileSize(sup.log)
	if err := n1.SetSST(map[string]string{"transfer-streams": "0"}); err != nil {
		t.Fatal(err)
	}
	waitLog(t, sup.log, off, "keeping the last good configuration refused=", 5*time.Second)
	waitLog(t, sup.log, off, "error: [sst] transfer-streams=0: want 1 to 64", 5*time.Second)
	if err := n2.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n2.Wipe(); err != nil {
		t.Fatal(err)
	}
	sst("streams=3")

	if p := mariadbdPID(sup.cmd.Process.Pid); p != mpid {
		t.Errorf("the donor's mariadbd restarted: pid %d, then %d", mpid, p)
	}
	if err := n2.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if code := sup.stop(t, 2*time.Minute); code != ExitOK {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	if left := c.Leftovers(); len(left) > 0 {
		t.Errorf("processes left: %v", left)
	}
}
