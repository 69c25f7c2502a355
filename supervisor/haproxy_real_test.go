package supervisor

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/galera-supervisor/galera-supervisor/supervisor/endpoint"
	"github.com/galera-supervisor/galera-supervisor/supervisor/galeratest"
)

// haproxy runs Debian's haproxy in front of nodes, checking each one's
// endpoint as a clustercheck: option httpchk, http-check expect status 200.
type haproxy struct {
	cmd  *exec.Cmd
	sock string // the stats socket
	port int    // where clients connect
	done chan struct{}
}

func startHAProxy(t *testing.T, c *galeratest.Cluster, sv *galeratest.Supervised, nodes []*galeratest.Node) *haproxy {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		if os.Getenv("GS_TEST_REAL") == "1" {
			t.Fatal("haproxy not found (Debian's haproxy package)")
		}
		t.Skip("haproxy not found")
	}
	ports, err := c.ReservePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	h := &haproxy{sock: filepath.Join(dir, "stats.sock"), port: ports[0], done: make(chan struct{})}
	var b strings.Builder
	fmt.Fprintf(&b, `global
	stats socket %s mode 600 level admin
defaults
	mode tcp
	timeout connect 2s
	timeout client 60s
	timeout server 60s
listen galera
	bind 127.0.0.1:%d
	balance roundrobin
	option httpchk
	http-check expect status 200
	default-server inter 300ms fastinter 300ms downinter 300ms rise 2 fall 2
`, h.sock, h.port)
	for _, n := range nodes {
		_, port, _ := net.SplitHostPort(sv.HTTPAddress(n))
		fmt.Fprintf(&b, "\tserver node%d %s:%d check port %s\n", n.N, n.Addr(), n.Port, port)
	}
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-f", cfg).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
	h.cmd = exec.Command(bin, "-db", "-f", cfg)
	log, err := os.Create(filepath.Join(dir, "haproxy.log"))
	if err != nil {
		t.Fatal(err)
	}
	h.cmd.Stdout, h.cmd.Stderr = log, log
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { h.cmd.Wait(); log.Close(); close(h.done) }()
	for deadline := time.Now().Add(30 * time.Second); ; {
		if c, err := net.Dial("unix", h.sock); err == nil {
			c.Close()
			break
		}
		select {
		case <-h.done:
			b, _ := os.ReadFile(log.Name())
			t.Fatalf("haproxy exited: %s", b)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("haproxy's stats socket never answered")
		}
	}
	t.Cleanup(func() {
		h.cmd.Process.Kill()
		<-h.done
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("haproxy log:\n%s", b)
		}
	})
	return h
}

// server is one line of haproxy's "show stat".
type server struct {
	status         string // UP, DOWN, UP 1/2, ...
	scur, stot     int
	chkfail, chkdn int
}

// stats reads "show stat" from the stats socket, by server name.
func (h *haproxy) stats(t *testing.T) map[string]server {
	t.Helper()
	c, err := net.DialTimeout("unix", h.sock, 2*time.Second)
	if err != nil {
		t.Fatalf("haproxy stats socket: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "show stat\n")
	r := csv.NewReader(bufio.NewReader(c))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil || len(recs) < 2 {
		t.Fatalf("haproxy show stat: %v (%d lines)", err, len(recs))
	}
	col := map[string]int{}
	for i, name := range recs[0] {
		col[strings.TrimPrefix(name, "# ")] = i
	}
	num := func(rec []string, name string) int { n, _ := strconv.Atoi(rec[col[name]]); return n }
	out := map[string]server{}
	for _, rec := range recs[1:] {
		if len(rec) < len(recs[0])-1 || rec[col["pxname"]] != "galera" {
			continue
		}
		out[rec[col["svname"]]] = server{status: rec[col["status"]], scur: num(rec, "scur"), stot: num(rec, "stot"),
			chkfail: num(rec, "chkfail"), chkdn: num(rec, "chkdown")}
	}
	return out
}

// waitStatus waits until haproxy shows server name with a status that
// starts with want.
func (h *haproxy) waitStatus(t *testing.T, ctx context.Context, name, want string) {
	t.Helper()
	var last server
	for ctx.Err() == nil {
		last = h.stats(t)[name]
		if strings.HasPrefix(last.status, want) && (want != "UP" || last.status == "UP") {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("haproxy: %s never %s (last %+v)", name, want, last)
}

// lbLoad writes through haproxy: each insert on a new connection, so that
// every statement is routed anew, as short-lived clients are.
type lbLoad struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       []string
	stop       context.CancelFunc
	wg         sync.WaitGroup
}

func startLBLoad(t *testing.T, port, workers int) *lbLoad {
	t.Helper()
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = "lb", "lb-password", "tcp", fmt.Sprintf("127.0.0.1:%d", port)
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = 5*time.Second, 30*time.Second, 30*time.Second
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxIdleConns(0) // a connection per statement
	ctx, cancel := context.WithCancel(context.Background())
	l := &lbLoad{stop: cancel}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				_, err := db.Exec("INSERT INTO gs.lb (port) VALUES (@@port)")
				if err != nil {
					l.failed.Add(1)
					l.mu.Lock()
					if len(l.errs) < 10 {
						l.errs = append(l.errs, time.Now().Format("15:04:05.000")+" "+err.Error())
					}
					l.mu.Unlock()
				} else {
					l.ok.Add(1)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	t.Cleanup(func() { l.end(); db.Close() })
	return l
}

func (l *lbLoad) end() { l.stop(); l.wg.Wait() }

// nodeHealth reads a node's /health.
func nodeHealth(addr string) (*endpoint.Snapshot, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/health")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var s endpoint.Snapshot
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return nil, err
	}
	return &s, nil
}

// TestRealHAProxy puts Debian's haproxy in front of three real nodes under
// the built supervisor (option httpchk, http-check expect status 200 on
// each node's http-address), with a client load through it, each statement
// on a new connection: while node3 joins by a native-backup SST haproxy
// never routes to it, the donor (available-when-donor = 1) stays up and
// keeps serving, "galera-supervisor maintenance on" drains node2 so that
// it can be stopped and restarted (still drained) without a client error,
// and the load counts zero failed statements.
func TestRealHAProxy(t *testing.T) {
	galeratest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 7*time.Minute)
	defer cancel()
	c := galeratest.NewTest(t, galeratest.Config{Nodes: 3, SSTMethod: "native-backup"})
	sv, err := c.Supervise(galeratest.SupervisorConfig{Binary: builtSupervisor(t), BootstrapWait: 5 * time.Second, HTTP: true,
		Options: map[string]string{"available-when-donor": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	nodes := []*galeratest.Node{c.Node(1), c.Node(2), c.Node(3)}
	q := newQuorumRun(t, ctx, nodes)
	q.start(0, "--wsrep-new-cluster")
	q.waitAll(0)
	for _, s := range []string{
		"CREATE DATABASE gs",
		"CREATE TABLE gs.lb (id BIGINT AUTO_INCREMENT PRIMARY KEY, port INT NOT NULL, at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB",
		"CREATE TABLE gs.pad (id INT PRIMARY KEY, b LONGBLOB) ENGINE=InnoDB",
		"CREATE USER lb@'127.0.0.1' IDENTIFIED BY 'lb-password'",
		"GRANT ALL ON gs.* TO lb@'127.0.0.1'",
	} {
		if err := nodes[0].Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	// Data enough for the donor to stay Donor/Desynced over several of
	// haproxy's checks (every 300 ms).
	for i := range 12 {
		if err := nodes[0].Exec(ctx, "INSERT INTO gs.pad VALUES (?, REPEAT(SHA2(RAND(), 256), 131072))", i); err != nil {
			t.Fatal(err)
		}
	}
	q.start(1)
	q.waitAll(1)

	h := startHAProxy(t, c, sv, nodes)
	h.waitStatus(t, ctx, "node1", "UP")
	h.waitStatus(t, ctx, "node2", "UP")
	h.waitStatus(t, ctx, "node3", "DOWN")
	load := startLBLoad(t, h.port, 4)
	time.Sleep(time.Second)

	// node3 joins by SST under the load.
	t0 := time.Now()
	q.start(2)
	donorSeen := 0
	for {
		hs, err := nodeHealth(sv.HTTPAddress(nodes[2]))
		synced := err == nil && hs.Node.LocalState == endpoint.StateSynced && hs.Phase == "synced"
		d := map[int]bool{}
		for i := 0; i < 2; i++ {
			if s, err := nodeHealth(sv.HTTPAddress(nodes[i])); err == nil && s.Node.LocalState == endpoint.StateDonor {
				d[i] = true
			}
		}
		st := h.stats(t)
		if synced {
			break
		}
		if n3 := st["node3"]; n3.stot != 0 || strings.HasPrefix(n3.status, "UP") {
			t.Fatalf("haproxy routed to node3 before it was Synced: %+v (its phase %v)", n3, hs)
		}
		for i := range d {
			donorSeen++
			if s := st[fmt.Sprintf("node%d", i+1)]; !strings.HasPrefix(s.status, "UP") {
				t.Errorf("donor node%d is %q in haproxy while Donor/Desynced (available-when-donor = 1)", i+1, s.status)
			}
		}
		if time.Since(t0) > 4*time.Minute {
			t.Fatal("node3 never Synced")
		}
		time.Sleep(100 * time.Millisecond)
	}
	q.waitAll(2)
	st := h.stats(t)
	t.Logf("node3 Synced %.1fs after its start; donor seen Donor/Desynced in %d samples; haproxy: %+v", time.Since(t0).Seconds(), donorSeen, st)
	if donorSeen == 0 {
		t.Errorf("no sample saw the donor Donor/Desynced: the SST was too short to show that it keeps serving")
	}
	for _, name := range []string{"node1", "node2"} {
		if st[name].chkdn != 0 {
			t.Errorf("%s went DOWN in haproxy during node3's join: %+v", name, st[name])
		}
	}
	h.waitStatus(t, ctx, "node3", "UP")
	for st := h.stats(t); st["node3"].stot == 0; st = h.stats(t) {
		if ctx.Err() != nil {
			t.Fatal("haproxy never routed to node3 once it was up")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Drain node2, stop it, start it again: still drained.
	out, err := exec.CommandContext(ctx, builtSupervisor(t), "maintenance", "on", "--defaults-file="+nodes[1].ConfigFile,
		"--runtime-dir="+filepath.Join(nodes[1].Dir, "run"), "--reason", "TestRealHAProxy").CombinedOutput()
	if err != nil {
		t.Fatalf("maintenance on: %v\n%s", err, out)
	}
	h.waitStatus(t, ctx, "node2", "DOWN")
	for st := h.stats(t); st["node2"].scur != 0; st = h.stats(t) {
		time.Sleep(50 * time.Millisecond)
	}
	drained := h.stats(t)["node2"].stot
	time.Sleep(time.Second)
	if n := h.stats(t)["node2"].stot; n != drained {
		t.Errorf("haproxy sent node2 %d new sessions after it was drained", n-drained)
	}
	if code := q.sups[1].stop(t, 2*time.Minute); code != ExitOK {
		t.Fatalf("node2: exit %d", code)
	}
	time.Sleep(time.Second)
	q.start(1)
	q.waitAll(1)
	time.Sleep(time.Second) // several checks of the Synced node2
	if s := h.stats(t)["node2"]; s.status != "DOWN" || s.stot != drained {
		t.Errorf("node2 restarted in maintenance: haproxy %+v, want DOWN and no new session", s)
	}
	out, err = exec.CommandContext(ctx, builtSupervisor(t), "maintenance", "off", "--defaults-file="+nodes[1].ConfigFile,
		"--runtime-dir="+filepath.Join(nodes[1].Dir, "run")).CombinedOutput()
	if err != nil {
		t.Fatalf("maintenance off: %v\n%s", err, out)
	}
	h.waitStatus(t, ctx, "node2", "UP")
	time.Sleep(time.Second)

	load.end()
	t.Logf("load through haproxy: %d statements committed, %d failed; haproxy: %+v", load.ok.Load(), load.failed.Load(), h.stats(t))
	if n := load.failed.Load(); n != 0 {
		t.Errorf("%d statements failed through haproxy: %v", n, load.errs)
	}
	if load.ok.Load() < 100 {
		t.Errorf("only %d statements went through haproxy", load.ok.Load())
	}
	for _, n := range nodes {
		var got string
		var err error
		for range 50 { // the last writesets may still be applying
			if got, err = n.QueryString(ctx, "SELECT COUNT(*) FROM gs.lb"); err == nil && got == fmt.Sprint(load.ok.Load()) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil || got != fmt.Sprint(load.ok.Load()) {
			t.Errorf("node%d holds %s rows (%v), want %d", n.N, got, err, load.ok.Load())
		}
	}
	if s, err := nodes[2].QueryString(ctx, "SELECT COUNT(*) FROM gs.lb WHERE port = ?", nodes[2].Port); err != nil || s == "0" {
		t.Errorf("node3 served no statement once up: %s %v", s, err)
	}
}
