package supervisor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/sst"
	"github.com/galera-supervisor/galera-supervisor/supervisor/galeratest"
)

// builtSupervisor is the galera-supervisor that galeratest builds once per
// test binary.
func builtSupervisor(t *testing.T) string {
	return filepath.Join(galeratest.Binaries(t), "galera-supervisor")
}

// systemdSocket is a fake NOTIFY_SOCKET: it keeps what systemd would hear.
type systemdSocket struct {
	path string
	conn *net.UnixConn
	mu   sync.Mutex
	msgs []recorded
	ch   chan recorded
}

func newSystemdSocket(t *testing.T) *systemdSocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "systemd-notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	s := &systemdSocket{path: path, conn: c, ch: make(chan recorded, 1024)}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			m := recorded{at: time.Now(), s: string(buf[:n])}
			s.mu.Lock()
			s.msgs = append(s.msgs, m)
			s.mu.Unlock()
			select {
			case s.ch <- m:
			default:
			}
		}
	}()
	t.Cleanup(func() { c.Close() })
	return s
}

func (s *systemdSocket) all() []recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recorded(nil), s.msgs...)
}

func (s *systemdSocket) statuses() []string { return statusLines(s.all()) }

// waitFor waits for a notification with line, returning it.
func (s *systemdSocket) waitFor(ctx context.Context, line string, exited <-chan struct{}) (recorded, error) {
	for {
		for _, m := range s.all() {
			if slicesContains(strings.Split(m.s, "\n"), line) {
				return m, nil
			}
		}
		select {
		case <-ctx.Done():
			return recorded{}, fmt.Errorf("no %s: %w", line, ctx.Err())
		case <-exited:
			return recorded{}, fmt.Errorf("no %s: the supervisor exited", line)
		case <-s.ch:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func slicesContains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// supervised is a galera-supervisor run process under test.
type supervised struct {
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
	err    error
}

func startSupervisor(t *testing.T, n *galeratest.Node, sd *systemdSocket, args ...string) *supervised {
	t.Helper()
	bin := builtSupervisor(t)
	logPath := filepath.Join(n.Dir, "supervisor.log")
	out, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	full := []string{"run", "--defaults-file=" + n.ConfigFile, "--runtime-dir=" + filepath.Join(n.Dir, "run"),
		"--stop-timeout=90s", "--health-interval=200ms", "--sst-stall-timeout=45s"}
	full = append(full, args...) // a later flag wins
	cmd := exec.Command(bin, full...)
	cmd.Stdout, cmd.Stderr = out, out
	// GS_TEST_NODE marks the processes so that the harness's Close finds
	// what we leave behind if this test fails half-way.
	// mariadbd finds wsrep_sst_native-* next to the built binary, first.
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sd.path, "GS_TEST_NODE="+n.Dir,
		"PATH="+filepath.Dir(bin)+":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &supervised{cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() {
		s.err = cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.exited:
			case <-time.After(2 * time.Minute):
				cmd.Process.Kill()
			}
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("supervisor log:\n%s", b)
			for _, m := range sd.all() {
				t.Logf("notify %s: %q", m.at.Format("15:04:05.000"), m.s)
			}
		}
	})
	return s
}

func (s *supervised) stop(t *testing.T, d time.Duration) int {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(d):
		t.Fatalf("supervisor did not exit within %v of SIGTERM", d)
	}
	var ee *exec.ExitError
	if errors.As(s.err, &ee) {
		return ee.ExitCode()
	}
	if s.err != nil {
		t.Fatalf("supervisor: %v", s.err)
	}
	return 0
}

// mariadbdPID finds the supervisor's mariadbd child.
func mariadbdPID(sup int) int {
	for _, s := range allStats() {
		if s.PPID == sup {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", s.PID)); err == nil && strings.HasPrefix(string(b), "mariadbd") {
				return s.PID
			}
		}
	}
	return 0
}

// TestRealJoinerReadyAfterSynced runs the built supervisor on a joiner that
// gets its data by SST (rsync, the stock script) from a bootstrapped node,
// and checks what systemd would have heard.
func TestRealJoinerReadyAfterSynced(t *testing.T) {
	galeratest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	c := galeratest.NewTest(t, galeratest.Config{Nodes: 2})
	if err := c.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Node(1).LoadData(ctx, 32<<20); err != nil {
		t.Fatal(err)
	}
	n2 := c.Node(2)
	sd := newSystemdSocket(t)
	sup := startSupervisor(t, n2, sd)

	// Watch node2's state as a client would, in parallel.
	var (
		mu       sync.Mutex
		syncedAt time.Time
		states   []string
	)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go func() {
		for watchCtx.Err() == nil {
			qctx, cancel := context.WithTimeout(watchCtx, time.Second)
			v, err := n2.Status(qctx, "wsrep_local_state_comment")
			cancel()
			if err == nil {
				mu.Lock()
				if len(states) == 0 || states[len(states)-1] != v {
					states = append(states, v)
				}
				if v == "Synced" && syncedAt.IsZero() {
					syncedAt = time.Now()
				}
				mu.Unlock()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()

	ready, err := sd.waitFor(ctx, "READY=1", sup.exited)
	if err != nil {
		t.Fatal(err)
	}
	// At READY the node must be Synced, as seen from outside, now.
	v, err := n2.Status(ctx, "wsrep_local_state_comment")
	if err != nil || v != "Synced" {
		t.Fatalf("READY=1 sent while node2 is %q (%v)", v, err)
	}
	if r, _ := n2.Status(ctx, "wsrep_ready"); r != "ON" {
		t.Errorf("READY=1 with wsrep_ready=%s", r)
	}
	stopWatch()
	mu.Lock()
	t.Logf("node2 states seen: %v; Synced first seen %v after READY", states, syncedAt.Sub(ready.at))
	mu.Unlock()
	// The joiner really joined by SST: its grastate now has the cluster's uuid.
	sts := sd.statuses()
	t.Logf("STATUS lines: %q", sts)
	if len(sts) == 0 || sts[0] == "synced" {
		t.Errorf("no STATUS before synced: %q", sts)
	}
	sawSST := false
	for _, s := range sts {
		if strings.Contains(s, "SST") {
			sawSST = true
		}
	}
	if !sawSST {
		t.Errorf("no SST phase in STATUS: %q", sts)
	}
	if !strings.Contains(ready.s, "STATUS=synced") {
		t.Errorf("READY without STATUS=synced: %q", ready.s)
	}
	// Nothing was relayed blindly from the SST monitor.
	for _, m := range sd.all() {
		if strings.Contains(m.s, "EXTEND_TIMEOUT_USEC=60000000") {
			t.Errorf("SST monitor extension relayed: %q", m.s)
		}
	}
	rows, err := c.Node(1).Checksums(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rows2, err := n2.Checksums(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(rows) != fmt.Sprint(rows2) {
		t.Errorf("checksums differ: %v vs %v", rows, rows2)
	}

	mpid := mariadbdPID(sup.cmd.Process.Pid)
	if mpid == 0 {
		t.Fatal("no mariadbd below the supervisor")
	}
	if code := sup.stop(t, 2*time.Minute); code != ExitOK {
		t.Fatalf("supervisor exit code %d after SIGTERM, want 0", code)
	}
	if err := syscall.Kill(mpid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("mariadbd %d still alive after the supervisor exited", mpid)
	}
	if left := descendants(sup.cmd.Process.Pid); len(left) > 0 {
		t.Errorf("processes left: %+v", left)
	}
	var sawStopping bool
	for _, m := range sd.all() {
		if strings.Contains(m.s, "STOPPING=1") {
			sawStopping = true
		}
	}
	if !sawStopping {
		t.Error("no STOPPING=1")
	}
	g, err := ReadGrastate(filepath.Join(n2.DataDir, "grastate.dat"))
	if err != nil {
		t.Fatal(err)
	}
	if g.Seqno == SeqnoUnknown {
		t.Errorf("clean stop left seqno -1: %+v", g)
	}
}

// TestRealRecoverAfterCrash kills a supervised node's mariadbd, checks the
// exit code, then recovers the position with "galera-supervisor recover"
// and restarts the node through "run", which must recover it too.
func TestRealRecoverAfterCrash(t *testing.T) {
	galeratest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	c := galeratest.NewTest(t, galeratest.Config{Nodes: 1})
	n1 := c.Node(1)
	sd := newSystemdSocket(t)
	sup := startSupervisor(t, n1, sd, "--wsrep-new-cluster")
	if _, err := sd.waitFor(ctx, "READY=1", sup.exited); err != nil {
		t.Fatal(err)
	}
	// A fresh datadir recovers 00000000-...:-1, which is not passed on.
	log, _ := os.ReadFile(sup.log)
	if _, start, ok := strings.Cut(string(log), "started mariadbd command=/usr/sbin/mariadbd"); !ok || strings.Contains(strings.SplitN(start, "\n", 2)[0], "--wsrep_start_position") {
		t.Errorf("fresh bootstrap: want a start without --wsrep_start_position:\n%s", log)
	}
	if err := n1.Exec(ctx, "CREATE TABLE test.t (a INT PRIMARY KEY) ENGINE=InnoDB"); err != nil {
		// the harness skips the test db; use a database of our own
		if err := n1.Exec(ctx, "CREATE DATABASE IF NOT EXISTS gs"); err != nil {
			t.Fatal(err)
		}
		if err := n1.Exec(ctx, "CREATE TABLE gs.t (a INT PRIMARY KEY) ENGINE=InnoDB"); err != nil {
			t.Fatal(err)
		}
	}
	mpid := mariadbdPID(sup.cmd.Process.Pid)
	if mpid == 0 {
		t.Fatal("no mariadbd")
	}
	syscall.Kill(mpid, syscall.SIGKILL)
	select {
	case <-sup.exited:
	case <-time.After(time.Minute):
		t.Fatal("supervisor did not exit after mariadbd was killed")
	}
	var ee *exec.ExitError
	if !errors.As(sup.err, &ee) || ee.ExitCode() != ExitMariadbd {
		t.Fatalf("supervisor: %v, want exit %d", sup.err, ExitMariadbd)
	}
	g, err := ReadGrastate(filepath.Join(n1.DataDir, "grastate.dat"))
	if err != nil {
		t.Fatal(err)
	}
	if g.Seqno != SeqnoUnknown {
		t.Fatalf("after a crash grastate seqno is %d, want -1", g.Seqno)
	}
	// "recover" alone prints the position, as galera_recovery does.
	out, err := exec.CommandContext(ctx, builtSupervisor(t), "recover", "--defaults-file="+n1.ConfigFile).Output()
	if err != nil {
		t.Fatalf("recover: %v", err)
	}
	pos := strings.TrimSpace(string(out))
	want := "--wsrep_start_position=" + g.UUID + ":"
	if !strings.HasPrefix(pos, want) {
		t.Fatalf("recover printed %q, want %s<seqno>", pos, want)
	}
	p, err := ParsePosition(strings.TrimPrefix(pos, "--wsrep_start_position="))
	if err != nil || p.Seqno < 1 {
		t.Fatalf("recovered %q: %v", pos, err)
	}
	// run recovers by itself and passes the position on.
	sd2 := newSystemdSocket(t)
	sup2 := startSupervisor(t, n1, sd2, "--wsrep-new-cluster")
	if _, err := sd2.waitFor(ctx, "READY=1", sup2.exited); err != nil {
		t.Fatal(err)
	}
	log, _ = os.ReadFile(sup2.log)
	if !bytes.Contains(log, []byte("recovered position position="+p.String())) {
		t.Errorf("run did not recover %s:\n%s", p, log)
	}
	if !slicesContains(sd2.statuses(), "recovering") {
		t.Errorf("no STATUS=recovering: %q", sd2.statuses())
	}
	seq, err := n1.Status(ctx, "wsrep_last_committed")
	if n, _ := strconv.ParseInt(seq, 10, 64); err != nil || n < p.Seqno {
		t.Errorf("wsrep_last_committed %s (%v), want >= %d", seq, err, p.Seqno)
	}
	if code := sup2.stop(t, 2*time.Minute); code != ExitOK {
		t.Fatalf("exit %d after SIGTERM", code)
	}
}

// TestRealWatchdogAndReload runs a bootstrapped node under the built
// supervisor with WATCHDOG_USEC set, as systemd does for WatchdogSec=:
// pings flow while the node is healthy, stop while mariadbd is SIGSTOPped,
// and resume after SIGCONT. SIGHUP re-reads the options and reaches
// mariadbd; SIGTERM brings STOPPING=1 and a clean stop.
func TestRealWatchdogAndReload(t *testing.T) {
	galeratest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := galeratest.NewTest(t, galeratest.Config{Nodes: 1})
	n1 := c.Node(1)
	sd := newSystemdSocket(t)
	t.Setenv("WATCHDOG_USEC", "2000000")
	sup := startSupervisor(t, n1, sd, "--wsrep-new-cluster")
	if _, err := sd.waitFor(ctx, "READY=1", sup.exited); err != nil {
		t.Fatal(err)
	}
	pings := func() int {
		n := 0
		for _, m := range sd.all() {
			if m.s == "WATCHDOG=1" {
				n++
			}
		}
		return n
	}
	time.Sleep(2500 * time.Millisecond)
	if p := pings(); p < 2 {
		t.Fatalf("%d WATCHDOG=1 in 2.5 s at WatchdogSec=2s", p)
	}
	mpid := mariadbdPID(sup.cmd.Process.Pid)
	if mpid == 0 {
		t.Fatal("no mariadbd")
	}
	syscall.Kill(mpid, syscall.SIGSTOP)
	time.Sleep(1500 * time.Millisecond) // a ping in flight may land
	before := pings()
	time.Sleep(3 * time.Second)
	stalled := pings() - before
	syscall.Kill(mpid, syscall.SIGCONT)
	if stalled != 0 {
		t.Fatalf("%d WATCHDOG=1 while mariadbd was stopped", stalled)
	}
	time.Sleep(2500 * time.Millisecond)
	if pings() == before {
		t.Fatal("WATCHDOG=1 did not resume after SIGCONT")
	}

	sup.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(sup.log)
		if bytes.Contains(b, []byte("forwarded SIGHUP to mariadbd")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("SIGHUP not forwarded")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st, err := n1.Status(ctx, "wsrep_local_state_comment"); err != nil || st != "Synced" {
		t.Fatalf("after SIGHUP node is %q (%v)", st, err)
	}
	if code := sup.stop(t, 2*time.Minute); code != ExitOK {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	var stopping, extend bool
	for _, m := range sd.all() {
		if strings.Contains(m.s, "STOPPING=1") {
			stopping = true
		}
		if stopping && strings.HasPrefix(m.s, "EXTEND_TIMEOUT_USEC=") {
			extend = true
		}
	}
	if !stopping || !extend {
		t.Errorf("STOPPING=1 %v, then EXTEND_TIMEOUT_USEC %v", stopping, extend)
	}
	if left := c.Leftovers(); len(left) > 0 {
		t.Errorf("processes left: %v", left)
	}
}

// slowNativeCopyCluster is a 2-node cluster whose SSTs go by native-copy at
// rlimit, so a test can watch one in flight. With donorBytes > 0, node1
// is bootstrapped and loaded with that much data; node2 is left to the test.
func slowNativeCopyCluster(t *testing.T, ctx context.Context, rlimit string, donorBytes int64) *galeratest.Cluster {
	t.Helper()
	c := galeratest.NewTest(t, galeratest.Config{
		Nodes:       2,
		SSTMethod:   "native-copy",
		SST:         map[string]string{"rlimit": rlimit},
		PathPrepend: []string{filepath.Dir(builtSupervisor(t))},
	})
	if donorBytes == 0 {
		return c
	}
	if err := c.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Node(1).LoadData(ctx, donorBytes); err != nil {
		t.Fatal(err)
	}
	return c
}

// donorSSTInFlight waits until the joiner's STATUS shows SST bytes moving
// and returns the PIDs of the donor's SST processes.
func donorSSTInFlight(t *testing.T, sd *systemdSocket, c *galeratest.Cluster) []int {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !slicesContainsPrefix(sd.statuses(), "receiving SST 1") {
		if time.Now().After(deadline) {
			t.Fatalf("no progress: %q", sd.statuses())
		}
		time.Sleep(50 * time.Millisecond)
	}
	donor := sstPIDs(c.Node(1).PID())
	if len(donor) == 0 {
		t.Fatal("no donor SST process")
	}
	return donor
}

// joinerSSTInFlight starts node2's supervisor to join node1, loaded with
// 32 MiB, by native-copy at 8 MiB/s, and returns once bytes move.
func joinerSSTInFlight(t *testing.T, ctx context.Context) (*galeratest.Cluster, *supervised) {
	t.Helper()
	c := slowNativeCopyCluster(t, ctx, "8M", 32<<20)
	sd := newSystemdSocket(t)
	sup := startSupervisor(t, c.Node(2), sd)
	donorSSTInFlight(t, sd, c)
	return c, sup
}

// TestRealJoinerNativeCopyKeepalive joins a node by native-copy, which
// reports progress, rate-limited so the transfer takes a few seconds: the
// supervisor shows the progress in STATUS and extends the start timeout by
// --sst-stall-timeout while bytes move, and only before READY.
func TestRealJoinerNativeCopyKeepalive(t *testing.T) {
	galeratest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	c := slowNativeCopyCluster(t, ctx, "12M", 48<<20)
	n2 := c.Node(2)
	sd := newSystemdSocket(t)
	sup := startSupervisor(t, n2, sd, "--sst-stall-timeout=7s")
	ready, err := sd.waitFor(ctx, "READY=1", sup.exited)
	if err != nil {
		t.Fatal(err)
	}
	var progressLines []string
	extends := 0
	for _, m := range sd.all() {
		for _, l := range strings.Split(m.s, "\n") {
			if v, ok := strings.CutPrefix(l, "STATUS="); ok && strings.HasPrefix(v, "receiving SST ") && strings.Contains(v, "%") {
				progressLines = append(progressLines, v)
			}
			if l == "EXTEND_TIMEOUT_USEC=7000000" {
				extends++
				if m.at.After(ready.at) {
					t.Errorf("extension after READY at %v", m.at)
				}
			}
		}
	}
	t.Logf("%d progress lines, e.g. %q; %d extensions", len(progressLines), progressLines, extends)
	if len(progressLines) < 2 {
		t.Errorf("progress lines: %q", progressLines)
	}
	if extends < 2 {
		t.Errorf("%d extensions during a transfer of several seconds", extends)
	}
	if v, err := n2.Status(ctx, "wsrep_local_state_comment"); err != nil || v != "Synced" {
		t.Fatalf("READY=1 while node2 is %q (%v)", v, err)
	}
	if code := sup.stop(t, 2*time.Minute); code != ExitOK {
		t.Fatalf("exit %d after SIGTERM", code)
	}
}

// sstPIDs lists the SST method's processes below pid (the sh -c wrapper
// and the method itself).
func sstPIDs(pid int) []int {
	var out []int
	for _, s := range descendants(pid) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", s.PID))
		if err == nil && bytes.Contains(b, []byte("wsrep_sst_")) {
			out = append(out, s.PID)
		}
	}
	return out
}

// TestRealStalledSSTStopsExtensions freezes the donor's SST process in the
// middle of a native-copy transfer: the joiner's supervisor must stop
// extending the start timeout (so systemd's TimeoutStartSec= would fire),
// and resume when the transfer moves again.
func TestRealStalledSSTStopsExtensions(t *testing.T) {
	galeratest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	c := slowNativeCopyCluster(t, ctx, "8M", 48<<20)
	sd := newSystemdSocket(t)
	const window = "EXTEND_TIMEOUT_USEC=3000000"
	sup := startSupervisor(t, c.Node(2), sd, "--sst-stall-timeout=3s")
	// Wait until bytes flow, then freeze the donor's side.
	donor := donorSSTInFlight(t, sd, c)
	for _, p := range donor {
		syscall.Kill(p, syscall.SIGSTOP)
	}
	frozen := time.Now()
	defer func() {
		for _, p := range donor {
			syscall.Kill(p, syscall.SIGCONT)
		}
	}()
	time.Sleep(8 * time.Second)
	var last time.Time
	for _, m := range sd.all() {
		if m.s == window {
			last = m.at
		}
	}
	if last.IsZero() {
		t.Fatal("no extension while the transfer moved")
	}
	if last.After(frozen.Add(1500 * time.Millisecond)) {
		t.Fatalf("extension %v after the transfer froze", last.Sub(frozen))
	}
	for _, p := range donor {
		syscall.Kill(p, syscall.SIGCONT)
	}
	thawed := time.Now()
	if _, err := sd.waitFor(ctx, "READY=1", sup.exited); err != nil {
		t.Fatal(err)
	}
	resumed := false
	for _, m := range sd.all() {
		if m.s == window && m.at.After(thawed) {
			resumed = true
		}
	}
	if !resumed {
		t.Error("no extension after the transfer moved again")
	}
	if code := sup.stop(t, 2*time.Minute); code != ExitOK {
		t.Fatalf("exit %d after SIGTERM", code)
	}
}

func slicesContainsPrefix(ss []string, p string) bool {
	for _, s := range ss {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// TestRealFailedSSTExitCode kills the donor's SST process mid-transfer: the
// joiner's mariadbd aborts, and its supervisor exits with ExitSST, the code
// a unit's RestartPreventExitStatus= stops the SST loop with.
func TestRealFailedSSTExitCode(t *testing.T) {
	galeratest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	c := slowNativeCopyCluster(t, ctx, "8M", 32<<20)
	sd := newSystemdSocket(t)
	sup := startSupervisor(t, c.Node(2), sd)
	donor := donorSSTInFlight(t, sd, c)
	for _, p := range donor {
		syscall.Kill(p, syscall.SIGKILL)
	}
	select {
	case <-sup.exited:
	case <-time.After(3 * time.Minute):
		t.Fatal("joiner's supervisor still running 3 min after the donor's SST died")
	}
	var ee *exec.ExitError
	if !errors.As(sup.err, &ee) || ee.ExitCode() != ExitSST {
		t.Fatalf("supervisor: %v, want exit %d", sup.err, ExitSST)
	}
	for _, m := range sd.all() {
		if strings.Contains(m.s, "READY=1") {
			t.Error("READY=1 for a node whose SST failed")
		}
	}
	// Nothing of the joiner's survives, wherever it re-parented.
	noneLeft(t, c.Node(2).DataDir)
}

// noneLeft fails t for each live process whose command line names dir.
func noneLeft(t *testing.T, dir string) {
	t.Helper()
	for _, st := range allStats() {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", st.PID))
		if err == nil && st.State != 'Z' && bytes.Contains(b, []byte(dir)) {
			t.Errorf("process %d left: %q", st.PID, bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		}
	}
}

// TestRealDonorStatus bootstraps node1 under the supervisor and joins node2
// by native-copy from it: node1's STATUS tells it is a donor with the
// transfer's progress, then synced again, and nothing extends a timeout
// once the unit is active.
func TestRealDonorStatus(t *testing.T) {
	galeratest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	c := slowNativeCopyCluster(t, ctx, "12M", 0)
	sd := newSystemdSocket(t)
	sup := startSupervisor(t, c.Node(1), sd, "--wsrep-new-cluster")
	ready, err := sd.waitFor(ctx, "READY=1", sup.exited)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Node(1).LoadData(ctx, 32<<20); err != nil {
		t.Fatal(err)
	}
	if err := c.Node(2).Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Node(2).WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		sts := sd.statuses()
		if len(sts) > 0 && sts[len(sts)-1] == "synced" && slicesContainsPrefix(sts, "donor") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("STATUS lines %q: want donor, then synced", sts)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("STATUS lines: %q", sd.statuses())
	if !slicesContainsPrefix(sd.statuses(), "donor: sending SST by native-copy to ") {
		t.Errorf("no donor progress in %q", sd.statuses())
	}
	for _, m := range sd.all() {
		if m.at.After(ready.at) && strings.Contains(m.s, "EXTEND_TIMEOUT_USEC") && !strings.Contains(m.s, "STOPPING") {
			t.Errorf("extension while active: %q", m.s)
		}
	}
	if err := c.Node(2).Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if code := sup.stop(t, 2*time.Minute); code != ExitOK {
		t.Fatalf("exit %d after SIGTERM", code)
	}
}

// TestRealAccessDenied gives the health check credentials the server
// refuses: STATUS says so, READY=1 never comes, and the stop is still clean.
func TestRealAccessDenied(t *testing.T) {
	galeratest.Require(t)
	c := galeratest.NewTest(t, galeratest.Config{Nodes: 1})
	n1 := c.Node(1)
	// The node's config plus credentials (--defaults-extra-file is ignored
	// next to --defaults-file, as in MariaDB).
	cnf, err := os.ReadFile(n1.ConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	cnf = append(cnf, "\n[galera-supervisor]\nuser = gs_nobody\npassword = wrong\n"...)
	withCreds := filepath.Join(n1.Dir, "supervisor.cnf")
	if err := os.WriteFile(withCreds, cnf, 0o644); err != nil {
		t.Fatal(err)
	}
	sd := newSystemdSocket(t)
	sup := startSupervisor(t, n1, sd, "--defaults-file="+withCreds, "--wsrep-new-cluster")
	deadline := time.Now().Add(2 * time.Minute)
	for !anyContains(sd.statuses(), "health check: access denied") {
		if time.Now().After(deadline) {
			t.Fatalf("no access denied in STATUS: %q", sd.statuses())
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	for _, m := range sd.all() {
		if strings.Contains(m.s, "READY=1") {
			t.Fatal("READY=1 without a working health check")
		}
	}
	log, _ := os.ReadFile(sup.log)
	if !bytes.Contains(log, []byte(`as \"gs_nobody\": access denied`)) || !bytes.Contains(log, []byte("[galera-supervisor]")) {
		t.Errorf("log does not explain the denial:\n%s", log)
	}
	if code := sup.stop(t, 2*time.Minute); code != ExitOK {
		t.Fatalf("exit %d after SIGTERM", code)
	}
}

func anyContains(ss []string, sub string) bool {
	for _, s := range ss {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// TestRealPowerLossMidSST kills the joiner's whole tree (supervisor,
// mariadbd, its SST process) with SIGKILL once half the transfer is in, as
// a power loss would: the staging directory is left behind, marked with
// the cluster it is of. The next start keeps it, and the SST it asks for
// resumes from it: the donor sends at most 60 % of the datadir, and the
// node ends Synced with every table equal to the donor's.
func TestRealPowerLossMidSST(t *testing.T) {
	galeratest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	t0 := time.Now()
	// A datadir of data more than redo log, and chunks of 1 MiB: a cut
	// loses the chunks in flight, one per stream.
	c := galeratest.NewTest(t, galeratest.Config{
		Nodes:       2,
		SSTMethod:   "native-copy",
		SST:         map[string]string{"rlimit": "16M", "transfer-chunk-size": "1M"},
		PathPrepend: []string{filepath.Dir(builtSupervisor(t))},
	})
	n1, n2 := c.Node(1), c.Node(2)
	for _, n := range []*galeratest.Node{n1, n2} {
		if err := n.SetMysqld(map[string]string{"innodb_log_file_size": "16M"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n1.LoadData(ctx, 96<<20); err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster loaded in %s", time.Since(t0).Round(time.Second))
	t0 = time.Now()
	sd := newSystemdSocket(t)
	sup := startSupervisor(t, n2, sd)
	// The donor's redo log goes as its live part only: half of a full
	// SST is at least half of the datadir without it.
	fi, err := os.Stat(filepath.Join(n1.DataDir, "ib_logfile0"))
	if err != nil {
		t.Fatal(err)
	}
	redo := float64(fi.Size()) / (1 << 20)
	pct := regexp.MustCompile(`^receiving SST (?:by \S+ )?[0-9]+% ([0-9.]+)/([0-9.]+) MiB`)
	var at string
	for at == "" {
		time.Sleep(20 * time.Millisecond)
		for _, l := range sd.statuses() {
			if m := pct.FindStringSubmatch(l); m != nil {
				done, _ := strconv.ParseFloat(m[1], 64)
				total, _ := strconv.ParseFloat(m[2], 64)
				if done >= (total-redo)/2 {
					at = l
				}
			}
		}
		select {
		case <-sup.exited:
			t.Fatal("node2's supervisor exited before half of the SST")
		case <-ctx.Done():
			t.Fatalf("the SST never reached half: %q", sd.statuses())
		default:
		}
	}
	t.Logf("killing node2's tree %s after its start at %q", time.Since(t0).Round(100*time.Millisecond), at)
	tree := []int{sup.cmd.Process.Pid}
	for _, s := range descendants(sup.cmd.Process.Pid) {
		tree = append(tree, s.PID)
	}
	for _, p := range tree {
		syscall.Kill(p, syscall.SIGKILL)
	}
	<-sup.exited
	staging := filepath.Join(n2.DataDir, sst.StagingDirName)
	if _, err := os.Stat(staging); err != nil {
		t.Fatalf("no staging left by the killed joiner: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, p := range tree {
		for alive(p) {
			if time.Now().After(deadline) {
				t.Fatalf("process %d outlived SIGKILL by 30s", p)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	o1, o2 := logSize(n1.ErrorLog), logSize(n2.ErrorLog)
	t1 := time.Now()
	sd2 := newSystemdSocket(t)
	sup2 := startSupervisor(t, n2, sd2)
	if _, err := sd2.waitFor(ctx, "READY=1", sup2.exited); err != nil {
		t.Fatal(err)
	}
	t.Logf("node2 READY %s after its restart", time.Since(t1).Round(100*time.Millisecond))
	b, _ := os.ReadFile(sup2.log)
	if !strings.Contains(string(b), "keeping the staging directory an interrupted SST left: the next SST from a donor of that cluster resumes from it path="+staging+" cluster=") {
		t.Errorf("the second start did not say it kept the staging:\n%s", b)
	}
	if err := galeratest.CompareChecksums(mustChecksums(t, ctx, n1), mustChecksums(t, ctx, n2)); err != nil {
		t.Error(err)
	}
	jl, dl := logFrom(n2.ErrorLog, o2), logFrom(n1.ErrorLog, o1)
	if !regexp.MustCompile(`resume: bytes already in staging .*resume_staged_bytes=[0-9]+ sst_bytes=[0-9]+`).MatchString(jl) {
		t.Errorf("the joiner does not say how much it resumed from:\n%s", jl)
	}
	m := regexp.MustCompile(`delta: bytes that differ .*delta_differ_bytes=([0-9]+) delta_total_bytes=([0-9]+)`).FindStringSubmatch(dl)
	if m == nil {
		t.Fatalf("the donor does not say how much it sent:\n%s", dl)
	}
	// What a full SST would send now: the datadir less the dead part of
	// the redo log.
	sent, all := inMiB(m[1]), inMiB(m[2])
	if h := regexp.MustCompile(`redo log: sending its live part only .*ib_logfile0 lsn_from=[0-9]+ lsn_to=[0-9]+ bytes=([0-9]+) file_bytes=([0-9]+)`).FindStringSubmatch(dl); h != nil {
		all -= inMiB(h[2]) - inMiB(h[1])
	}
	t.Logf("resumed SST sent %.1f MiB of a full SST's %.1f MiB (%.0f%%)", sent, all, 100*sent/all)
	if sent > 0.6*all {
		t.Errorf("the resumed SST sent %.1f of %.1f MiB, more than 60%%", sent, all)
	}
	for _, n := range []string{sst.StagingDirName, sst.ResumeName} {
		if _, err := os.Lstat(filepath.Join(n2.DataDir, n)); err == nil {
			t.Errorf("%s left after the resumed SST", n)
		}
	}
	if code := sup2.stop(t, 2*time.Minute); code != ExitOK {
		t.Fatalf("exit %d after SIGTERM", code)
	}
}

func mustChecksums(t *testing.T, ctx context.Context, n *galeratest.Node) map[string]string {
	t.Helper()
	s, err := n.Checksums(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func logSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logFrom is what was appended to the log at path after off.
func logFrom(path string, off int64) string {
	b, _ := os.ReadFile(path)
	if off > int64(len(b)) {
		off = 0
	}
	return string(b[off:])
}

// inMiB reads a count of bytes as MiB.
func inMiB(bytes string) float64 {
	v, _ := strconv.ParseFloat(bytes, 64)
	return v / (1 << 20)
}
