package systemdtest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/notify/unit"
)

// These tests put the built galera-supervisor, the project's unit files and
// two Galera nodes (two instances of galera-supervisor@.service on loopback)
// into one container, and check them against its real systemd.

var binOnce struct {
	sync.Once
	dir string
	err error
}

// binaries builds galera-supervisor statically (the container has its own
// libc) with its wsrep_sst_native-* links, once per test binary.
func binaries(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir := filepath.Join(StateDir, fmt.Sprintf("bin-%d", os.Getpid()))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			binOnce.err = err
			return
		}
		cmd := exec.Command("go", "build", "-o", dir+"/galera-supervisor",
			"github.com/galera-supervisor/galera-supervisor/cmd/galera-supervisor")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binOnce.err = fmt.Errorf("go build galera-supervisor: %v\n%s", err, out)
			return
		}
		binOnce.dir = dir
	})
	if binOnce.err != nil {
		t.Fatal(binOnce.err)
	}
	return binOnce.dir
}

func removeBinaries() {
	if binOnce.dir != "" {
		os.RemoveAll(binOnce.dir)
	}
}

// node is one Galera node in the container; ports are fixed since the
// container has a network namespace of its own.
type node struct {
	name                        string
	port, gport, iport, sstPort int
	datadir, socket, cnf, unit  string
}

func newNode(i int) node {
	name := fmt.Sprintf("n%d", i)
	return node{
		name: name, port: 3310 + i, gport: 4557 + 10*i, iport: 4558 + 10*i, sstPort: 4434 + 10*i,
		datadir: "/var/lib/gs/" + name, socket: "/run/mysqld/" + name + ".sock",
		cnf:  "/etc/mysql/galera-supervisor/" + name + ".cnf",
		unit: "galera-supervisor@" + name + ".service",
	}
}

func (n node) config(clusterAddress string, sst map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `[mysqld]
datadir=%s
socket=%s
pid-file=/run/mysqld/%s.pid
port=%d
bind-address=127.0.0.1
skip-name-resolve
innodb_buffer_pool_size=64M
innodb_log_file_size=16M
innodb_flush_log_at_trx_commit=2
binlog_format=row
innodb_autoinc_lock_mode=2
wsrep_on=ON
wsrep_provider=/usr/lib/galera/libgalera_smm.so
wsrep_cluster_name=gs-nspawn
wsrep_cluster_address=%s
wsrep_node_name=%s
wsrep_node_address=127.0.0.1
wsrep_node_incoming_address=127.0.0.1:%d
wsrep_provider_options='base_port=%d;gmcast.listen_addr=tcp://127.0.0.1:%d;ist.recv_addr=127.0.0.1:%d;gcache.size=128M'
wsrep_sst_receive_address=127.0.0.1:%d
wsrep_sst_method=native-copy

[client]
socket=%s

[sst]
`, n.datadir, n.socket, n.name, n.port, clusterAddress, n.name, n.port, n.gport, n.gport, n.iport, n.sstPort, n.socket)
	for k, v := range sst {
		fmt.Fprintf(&b, "%s=%s\n", k, v)
	}
	return b.String()
}

// rig is a booted container with the supervisor installed.
type rig struct {
	t *testing.T
	m *Machine
}

func newRig(t *testing.T, name string) *rig {
	Require(t)
	bin := binaries(t)
	m := Boot(t, Config{Name: name, BindRO: []string{bin + ":/opt/galera-supervisor/bin"}})
	r := &rig{t: t, m: m}
	for _, l := range []string{"galera-supervisor", "wsrep_sst_native-copy", "wsrep_sst_native-backup"} {
		if err := os.Symlink("/opt/galera-supervisor/bin/galera-supervisor", m.Path("/usr/bin/"+l)); err != nil {
			t.Fatal(err)
		}
	}
	units, err := filepath.Glob("../../units/*.service")
	if err != nil || len(units) == 0 {
		t.Fatalf("no unit files in ../../units: %v", err)
	}
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		r.write("/etc/systemd/system/"+filepath.Base(u), string(b))
	}
	return r
}

// run is t.Run, with the rig's helpers failing the subtest.
func (r *rig) run(t *testing.T, name string, f func(t *testing.T)) bool {
	parent := r.t
	defer func() { r.t = parent }()
	return t.Run(name, func(t *testing.T) {
		r.t = t
		f(t)
	})
}

// nodeExec is the drop-in's ExecStart for the node units: each instance
// reads its own option file, and a stop that hangs fails within the test.
const nodeExec = "ExecStart=\n" + `ExecStart=/usr/bin/galera-supervisor run --defaults-file=/etc/mysql/galera-supervisor/%i.cnf --stop-timeout=40s $_WSREP_NEW_CLUSTER` + "\n"

// installCatalog puts the journald catalog in place, as the package does.
func (r *rig) installCatalog(ctx context.Context) {
	r.t.Helper()
	catalog, err := os.ReadFile("../../packaging/galera-supervisor.catalog")
	if err != nil {
		r.t.Fatal(err)
	}
	r.write("/usr/lib/systemd/catalog/galera-supervisor.catalog", string(catalog))
	r.exec(ctx, "journalctl", "--update-catalog")
}

func (r *rig) write(path, data string) {
	r.t.Helper()
	if err := r.m.WriteFile(path, []byte(data), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) exec(ctx context.Context, args ...string) string {
	r.t.Helper()
	out, err := r.m.Exec(ctx, args...)
	if err != nil {
		r.t.Fatal(err)
	}
	return out
}

func (r *rig) show(ctx context.Context, unit, prop string) string {
	r.t.Helper()
	v, err := r.m.Show(ctx, unit, prop)
	if err != nil {
		r.t.Fatal(err)
	}
	return v
}

// setup writes both nodes' configs and a drop-in for each unit, and
// initialises n1's datadir; n2's is empty, so it joins by SST.
func (r *rig) setup(ctx context.Context, nodes []node, sst map[string]string, dropIn string) {
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", n.gport))
	}
	for _, n := range nodes {
		r.write(n.cnf, n.config("gcomm://"+strings.Join(addrs, ","), sst))
		if dropIn != "" {
			r.write("/etc/systemd/system/"+n.unit+".d/test.conf", dropIn)
		}
		r.exec(ctx, "install", "-d", "-o", "mysql", "-g", "mysql", "-m", "0750", n.datadir)
	}
	r.exec(ctx, "mariadb-install-db", "--no-defaults", "--datadir="+nodes[0].datadir, "--user=mysql",
		"--skip-test-db", "--innodb-log-file-size=16M")
	r.exec(ctx, "systemctl", "daemon-reload")
}

// supervisor runs the galera-supervisor CLI inside the container.
func (r *rig) supervisor(ctx context.Context, args ...string) (string, int) {
	cmd := r.m.Command(ctx, append([]string{"galera-supervisor"}, args...)...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		r.t.Fatalf("galera-supervisor %s: %v", strings.Join(args, " "), err)
	}
	return string(out), code
}

// unitProcs lists "pid comm args" of the processes systemd counts in unit.
func (r *rig) unitProcs(ctx context.Context, unit string) []string {
	out := r.exec(ctx, "ps", "-e", "-o", "pid=,unit=,comm=,args=")
	var procs []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && f[1] == unit {
			procs = append(procs, f[0]+" "+strings.Join(f[2:], " "))
		}
	}
	return procs
}

// dbSize is about what a native-copy SST of n sends: the datadir without
// galera.cache and without the redo log, of which only the live part goes.
func (r *rig) dbSize(ctx context.Context, n node) int64 {
	out := r.exec(ctx, "du", "-sb", "--exclude=galera.cache", "--exclude=ib_logfile*", n.datadir)
	f := strings.Fields(out)
	size, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		r.t.Fatalf("du %s: %q", n.datadir, out)
	}
	return size
}

type journalLine struct {
	t   time.Time
	msg string
}

func (r *rig) journal(ctx context.Context, unit string) []journalLine {
	out := r.exec(ctx, "journalctl", "--no-pager", "-o", "json", "--output-fields=MESSAGE", "-u", unit)
	var lines []journalLine
	for _, l := range strings.Split(out, "\n") {
		var e struct {
			RT  string `json:"__REALTIME_TIMESTAMP"`
			Msg any    `json:"MESSAGE"`
		}
		if json.Unmarshal([]byte(l), &e) != nil {
			continue
		}
		us, _ := strconv.ParseInt(e.RT, 10, 64)
		msg, _ := e.Msg.(string)
		lines = append(lines, journalLine{time.UnixMicro(us), msg})
	}
	return lines
}

func firstLine(lines []journalLine, substr string) (journalLine, bool) {
	for _, l := range lines {
		if strings.Contains(l.msg, substr) {
			return l, true
		}
	}
	return journalLine{}, false
}

func lastLine(lines []journalLine, substr string) (journalLine, bool) {
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i].msg, substr) {
			return lines[i], true
		}
	}
	return journalLine{}, false
}

// state asks the container's manager over its bus, from the host.
func (r *rig) state(ctx context.Context, name string) unit.State {
	r.t.Helper()
	c, err := unit.Dial(ctx, r.m.BusAddress())
	if err != nil {
		r.t.Fatal(err)
	}
	defer c.Close()
	st, err := c.State(ctx, name)
	if err != nil {
		r.t.Fatal(err)
	}
	return st
}

// bootstrap starts n1 as a new cluster with "galera-supervisor bootstrap"
// over the container's system bus.
func (r *rig) bootstrap(ctx context.Context, n node) {
	r.t.Helper()
	out, code := r.supervisor(ctx, "bootstrap", "--unit", n.unit)
	if code != 0 {
		r.t.Fatalf("galera-supervisor bootstrap --unit %s: exit %d\n%s\n%s", n.unit, code, out, r.m.Journal(ctx, n.unit))
	}
	r.t.Logf("bootstrap: %s", strings.TrimSpace(out))
	if _, err := os.Stat(r.m.Path("/run/galera-supervisor-wsrep-new-cluster." + n.name)); err == nil {
		r.t.Errorf("bootstrap left its environment file behind")
	}
}

// joinSlowly makes n1 the donor of an SST of about want, with [sst] rlimit.
func (r *rig) rateFor(ctx context.Context, donor node, want time.Duration) string {
	size := r.dbSize(ctx, donor)
	rate := size / int64(want.Seconds())
	r.t.Logf("donor datadir %d bytes without redo log: rlimit=%d for an SST of about %s", size, rate, want)
	return strconv.FormatInt(rate, 10)
}

// TestSystemdSupervisor runs a two-node cluster under the real systemd:
// bootstrap through the bus, a joiner whose SST lasts over 60 s under
// TimeoutStartSec=20 (the stall window read from the unit), its progress in systemctl status, READY only at
// Synced, galera-supervisor status, a clean stop, and the bootstrap
// refusal on a node that was not the last to leave.
func TestSystemdSupervisor(t *testing.T) {
	r := newRig(t, "gs-sup")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	n1, n2 := newNode(1), newNode(2)
	dropIn := `[Service]
TimeoutStartSec=20
TimeoutStopSec=60
Restart=no
` + nodeExec
	r.setup(ctx, []node{n1, n2}, nil, dropIn)

	r.run(t, "bootstrap", func(t *testing.T) {
		r.bootstrap(ctx, n1)
		out, code := r.supervisor(ctx, "status", "--unit", n1.unit)
		if code != 0 || !strings.Contains(out, "Synced, Primary, cluster size 1") {
			t.Errorf("status of the bootstrapped n1: exit %d\n%s", code, out)
		}
	})
	if t.Failed() {
		return
	}

	// The donor reads [sst] when the SST starts: slow it to ~70 s.
	rate := r.rateFor(ctx, n1, 85*time.Second) // measured 0.9-1.4x this: >60 s
	r.write(n1.cnf, n1.config(fmt.Sprintf("gcomm://127.0.0.1:%d,127.0.0.1:%d", n1.gport, n2.gport), map[string]string{"rlimit": rate}))

	start := time.Now()
	r.exec(ctx, "systemctl", "start", "--no-block", n2.unit)
	var progressSeen string
	var statuses []string
	for {
		state := r.show(ctx, n2.unit, "ActiveState")
		if state != "activating" {
			break
		}
		st := r.show(ctx, n2.unit, "StatusText")
		if len(statuses) == 0 || statuses[len(statuses)-1] != st {
			statuses = append(statuses, st)
		}
		if progressSeen == "" && strings.Contains(st, "SST") && strings.Contains(st, "%") && strings.Contains(st, "ETA") {
			out, _ := r.m.Systemctl(ctx, "status", "--no-pager", "-n0", n2.unit)
			progressSeen = out
		}
		if time.Since(start) > 4*time.Minute {
			t.Fatalf("%s still activating after 4 minutes", n2.unit)
		}
		time.Sleep(time.Second)
	}
	took := time.Since(start)
	t.Logf("%s left activating after %s; STATUS lines seen:\n  %s", n2.unit, took.Round(time.Second), strings.Join(statuses, "\n  "))
	j2 := r.journal(ctx, n2.unit)

	r.run(t, "sst-outlives-start-timeout", func(t *testing.T) {
		if st := r.show(ctx, n2.unit, "ActiveState"); st != "active" {
			t.Fatalf("%s is %s (result %s) after %s, want active\n%s", n2.unit, st,
				r.show(ctx, n2.unit, "Result"), took, r.m.Journal(ctx, n2.unit))
		}
		if took < 60*time.Second {
			t.Errorf("the join took %s; the test wants an SST of at least 60 s (TimeoutStartSec=20)", took)
		}
		if l, ok := firstLine(j2, "timed out"); ok {
			t.Errorf("journal says %q", l.msg)
		}
		if _, ok := firstLine(j2, "SST stall window from the unit's TimeoutStartSec stall_window=20s stall_window_source=unit unit="+n2.unit+" timeout_start=20s"); !ok {
			t.Errorf("the supervisor did not log a window derived from TimeoutStartSec")
		}
		sstStart, ok1 := firstLine(j2, "SST phase sst_role=joiner sst_method=native-copy")
		sstDone, ok2 := firstLine(j2, "SST phase sst_role=joiner sst_method=native-copy sst_phase=done")
		if !ok1 || !ok2 {
			t.Fatalf("no native-copy joiner progress in the journal of %s", n2.unit)
		}
		if d := sstDone.t.Sub(sstStart.t); d < 60*time.Second {
			t.Errorf("the SST itself took %s, want at least 60 s", d)
		} else {
			t.Logf("SST took %s under TimeoutStartSec=20", d.Round(time.Second))
		}
	})

	r.run(t, "sst-options-live", func(t *testing.T) {
		// rlimit reached the donor's SST with no restart: its supervisor
		// saw the edit and handed the SST its snapshot.
		j1 := r.journal(ctx, n1.unit)
		if _, ok := firstLine(j1, "option=rlimit old=unset new="+rate+" option_group=sst option_file="+n1.cnf+" option_line="); !ok {
			t.Errorf("the journal of %s has no [sst] rlimit change with its file:line", n1.unit)
		}
		if _, ok := firstLine(j1, "option_snapshot=/run/galera-supervisor"); !ok {
			t.Errorf("the donor's SST did not read the supervisor's snapshot")
		}
	})

	r.run(t, "status-shows-progress", func(t *testing.T) {
		if progressSeen == "" {
			t.Fatalf("no STATUS with SST progress seen during the SST; lines were:\n%s", strings.Join(statuses, "\n"))
		}
		if !strings.Contains(progressSeen, "Status: \"") || !strings.Contains(progressSeen, "SST") {
			t.Errorf("systemctl status during the SST lacks the progress line:\n%s", progressSeen)
		}
		t.Logf("systemctl status during the SST:\n%s", progressSeen)
	})

	r.run(t, "ready-at-synced", func(t *testing.T) {
		active := r.state(ctx, n2.unit).ActiveEnter
		synced, ok := firstLine(j2, "Server status change joined -> synced")
		if !ok {
			t.Fatalf("no 'joined -> synced' line from mariadbd in the journal of %s", n2.unit)
		}
		own, ok := firstLine(j2, "its READY=1")
		if !ok {
			t.Errorf("the supervisor did not log mariadbd's own READY=1")
		}
		// journald stamps lines on arrival, systemd the state change on
		// READY=1: the unit may not be active before the node said Synced.
		// mariadbd's line and the server state the supervisor's probe reads
		// change together, and the line can reach journald a little later
		// (seen: 1 ms), so a small slack; a READY at mariadbd's own READY
		// would be a whole SST early.
		const slack = 250 * time.Millisecond
		if active.Before(synced.t.Add(-slack)) {
			t.Errorf("unit active at %s, before mariadbd said Synced at %s", active.Format(time.StampMicro), synced.t.Format(time.StampMicro))
		}
		if active.Before(own.t) {
			t.Errorf("unit active at %s, before mariadbd's own READY at %s", active.Format(time.StampMicro), own.t.Format(time.StampMicro))
		}
		t.Logf("mariadbd READY=1 %s, synced %s, unit active %s",
			own.t.Format(time.StampMicro), synced.t.Format(time.StampMicro), active.Format(time.StampMicro))
	})

	r.run(t, "status", func(t *testing.T) {
		out, code := r.supervisor(ctx, "status", "--json", "--unit", n2.unit)
		if code != 0 {
			t.Fatalf("status --json: exit %d\n%s", code, out)
		}
		var st struct {
			Unit struct {
				ActiveState string `json:"active_state"`
				StatusText  string `json:"status_text"`
				MainPID     int    `json:"main_pid"`
			}
			Wsrep   map[string]string
			LastSST *struct{ Role, Method, Outcome string } `json:"last_sst"`
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
		if st.Unit.ActiveState != "active" || st.Unit.MainPID == 0 || st.Wsrep["wsrep_cluster_size"] != "2" ||
			st.Wsrep["wsrep_local_state_comment"] != "Synced" {
			t.Errorf("status --json:\n%s", out)
		}
		if st.LastSST == nil || st.LastSST.Role != "joiner" || st.LastSST.Method != "native-copy" || st.LastSST.Outcome != "succeeded" {
			t.Errorf("last SST in status --json: %+v\n%s", st.LastSST, out)
		}
		human, _ := r.supervisor(ctx, "status", "--unit", n2.unit)
		t.Logf("galera-supervisor status --unit %s:\n%s", n2.unit, human)
	})

	r.run(t, "stop-clean", func(t *testing.T) {
		if out, err := r.m.Systemctl(ctx, "stop", n2.unit); err != nil {
			t.Fatalf("systemctl stop: %v\n%s", err, out)
		}
		if st, res := r.show(ctx, n2.unit, "ActiveState"), r.show(ctx, n2.unit, "Result"); st != "inactive" || res != "success" {
			t.Errorf("after stop: %s, result %s\n%s", st, res, r.m.Journal(ctx, n2.unit))
		}
		if code := r.show(ctx, n2.unit, "ExecMainStatus"); code != "0" {
			t.Errorf("supervisor exit status %s, want 0", code)
		}
		if p := r.unitProcs(ctx, n2.unit); len(p) > 0 {
			t.Errorf("processes left in %s after stop: %v", n2.unit, p)
		}
		if _, ok := firstLine(r.journal(ctx, n2.unit), "stopped cleanly"); !ok {
			t.Errorf("no clean mariadbd shutdown in the journal")
		}
	})

	r.run(t, "ready-after-ist", func(t *testing.T) {
		// While n2 is down, n1 takes writes that n2 receives by IST at its
		// next start. mariadbd accepts connections, and says READY=1,
		// before it has applied them: only Synced may make the unit active.
		q := func(sql string) { r.exec(ctx, "mariadb", "-S", n1.socket, "-e", sql) }
		q("CREATE DATABASE IF NOT EXISTS gs; CREATE TABLE gs.t (id INT AUTO_INCREMENT PRIMARY KEY, pad CHAR(200) NOT NULL) ENGINE=InnoDB")
		for i := 0; i < 60; i++ {
			q("INSERT INTO gs.t (pad) SELECT repeat('x', 200) FROM gs.seq_1_to_5000")
		}
		mark := time.Now()
		if out, err := r.m.Systemctl(ctx, "start", n2.unit); err != nil {
			t.Fatalf("start n2 for IST: %v\n%s", err, out)
		}
		var j []journalLine
		for _, l := range r.journal(ctx, n2.unit) {
			if !l.t.Before(mark) {
				j = append(j, l)
			}
		}
		own, ok1 := firstLine(j, "its READY=1")
		ist, ok2 := firstLine(j, "Receiving IST")
		synced, ok3 := firstLine(j, "joined -> synced")
		if !ok1 || !ok2 || !ok3 {
			t.Fatalf("journal of %s since %s lacks mariadbd's READY (%v), IST (%v) or Synced (%v)", n2.unit, mark, ok1, ok2, ok3)
		}
		active := r.state(ctx, n2.unit).ActiveEnter
		t.Logf("IST: mariadbd READY=1 %s, %q %s, Synced %s, unit active %s",
			own.t.Format(time.StampMicro), ist.msg, ist.t.Format(time.StampMicro), synced.t.Format(time.StampMicro), active.Format(time.StampMicro))
		// mariadbd says READY before it applies the IST: the window in
		// which a relayed READY would have made the unit active too early.
		if !own.t.Before(synced.t) {
			t.Errorf("mariadbd's READY (%s) did not come before Synced (%s): the check has no window to catch an early READY",
				own.t.Format(time.StampMicro), synced.t.Format(time.StampMicro))
		}
		if active.Before(synced.t) {
			t.Errorf("unit active at %s, before the node was Synced at %s (mariadbd's own READY was at %s)",
				active.Format(time.StampMicro), synced.t.Format(time.StampMicro), own.t.Format(time.StampMicro))
		}
	})

	r.run(t, "bootstrap-refused", func(t *testing.T) {
		// n2 leaves first, so n1 is the last: n2 must not bootstrap.
		for _, u := range []string{n2.unit, n1.unit} {
			if out, err := r.m.Systemctl(ctx, "stop", u); err != nil {
				t.Fatalf("stop %s: %v %s", u, err, out)
			}
		}
		out, code := r.supervisor(ctx, "bootstrap", "--unit", n2.unit)
		if code != 3 || !strings.Contains(out, n2.datadir+"/grastate.dat") || !strings.Contains(out, "safe_to_bootstrap: 0") ||
			!strings.Contains(out, "highest seqno") {
			t.Errorf("bootstrap of n2 (not the last to leave): exit %d, want 3:\n%s", code, out)
		}
		if st := r.show(ctx, n2.unit, "ActiveState"); st != "inactive" {
			t.Errorf("refused bootstrap left %s %s", n2.unit, st)
		}
		out, code = r.supervisor(ctx, "bootstrap", "--force", "--unit", n2.unit)
		if code != 0 {
			t.Fatalf("bootstrap --force: exit %d\n%s\n%s", code, out, r.m.Journal(ctx, n2.unit))
		}
		out, code = r.supervisor(ctx, "status", "--unit", n2.unit)
		if code != 0 || !strings.Contains(out, "Synced, Primary, cluster size 1") {
			t.Errorf("status after bootstrap --force: exit %d\n%s", code, out)
		}
		out, code = r.supervisor(ctx, "bootstrap", "--unit", n2.unit)
		if code != 4 {
			t.Errorf("bootstrap of an active unit: exit %d, want 4\n%s", code, out)
		}
	})
}

// TestSystemdSupervisorStall stalls the same SST as a new user would see it
// (the donor's SST process is SIGSTOPped once bytes flow), with the unit's
// TimeoutStartSec=20 and no --sst-stall-timeout: the supervisor reads the
// window from the unit, and the joiner's unit fails by its start timeout
// within 35 s of the stall.
func TestSystemdSupervisorStall(t *testing.T) {
	r := newRig(t, "gs-stall")
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	n1, n2 := newNode(1), newNode(2)
	const failWithin = 35 * time.Second // the deadline for TimeoutStartSec=20
	dropIn := `[Service]
TimeoutStartSec=20
TimeoutStopSec=60
Restart=no
` + nodeExec
	// [sst] as shipped: the joiner's transfer-idle-timeout (120 s) is
	// longer than the window, so systemd's timeout is what ends the start.
	r.setup(ctx, []node{n1, n2}, nil, dropIn)
	r.bootstrap(ctx, n1)
	rate := r.rateFor(ctx, n1, 70*time.Second)
	r.write(n1.cnf, n1.config(fmt.Sprintf("gcomm://127.0.0.1:%d,127.0.0.1:%d", n1.gport, n2.gport),
		map[string]string{"rlimit": rate}))

	r.exec(ctx, "systemctl", "start", "--no-block", n2.unit)
	deadline := time.Now().Add(2 * time.Minute)
	var stopped []string
	for len(stopped) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no donor SST process with bytes flowing after 2 minutes; %s: %s", n2.unit, r.show(ctx, n2.unit, "StatusText"))
		}
		time.Sleep(500 * time.Millisecond)
		if st := r.show(ctx, n2.unit, "StatusText"); !strings.Contains(st, "%") {
			continue
		}
		for _, p := range r.unitProcs(ctx, n1.unit) {
			if f := strings.Fields(p); strings.Contains(p, "wsrep_sst_native-copy") && strings.Contains(p, "donor") {
				stopped = append(stopped, f[0])
			}
		}
	}
	// Past the start's own 20 s, so that only the extensions keep it alive.
	time.Sleep(25 * time.Second)
	if st := r.show(ctx, n2.unit, "ActiveState"); st != "activating" {
		t.Fatalf("%s is %s (result %s) before the stall\n%s", n2.unit, st, r.show(ctx, n2.unit, "Result"), r.m.Journal(ctx, n2.unit))
	}
	stallAt := time.Now()
	r.exec(ctx, append([]string{"kill", "-STOP"}, stopped...)...)
	t.Cleanup(func() { r.m.Exec(context.Background(), append([]string{"kill", "-CONT"}, stopped...)...) })
	t.Logf("SIGSTOPped the donor's SST processes %v; %s: %s", stopped, n2.unit, r.show(ctx, n2.unit, "StatusText"))

	timedOut, failedAfter := r.waitFailed(ctx, n2.unit, stallAt)
	t.Logf("stalled SST: start timeout fired %s after the stall, unit failed %s after it",
		timedOut.Round(100*time.Millisecond), failedAfter.Round(100*time.Millisecond))
	j := r.journal(ctx, n2.unit)
	if _, ok := firstLine(j, "SST stall window from the unit's TimeoutStartSec stall_window=20s stall_window_source=unit unit="+n2.unit+" timeout_start=20s"); !ok {
		t.Errorf("the supervisor did not log a window derived from TimeoutStartSec")
	}
	r.failedByTimeout(ctx, n2.unit, failedAfter, failWithin)
}

// TestSystemdSupervisorWatchdog SIGSTOPs mariadbd under WatchdogSec=: the
// supervisor stops pinging, systemd's watchdog fires, and Restart= brings
// the node back with a new mariadbd. Then the new mariadbd, running, stops
// answering SQL on its socket: the same again.
func TestSystemdSupervisorWatchdog(t *testing.T) {
	r := newRig(t, "gs-wd")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	n1 := newNode(1)
	// A one-node cluster that bootstraps at every start (gcomm://), so the
	// restart needs no bootstrap.
	dropIn := `[Service]
WatchdogSec=6
TimeoutStopSec=60
RestartSec=1
ExecStart=
ExecStart=/usr/bin/galera-supervisor run --defaults-file=/etc/mysql/galera-supervisor/%i.cnf --stop-timeout=40s
`
	r.setup(ctx, []node{n1}, nil, dropIn)
	r.write(n1.cnf, n1.config("gcomm://", nil))
	if out, err := r.m.Systemctl(ctx, "start", n1.unit); err != nil {
		t.Fatalf("start %s: %v\n%s\n%s", n1.unit, err, out, r.m.Journal(ctx, n1.unit))
	}
	mainPID := r.show(ctx, n1.unit, "MainPID")
	mariadbd := strings.TrimSpace(r.exec(ctx, "pgrep", "-P", mainPID, "mariadbd"))
	if mariadbd == "" {
		t.Fatalf("no mariadbd child of the supervisor %s", mainPID)
	}
	time.Sleep(8 * time.Second) // longer than WatchdogSec: the pings must keep it alive
	if st := r.show(ctx, n1.unit, "ActiveState"); st != "active" || r.show(ctx, n1.unit, "NRestarts") != "0" {
		t.Fatalf("healthy node under WatchdogSec=6: %s, %s restarts\n%s", st, r.show(ctx, n1.unit, "NRestarts"), r.m.Journal(ctx, n1.unit))
	}

	hung := time.Now()
	r.exec(ctx, "kill", "-STOP", mariadbd)
	deadline := hung.Add(90 * time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("no restart 90 s after mariadbd (pid %s) hung\n%s", mariadbd, r.m.Journal(ctx, n1.unit))
		}
		time.Sleep(time.Second)
		if r.show(ctx, n1.unit, "NRestarts") != "0" && r.show(ctx, n1.unit, "ActiveState") == "active" {
			break
		}
	}
	t.Logf("hung mariadbd: unit restarted and active again after %s", time.Since(hung).Round(time.Second))
	j := r.journal(ctx, n1.unit)
	if _, ok := firstLine(j, "Watchdog timeout"); !ok {
		t.Errorf("no watchdog timeout in the journal of %s", n1.unit)
	}
	newMain := r.show(ctx, n1.unit, "MainPID")
	newMariadbd := strings.TrimSpace(r.exec(ctx, "pgrep", "-P", newMain, "mariadbd"))
	if newMain == mainPID || newMariadbd == "" || newMariadbd == mariadbd {
		t.Errorf("after the restart: supervisor %s (was %s), mariadbd %q (was %s)", newMain, mainPID, newMariadbd, mariadbd)
	}
	if out, _ := r.m.Exec(ctx, "ps", "-o", "pid=,stat=", "-p", mariadbd); strings.TrimSpace(out) != "" {
		t.Errorf("the hung mariadbd %s is still there: %s", mariadbd, out)
	}

	// The SQL half: mariadbd runs and is not stopped, but answers no SQL
	// on its socket (the socket file is gone, as when /run/mysqld is
	// cleaned under a running server, and the supervisor's pooled
	// connection is killed). The check fails on its query, and the
	// watchdog restarts the unit.
	time.Sleep(8 * time.Second) // the new node's pings hold past WatchdogSec
	if st := r.show(ctx, n1.unit, "ActiveState"); st != "active" || r.show(ctx, n1.unit, "NRestarts") != "1" {
		t.Fatalf("after the first restart: %s, %s restarts\n%s", st, r.show(ctx, n1.unit, "NRestarts"), r.m.Journal(ctx, n1.unit))
	}
	moved := n1.socket + ".moved"
	r.exec(ctx, "mv", n1.socket, moved)
	ids := r.exec(ctx, "mariadb", "-S", moved, "-N", "-e",
		"SELECT ID FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND USER NOT IN ('system user', 'event_scheduler')")
	if len(strings.Fields(ids)) == 0 {
		t.Fatalf("no connection of the supervisor's health check in the processlist")
	}
	for _, id := range strings.Fields(ids) {
		r.exec(ctx, "mariadb", "-S", moved, "-e", "KILL CONNECTION "+id)
	}
	unanswering := time.Now()
	deadline = unanswering.Add(90 * time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("no restart 90 s after mariadbd (pid %s) stopped answering\n%s", newMariadbd, r.m.Journal(ctx, n1.unit))
		}
		time.Sleep(time.Second)
		if st, _ := r.m.Exec(ctx, "ps", "-o", "stat=", "-p", newMariadbd); strings.HasPrefix(strings.TrimSpace(st), "T") {
			t.Fatalf("mariadbd %s is stopped: this phase must not be a SIGSTOP", newMariadbd)
		}
		if r.show(ctx, n1.unit, "NRestarts") == "2" && r.show(ctx, n1.unit, "ActiveState") == "active" {
			break
		}
	}
	t.Logf("mariadbd alive but not answering SQL: unit restarted and active again after %s", time.Since(unanswering).Round(time.Second))
	j = r.journal(ctx, n1.unit)
	if l, ok := lastLine(j, "watchdog: health check failed"); !ok || !strings.Contains(l.msg, "health:") {
		t.Errorf("the supervisor did not log a failed SQL health check: %q", l.msg)
	}
	if out, err := r.m.Systemctl(ctx, "stop", n1.unit); err != nil {
		t.Fatalf("stop: %v %s", err, out)
	}
	if p := r.unitProcs(ctx, n1.unit); len(p) > 0 {
		t.Errorf("processes left in %s after stop: %v", n1.unit, p)
	}
}
