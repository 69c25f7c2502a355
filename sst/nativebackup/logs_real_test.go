package nativebackup

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/sst"
	"github.com/galera-supervisor/galera-supervisor/supervisor/galeratest"
)

// TestRealNativeBackupSyslog: with [sst] sst-syslog=1 a native-backup join
// sends both SST processes' logs and mariadb-backup's own output to a real
// rsyslogd, under stock's tags (wsrep-sst-<role>, innobackupex-backup,
// -apply, -move), and leaves no log file in either datadir.
func TestRealNativeBackupSyslog(t *testing.T) {
	galeratest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c := newCluster(t, ctx, galeratest.Config{}, 16<<20)
	sock, out := galeratest.StartSyslog(t)
	for _, n := range c.Nodes() {
		if err := n.SetSST(map[string]string{"sst-syslog": "1", "sst-syslog-socket": sock}); err != nil {
			t.Fatal(err)
		}
	}
	joinNode2(ctx, t, c)
	want := map[string]string{
		"daemon.info wsrep-sst-joiner":   "SST finished sst_method=" + Name + " sst_role=joiner ",
		"daemon.info wsrep-sst-donor":    "SST finished sst_method=" + Name + " sst_role=donor ",
		"daemon.err innobackupex-backup": "completed OK!",
		"daemon.err innobackupex-apply":  "completed OK!",
		"daemon.err innobackupex-move":   "placing the prepared snapshot",
	}
	deadline := time.Now().Add(10 * time.Second)
	for tag, text := range want {
		for !strings.Contains(galeratest.GrepFile(out, tag), text) {
			if time.Now().After(deadline) {
				b, _ := os.ReadFile(out)
				t.Fatalf("no %q line with %q in %s:\n%s", tag, text, out, b)
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Logf("%s", strings.SplitN(galeratest.GrepFile(out, tag), "\n", 2)[0])
	}
	for _, n := range c.Nodes() {
		for _, name := range []string{BackupLog, PrepareLog, MoveLog, sst.LogName(Name, sst.Joiner), sst.LogName(Name, sst.Donor)} {
			if _, err := os.Stat(filepath.Join(n.DataDir, name)); err == nil {
				t.Errorf("node%d: %s written with sst-syslog=1", n.N, name)
			}
		}
	}
}
