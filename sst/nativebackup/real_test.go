package nativebackup

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/supervisor/galeratest"
)

func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == "mariadb-backup" {
		os.Exit(fakeBackup(os.Args[1:]))
	}
	code := m.Run()
	galeratest.RemoveBinaries()
	os.Exit(code)
}

// newCluster starts node1 of a 2-node cluster configured by cfg (its node
// count and SST method are set here) with dataBytes of data in several
// tables; node2 is configured for native-backup but not started.
func newCluster(t *testing.T, ctx context.Context, cfg galeratest.Config, dataBytes int64) *galeratest.Cluster {
	t.Helper()
	cfg.Nodes, cfg.SSTMethod = 2, Name
	cfg.PathPrepend = append(cfg.PathPrepend, galeratest.Binaries(t))
	c := galeratest.NewTest(t, cfg)
	archiveInClusterDir(t, c)
	n1 := c.Node(1)
	if err := c.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n1.CreateSampleTables(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n1.LoadData(ctx, dataBytes); err != nil {
		t.Fatal(err)
	}
	if err := n1.Exec(ctx, "CREATE TABLE gstest.w (id BIGINT AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL, at DATETIME(6) NOT NULL) ENGINE=InnoDB"); err != nil {
		t.Fatal(err)
	}
	return c
}

// archiveInClusterDir points sst-log-archive-dir into the cluster's
// directory, so that tests leave nothing in /tmp/sst_log_archive.
func archiveInClusterDir(t *testing.T, c *galeratest.Cluster) {
	t.Helper()
	dir := filepath.Join(c.Dir(), "sst_log_archive")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o777)
	for _, n := range c.Nodes() {
		if err := n.SetSST(map[string]string{"sst-log-archive-dir": dir}); err != nil {
			t.Fatal(err)
		}
	}
}

// writer commits small transactions on a node and records when each
// committed and how long it took.
type writer struct {
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	commits []time.Time
	lat     []time.Duration
	errs    []error
}

func startWriter(ctx context.Context, t *testing.T, n *galeratest.Node) *writer {
	db, err := n.DB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := &writer{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			default:
			}
			t0 := time.Now()
			_, err := db.ExecContext(ctx, "INSERT INTO gstest.w (v, at) VALUES (?, NOW(6))", i)
			d := time.Since(t0)
			w.mu.Lock()
			if err != nil {
				w.errs = append(w.errs, err)
			} else {
				w.commits = append(w.commits, t0.Add(d))
				w.lat = append(w.lat, d)
			}
			w.mu.Unlock()
			if err != nil {
				time.Sleep(50 * time.Millisecond) // back off a failing server, not a fixed wait in the SST
			}
		}
	}()
	return w
}

func (w *writer) Stop() {
	close(w.stop)
	<-w.done
}

// report checks that the writer kept committing between from and to:
// at most one 1-second window without a commit. It returns the longest
// commit latency and the longest gap between commits.
func (w *writer) report(t *testing.T, from, to time.Time) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	secs := int(to.Sub(from)/time.Second) + 1
	per := make([]int, secs)
	var maxLat, maxGap time.Duration
	var prev, gapEnd time.Time
	n := 0
	for i, c := range w.commits {
		if c.Before(from) || c.After(to) {
			continue
		}
		n++
		per[int(c.Sub(from)/time.Second)]++
		if w.lat[i] > maxLat {
			maxLat = w.lat[i]
		}
		if !prev.IsZero() && c.Sub(prev) > maxGap {
			maxGap = c.Sub(prev)
			gapEnd = c
		}
		prev = c
	}
	empty := 0
	for _, k := range per[:len(per)-1] { // the last window is partial
		if k == 0 {
			empty++
		}
	}
	t.Logf("writer on the donor: %d commits in %v of SST, %d errors; max commit stall %v, max gap between commits %v (ending %s); commits per second %v; %d empty 1 s windows",
		n, to.Sub(from).Round(time.Millisecond), len(w.errs), maxLat.Round(time.Millisecond), maxGap.Round(time.Millisecond), gapEnd.UTC().Format("15:04:05.000"), per, empty)
	if n == 0 || empty > 1 {
		t.Errorf("the donor did not keep committing during the SST: %d commits, %d empty 1 s windows", n, empty)
	}
	if len(w.errs) > 0 {
		t.Errorf("writer errors: %v", w.errs[0])
	}
}

// waitCaughtUp waits until node b has applied everything node a committed.
func waitCaughtUp(ctx context.Context, t *testing.T, a, b *galeratest.Node) {
	t.Helper()
	for {
		la, err1 := a.Status(ctx, "wsrep_last_committed")
		lb, err2 := b.Status(ctx, "wsrep_last_committed")
		if err1 == nil && err2 == nil && la == lb {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("node%d never caught up with node%d: %s vs %s (%v %v)", b.N, a.N, lb, la, err1, err2)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func tempUsers(ctx context.Context, n *galeratest.Node) (int, error) {
	s, err := n.QueryString(ctx, `SELECT COUNT(*) FROM mysql.global_priv WHERE User LIKE 'gs\_sst\_%'`)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(s)
}

// waitNoTempUsers polls: the donor's DROP replicates to the joiner.
func waitNoTempUsers(ctx context.Context, t *testing.T, nodes ...*galeratest.Node) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for _, n := range nodes {
		for {
			k, err := tempUsers(ctx, n)
			if err == nil && k == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node%d still has %d temporary SST users (%v)", n.N, k, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func compareTables(ctx context.Context, t *testing.T, a, b *galeratest.Node) {
	t.Helper()
	ca, err := a.Checksums(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := b.Checksums(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := galeratest.CompareChecksums(ca, cb); err != nil {
		t.Fatalf("tables differ after the SST: %v", err)
	}
	var names []string
	for k := range ca {
		names = append(names, k)
	}
	sort.Strings(names)
	t.Logf("%d tables equal on node%d and node%d: %v", len(ca), a.N, b.N, names)
}

func fileNonEmpty(t *testing.T, p string) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil || fi.Size() == 0 {
		t.Errorf("log %s missing or empty: %v", p, err)
	}
}

// joinWithWriter joins node2 by native-backup while a writer commits on
// node1 throughout, and checks the tables, the logs and the writer.
func joinWithWriter(ctx context.Context, t *testing.T, c *galeratest.Cluster) {
	n1, n2 := c.Node(1), c.Node(2)
	w := startWriter(ctx, t, n1)
	time.Sleep(500 * time.Millisecond) // let the writer reach a steady pace before the join
	t0 := time.Now()
	if err := n2.Start(ctx); err != nil {
		w.Stop()
		t.Fatal(err)
	}
	err := n2.WaitSynced(ctx)
	t1 := time.Now()
	w.Stop()
	if err != nil {
		t.Fatalf("node2 did not join: %v", err)
	}
	t.Logf("node2 Synced %v after start", t1.Sub(t0).Round(time.Millisecond))
	w.report(t, t0, t1)
	waitCaughtUp(ctx, t, n1, n2)
	compareTables(ctx, t, n1, n2)
	fileNonEmpty(t, filepath.Join(n1.DataDir, BackupLog))
	fileNonEmpty(t, filepath.Join(n2.DataDir, PrepareLog))
	fileNonEmpty(t, filepath.Join(n2.DataDir, MoveLog))
	for _, p := range []string{filepath.Join(n2.DataDir, ".sst-native"), filepath.Join(n2.DataDir, "xtrabackup_checkpoints"), filepath.Join(n2.DataDir, "donor_galera_info")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s left in the joiner's datadir", p)
		}
	}
	if log, _ := os.ReadFile(n2.ErrorLog); !strings.Contains(string(log), "WSREP_SST: [INFO]") {
		t.Errorf("no WSREP_SST lines in node2's log")
	}
}

// TestRealNativeBackupJoin: node2 joins by native-backup, with the
// automatic temporary user, while the donor keeps committing.
func TestRealNativeBackupJoin(t *testing.T) {
	galeratest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	size := int64(96 << 20)
	if v, err := strconv.Atoi(os.Getenv("GS_NB_DATA_MB")); err == nil && v > 0 {
		size = int64(v) << 20 // a bigger run by hand, for numbers
	}
	c := newCluster(t, ctx, galeratest.Config{}, size)
	joinWithWriter(ctx, t, c)
	waitNoTempUsers(ctx, t, c.Node(1), c.Node(2))
	for _, n := range c.Nodes() {
		log, _ := os.ReadFile(n.ErrorLog)
		for _, l := range strings.Split(string(log), "\n") {
			if strings.Contains(l, "peak RSS") || strings.Contains(l, "streamed") || strings.Contains(l, "prepared the snapshot") || strings.Contains(l, "received ") {
				t.Logf("node%d: %s", n.N, l)
			}
		}
	}
	log, _ := os.ReadFile(c.Node(1).ErrorLog)
	if !strings.Contains(string(log), "created temporary SST user ") || !strings.Contains(string(log), "dropped temporary SST user ") ||
		strings.Count(string(log), "sst_user=gs_sst_") < 2 {
		t.Errorf("the donor's log does not show the temporary user created and dropped")
	}
}

// TestRealNativeBackupTLSLZ4: the same over mutually verified TLS with the
// built-in lz4, and credentials from wsrep_sst_auth.
func TestRealNativeBackupTLSLZ4(t *testing.T) {
	galeratest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c := newCluster(t, ctx, galeratest.Config{}, 64<<20)
	certDir := filepath.Join(c.Dir(), "certs")
	ca, cert, key := writeCerts(t, certDir)
	opts := map[string]string{"encrypt": "4", "tca": ca, "tcert": cert, "tkey": key, "compressor": "lz4", "decompressor": "lz4 -d"}
	for _, n := range c.Nodes() {
		if err := n.SetSST(opts); err != nil {
			t.Fatal(err)
		}
	}
	n1 := c.Node(1)
	if err := n1.Exec(ctx, "SET GLOBAL wsrep_sst_auth='root:'"); err != nil {
		t.Fatal(err)
	}
	joinWithWriter(ctx, t, c)
	for _, n := range c.Nodes() {
		log, _ := os.ReadFile(n.ErrorLog)
		// The donor compresses with lz4, the joiner decompresses with "lz4 -d".
		if !strings.Contains(string(log), "tls=verify-ca compression=lz4") && !strings.Contains(string(log), `tls=verify-ca compression="lz4 -d"`) {
			t.Errorf("node%d's log does not show TLS verify-ca with lz4", n.N)
		}
	}
	if k, err := tempUsers(ctx, n1); err != nil || k != 0 {
		t.Errorf("wsrep_sst_auth set, yet %d temporary users (%v)", k, err)
	}
}

// writeCerts makes a CA and one certificate for 127.0.0.1 that both sides
// use, readable by mysql.
func writeCerts(t *testing.T, dir string) (ca, cert, key string) {
	t.Helper()
	c, err := galeratest.NewCA(dir, "ca")
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err = c.Issue(dir, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return c.File, cert, key
}

// rejoin stops node2, drops its grastate so that it asks for a full SST,
// and joins it again.
func rejoin(ctx context.Context, t *testing.T, c *galeratest.Cluster) {
	t.Helper()
	n2 := c.Node(2)
	if err := n2.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(n2.DataDir, "grastate.dat"))
	joinNode2(ctx, t, c)
}

// joinNode2 starts node2 and waits until it is Synced, caught up and
// equal to node1.
func joinNode2(ctx context.Context, t *testing.T, c *galeratest.Cluster) {
	t.Helper()
	n1, n2 := c.Node(1), c.Node(2)
	if err := n2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n2.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(ctx, t, n1, n2)
	compareTables(ctx, t, n1, n2)
}

// TestRealNativeBackupUnixSocketAndIST: with a 'mysql'@'localhost'
// unix_socket account, as Debian's install creates, the donor (OS user
// mysql) creates the temporary user through it; wsrep_sst_auth='mysql:'
// makes mariadb-backup log in by unix_socket; a node that can catch up
// by IST gets only the state and keeps its datadir.
func TestRealNativeBackupUnixSocketAndIST(t *testing.T) {
	galeratest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c := newCluster(t, ctx, galeratest.Config{}, 32<<20)
	n1, n2 := c.Node(1), c.Node(2)
	for _, q := range []string{
		"CREATE USER 'mysql'@'localhost' IDENTIFIED VIA unix_socket",
		"GRANT ALL PRIVILEGES ON *.* TO 'mysql'@'localhost' WITH GRANT OPTION",
	} {
		if err := n1.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := n2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n2.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(ctx, t, n1, n2)
	compareTables(ctx, t, n1, n2)
	waitNoTempUsers(ctx, t, n1, n2)
	if log, _ := os.ReadFile(n1.ErrorLog); !strings.Contains(string(log), `as=mysql privileges="RELOAD`) {
		t.Errorf("the donor did not create the temporary user through the mysql unix_socket account")
	}

	if err := n1.Exec(ctx, "SET GLOBAL wsrep_sst_auth='mysql:'"); err != nil {
		t.Fatal(err)
	}
	rejoin(ctx, t, c)
	if log, _ := os.ReadFile(n1.ErrorLog); !strings.Contains(string(log), "--user=mysql --socket=") {
		t.Errorf("mariadb-backup did not run as the unix_socket user mysql")
	}

	// IST: node2 stops cleanly, misses a few writes, comes back.
	if err := n2.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if err := n1.Exec(ctx, "INSERT INTO gstest.w (v, at) VALUES (?, NOW(6))", i); err != nil {
			t.Fatal(err)
		}
	}
	joinNode2(ctx, t, c)
	if log, _ := os.ReadFile(n1.ErrorLog); !strings.Contains(string(log), "IST: sent state") {
		t.Errorf("the donor did not take the IST bypass path")
	}
	if log, _ := os.ReadFile(n2.ErrorLog); !strings.Contains(string(log), "datadir left as it is") {
		t.Errorf("the joiner did not take the IST path")
	}
}

// TestRealNativeBackupBinlog: with binary logging on, the joiner ends up
// with a usable binlog index and the tables equal.
func TestRealNativeBackupBinlog(t *testing.T) {
	galeratest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c := newCluster(t, ctx, galeratest.Config{Mysqld: map[string]string{"log_bin": "mysql-bin", "log_slave_updates": "ON"}}, 0)
	n1, n2 := c.Node(1), c.Node(2)
	if err := n1.Exec(ctx, "FLUSH BINARY LOGS"); err != nil {
		t.Fatal(err)
	}
	if err := n1.Exec(ctx, "INSERT INTO gstest.part VALUES (100001, 1)"); err != nil {
		t.Fatal(err)
	}
	joinNode2(ctx, t, c)
	ents, _ := os.ReadDir(n2.DataDir)
	var names []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "mysql-bin") {
			names = append(names, e.Name())
		}
	}
	idx, _ := os.ReadFile(filepath.Join(n2.DataDir, "mysql-bin.index"))
	t.Logf("node2 binlog files %v, index %q", names, idx)
	for _, n := range names {
		if n != "mysql-bin.index" && !strings.Contains(string(idx), "./"+n+"\n") {
			t.Errorf("binlog %s is not in node2's index", n)
		}
	}
	if err := n2.Exec(ctx, "FLUSH BINARY LOGS"); err != nil {
		t.Errorf("node2 cannot rotate its binlog: %v", err)
	}
}
