package galeratest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/internal/testutil"
)

// fakeCluster is a Cluster with fixed ports and paths, for rendering configs
// without starting anything.
func fakeCluster(cfg Config) *Cluster {
	if cfg.SSTMethod == "" {
		cfg.SSTMethod = "rsync"
	}
	if cfg.BufferPool == "" {
		cfg.BufferPool = "128M"
	}
	c := &Cluster{cfg: cfg, dir: "/var/tmp/gs-test/c-1", name: "gs-c-1", logf: func(string, ...any) {}}
	for i := 1; i <= 3; i++ {
		d := "/var/tmp/gs-test/c-1/node" + strconv.Itoa(i)
		c.nodes = append(c.nodes, &Node{
			N: i, Dir: d, DataDir: d + "/data", Socket: d + "/mysqld.sock",
			ConfigFile: d + "/my.cnf", ErrorLog: d + "/error.log",
			Port: 20000 + i, GmcastPort: 21000 + i, ISTPort: 22000 + i, SSTPort: 23000 + i,
			c: c, sstMethod: cfg.SSTMethod, sst: copyMap(cfg.SST), mysqld: copyMap(cfg.Mysqld),
		})
	}
	return c
}

func TestConfigGolden(t *testing.T) {
	c := fakeCluster(Config{SST: map[string]string{"time": "1", "compressor": "'lz4 -z'"}})
	got := c.Node(2).config()
	testutil.Golden(t, filepath.Join("testdata", "node2.cnf"), got)
}

func TestConfigOverrides(t *testing.T) {
	c := fakeCluster(Config{
		BufferPool: "64M",
		Mysqld: map[string]string{
			"log-bin":                 "mysql-bin",
			"innodb-log-file-size":    "96M",
			"wsrep_sst_auth":          "root:",
			"loose-skip-name-resolve": "",
		},
		ProviderOptions: []string{"gcs.fc_limit=128"},
	})
	n := c.Node(1)
	cnf := string(n.config())
	for _, want := range []string{
		"\nlog-bin=mysql-bin\n",
		"\ninnodb_log_file_size=96M\n",
		"\ninnodb_buffer_pool_size=64M\n",
		"\nwsrep_sst_auth=root:\n",
		"\nloose-skip-name-resolve\n",
		";gcache.size=64M;gcs.fc_limit=128'\n",
		"\nwsrep_cluster_address=gcomm://127.0.0.1:21001,127.0.0.1:21002,127.0.0.1:21003\n",
	} {
		if !strings.Contains(cnf, want) {
			t.Errorf("config lacks %q:\n%s", want, cnf)
		}
	}
	for _, bad := range []string{"skip-log-bin", "48M"} {
		if strings.Contains(cnf, bad) {
			t.Errorf("config still has %q:\n%s", bad, cnf)
		}
	}
	if strings.Count(cnf, "innodb_log_file_size") != 1 {
		t.Errorf("innodb_log_file_size written twice:\n%s", cnf)
	}

	n.sstMethod = "native-copy"
	n.sst["rlimit"] = "100M"
	cnf = string(n.config())
	if !strings.Contains(cnf, "\nwsrep_sst_method=native-copy\n") || !strings.HasSuffix(cnf, "[sst]\nrlimit=100M\n") {
		t.Errorf("SST settings not applied:\n%s", cnf)
	}
	if other := string(c.Node(2).config()); strings.Contains(other, "native-copy") {
		t.Errorf("node1's SST method leaked into node2:\n%s", other)
	}
}

func TestEnviron(t *testing.T) {
	t.Setenv("PATH", "/opt/x")
	t.Setenv(markerEnv, "/stale")
	c := fakeCluster(Config{PathPrepend: []string{"/work/bin", "/b"}, Env: []string{"A=1"}})
	env := c.Node(1).environ()
	var path string
	for _, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			path = kv
		}
		if strings.HasPrefix(kv, markerEnv+"=") {
			t.Errorf("inherited marker %s", kv)
		}
	}
	if want := "PATH=/work/bin:/b:/opt/x:/usr/sbin:/usr/bin:/sbin:/bin"; path != want {
		t.Errorf("got %s, want %s", path, want)
	}
	if env[len(env)-1] != "A=1" {
		t.Errorf("Config.Env not last: %v", env[len(env)-3:])
	}
}

func TestReservePorts(t *testing.T) {
	dir := t.TempDir()
	locks, err := reservePorts(dir, 8)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	lo, hi := portRange()
	for _, l := range locks {
		if seen[l.port] {
			t.Errorf("port %d reserved twice", l.port)
		}
		seen[l.port] = true
		if l.port < lo || l.port > hi {
			t.Errorf("port %d outside %d-%d", l.port, lo, hi)
		}
		b, err := os.ReadFile(filepath.Join(dir, strconv.Itoa(l.port)))
		if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
			t.Errorf("lock file of %d: %q, %v; want our pid", l.port, b, err)
		}
		if again, err := lockPort(dir, l.port); err != nil || again != nil {
			t.Errorf("port %d locked twice (%v)", l.port, err)
		}
	}
	p := locks[0].port
	for _, l := range locks {
		l.release()
	}
	if _, err := os.Stat(filepath.Join(dir, strconv.Itoa(p))); !os.IsNotExist(err) {
		t.Errorf("lock file of %d not removed: %v", p, err)
	}
	l, err := lockPort(dir, p)
	if err != nil || l == nil {
		t.Fatalf("port %d not free after release: %v", p, err)
	}
	l.release()
}

// TestPortLockDiesWithHolder: a reservation held by a process that was
// SIGKILLed is free again, with nothing to clean up by hand.
func TestPortLockDiesWithHolder(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "GS_HELPER=lockport", "GS_HELPER_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 32)
	k, _ := out.Read(buf)
	port, err := strconv.Atoi(strings.TrimSpace(string(buf[:k])))
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper said %q", buf[:k])
	}
	if l, _ := lockPort(dir, port); l != nil {
		t.Errorf("port %d lockable while its holder lives", port)
		l.release()
	}
	cmd.Process.Kill()
	cmd.Wait()
	l, err := lockPort(dir, port)
	if err != nil || l == nil {
		t.Fatalf("port %d not lockable after its holder died: %v", port, err)
	}
	l.release()
}

// TestHelperProcess is not a test: other tests run the test binary as a
// child that executes it.
func TestHelperProcess(t *testing.T) {
	switch os.Getenv("GS_HELPER") {
	case "lockport":
		locks, err := reservePorts(os.Getenv("GS_HELPER_DIR"), 1)
		if err != nil {
			os.Stdout.WriteString("error " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Stdout.WriteString(strconv.Itoa(locks[0].port) + "\n")
		time.Sleep(time.Minute)
		os.Exit(0)
	case "cluster":
		helperCluster()
	}
}

// TestWatchKillsLeftovers: when a process exits, what it started goes too,
// whether it stayed in the process group or escaped into a new session.
func TestWatchKillsLeftovers(t *testing.T) {
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Skip("no setsid")
	}
	marker := markerEnv + "=/test/" + strconv.Itoa(os.Getpid()) + "/" + t.Name()
	// The shell leaves two sleeps, one in its group, one in a new session,
	// and exits once both have been started.
	cmd := exec.Command("sh", "-c", "sleep 300 & setsid sleep 300 & sleep 0.2; exit 3")
	cmd.Env = append(os.Environ(), marker)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := spawn(cmd); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, pid: cmd.Process.Pid, marker: marker, done: make(chan struct{})}
	go p.watch()
	deadline := time.Now().Add(5 * time.Second)
	for len(markedPIDs(marker)) < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not finish")
	}
	if p.err == nil || !strings.Contains(p.err.Error(), "exit status 3") {
		t.Errorf("Wait error = %v, want exit status 3", p.err)
	}
	if left := markedPIDs(marker); len(left) > 0 {
		t.Errorf("left running: %v", left)
		killMarked(marker, 0)
	}
}

func TestCompareChecksums(t *testing.T) {
	a := map[string]string{"db.a": "1", "db.b": "2", "db.c": "NULL"}
	if err := CompareChecksums(a, map[string]string{"db.a": "1", "db.b": "2", "db.c": "NULL"}); err != nil {
		t.Errorf("equal maps: %v", err)
	}
	err := CompareChecksums(a, map[string]string{"db.a": "1", "db.b": "3", "db.d": "4"})
	if err == nil {
		t.Fatal("different maps compare equal")
	}
	for _, want := range []string{"3 table(s) differ", "db.b: 2 != 3", "db.c: only in first", "db.d: only in second"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestTailLines(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"", 3, ""},
		{"a\nb\nc\nd\n", 2, "c\nd"},
		{"a\nb", 5, "a\nb"},
	} {
		if got := tailLines([]byte(c.in), c.n); got != c.want {
			t.Errorf("tailLines(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}
