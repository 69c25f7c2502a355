package systemdtest

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// stockMethods are the SST methods mariadb-server ships, in the order
// TestSystemdStockSST runs them.
var stockMethods = []string{"rsync", "mariabackup", "mysqldump", "rsync_wan"}

// sstLink throttles, inside the container, the loopback traffic to and
// from the joiner's SST port and its SQL port (where mysqldump's donor
// writes): a slow network between the nodes, which stretches every method
// alike. The stock scripts offer no rate limit but for mariabackup's
// rlimit, which needs pv, and the container has none.
type sstLink struct {
	r     *rig
	ports []int
	set   bool
}

func (l *sstLink) limit(ctx context.Context, bytesPerSec int64) {
	l.r.t.Helper()
	rate := fmt.Sprintf("%dbit", bytesPerSec*8)
	if l.set {
		l.r.exec(ctx, "tc", "class", "change", "dev", "lo", "parent", "1:", "classid", "1:20", "htb", "rate", rate, "ceil", rate)
		return
	}
	l.r.exec(ctx, "tc", "qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "10", "r2q", "100000")
	l.r.exec(ctx, "tc", "class", "add", "dev", "lo", "parent", "1:", "classid", "1:10", "htb", "rate", "10gbit")
	l.r.exec(ctx, "tc", "class", "add", "dev", "lo", "parent", "1:", "classid", "1:20", "htb", "rate", rate, "ceil", rate)
	for _, p := range l.ports {
		for _, dir := range []string{"dport", "sport"} {
			l.r.exec(ctx, "tc", "filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "u32",
				"match", "ip", dir, strconv.Itoa(p), "0xffff", "flowid", "1:20")
		}
	}
	l.set = true
}

// stockConfig is n's option file for method: mysqldump's donor connects
// to the joiner's server, so its receive address is the SQL port, and it
// needs a user both servers know.
func stockConfig(n node, peers, method string) string {
	c := n.config(peers, nil)
	c = strings.Replace(c, "wsrep_sst_method=native-copy", "wsrep_sst_method="+method+"\nwsrep_sst_auth=sst:sst-secret", 1)
	if method == "mysqldump" {
		c = strings.Replace(c, fmt.Sprintf("wsrep_sst_receive_address=127.0.0.1:%d", n.sstPort),
			fmt.Sprintf("wsrep_sst_receive_address=127.0.0.1:%d", n.port), 1)
	}
	return c
}

// TestSystemdStockSST runs each stock SST method into a joiner under
// "galera-supervisor run" with TimeoutStartSec=20, on one machine and one
// donor dataset: the SST, stretched past 60 s by a slow link, does not
// fail the start, and its STATUS shows bytes and a rate; then, with the
// donor's SST processes frozen (SIGSTOP) mid-transfer, the joiner's unit
// fails by its start timeout within TimeoutStartSec+15 s, with nothing
// left running. Set GS_STOCK_METHODS (e.g. "rsync,mysqldump") to run some.
func TestSystemdStockSST(t *testing.T) {
	r := newRig(t, "gs-stock")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	n1, n2 := newNode(1), newNode(2)
	peers := fmt.Sprintf("gcomm://127.0.0.1:%d,127.0.0.1:%d", n1.gport, n2.gport)
	dropIn := "[Service]\nTimeoutStartSec=20\nTimeoutStopSec=60\nRestart=no\n" + nodeExec
	r.setup(ctx, []node{n1, n2}, nil, dropIn)
	r.write(n1.cnf, stockConfig(n1, peers, "rsync"))
	r.bootstrap(ctx, n1)
	q := func(sql string) { r.exec(ctx, "mariadb", "-S", n1.socket, "-e", sql) }
	q("CREATE USER 'sst'@'%' IDENTIFIED BY 'sst-secret'; GRANT ALL ON *.* TO 'sst'@'%' WITH GRANT OPTION;" +
		"CREATE DATABASE gs; CREATE TABLE gs.t (id INT AUTO_INCREMENT PRIMARY KEY, pad VARCHAR(1000) NOT NULL) ENGINE=InnoDB")
	for i := 0; i < 6; i++ { // ~24 MiB of rows
		q("INSERT INTO gs.t (pad) SELECT repeat(md5(rand()), 31) FROM gs.seq_1_to_4000")
	}
	dump := r.exec(ctx, "sh", "-c", "mariadb-dump -S "+n1.socket+" --all-databases --events | wc -c")
	dumpBytes, err := strconv.ParseInt(strings.TrimSpace(dump), 10, 64)
	if err != nil {
		t.Fatalf("dump size %q: %v", dump, err)
	}
	physical := r.dbSize(ctx, n1)
	t.Logf("donor: %d bytes of data files, a dump of %d bytes", physical, dumpBytes)
	link := &sstLink{r: r, ports: []int{n2.sstPort, n2.port}}

	only := os.Getenv("GS_STOCK_METHODS")
	for _, method := range stockMethods {
		if only != "" && !slices.Contains(strings.Split(only, ","), method) {
			continue
		}
		// What the method moves over the link, for an SST of about 80 s
		// (mariabackup sleeps 10 s of it before sending).
		size, want := physical+16<<20, 80*time.Second // rsync copies the whole redo log
		switch method {
		case "mariabackup":
			size, want = physical, 70*time.Second
		case "mysqldump":
			size = dumpBytes
		}
		link.limit(ctx, size/int64(want.Seconds()))
		r.write(n1.cnf, stockConfig(n1, peers, method))
		r.write(n2.cnf, stockConfig(n2, peers, method))
		r.run(t, method, func(t *testing.T) {
			r.stockJoin(ctx, n1, n2, method)
			if t.Failed() {
				return
			}
			r.stockStall(ctx, n1, n2, method)
		})
	}
}

// freshJoiner stops n2 and empties its datadir, so that it joins by SST;
// for mysqldump it holds an initialised server that knows the SST user.
func (r *rig) freshJoiner(ctx context.Context, n1, n2 node, method string) {
	r.m.Systemctl(ctx, "stop", n2.unit)
	r.m.Systemctl(ctx, "reset-failed", n2.unit)
	r.exec(ctx, "sh", "-c", "rm -rf "+n2.datadir+" && install -d -o mysql -g mysql -m 0750 "+n2.datadir)
	if method != "mysqldump" {
		return
	}
	r.exec(ctx, "mariadb-install-db", "--no-defaults", "--datadir="+n2.datadir, "--user=mysql",
		"--skip-test-db", "--innodb-log-file-size=16M")
	sock := "/run/mysqld/init-" + n2.name + ".sock"
	init := fmt.Sprintf(`mariadbd --no-defaults --user=mysql --datadir=%s --socket=%s --skip-networking --innodb-log-file-size=16M &
for i in $(seq 100); do mariadb -S %s -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.2; done
mariadb -S %s -e "CREATE USER 'sst'@'%%' IDENTIFIED BY 'sst-secret'; GRANT ALL ON *.* TO 'sst'@'%%' WITH GRANT OPTION"
mariadb-admin -S %s shutdown
wait`, n2.datadir, sock, sock, sock, sock)
	r.exec(ctx, "sh", "-c", init)
}

// donorIdle waits until n1's unit runs nothing but the supervisor and
// mariadbd (the last SST's donor side is over), and n1 is Synced and
// alone: Galera has evicted the joiner the last stall killed, which
// would otherwise hold the next joiner's SST request.
func (r *rig) donorIdle(ctx context.Context, n1 node) {
	r.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, _ := r.m.Exec(ctx, "mariadb", "-S", n1.socket, "-N", "-e",
			"SELECT GROUP_CONCAT(VARIABLE_VALUE ORDER BY VARIABLE_NAME) FROM information_schema.GLOBAL_STATUS "+
				"WHERE VARIABLE_NAME IN ('wsrep_cluster_size', 'wsrep_local_state_comment')")
		state := strings.TrimSpace(out)
		if len(r.donorSSTProcs(ctx, n1)) == 0 && state == "1,Synced" {
			return
		}
		if state == "1,Initialized" {
			// A joiner killed in its stalled start took the quorum of
			// two with it: n1 is the Primary Component again by hand.
			r.m.Exec(ctx, "mariadb", "-S", n1.socket, "-e", "SET GLOBAL wsrep_provider_options='pc.bootstrap=YES'")
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("the donor is not idle: cluster size, state %q; processes %v", state, r.unitProcs(ctx, n1.unit))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitFailed waits for unit, stalled at stallAt, to fail or stop, and
// returns when it left "activating" and when it was done, after stallAt.
func (r *rig) waitFailed(ctx context.Context, unit string, stallAt time.Time) (timedOut, failed time.Duration) {
	r.t.Helper()
	for {
		st := r.show(ctx, unit, "ActiveState")
		if st != "activating" && timedOut == 0 {
			timedOut = time.Since(stallAt)
		}
		if st == "failed" || st == "inactive" {
			return timedOut, time.Since(stallAt)
		}
		if time.Since(stallAt) > 2*time.Minute {
			r.t.Fatalf("%s still %s %s after the stall", unit, st, time.Since(stallAt).Round(time.Second))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// failedByTimeout checks that unit failed by its start timeout within
// failWithin of the stall, leaving nothing running.
func (r *rig) failedByTimeout(ctx context.Context, unit string, failedAfter, failWithin time.Duration) {
	r.t.Helper()
	if st, res := r.show(ctx, unit, "ActiveState"), r.show(ctx, unit, "Result"); st != "failed" || res != "timeout" {
		r.t.Errorf("%s is %s, result %q, want failed by timeout\n%s", unit, st, res, r.m.Journal(ctx, unit))
	}
	if failedAfter > failWithin {
		r.t.Errorf("%s failed %s after the stall, want within %s", unit, failedAfter.Round(100*time.Millisecond), failWithin)
	}
	if p := r.unitProcs(ctx, unit); len(p) > 0 {
		r.t.Errorf("processes left in %s after the timeout: %v", unit, p)
	}
}

// started waits for the job "systemctl start --no-block" queued to make
// n2 activating.
func (r *rig) started(ctx context.Context, n2 node) {
	r.t.Helper()
	for end := time.Now().Add(30 * time.Second); r.show(ctx, n2.unit, "ActiveState") == "inactive"; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			r.t.Fatalf("%s still inactive 30 s after its start", n2.unit)
		}
	}
}

// donorSSTProcs are the PIDs of n1's unit but for the supervisor and
// mariadbd: its SST script and what the script runs.
func (r *rig) donorSSTProcs(ctx context.Context, n1 node) []string {
	var pids []string
	for _, p := range r.unitProcs(ctx, n1.unit) {
		f := strings.Fields(p)
		if len(f) < 2 || strings.HasPrefix(f[1], "galera-supervi") || f[1] == "mariadbd" {
			continue
		}
		pids = append(pids, f[0])
	}
	return pids
}

// statusBytesRate is a STATUS with bytes landed and a rate, neither 0.
var statusBytesRate = regexp.MustCompile(`^receiving SST by (\S+) (\d+% )?([\d.]+/)?([1-9][\d.]*|0\.\d*[1-9]\d*) (KiB|MiB|GiB) ([1-9][\d.]*|0\.[1-9]) MB/s`)

// stockJoin starts n2 empty and checks that its stretched SST by method
// outlives TimeoutStartSec=20, with bytes and a rate in its STATUS.
func (r *rig) stockJoin(ctx context.Context, n1, n2 node, method string) {
	t := r.t
	r.freshJoiner(ctx, n1, n2, method)
	r.donorIdle(ctx, n1)
	start := time.Now()
	r.exec(ctx, "systemctl", "start", "--no-block", n2.unit)
	var statuses []string
	rated := ""
	r.started(ctx, n2)
	for {
		if st := r.show(ctx, n2.unit, "ActiveState"); st != "activating" {
			break
		}
		st := r.show(ctx, n2.unit, "StatusText")
		if len(statuses) == 0 || statuses[len(statuses)-1] != st {
			statuses = append(statuses, st)
		}
		if m := statusBytesRate.FindStringSubmatch(st); m != nil && m[1] == method && rated == "" {
			rated = st
		}
		if time.Since(start) > 5*time.Minute {
			t.Fatalf("%s still activating after 5 minutes", n2.unit)
		}
		time.Sleep(time.Second)
	}
	took := time.Since(start)
	t.Logf("%s by %s left activating after %s; STATUS lines:\n  %s", n2.unit, method, took.Round(time.Second), strings.Join(statuses, "\n  "))
	if st := r.show(ctx, n2.unit, "ActiveState"); st != "active" {
		t.Fatalf("%s is %s (result %s) after %s, want active\n%s", n2.unit, st, r.show(ctx, n2.unit, "Result"), took, r.m.Journal(ctx, n2.unit))
	}
	if took < 60*time.Second {
		t.Errorf("the join by %s took %s; the test wants an SST of over 60 s (TimeoutStartSec=20)", method, took.Round(time.Second))
	}
	var j []journalLine // this start's: the unit's journal holds the last stall's timeout too
	for _, l := range r.journal(ctx, n2.unit) {
		if !l.t.Before(start) {
			j = append(j, l)
		}
	}
	var said []string
	for _, l := range j {
		if strings.Contains(l.msg, "SST") || strings.HasPrefix(l.msg, "phase:") {
			said = append(said, l.t.Format("15:04:05.000")+" "+l.msg)
		}
	}
	t.Logf("the joiner's log of the SST:\n  %s", strings.Join(said, "\n  "))
	if l, ok := firstLine(j, "timed out"); ok {
		t.Errorf("journal says %q", l.msg)
	}
	if _, ok := firstLine(j, "SST stall window from the unit's TimeoutStartSec stall_window=20s stall_window_source=unit unit="+n2.unit+" timeout_start=20s"); !ok {
		t.Errorf("the supervisor did not log a window derived from TimeoutStartSec")
	}
	if rated == "" {
		t.Errorf("no STATUS with bytes and a rate of the SST by %s", method)
	} else {
		t.Logf("STATUS during the SST: %s", rated)
	}
	if v := strings.TrimSpace(r.exec(ctx, "mariadb", "-S", n2.socket, "-N", "-e", "SELECT COUNT(*) FROM gs.t")); v != "24000" {
		t.Errorf("the joiner has %s rows of gs.t, want 24000", v)
	}
}

// stockStall starts n2 empty again, freezes the donor's SST processes once
// bytes flow and the start's own 20 s are over, and checks that the
// joiner's unit fails by its start timeout within 35 s, leaving nothing.
func (r *rig) stockStall(ctx context.Context, n1, n2 node, method string) {
	t := r.t
	const failWithin = 35 * time.Second // TimeoutStartSec + 15 s
	r.freshJoiner(ctx, n1, n2, method)
	r.donorIdle(ctx, n1)
	start := time.Now()
	r.exec(ctx, "systemctl", "start", "--no-block", n2.unit)
	r.started(ctx, n2)
	for {
		st := r.show(ctx, n2.unit, "StatusText")
		if time.Since(start) > 25*time.Second && statusBytesRate.MatchString(st) {
			break
		}
		if time.Since(start) > 2*time.Minute {
			t.Fatalf("no SST bytes moving 2 minutes into the start; %s: %s", n2.unit, st)
		}
		if s := r.show(ctx, n2.unit, "ActiveState"); s != "activating" {
			t.Fatalf("%s is %s before the stall\n%s", n2.unit, s, r.m.Journal(ctx, n2.unit))
		}
		time.Sleep(500 * time.Millisecond)
	}
	frozen := r.donorSSTProcs(ctx, n1)
	if len(frozen) == 0 {
		t.Fatalf("no donor SST process in %s", n1.unit)
	}
	stallAt := time.Now()
	r.exec(ctx, append([]string{"kill", "-STOP"}, frozen...)...)
	defer r.m.Exec(context.Background(), append([]string{"kill", "-CONT"}, frozen...)...)
	t.Logf("SIGSTOPped the donor's %v; %s: %s", frozen, n2.unit, r.show(ctx, n2.unit, "StatusText"))
	timedOut, failedAfter := r.waitFailed(ctx, n2.unit, stallAt)
	t.Logf("stalled SST by %s: start timeout fired %s after the stall, unit failed %s after it", method,
		timedOut.Round(100*time.Millisecond), failedAfter.Round(100*time.Millisecond))
	r.failedByTimeout(ctx, n2.unit, failedAfter, failWithin)
	r.m.Exec(ctx, append([]string{"kill", "-CONT"}, frozen...)...)
}
