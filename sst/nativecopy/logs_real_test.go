package nativecopy

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/internal/testutil"

	"github.com/galera-supervisor/galera-supervisor/sst"
	"github.com/galera-supervisor/galera-supervisor/supervisor/galeratest"
)

// TestRealSSTLogs runs real native-copy SSTs between two real nodes:
// three in a row with sst-log-archive-keep=1 leave each side's log of the
// last SST in the datadir and only the one before it, gzipped, in the
// archive (an archived copy past sst-log-archive-max-age goes too, and
// files not ours stay); then with sst-syslog=1 both SST processes log to a
// real rsyslogd instead, tagged wsrep-sst-<role>, and write no log file.
func TestRealSSTLogs(t *testing.T) {
	ctx := ctxFor(t, 10*time.Minute)
	c := newCluster(t, nil)
	n1, n2 := c.Node(1), c.Node(2)
	uid, gid := mysqlUser(t)
	archive := filepath.Join(c.Dir(), "sst_log_archive") // where mysql may go
	testutil.Must(t, os.Mkdir(archive, 0o750))
	testutil.Must(t, os.Chown(archive, uid, gid))
	// Neighbours that pruning must leave alone, and one too old to keep.
	old := filepath.Join(archive, "native-copy.joiner.log."+time.Now().AddDate(0, 0, -10).Format("2006.01.02-15.04.05.000000000")+".gz")
	other := filepath.Join(archive, "mariabackup.move.log.2026.01.01-00.00.00.000000000.gz")
	for _, p := range []string{old, other} {
		testutil.Must(t, os.WriteFile(p, []byte("x"), 0o640))
	}
	for _, n := range c.Nodes() {
		testutil.Must(t, n.SetSST(map[string]string{"sst-log-archive-dir": archive, "sst-log-archive-keep": "1", "sst-log-archive-max-age": "7d"}))
	}
	testutil.Must(t, c.Bootstrap(ctx))
	testutil.Must(t, n1.CreateSampleTables(ctx))
	testutil.Must(t, n1.LoadData(ctx, 4<<20))

	joinerLog, donorLog := filepath.Join(n2.DataDir, sst.LogName(Name, sst.Joiner)), filepath.Join(n1.DataDir, sst.LogName(Name, sst.Donor))
	var joinerLogs, donorLogs []string // each SST's logs, as left in the datadirs
	for i := range 3 {
		if i > 0 {
			forceSST(t, ctx, n2)
		}
		join(t, ctx, n2)
		for _, l := range []struct {
			path string
			to   *[]string
		}{{joinerLog, &joinerLogs}, {donorLog, &donorLogs}} {
			b, err := os.ReadFile(l.path)
			if err != nil || !strings.Contains(string(b), "SST finished") {
				t.Fatalf("SST %d: %s: %v\n%s", i+1, l.path, err, b)
			}
			*l.to = append(*l.to, string(b))
		}
	}
	t.Run("archive", func(t *testing.T) {
		ents, err := os.ReadDir(archive)
		testutil.Must(t, err)
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Logf("archive: %s", strings.Join(names, " "))
		for _, p := range []string{old, other} {
			if _, err := os.Stat(p); (err == nil) != (p == other) {
				t.Errorf("%s: %v (the too old copy must go, the other log's stay)", filepath.Base(p), err)
			}
		}
		for _, side := range []struct {
			name string
			logs []string
		}{{sst.LogName(Name, sst.Joiner), joinerLogs}, {sst.LogName(Name, sst.Donor), donorLogs}} {
			copies, _ := filepath.Glob(filepath.Join(archive, side.name+".*.gz"))
			if len(copies) != 1 {
				t.Errorf("%d archived copies of %s, want 1 (sst-log-archive-keep=1): %q", len(copies), side.name, copies)
				continue
			}
			if got := testutil.Gunzip(t, copies[0]); got != side.logs[1] {
				t.Errorf("%s holds\n%s\nwant the second SST's log:\n%s", copies[0], got, side.logs[1])
			}
		}
		if _, err := os.Stat(filepath.Join(n2.DataDir, sst.LogName(Name, sst.Joiner)+".")); err == nil {
			t.Error("a log was archived beside itself")
		}
	})

	t.Run("syslog", func(t *testing.T) {
		sock, out := galeratest.StartSyslog(t)
		for _, n := range c.Nodes() {
			testutil.Must(t, n.SetSST(map[string]string{"sst-syslog": "1", "sst-syslog-socket": sock}))
		}
		for _, p := range []string{joinerLog, donorLog} {
			testutil.Must(t, os.Remove(p))
		}
		forceSST(t, ctx, n2)
		join(t, ctx, n2)
		for _, want := range []string{"daemon.info wsrep-sst-joiner", "daemon.info wsrep-sst-donor"} {
			deadline := time.Now().Add(10 * time.Second)
			for {
				lines := galeratest.GrepFile(out, want)
				if strings.Contains(lines, "SST finished sst_method="+Name+" sst_role="+strings.TrimPrefix(want, "daemon.info wsrep-sst-")+" ") {
					break
				}
				if time.Now().After(deadline) {
					b, _ := os.ReadFile(out)
					t.Fatalf("no %q line saying the SST finished in %s:\n%s", want, out, b)
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		t.Logf("rsyslogd got:\n%s", galeratest.GrepFile(out, "wsrep-sst-"))
		for _, p := range []string{joinerLog, donorLog} {
			if _, err := os.Stat(p); err == nil {
				t.Errorf("%s written with sst-syslog=1", p)
			}
		}
	})
}

func mysqlUser(t *testing.T) (uid, gid int) {
	u, err := user.Lookup("mysql")
	testutil.Must(t, err)
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}
