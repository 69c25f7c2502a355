// Package galeratest starts real MariaDB Galera nodes on loopback for tests,
// the demo and the benchmark: N mariadbd processes with galera-4, each with its
// own datadir, socket and ports, run as the mysql user.
//
// Every process the harness starts is stopped by PID when the cluster is
// closed, and with it whatever the node left behind (SST scripts, rsync
// daemons): they are found by process group and by a marker in their
// environment. If the test binary itself dies, the kernel kills its mariadbd
// children (Pdeathsig).
//
// Ports are never fixed: each node slot gets four free ports, reserved
// machine-wide under Root/ports so concurrent test processes never collide.
//
// A test:
//
//	func TestRealJoin(t *testing.T) {
//		galeratest.Require(t)
//		c := galeratest.NewTest(t, galeratest.Config{Nodes: 2, SSTMethod: "native-copy",
//			PathPrepend: []string{binDir}}) // binDir holds wsrep_sst_native-copy
//		if err := c.Bootstrap(ctx); err != nil { t.Fatal(err) }
//		c.Node(1).LoadData(ctx, 16<<20)
//		c.Node(2).Start(ctx)                 // empty datadir: joins by SST
//		if err := c.Node(2).WaitSynced(ctx); err != nil { t.Fatal(err) }
//		a, _ := c.Node(1).Checksums(ctx)
//		b, _ := c.Node(2).Checksums(ctx)
//		if err := galeratest.CompareChecksums(a, b); err != nil { t.Fatal(err) }
//	}
//
// The harness connects as root over each node's socket without a password
// (User, Password); "root:" is a working wsrep_sst_auth. Dirs are removed on
// Close unless GS_TEST_KEEP=1.
package galeratest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Paths of the Debian packages the harness drives.
const (
	Mariadbd  = "/usr/sbin/mariadbd"
	Provider  = "/usr/lib/galera/libgalera_smm.so"
	InstallDB = "/usr/bin/mariadb-install-db"
	RunUser   = "mysql"
)

// User and Password are the account the harness connects with: root, over
// the socket, no password (mariadb-install-db --auth-root-authentication-method=normal).
// SST copies mysql.*, so every node has it; "root:" suits wsrep_sst_auth.
const (
	User     = "root"
	Password = ""
)

// Config describes a cluster. The zero value plus Nodes is a working cluster.
type Config struct {
	Dir         string            // base dir; default: fresh dir under Root, mysql-traversable
	Nodes       int               // number of node slots (configs/ports allocated up front)
	SSTMethod   string            // default "rsync"
	SST         map[string]string // extra [sst] options written into every node's config
	Mysqld      map[string]string // extra [mysqld] options; "" writes a bare key
	BufferPool  string            // innodb_buffer_pool_size, default "128M"
	PathPrepend []string          // dirs prepended to mariadbd's PATH (wsrep_sst_native-* links)
	Env         []string          // extra environment for mariadbd
	Logf        func(format string, args ...any)

	// Extensions beyond the team's API.
	ProviderOptions []string      // extra wsrep_provider_options entries, "key=value"
	StopTimeout     time.Duration // SIGTERM to SIGKILL; default 90s
	Keep            bool          // keep Dir on Close (also env GS_TEST_KEEP=1)
}

// Cluster is a set of node slots sharing one gcomm:// address.
type Cluster struct {
	cfg   Config
	dir   string
	owned bool // dir was made by New: Close removes it
	name  string
	nodes []*Node
	ports []*portLock
	logf  func(format string, args ...any)

	closeOnce sync.Once
	closeErr  error
	onClose   []func() error // after the nodes stop (network namespaces)
}

// Require skips the test under -short or when the machine lacks what real
// nodes need; with GS_TEST_REAL=1 a missing prerequisite fails the test.
func Require(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("real Galera nodes: skipped under -short")
	}
	if err := Check(); err != nil {
		if os.Getenv("GS_TEST_REAL") == "1" {
			t.Fatalf("real Galera nodes needed (GS_TEST_REAL=1): %v", err)
		}
		t.Skipf("real Galera nodes unavailable: %v", err)
	}
}

// Check reports the first missing prerequisite for real nodes.
func Check() error {
	if os.Geteuid() != 0 {
		return errors.New("must run as root (mariadbd runs as user mysql, started by root)")
	}
	for _, f := range []string{Mariadbd, Provider, InstallDB} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("missing %s (apt-get install mariadb-server galera-4): %w", f, err)
		}
	}
	if _, err := exec.LookPath("rsync"); err != nil {
		return fmt.Errorf("missing rsync for the stock SST: %w", err)
	}
	if _, _, err := runUser(); err != nil {
		return err
	}
	return nil
}

func runUser() (uid, gid int, err error) {
	u, err := user.Lookup(RunUser)
	if err != nil {
		return 0, 0, fmt.Errorf("look up user %s: %w", RunUser, err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, nil
}

// NewTest is New for tests: Require(t) first, t.Logf as the logger, and a
// cleanup that closes the cluster and, when the test failed, shows the tail
// of every node's error log.
func NewTest(t testing.TB, cfg Config) *Cluster {
	t.Helper()
	Require(t)
	if cfg.Logf == nil {
		cfg.Logf = t.Logf
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("galeratest.New: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range c.nodes {
				if tail := n.LogTail(40); tail != "" {
					t.Logf("node%d %s (last lines):\n%s", n.N, n.ErrorLog, tail)
				}
			}
			if c.keep() {
				t.Logf("cluster dir kept: %s", c.dir)
			} else if d, err := c.saveLogs(); err != nil {
				t.Logf("save logs: %v", err)
			} else {
				t.Logf("logs saved in %s; cluster dir %s is removed (GS_TEST_KEEP=1 keeps it)", d, c.dir)
			}
		}
		if err := c.Close(); err != nil {
			t.Errorf("close cluster: %v", err)
		}
	})
	return c
}

// New allocates ports for every node slot, writes each node's config and
// initialises node1's datadir. It starts nothing.
func New(ctx context.Context, cfg Config) (*Cluster, error) {
	if cfg.Nodes <= 0 {
		cfg.Nodes = 3
	}
	if cfg.SSTMethod == "" {
		cfg.SSTMethod = "rsync"
	}
	if cfg.BufferPool == "" {
		cfg.BufferPool = "128M"
	}
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = 90 * time.Second
	}
	c := &Cluster{cfg: cfg, logf: cfg.Logf}
	if c.logf == nil {
		c.logf = func(string, ...any) {}
	}
	uid, gid, err := runUser()
	if err != nil {
		return nil, err
	}
	sweepStale(c.logf)
	if cfg.Dir == "" {
		if err := mkdirShared(Root); err != nil {
			return nil, err
		}
		d, err := os.MkdirTemp(Root, "c-")
		if err != nil {
			return nil, fmt.Errorf("create cluster dir: %w", err)
		}
		c.dir, c.owned = d, true
	} else {
		d, err := filepath.Abs(cfg.Dir)
		if err != nil {
			return nil, fmt.Errorf("cluster dir %s: %w", cfg.Dir, err)
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("create cluster dir: %w", err)
		}
		c.dir = d
	}
	fail := func(err error) (*Cluster, error) {
		c.Close()
		return nil, err
	}
	if err := os.Chmod(c.dir, 0o755); err != nil {
		return fail(fmt.Errorf("chmod %s: %w", c.dir, err))
	}
	// owner lets sweepStale recognise a cluster whose test process died.
	if err := os.WriteFile(filepath.Join(c.dir, "owner"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fail(fmt.Errorf("write owner: %w", err))
	}
	// sun_path holds 108 bytes with its NUL.
	if sock := filepath.Join(c.dir, fmt.Sprintf("node%d", cfg.Nodes), "mysqld.sock"); len(sock) > 107 {
		return fail(fmt.Errorf("cluster dir %s too long: socket path %s exceeds 107 bytes", c.dir, sock))
	}
	c.name = "gs-" + filepath.Base(c.dir)

	if err := mkdirShared(filepath.Join(Root, "ports")); err != nil {
		return fail(err)
	}
	locks, err := reservePorts(filepath.Join(Root, "ports"), 4*cfg.Nodes)
	if err != nil {
		return fail(err)
	}
	c.ports = locks
	for i := 0; i < cfg.Nodes; i++ {
		nd := filepath.Join(c.dir, fmt.Sprintf("node%d", i+1))
		n := &Node{
			N:          i + 1,
			Dir:        nd,
			DataDir:    filepath.Join(nd, "data"),
			Socket:     filepath.Join(nd, "mysqld.sock"),
			ConfigFile: filepath.Join(nd, "my.cnf"),
			ErrorLog:   filepath.Join(nd, "error.log"),
			Port:       locks[4*i].port,
			GmcastPort: locks[4*i+1].port,
			ISTPort:    locks[4*i+2].port,
			SSTPort:    locks[4*i+3].port,
			c:          c,
			sstMethod:  cfg.SSTMethod,
			sst:        copyMap(cfg.SST),
			mysqld:     copyMap(cfg.Mysqld),
		}
		c.nodes = append(c.nodes, n)
	}
	for _, n := range c.nodes {
		if err := os.MkdirAll(n.DataDir, 0o755); err != nil {
			return fail(fmt.Errorf("create %s: %w", n.DataDir, err))
		}
		for _, d := range []string{n.Dir, n.DataDir} {
			if err := os.Chown(d, uid, gid); err != nil {
				return fail(fmt.Errorf("chown %s: %w", d, err))
			}
		}
		if err := n.writeConfig(); err != nil {
			return fail(err)
		}
	}
	if err := c.nodes[0].initDataDir(ctx); err != nil {
		return fail(err)
	}
	c.logf("galeratest: cluster %s in %s: %s", c.name, c.dir, c.describePorts())
	return c, nil
}

func (c *Cluster) describePorts() string {
	var b strings.Builder
	for i, n := range c.nodes {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "node%d port=%d gmcast=%d ist=%d sst=%d", n.N, n.Port, n.GmcastPort, n.ISTPort, n.SSTPort)
	}
	return b.String()
}

// Dir is the cluster's base directory.
func (c *Cluster) Dir() string { return c.dir }

// Name is the wsrep_cluster_name, unique per cluster so that nodes of two
// clusters can never merge.
func (c *Cluster) Name() string { return c.name }

// Nodes returns every node slot, node1 first.
func (c *Cluster) Nodes() []*Node { return c.nodes }

// Node returns node i, 1-based; it panics when i is out of range.
func (c *Cluster) Node(i int) *Node {
	if i < 1 || i > len(c.nodes) {
		panic(fmt.Sprintf("galeratest: node %d of %d", i, len(c.nodes)))
	}
	return c.nodes[i-1]
}

// Address is the gcomm:// URL listing every slot's gmcast port.
func (c *Cluster) Address() string {
	var b strings.Builder
	b.WriteString("gcomm://")
	for i, n := range c.nodes {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s:%d", n.Addr(), n.GmcastPort)
	}
	return b.String()
}

// Bootstrap starts node1 as a new Primary Component and waits until it is
// Synced.
func (c *Cluster) Bootstrap(ctx context.Context) error {
	n := c.nodes[0]
	if err := n.markSafeToBootstrap(); err != nil {
		return err
	}
	t0 := time.Now()
	if err := n.Start(ctx, "--wsrep-new-cluster"); err != nil {
		return err
	}
	if err := n.WaitSynced(ctx); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	c.logf("galeratest: node1 bootstrapped in %v", time.Since(t0).Round(time.Millisecond))
	return nil
}

// Start starts nodes 2..Nodes one after the other, each waiting until Synced.
func (c *Cluster) StartAll(ctx context.Context) error {
	if err := c.Bootstrap(ctx); err != nil {
		return err
	}
	for _, n := range c.nodes[1:] {
		t0 := time.Now()
		if err := n.Start(ctx); err != nil {
			return err
		}
		if err := n.WaitSynced(ctx); err != nil {
			return err
		}
		c.logf("galeratest: node%d joined in %v", n.N, time.Since(t0).Round(time.Millisecond))
	}
	return nil
}

// Leftovers lists live processes started by this cluster: mariadbd and
// anything below it. Empty after Close.
func (c *Cluster) Leftovers() []int {
	return markedPIDs(markerEnv + "=" + c.dir + "/")
}

func (c *Cluster) keep() bool {
	return c.cfg.Keep || os.Getenv("GS_TEST_KEEP") == "1"
}

// Close stops every node, last first, by PID, kills anything they left
// behind, releases the ports and removes the cluster dir (unless kept).
// Calling it again returns the first result.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.close() })
	return c.closeErr
}

func (c *Cluster) close() error {
	var errs []error
	for i := len(c.nodes) - 1; i >= 0; i-- {
		n := c.nodes[i]
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.StopTimeout+30*time.Second)
		if err := n.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
		cancel()
		n.closeDB()
	}
	if c.dir != "" {
		killMarked(markerEnv+"="+c.dir+"/", 0)
		if left := c.Leftovers(); len(left) > 0 {
			errs = append(errs, fmt.Errorf("processes of cluster %s still alive: %v", c.dir, left))
		}
	}
	for _, f := range c.onClose {
		if err := f(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, l := range c.ports {
		l.release()
	}
	c.ports = nil
	if c.dir != "" {
		if c.keep() || !c.owned {
			c.logf("galeratest: kept %s", c.dir)
			if c.owned {
				os.WriteFile(filepath.Join(c.dir, "keep"), nil, 0o644)
			}
		} else if err := os.RemoveAll(c.dir); err != nil {
			errs = append(errs, fmt.Errorf("remove cluster dir: %w", err))
		}
	}
	return errors.Join(errs...)
}

// sweepStale removes what a dead test process left under Root: it kills the
// processes carrying its clusters' markers and removes their dirs, unless a
// "keep" file asks otherwise. Pdeathsig already killed their mariadbd; this
// catches SST helpers and disk space.
func sweepStale(logf func(string, ...any)) {
	ents, err := os.ReadDir(Root)
	if err != nil {
		return
	}
	for _, e := range ents {
		dir := filepath.Join(Root, e.Name())
		if pid, ok := strings.CutPrefix(e.Name(), "bin-"); ok && e.IsDir() {
			// Binaries of a test process that is gone.
			if n, err := strconv.Atoi(pid); err == nil && errors.Is(syscall.Kill(n, 0), syscall.ESRCH) {
				os.RemoveAll(dir)
			}
			continue
		}
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "c-") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, "owner"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || syscall.Kill(pid, 0) == nil || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			continue
		}
		killMarked(markerEnv+"="+dir+"/", 0)
		removeStaleNetns(dir)
		if _, err := os.Stat(filepath.Join(dir, "keep")); err == nil {
			continue
		}
		logf("galeratest: removing %s left by dead process %d", dir, pid)
		os.RemoveAll(dir)
	}
}

// saveLogs copies every node's logs (the last MiB of each) to
// Root/failed/<cluster>/, which outlives Close.
func (c *Cluster) saveLogs() (string, error) {
	dst := filepath.Join(Root, "failed", filepath.Base(c.dir))
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", dst, err)
	}
	for _, n := range c.nodes {
		for _, name := range []string{"error.log", "stdout.log", "install.log", "install.log.1", "my.cnf"} {
			b, err := readTail(filepath.Join(n.Dir, name), 1<<20)
			if err != nil {
				continue
			}
			if err := os.WriteFile(filepath.Join(dst, n.Name()+"-"+name), b, 0o644); err != nil {
				return "", fmt.Errorf("save log: %w", err)
			}
		}
	}
	return dst, nil
}

func readTail(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := max(fi.Size()-limit, 0)
	b := make([]byte, fi.Size()-off)
	k, err := f.ReadAt(b, off)
	if err != nil && k < len(b) {
		return nil, err
	}
	return b[:k], nil
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
