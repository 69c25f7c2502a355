package supervisor

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/internal/testutil"

	"github.com/galera-supervisor/galera-supervisor/notify"
	"github.com/galera-supervisor/galera-supervisor/notify/logging/logtest"
	"github.com/galera-supervisor/galera-supervisor/sst"
)

// fakeHealth reads the fake mariadbd's wsrep state from a file.
type fakeHealth struct{ dir string }

func (h fakeHealth) Check(ctx context.Context) (NodeState, error) {
	b, err := os.ReadFile(filepath.Join(h.dir, "state"))
	if err != nil {
		return NodeState{}, errors.New("fake: server not answering")
	}
	c := string(b)
	return NodeState{Comment: c, Ready: c == "Synced", ClusterStatus: "Primary"}, nil
}

func (fakeHealth) Close() error { return nil }

// recorder stands in for systemd: every notification, with its time.
type recorder struct {
	mu   sync.Mutex
	msgs []recorded
	dir  string
}

type recorded struct {
	at     time.Time
	s      string
	synced bool // the fake's state was Synced when this was sent
}

func (r *recorder) Notify(s string) error {
	b, _ := os.ReadFile(filepath.Join(r.dir, "state"))
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, recorded{time.Now(), s, string(b) == "Synced"})
	return nil
}

func (r *recorder) all() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.msgs...)
}

// with returns the notifications containing line.
func (r *recorder) with(line string) []recorded {
	var out []recorded
	for _, m := range r.all() {
		for _, l := range strings.Split(m.s, "\n") {
			if l == line || strings.HasSuffix(line, "=") && strings.HasPrefix(l, line) {
				out = append(out, m)
				break
			}
		}
	}
	return out
}

type fakeNode struct {
	t    *testing.T
	dir  string
	sup  *Supervisor
	rec  *recorder
	errc chan error
	stop context.CancelFunc
	opts int // LoadOptions calls
	mu   sync.Mutex
}

func startFake(t *testing.T, mode string, mod func(*Config, string)) *fakeNode {
	t.Helper()
	dir := t.TempDir()
	datadir := filepath.Join(dir, "data")
	if err := os.Mkdir(datadir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(filepath.Join(dir, "mariadbd.out"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	n := &fakeNode{t: t, dir: dir, rec: &recorder{dir: dir}, errc: make(chan error, 1)}
	cfg := Config{
		Mariadbd: self,
		LoadOptions: func(context.Context) (Options, error) {
			n.mu.Lock()
			n.opts++
			n.mu.Unlock()
			return Options{Server: map[string]string{"datadir": datadir, "wsrep-on": "ON", "user": "root"}}, nil
		},
		NewHealth:      func(Options) Health { return fakeHealth{dir} },
		RuntimeDir:     filepath.Join(dir, "run"),
		StopTimeout:    3 * time.Second,
		StallTimeout:   400 * time.Millisecond,
		HealthInterval: 50 * time.Millisecond,
		Systemd:        n.rec,
		Stdout:         out,
		Stderr:         out,
		Env:            append(os.Environ(), "GS_FAKE_MARIADBD="+mode, "GS_FAKE_DIR="+dir),
		Log:            logtest.New(t),
	}
	if mod != nil {
		mod(&cfg, datadir)
	}
	n.sup = New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	n.stop = cancel
	go func() { n.errc <- n.sup.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-n.errc:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return")
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "mariadbd.out"))
			t.Logf("fake mariadbd output:\n%s", b)
			for _, m := range n.rec.all() {
				t.Logf("notify %s: %q", m.at.Format("15:04:05.000"), m.s)
			}
		}
	})
	return n
}

func (n *fakeNode) waitReady() {
	n.t.Helper()
	select {
	case <-n.sup.Ready():
	case err := <-n.errc:
		n.errc <- err // for Cleanup
		n.t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(15 * time.Second):
		n.t.Fatal("not ready after 15s")
	}
}

// result stops waiting for Run's return.
func (n *fakeNode) result(d time.Duration) error {
	n.t.Helper()
	select {
	case err := <-n.errc:
		n.errc <- err // for Cleanup
		return err
	case <-time.After(d):
		n.t.Fatalf("Run did not return within %v", d)
		return nil
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var e *ExitError
	if errors.As(err, &e) {
		return e.Code
	}
	return -1
}

// events reads the fake's timeline: name -> unix nanoseconds.
func (n *fakeNode) events() map[string]time.Time {
	b, _ := os.ReadFile(filepath.Join(n.dir, "events"))
	m := map[string]time.Time{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, " ")
		if !ok {
			continue
		}
		ns, _ := strconv.ParseInt(v, 10, 64)
		m[k] = time.Unix(0, ns)
	}
	return m
}

func alive(pid int) bool {
	s, err := readStat(pid)
	return err == nil && s.State != 'Z'
}

func TestReadyOnlyWhenSynced(t *testing.T) {
	n := startFake(t, "normal", nil)
	n.waitReady()
	ready := n.rec.with("READY=1")
	if len(ready) != 1 {
		t.Fatalf("%d READY=1, want 1", len(ready))
	}
	ev := n.events()
	if ev["child-ready"].IsZero() || ev["synced"].IsZero() {
		t.Fatalf("fake timeline incomplete: %v", ev)
	}
	if !ready[0].synced || ready[0].at.Before(ev["synced"]) {
		t.Fatalf("READY=1 at %v, before Synced at %v (mariadbd's READY at %v)", ready[0].at, ev["synced"], ev["child-ready"])
	}
	if !strings.Contains(ready[0].s, "STATUS=synced") {
		t.Errorf("READY without STATUS=synced: %q", ready[0].s)
	}
	// Before READY, the STATUS told the phase, and InnoDB's extension was
	// relayed.
	if len(n.rec.with("STATUS=starting")) == 0 && len(n.rec.with("STATUS=joined, catching up")) == 0 {
		t.Error("no STATUS before READY")
	}
	if len(n.rec.with("EXTEND_TIMEOUT_USEC=120000000")) != 1 {
		t.Error("InnoDB's EXTEND_TIMEOUT_USEC not relayed once")
	}
	pid := n.sup.PID()
	n.stop()
	if err := n.result(10 * time.Second); err != nil {
		t.Fatalf("Run after SIGTERM: %v, want nil", err)
	}
	if alive(pid) {
		t.Errorf("mariadbd %d still alive", pid)
	}
	if len(n.rec.with("STOPPING=1")) != 1 || len(n.rec.with("STATUS=stopping")) == 0 {
		t.Error("no STOPPING=1 with STATUS=stopping")
	}
	argv, _ := os.ReadFile(filepath.Join(n.dir, "argv"))
	if strings.Contains(string(argv), "--wsrep_start_position") || strings.Contains(string(argv), "--wsrep-new-cluster") {
		t.Errorf("unexpected mariadbd args:\n%s", argv)
	}
}

func TestStopTimeoutKills(t *testing.T) {
	n := startFake(t, "ignore-term", func(c *Config, _ string) { c.StopTimeout = 500 * time.Millisecond })
	n.waitReady()
	pid := n.sup.PID()
	start := time.Now()
	n.stop()
	err := n.result(10 * time.Second)
	if code := exitCode(err); code != ExitStopTimeout {
		t.Fatalf("exit code %d (%v), want %d", code, err, ExitStopTimeout)
	}
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Errorf("killed after %v, before the stop timeout", d)
	}
	if alive(pid) {
		t.Errorf("mariadbd %d still alive", pid)
	}
}

func TestCrashExitCode(t *testing.T) {
	n := startFake(t, "crash", nil)
	err := n.result(10 * time.Second)
	if code := exitCode(err); code != ExitMariadbd {
		t.Fatalf("exit code %d (%v), want %d", code, err, ExitMariadbd)
	}
	if len(n.rec.with("READY=1")) != 0 {
		t.Error("READY=1 for a crashed node")
	}
}

// TestSSTFailAbortHangs: mariadbd hangs in its abort after the SST failed;
// the supervisor kills it after AbortGrace and exits with ExitSST.
func TestSSTFailAbortHangs(t *testing.T) {
	n := startFake(t, "sst-fail-hang", func(c *Config, _ string) { c.AbortGrace = 2 * time.Second })
	err := n.result(20 * time.Second)
	if code := exitCode(err); code != ExitSST {
		t.Fatalf("exit code %d (%v), want %d", code, err, ExitSST)
	}
	if !strings.Contains(err.Error(), "signal: killed") || !strings.Contains(err.Error(), "donor went away") {
		t.Errorf("error should tell mariadbd was killed after the SST failed: %v", err)
	}
}

func TestSSTFailExitCode(t *testing.T) {
	n := startFake(t, "sst-fail", nil)
	err := n.result(10 * time.Second)
	if code := exitCode(err); code != ExitSST {
		t.Fatalf("exit code %d (%v), want %d", code, err, ExitSST)
	}
	if !strings.Contains(err.Error(), "donor went away") {
		t.Errorf("error does not carry the SST's: %v", err)
	}
	if m := n.rec.with("EXTEND_TIMEOUT_USEC=60000000"); len(m) != 0 {
		t.Errorf("the SST monitor's blind extension was relayed: %q", m[0].s)
	}
	if len(n.rec.with("STATUS=receiving SST ")) == 0 && !anyStatusPrefix(n.rec, "receiving SST") {
		t.Error("no receiving SST status")
	}
}

func anyStatusPrefix(r *recorder, p string) bool {
	for _, m := range r.with("STATUS=") {
		for _, l := range strings.Split(m.s, "\n") {
			if strings.HasPrefix(l, "STATUS="+p) {
				return true
			}
		}
	}
	return false
}

func TestSSTKeepaliveFollowsProgress(t *testing.T) {
	n := startFake(t, "sst-progress", nil)
	n.waitReady()
	window := "EXTEND_TIMEOUT_USEC=400000"
	ext := n.rec.with(window)
	if len(ext) < 2 {
		t.Fatalf("%d extensions while the SST moved, want >= 2", len(ext))
	}
	stalled, err := os.Stat(filepath.Join(n.dir, "stalled"))
	if err != nil {
		t.Fatal(err)
	}
	// During the stall (3 s, longer than the 400 ms window) no extension:
	// systemd's timeout could fire. The margin at the start is for events
	// sent before the stall but handled late on a loaded machine.
	from, to := stalled.ModTime().Add(stallSlack), stalled.ModTime().Add(stockStall-50*time.Millisecond)
	for _, m := range ext {
		if m.at.After(from) && m.at.Before(to) {
			t.Errorf("extension at +%v into a stall", m.at.Sub(stalled.ModTime()))
		}
	}
	if len(n.rec.with("EXTEND_TIMEOUT_USEC=60000000")) != 0 {
		t.Error("the SST monitor's blind extension was relayed")
	}
	if !anyStatusPrefix(n.rec, "receiving SST ") {
		t.Error("no progress STATUS")
	}
	// None once READY=1 went out. (The fake's own state may turn Synced
	// before a loaded supervisor has seen the phase before it, which
	// earns its one window: that is no extension after Synced.)
	ready := n.rec.with("READY=1")
	if len(ready) == 0 {
		t.Fatal("no READY=1")
	}
	for _, m := range n.rec.with(window) {
		if m.at.After(ready[0].at) {
			t.Errorf("extension at %v, after READY=1 at %v", m.at, ready[0].at)
		}
	}
}

func writeGrastate(t *testing.T, datadir string, seqno int, safe int) {
	t.Helper()
	s := "# GALERA saved state\nversion: 2.1\nuuid:    8fa998c1-e59b-11f1-82b9-9e02990180a0\nseqno:   " +
		strconv.Itoa(seqno) + "\nsafe_to_bootstrap: " + strconv.Itoa(safe) + "\n"
	if err := os.WriteFile(filepath.Join(datadir, "grastate.dat"), []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRecoverUnknownSeqno(t *testing.T) {
	n := startFake(t, "normal", func(c *Config, datadir string) {
		writeGrastate(t, datadir, -1, 0)
		c.ExtraArgs = []string{"--innodb-buffer-pool-size=64M"}
	})
	n.waitReady()
	rec, _ := os.ReadFile(filepath.Join(n.dir, "recover-argv"))
	for _, a := range []string{"--wsrep-recover", "--disable-log-error", "--innodb-buffer-pool-size=64M"} {
		if !strings.Contains(string(rec), a) {
			t.Errorf("recovery run lacks %s: %s", a, rec)
		}
	}
	argv, _ := os.ReadFile(filepath.Join(n.dir, "argv"))
	if !strings.Contains(string(argv), "--wsrep_start_position="+fakePosition) {
		t.Errorf("mariadbd not given the recovered position:\n%s", argv)
	}
	if !anyStatusPrefix(n.rec, "recovering") {
		t.Error("no STATUS=recovering")
	}
}

// A joiner killed mid-swap: the new snapshot's grastate.dat (seqno 17) is
// in place, the old one (seqno -1) moved aside. The supervisor must put the
// old datadir back before it reads grastate, so recovery runs on it.
func TestInterruptedSwapRolledBack(t *testing.T) {
	var datadir string
	n := startFake(t, "normal", func(c *Config, d string) {
		datadir = d
		old := filepath.Join(d, sst.OldDirName)
		testutil.Must(t, os.Mkdir(old, 0o750))
		writeGrastate(t, old, -1, 0)
		testutil.Must(t, os.WriteFile(filepath.Join(old, "ibdata1"), []byte("old"), 0o640))
		writeGrastate(t, d, 17, 0)
		testutil.Must(t, os.WriteFile(filepath.Join(d, "ibdata1"), []byte("new"), 0o640))
		testutil.Must(t, os.WriteFile(filepath.Join(d, sst.JournalName), []byte("grastate.dat\nibdata1\n"), 0o640))
		testutil.Must(t, os.MkdirAll(filepath.Join(d, sst.StagingDirName, "db"), 0o750))
	})
	n.waitReady()
	if b, _ := os.ReadFile(filepath.Join(datadir, "ibdata1")); string(b) != "old" {
		t.Errorf("ibdata1 holds %q, want the old datadir's", b)
	}
	if _, err := os.Stat(filepath.Join(n.dir, "recover-argv")); err != nil {
		t.Error("no recovery on the restored datadir (its grastate says seqno -1)")
	}
	for _, name := range []string{sst.OldDirName, sst.JournalName, sst.StagingDirName} {
		if _, err := os.Lstat(filepath.Join(datadir, name)); err == nil {
			t.Errorf("%s left in the datadir", name)
		}
	}
}

func TestRecoverSkippedWhenSeqnoKnown(t *testing.T) {
	n := startFake(t, "normal", func(c *Config, datadir string) { writeGrastate(t, datadir, 17, 1) })
	n.waitReady()
	if _, err := os.Stat(filepath.Join(n.dir, "recover-argv")); err == nil {
		t.Error("recovery ran with a known seqno")
	}
}

func TestRecoverFails(t *testing.T) {
	n := startFake(t, "recover-fail", func(c *Config, datadir string) { writeGrastate(t, datadir, -1, 1) })
	err := n.result(10 * time.Second)
	if code := exitCode(err); code != ExitRecovery {
		t.Fatalf("exit code %d (%v), want %d", code, err, ExitRecovery)
	}
	if !strings.Contains(err.Error(), "Plugin initialization aborted") {
		t.Errorf("error lacks the log's tail: %v", err)
	}
	if _, err := os.Stat(filepath.Join(n.dir, "argv")); err == nil {
		t.Error("mariadbd started after a failed recovery")
	}
}

func TestBootstrapRefused(t *testing.T) {
	n := startFake(t, "normal", func(c *Config, datadir string) {
		writeGrastate(t, datadir, 5, 0)
		c.NewCluster = true
	})
	err := n.result(10 * time.Second)
	if code := exitCode(err); code != ExitBootstrapRefused {
		t.Fatalf("exit code %d (%v), want %d", code, err, ExitBootstrapRefused)
	}
}

// grastate.dat cut short by a crash while Galera rewrote it: the position
// is unknown, so InnoDB's is recovered; with no InnoDB data the node joins
// by SST; a bootstrap cannot read safe_to_bootstrap and is refused.
func TestBadGrastate(t *testing.T) {
	for _, tc := range []struct {
		name             string
		ibdata, newClust bool
		wantRecover      bool
		wantCode         int
	}{
		{"with InnoDB data", true, false, true, 0},
		{"empty datadir", false, false, false, 0},
		{"bootstrap", true, true, false, ExitBootstrapRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := startFake(t, "normal", func(c *Config, datadir string) {
				testutil.Must(t, os.WriteFile(filepath.Join(datadir, "grastate.dat"), []byte("# GALERA saved state\nversion: 2.1\n"), 0o644))
				if tc.ibdata {
					testutil.Must(t, os.WriteFile(filepath.Join(datadir, "ibdata1"), []byte("x"), 0o640))
				}
				c.NewCluster = tc.newClust
			})
			if tc.wantCode != 0 {
				err := n.result(10 * time.Second)
				if code := exitCode(err); code != tc.wantCode || !strings.Contains(err.Error(), "grastate.dat: grastate: no uuid") {
					t.Fatalf("exit %d (%v), want %d naming the file", code, err, tc.wantCode)
				}
				return
			}
			n.waitReady()
			_, err := os.Stat(filepath.Join(n.dir, "recover-argv"))
			if got := err == nil; got != tc.wantRecover {
				t.Errorf("recovery ran: %v, want %v", got, tc.wantRecover)
			}
			if tc.wantRecover {
				// No SST was under way: rewritten from the recovered
				// position, or Galera would take a full SST.
				p, _ := ParsePosition(fakePosition)
				g, err := ReadGrastate(filepath.Join(n.dir, "data", "grastate.dat"))
				if err != nil || g.UUID != p.UUID || g.Seqno != SeqnoUnknown || g.SafeToBootstrap {
					t.Errorf("grastate.dat after the start: %+v, %v; want uuid %s, seqno -1, safe_to_bootstrap 0", g, err, p.UUID)
				}
			}
		})
	}
}

func TestBootstrapAllowed(t *testing.T) {
	n := startFake(t, "normal", func(c *Config, datadir string) {
		writeGrastate(t, datadir, 5, 1)
		c.NewCluster = true
	})
	n.waitReady()
	argv, _ := os.ReadFile(filepath.Join(n.dir, "argv"))
	if !strings.Contains(string(argv), "--wsrep-new-cluster") {
		t.Errorf("no --wsrep-new-cluster:\n%s", argv)
	}
}

// A fresh datadir (mariadb-install-db's, no grastate.dat) bootstraps
// without --wsrep_start_position: its recovered 00000000-...:-1 says
// nothing, and is mariadbd's default anyway.
func TestFreshBootstrapNoPosition(t *testing.T) {
	n := startFake(t, "recover-zero", func(c *Config, datadir string) {
		testutil.Must(t, os.WriteFile(filepath.Join(datadir, "ibdata1"), []byte("x"), 0o640))
		c.NewCluster = true
	})
	n.waitReady()
	if _, err := os.Stat(filepath.Join(n.dir, "recover-argv")); err != nil {
		t.Fatal("no recovery run on a datadir with InnoDB data")
	}
	argv, _ := os.ReadFile(filepath.Join(n.dir, "argv"))
	if strings.Contains(string(argv), "--wsrep_start_position") || !strings.Contains(string(argv), "--wsrep-new-cluster") {
		t.Errorf("mariadbd args:\n%s\nwant --wsrep-new-cluster and no --wsrep_start_position", argv)
	}
}

func TestNoOrphans(t *testing.T) {
	if err := SetSubreaper(); err != nil {
		t.Fatal(err)
	}
	n := startFake(t, "grandchildren", nil)
	n.waitReady()
	b, err := os.ReadFile(filepath.Join(n.dir, "grandchildren"))
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		p, _ := strconv.Atoi(f)
		pids = append(pids, p)
	}
	if len(pids) != 2 {
		t.Fatalf("grandchildren %v", pids)
	}
	for _, p := range pids {
		if !alive(p) {
			t.Fatalf("grandchild %d not running before the stop", p)
		}
	}
	n.stop()
	if err := n.result(15 * time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, p := range pids {
		if err := syscall.Kill(p, 0); !errors.Is(err, syscall.ESRCH) {
			st, _ := readStat(p)
			t.Errorf("grandchild %d left behind (state %c)", p, st.State)
		}
	}
}

func TestReloadForwardsSIGHUP(t *testing.T) {
	n := startFake(t, "normal", nil)
	n.waitReady()
	n.sup.Reload()
	deadline := time.Now().Add(5 * time.Second)
	for n.events()["sighup"].IsZero() {
		if time.Now().After(deadline) {
			t.Fatal("mariadbd got no SIGHUP")
		}
		time.Sleep(20 * time.Millisecond)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.opts < 2 {
		t.Errorf("option files read %d times, want a re-read", n.opts)
	}
}

func TestWatchdogStopsOnSIGSTOP(t *testing.T) {
	n := startFake(t, "normal", func(c *Config, _ string) { c.Watchdog = 200 * time.Millisecond })
	n.waitReady()
	time.Sleep(300 * time.Millisecond)
	if len(n.rec.with("WATCHDOG=1")) == 0 {
		t.Fatal("no WATCHDOG=1 while healthy")
	}
	pid := n.sup.PID()
	syscall.Kill(pid, syscall.SIGSTOP)
	defer syscall.Kill(pid, syscall.SIGCONT)
	time.Sleep(400 * time.Millisecond) // an in-flight ping may land
	before := len(n.rec.with("WATCHDOG=1"))
	time.Sleep(600 * time.Millisecond)
	if after := len(n.rec.with("WATCHDOG=1")); after != before {
		t.Fatalf("%d WATCHDOG=1 while mariadbd was stopped", after-before)
	}
	syscall.Kill(pid, syscall.SIGCONT)
	time.Sleep(400 * time.Millisecond)
	if len(n.rec.with("WATCHDOG=1")) == before {
		t.Error("WATCHDOG=1 did not resume after SIGCONT")
	}
}

// TestNotifyOverSocket runs the relay end to end over unix sockets: the
// fake mariadbd's datagrams reach our socket, and ours reach a fake
// systemd listening where NOTIFY_SOCKET would point.
func TestNotifyOverSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "systemd.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	got := make(chan string, 256)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(got)
				return
			}
			got <- string(buf[:n])
		}
	}()
	sock := notify.NewSocket(path)
	defer sock.Close()
	n := startFake(t, "normal", func(c *Config, _ string) { c.Systemd = sock })
	n.waitReady()
	var seen []string
	deadline := time.After(5 * time.Second)
	for {
		select {
		case m := <-got:
			seen = append(seen, m)
			if strings.HasPrefix(m, "READY=1") {
				b, _ := os.ReadFile(filepath.Join(n.dir, "state"))
				if string(b) != "Synced" {
					t.Fatalf("READY=1 over the socket while the node is %q", b)
				}
				for _, s := range seen {
					if s == "READY=1\nSTATUS=Taking your SQL requests now...\n" {
						t.Fatal("mariadbd's READY relayed verbatim")
					}
				}
				return
			}
		case <-deadline:
			t.Fatalf("no READY=1 over the socket; got %q", seen)
		}
	}
}

func TestStopDuringRecovery(t *testing.T) {
	n := startFake(t, "recover-hang", func(c *Config, datadir string) { writeGrastate(t, datadir, -1, 1) })
	deadline := time.Now().Add(10 * time.Second)
	for !anyStatusPrefix(n.rec, "recovering") {
		if time.Now().After(deadline) {
			t.Fatal("no STATUS=recovering")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	n.stop()
	if err := n.result(10 * time.Second); err != nil {
		t.Fatalf("Run stopped during recovery: %v, want nil", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stop during recovery took %v", d)
	}
	if _, err := os.Stat(filepath.Join(n.dir, "argv")); err == nil {
		t.Error("mariadbd started after a stop during recovery")
	}
	for _, p := range descendants(os.Getpid()) {
		if p.State != 'Z' {
			t.Errorf("process %d left after a stop during recovery", p.PID)
		}
	}
}
