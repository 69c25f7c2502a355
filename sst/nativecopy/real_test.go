package nativecopy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/internal/testutil"

	"github.com/galera-supervisor/galera-supervisor/sst"
	"github.com/galera-supervisor/galera-supervisor/sst/readback"
	"github.com/galera-supervisor/galera-supervisor/supervisor/galeratest"
)

func newCluster(t *testing.T, sstOpts map[string]string) *galeratest.Cluster {
	t.Helper()
	galeratest.Require(t)
	bin := galeratest.Binaries(t)
	c := galeratest.NewTest(t, galeratest.Config{
		Nodes:       2,
		SSTMethod:   Name,
		SST:         sstOpts,
		PathPrepend: []string{bin},
	})
	return c
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func checksums(t *testing.T, ctx context.Context, n *galeratest.Node) map[string]string {
	t.Helper()
	s, err := n.Checksums(ctx)
	testutil.Must(t, err)
	if len(s) == 0 {
		t.Fatalf("node%d has no tables to compare", n.N)
	}
	return s
}

// logSince returns what was appended to a node's error log after off.
func logSince(t *testing.T, n *galeratest.Node, off int64) string {
	b, err := os.ReadFile(n.ErrorLog)
	if errors.Is(err, fs.ErrNotExist) {
		return "" // not written yet
	}
	if err != nil {
		t.Fatal(err)
	}
	if off > int64(len(b)) {
		off = 0
	}
	return string(b[off:])
}

func logSize(n *galeratest.Node) int64 {
	fi, err := os.Stat(n.ErrorLog)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func grepLines(log string, subs ...string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		for _, s := range subs {
			if strings.Contains(l, s) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// join starts node n (stopped) and waits until it is Synced.
func join(t *testing.T, ctx context.Context, n *galeratest.Node) {
	t.Helper()
	testutil.Must(t, n.Start(ctx))
	if err := n.WaitSynced(ctx); err != nil {
		t.Fatalf("node%d did not join: %v", n.N, err)
	}
}

// forceSST stops n and removes its grastate.dat, so that its next start
// asks for a full SST while it still holds its old datadir.
func forceSST(t *testing.T, ctx context.Context, n *galeratest.Node) {
	t.Helper()
	testutil.Must(t, n.Stop(ctx))
	testutil.Must(t, os.Remove(filepath.Join(n.DataDir, "grastate.dat")))
}

// writeRows changes data on n so a joiner has something new to receive.
func writeRows(t *testing.T, ctx context.Context, n *galeratest.Node, k int) {
	t.Helper()
	// A pooled connection may still carry LoadData's wsrep_on=OFF.
	execSQL(t, ctx, n,
		"SET SESSION wsrep_on=ON",
		"USE bench",
		"CREATE TABLE IF NOT EXISTS bench.extra (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(100)) ENGINE=InnoDB",
		fmt.Sprintf("INSERT INTO bench.extra (v) SELECT CONCAT('row ', seq) FROM seq_1_to_%d", k),
		"UPDATE bench.t SET a = a + 1 WHERE id % 97 = 0",
	)
}

// TestRealNativeCopy runs one 2-node cluster through the method's paths:
// an empty joiner, IST (bypass), delta over an old datadir, and a donor and
// a joiner killed mid-transfer, each failure leaving both datadirs intact.
func TestRealNativeCopy(t *testing.T) {
	ctx := ctxFor(t, 10*time.Minute)
	c := newCluster(t, nil)
	n1, n2 := c.Node(1), c.Node(2)
	testutil.Must(t, c.Bootstrap(ctx))
	testutil.Must(t, n1.CreateSampleTables(ctx))
	testutil.Must(t, n1.LoadData(ctx, 24<<20))

	t.Run("empty joiner", func(t *testing.T) {
		off := logSize(n1)
		t0 := time.Now()
		join(t, ctx, n2)
		t.Logf("node2 Synced %.1fs after start", time.Since(t0).Seconds())
		if err := galeratest.CompareChecksums(checksums(t, ctx, n1), checksums(t, ctx, n2)); err != nil {
			t.Fatal(err)
		}
		dl := logSince(t, n1, off)
		if !strings.Contains(dl, "donor write lock held") {
			t.Fatalf("donor log has no lock line:\n%s", dl)
		}
		// The redo log went sparse, and the joiner recovered from it.
		if !strings.Contains(dl, "redo log: sending its live part only") || !strings.Contains(dl, "ib_logfile0 lsn_from=") {
			t.Errorf("donor sent the whole redo log:\n%s", grepLines(dl, "ib_logfile0"))
		}
		t.Logf("donor:\n%s", grepLines(dl, "first pass", "ib_logfile0", "donor write lock held", "verified"))
	})

	// The point of the unlocked passes: the donor keeps taking writes and
	// flushing pages while it copies; the joiner must still come out equal.
	t.Run("join under write load", func(t *testing.T) {
		testutil.Must(t, n2.Stop(ctx))
		testutil.Must(t, n2.Wipe())
		testutil.Must(t, n1.Exec(ctx, "SET GLOBAL innodb_max_dirty_pages_pct=0"))
		defer n1.Exec(ctx, "SET GLOBAL innodb_max_dirty_pages_pct=90")
		testutil.Must(t, n1.SetSST(map[string]string{"rlimit": "40M"}))
		defer n1.SetSST(map[string]string{"rlimit": ""})
		o1 := logSize(n1)
		testutil.Must(t, n2.Start(ctx))
		// The writes start with the donor's SST: a state exchange that meets
		// a busy send queue can stall for good in Galera ("Temporary failure
		// in sending state UUID, will try again in next primary component"),
		// which is not what this test is about.
		if _, err := waitSSTProcess(ctx, "donor", n1.DataDir, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
		wctx, stop := context.WithCancel(ctx)
		writes := make(chan int, 1)
		go func() { writes <- writeLoad(wctx, n1) }()
		if err := n2.WaitSynced(ctx); err != nil {
			stop()
			<-writes
			t.Fatalf("node2 did not join: %v", err)
		}
		time.Sleep(500 * time.Millisecond) // a few writes after the join too
		stop()
		nw := <-writes
		if nw < 10 {
			t.Fatalf("only %d write transactions during the SST", nw)
		}
		if err := n2.WaitSynced(ctx); err != nil {
			t.Fatal(err)
		}
		// Both applied everything: compare once node2 has caught up.
		if err := waitEqual(ctx, n1, n2); err != nil {
			t.Fatal(err)
		}
		dl := logSince(t, n1, o1)
		if !strings.Contains(dl, "redo log: compared its live part only") || !strings.Contains(dl, "ib_logfile0 bytes=") {
			t.Errorf("the locked pass compared the whole redo log:\n%s", grepLines(dl, "ib_logfile0"))
		}
		t.Logf("%d write transactions during the SST; donor:\n%s", nw, grepLines(dl, "first pass", "ib_logfile0", "catch-up", "lock held", "verified"))
	})

	t.Run("IST bypass", func(t *testing.T) {
		testutil.Must(t, n2.Stop(ctx))
		writeRows(t, ctx, n1, 500)
		o1, o2 := logSize(n1), logSize(n2)
		join(t, ctx, n2)
		if err := galeratest.CompareChecksums(checksums(t, ctx, n1), checksums(t, ctx, n2)); err != nil {
			t.Fatal(err)
		}
		dl, jl := logSince(t, n1, o1), logSince(t, n2, o2)
		if !strings.Contains(dl, "sending only the state") || !strings.Contains(jl, "sent bypass") {
			t.Fatalf("bypass path not taken\ndonor:\n%s\njoiner:\n%s", grepLines(dl, "WSREP_SST"), grepLines(jl, "WSREP_SST"))
		}
		if strings.Contains(jl, "receiving ") {
			t.Errorf("joiner received data on a bypass:\n%s", grepLines(jl, "WSREP_SST"))
		}
		t.Logf("joiner:\n%s", grepLines(jl, "bypass", "IST"))
	})

	t.Run("delta over old datadir", func(t *testing.T) {
		forceSST(t, ctx, n2)
		writeRows(t, ctx, n1, 2000)
		testutil.Must(t, n2.SetSST(map[string]string{"delta": "1"}))
		defer n2.SetSST(map[string]string{"delta": ""})
		o1, o2 := logSize(n1), logSize(n2)
		join(t, ctx, n2)
		if err := galeratest.CompareChecksums(checksums(t, ctx, n1), checksums(t, ctx, n2)); err != nil {
			t.Fatal(err)
		}
		dl, jl := logSince(t, n1, o1), logSince(t, n2, o2)
		if !strings.Contains(jl, "delta mode: hashed") || !strings.Contains(dl, "delta mode:") {
			t.Fatalf("delta mode not used\ndonor:\n%s\njoiner:\n%s", grepLines(dl, "WSREP_SST"), grepLines(jl, "WSREP_SST"))
		}
		t.Logf("donor:\n%s\njoiner:\n%s", grepLines(dl, "delta", "lock held", "verified"), grepLines(jl, "delta", "received"))
	})

	t.Run("donor killed", func(t *testing.T) {
		failJoin(t, ctx, c, "donor")
	})
	t.Run("joiner killed", func(t *testing.T) {
		failJoin(t, ctx, c, "joiner")
	})
	// A byte of bench/t.ibd changes on node2's disk after its chunks were
	// checked (the test seam flips it before the read-back): the SST fails
	// naming the file and its path on both sides; node2 keeps its old
	// datadir, the donor is unharmed.
	t.Run("content changed on the joiner's disk", func(t *testing.T) {
		// As forceSST, but it also runs alone (-run .../content), with a
		// node2 that never joined.
		testutil.Must(t, n2.Stop(ctx))
		os.Remove(filepath.Join(n2.DataDir, "grastate.dat"))
		testutil.Must(t, n2.SetSST(map[string]string{"delta": "0"}))
		defer n2.SetSST(map[string]string{"delta": ""})
		t.Setenv(readback.FlipEnv, "bench/t.ibd")
		before2 := dataSnapshot(t, n2.DataDir)
		sums1 := checksums(t, ctx, n1)
		o1, o2 := logSize(n1), logSize(n2)
		testutil.Must(t, n2.Start(ctx))
		waitFailed(t, ctx, n2, o2)
		dl, jl := logSince(t, n1, o1), logSince(t, n2, o2)
		where := filepath.Join(n2.DataDir, sst.StagingDirName, "bench", "t.ibd")
		jerrs, derrs := grepLines(jl, "WSREP_SST: [ERROR]"), grepLines(dl, "WSREP_SST: [ERROR]")
		t.Logf("joiner:\n%s\ndonor:\n%s", jerrs, derrs)
		if !strings.Contains(jerrs, "bench/t.ibd: read back from "+where) || !strings.Contains(jerrs, "not what the donor read") {
			t.Errorf("the joiner's error does not name bench/t.ibd at %s", where)
		}
		if !strings.Contains(derrs, where) {
			t.Errorf("the donor's error does not name %s", where)
		}
		// (The staging may stay: node2's mariadbd aborts as soon as the
		// donor reports the failure, and the harness kills what it leaves
		// running; the next SST removes it.)
		if d := diffSnap(before2, dataSnapshot(t, n2.DataDir)); d != "" {
			t.Errorf("node2's old datadir changed:\n%s", d)
		}
		if err := n1.WaitSynced(ctx); err != nil {
			t.Fatalf("donor not Synced after the failure: %v", err)
		}
		if err := galeratest.CompareChecksums(sums1, checksums(t, ctx, n1)); err != nil {
			t.Fatalf("donor's data changed: %v", err)
		}
	})
	// mariadbd itself dies: the joiner's SST process must notice (--parent),
	// stop, and leave the old datadir as it was: no orphan, no half state.
	t.Run("joiner mariadbd killed", func(t *testing.T) {
		forceSST(t, ctx, n2)
		testutil.Must(t, n1.SetSST(map[string]string{"rlimit": "6M"}))
		defer n1.SetSST(map[string]string{"rlimit": ""})
		// A full transfer, so that it still runs when mariadbd dies: a
		// delta of node2's old datadir moves a megabyte, done in 1.5 s.
		testutil.Must(t, n2.SetSST(map[string]string{"delta": "0"}))
		defer n2.SetSST(map[string]string{"delta": ""})
		before2 := dataSnapshot(t, n2.DataDir)
		sums1 := checksums(t, ctx, n1)
		o2 := logSize(n2)
		testutil.Must(t, n2.Start(ctx))
		pid, err := waitSSTProcess(ctx, "joiner", n2.DataDir, 60*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond)
		t.Logf("killing node2's mariadbd %d (not its SST process %d)", n2.PID(), pid)
		testutil.Must(t, syscall.Kill(n2.PID(), syscall.SIGKILL))
		deadline := time.Now().Add(10 * time.Second)
		for syscall.Kill(pid, 0) == nil {
			if time.Now().After(deadline) {
				syscall.Kill(pid, syscall.SIGKILL)
				t.Fatalf("SST process %d outlived its mariadbd by 10s", pid)
			}
			time.Sleep(50 * time.Millisecond)
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		n2.Wait(wctx)
		// The harness kills a dead node's process group, so the SST process
		// may go by SIGKILL before its --parent watch fires (that watch is
		// tested in package sst). Either way: no orphan, old data intact;
		// a half-received staging is cleared by the next SST.
		t.Logf("joiner:\n%s", grepLines(logSince(t, n2, o2), "WSREP_SST"))
		if d := diffSnap(before2, dataSnapshot(t, n2.DataDir)); d != "" {
			t.Errorf("node2's old datadir changed:\n%s", d)
		}
		// A SIGKILLed node2 never said goodbye: node1 alone is not a
		// Primary Component until told so.
		for i := 0; ; i++ {
			w, err := n1.Wsrep(ctx)
			testutil.Must(t, err)
			if w.ClusterStatus != "Primary" {
				break
			}
			if i > 300 {
				t.Fatalf("node1 still Primary 30s after node2 died: %+v", w)
			}
			time.Sleep(100 * time.Millisecond)
		}
		testutil.Must(t, n1.Exec(ctx, "SET GLOBAL wsrep_provider_options='pc.bootstrap=YES'"))
		if err := n1.WaitSynced(ctx); err != nil {
			t.Fatalf("donor not Synced: %v", err)
		}
		if err := galeratest.CompareChecksums(sums1, checksums(t, ctx, n1)); err != nil {
			t.Fatalf("donor's data changed: %v", err)
		}
	})
	t.Run("rejoin after failures", func(t *testing.T) {
		join(t, ctx, n2)
		for _, n := range []string{".sst-native", ".sst-native-old", ".sst-native-trash", ".sst-native-swap"} {
			if _, err := os.Lstat(filepath.Join(n2.DataDir, n)); err == nil {
				t.Errorf("%s left in node2's datadir after a successful SST", n)
			}
		}
		if err := galeratest.CompareChecksums(checksums(t, ctx, n1), checksums(t, ctx, n2)); err != nil {
			t.Fatal(err)
		}
	})
}

// serverFiles are what mariadbd itself writes in a joiner's datadir around
// an SST; they are not the old data the SST must keep.
func serverFile(name string) bool {
	base := filepath.Base(name)
	switch base {
	case "grastate.dat", "gvwstate.dat", "galera.cache", "sst_in_progress", "wsrep_sst.pid", "tables_flushed", "sst_error":
		return true
	}
	// The SST's own logs are the SST's, not data.
	return strings.HasSuffix(base, ".err") || strings.HasSuffix(base, ".log") || strings.HasSuffix(base, ".pid") || strings.HasPrefix(base, "core") || sst.IsSessionLog(base)
}

func dataSnapshot(t *testing.T, dir string) map[string]string {
	s := snapshot(t, dir)
	for k := range s {
		if serverFile(k) {
			delete(s, k)
		}
	}
	return s
}

// failJoin makes node2 (holding an old datadir) ask for an SST and kills
// the SST process of role mid-transfer; node2 must fail with its old data
// intact and node1 must stay Synced with its data unchanged.
func failJoin(t *testing.T, ctx context.Context, c *galeratest.Cluster, role string) {
	n1, n2 := c.Node(1), c.Node(2)
	forceSST(t, ctx, n2)
	testutil.Must(t, n1.SetSST(map[string]string{"rlimit": "6M"}))
	defer n1.SetSST(map[string]string{"rlimit": ""})
	// A full transfer, long enough at 6M/s to be killed in: a delta of
	// node2's old datadir would reach the donor's lock within the 2 s.
	testutil.Must(t, n2.SetSST(map[string]string{"delta": "0"}))
	defer n2.SetSST(map[string]string{"delta": ""})
	before2 := dataSnapshot(t, n2.DataDir)
	sums1 := checksums(t, ctx, n1)
	o1, o2 := logSize(n1), logSize(n2)
	testutil.Must(t, n2.Start(ctx))
	dir := n2.DataDir
	if role == "donor" {
		dir = n1.DataDir
	}
	pid, err := waitSSTProcess(ctx, role, dir, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	t.Logf("killing the %s's SST process %d", role, pid)
	syscall.Kill(pid, syscall.SIGKILL)
	waitFailed(t, ctx, n2, o2)
	dl, jl := logSince(t, n1, o1), logSince(t, n2, o2)
	t.Logf("donor:\n%s\njoiner:\n%s", grepLines(dl, "WSREP_SST: [ERROR]", "failed"), grepLines(jl, "WSREP_SST: [ERROR]", "Will never receive", "failed"))
	if d := diffSnap(before2, dataSnapshot(t, n2.DataDir)); d != "" {
		t.Errorf("node2's old datadir changed:\n%s", d)
	}
	for _, n := range []string{".sst-native-old", ".sst-native-trash", ".sst-native-swap"} {
		if _, err := os.Lstat(filepath.Join(n2.DataDir, n)); err == nil {
			t.Errorf("%s left in node2's datadir", n)
		}
	}
	if err := n1.WaitSynced(ctx); err != nil {
		t.Fatalf("donor not Synced after the failure: %v", err)
	}
	if err := galeratest.CompareChecksums(sums1, checksums(t, ctx, n1)); err != nil {
		t.Fatalf("donor's data changed: %v", err)
	}
	if role == "joiner" && !strings.Contains(dl, "WSREP_SST: [ERROR]") {
		t.Errorf("donor logged no SST error after the joiner died:\n%s", grepLines(dl, "WSREP_SST"))
	}
	if _, err := os.Lstat(filepath.Join(n1.DataDir, "tables_flushed")); err == nil {
		t.Error("tables_flushed left in the donor's datadir")
	}
}

// waitSSTProcess finds the native-copy process of role working on datadir.
func waitSSTProcess(ctx context.Context, role, datadir string, d time.Duration) (int, error) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if err != nil {
				continue
			}
			args := strings.Split(string(b), "\x00")
			if len(args) == 0 || filepath.Base(args[0]) != "wsrep_sst_"+Name {
				continue
			}
			cmd := strings.Join(args, " ")
			if strings.Contains(cmd, "--role "+role) && strings.Contains(cmd, filepath.Clean(datadir)) {
				return pid, nil
			}
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return 0, fmt.Errorf("no %s SST process for %s within %s", role, datadir, d)
}

// TestRealTLSAndLZ4: node2 joins empty over mutual TLS with lz4; then a
// donor whose certificate the joiner's CA did not sign is refused.
func TestRealTLSAndLZ4(t *testing.T) {
	ctx := ctxFor(t, 8*time.Minute)
	c := newCluster(t, nil)
	dir := filepath.Join(c.Dir(), "certs")
	testutil.Must(t, os.MkdirAll(dir, 0o755))
	os.Chmod(c.Dir(), 0o755)
	writePKI(t, dir, []string{"node1", "node2"}, "foreign")
	tlsOpts := func(who string) map[string]string {
		return map[string]string{"encrypt": "4", "tca": filepath.Join(dir, "ca1.crt"),
			"tcert": filepath.Join(dir, who+".crt"), "tkey": filepath.Join(dir, who+".key"),
			"compressor": "lz4", "decompressor": "lz4 -d", "sst-initial-timeout": "20"}
	}
	n1, n2 := c.Node(1), c.Node(2)
	testutil.Must(t, n1.SetSST(tlsOpts("node1")))
	testutil.Must(t, n2.SetSST(tlsOpts("node2")))
	testutil.Must(t, c.Bootstrap(ctx))
	testutil.Must(t, n1.LoadData(ctx, 16<<20))

	t.Run("join", func(t *testing.T) {
		o1, o2 := logSize(n1), logSize(n2)
		join(t, ctx, n2)
		if err := galeratest.CompareChecksums(checksums(t, ctx, n1), checksums(t, ctx, n2)); err != nil {
			t.Fatal(err)
		}
		dl, jl := logSince(t, n1, o1), logSince(t, n2, o2)
		t.Logf("donor:\n%s\njoiner:\n%s", grepLines(dl, "WSREP_SST"), grepLines(jl, "WSREP_SST"))
		if !strings.Contains(dl, "verified") {
			t.Fatalf("no verified transfer in the donor log")
		}
	})

	t.Run("foreign donor certificate", func(t *testing.T) {
		forceSST(t, ctx, n2)
		testutil.Must(t, n1.SetSST(tlsOpts("foreign")))
		defer n1.SetSST(tlsOpts("node1"))
		before2 := dataSnapshot(t, n2.DataDir)
		sums1 := checksums(t, ctx, n1)
		o1, o2 := logSize(n1), logSize(n2)
		testutil.Must(t, n2.Start(ctx))
		waitFailed(t, ctx, n2, o2)
		dl, jl := logSince(t, n1, o1), logSince(t, n2, o2)
		t.Logf("donor:\n%s\njoiner:\n%s", grepLines(dl, "WSREP_SST: [ERROR]"), grepLines(jl, "WSREP_SST: [ERROR]", "refus"))
		if !strings.Contains(dl, "WSREP_SST: [ERROR]") {
			t.Errorf("donor logged no error")
		}
		if d := diffSnap(before2, dataSnapshot(t, n2.DataDir)); d != "" {
			t.Errorf("node2's old datadir changed:\n%s", d)
		}
		if err := n1.WaitSynced(ctx); err != nil {
			t.Fatal(err)
		}
		if err := galeratest.CompareChecksums(sums1, checksums(t, ctx, n1)); err != nil {
			t.Fatalf("donor's data changed: %v", err)
		}
	})
}

// TestRealDiskTooSmall: node2's datadir is a small tmpfs holding an old
// datadir; the joiner must refuse before receiving, and keep the old data.
func TestRealDiskTooSmall(t *testing.T) {
	ctx := ctxFor(t, 6*time.Minute)
	c := newCluster(t, nil)
	n1, n2 := c.Node(1), c.Node(2)
	testutil.Must(t, c.Bootstrap(ctx))
	testutil.Must(t, n1.LoadData(ctx, 40<<20))
	testutil.Must(t, os.MkdirAll(n2.DataDir, 0o755))
	// galera.cache (64M) is allocated before the SST; leave ~24M beyond it.
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=88m,mode=0755", "gs-test-tmpfs", n2.DataDir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		n2.Kill()
		if out, err := exec.Command("umount", n2.DataDir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", n2.DataDir, err, out)
		}
	})
	mkfiles(t, n2.DataDir, map[string]int{"ibdata1": 2 << 20, "olddb/t.ibd": 1 << 20, "mysql/user.MAI": 8192})
	exec.Command("chown", "-R", "mysql:mysql", n2.DataDir).Run()
	before2 := dataSnapshot(t, n2.DataDir)
	sums1 := checksums(t, ctx, n1)
	o1, o2 := logSize(n1), logSize(n2)
	testutil.Must(t, n2.Start(ctx))
	waitFailed(t, ctx, n2, o2)
	dl, jl := logSince(t, n1, o1), logSince(t, n2, o2)
	t.Logf("joiner:\n%s\ndonor:\n%s", grepLines(jl, "WSREP_SST: [ERROR]"), grepLines(dl, "WSREP_SST: [ERROR]"))
	if !strings.Contains(jl, "not enough space") {
		t.Errorf("joiner did not report the space shortage:\n%s", grepLines(jl, "WSREP_SST"))
	}
	if d := diffSnap(before2, dataSnapshot(t, n2.DataDir)); d != "" {
		t.Errorf("node2's old datadir changed:\n%s", d)
	}
	if _, err := os.Lstat(filepath.Join(n2.DataDir, ".sst-native")); err == nil {
		t.Error("staging left behind")
	}
	if err := n1.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if err := galeratest.CompareChecksums(sums1, checksums(t, ctx, n1)); err != nil {
		t.Fatalf("donor's data changed: %v", err)
	}
	t.Run("fills mid-transfer", func(t *testing.T) {
		// Now room for the snapshot, until the test fills the disk while
		// the (slowed) transfer runs.
		if out, err := exec.Command("mount", "-o", "remount,size=1g", n2.DataDir).CombinedOutput(); err != nil {
			t.Fatalf("remount tmpfs: %v: %s", err, out)
		}
		testutil.Must(t, n1.SetSST(map[string]string{"rlimit": "8M"}))
		defer n1.SetSST(map[string]string{"rlimit": ""})
		before2 := dataSnapshot(t, n2.DataDir)
		o1, o2 := logSize(n1), logSize(n2)
		testutil.Must(t, n2.Start(ctx))
		for !strings.Contains(logSince(t, n1, o1), "sending ") {
			if ctx.Err() != nil || !n2.Running() {
				t.Fatalf("no transfer began:\n%s", grepLines(logSince(t, n2, o2), "WSREP_SST"))
			}
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(2 * time.Second)
		filler := filepath.Join(n2.DataDir, "filler")
		testutil.Must(t, galeratest.FillDisk(filler))
		refusedBy(t, ctx, n2, o2)
		os.Remove(filler)
		jl := logSince(t, n2, o2)
		errs := grepLines(jl, "WSREP_SST: [ERROR]")
		t.Logf("joiner:\n%s", errs)
		for _, want := range []string{"not enough space", n2.DataDir + "/", "more (plus"} {
			if !strings.Contains(errs, want) {
				t.Errorf("the joiner's error does not say %q", want)
			}
		}
		if d := diffSnap(before2, dataSnapshot(t, n2.DataDir)); d != "" {
			t.Errorf("node2's old datadir changed:\n%s", d)
		}
		if _, err := os.Lstat(filepath.Join(n2.DataDir, ".sst-native")); err == nil {
			t.Error("staging left behind")
		}
		if err := n1.WaitSynced(ctx); err != nil {
			t.Fatal(err)
		}
		if err := galeratest.CompareChecksums(sums1, checksums(t, ctx, n1)); err != nil {
			t.Fatalf("donor's data changed: %v", err)
		}
		if _, err := os.Lstat(filepath.Join(n1.DataDir, sst.TablesFlushedFile)); err == nil {
			t.Error("the donor's lock marker was left")
		}
	})
}

// TestRealMeasure compares native-copy with the stock rsync on a bigger
// dataset (GS_TEST_NC_MEASURE_MB, e.g. 1024); skipped when unset. It logs
// time to Synced and the donor's lock lines.
func TestRealMeasure(t *testing.T) {
	galeratest.Require(t)
	mbs, _ := strconv.Atoi(os.Getenv("GS_TEST_NC_MEASURE_MB"))
	if mbs <= 0 {
		t.Skip("set GS_TEST_NC_MEASURE_MB to measure")
	}
	ctx := ctxFor(t, 30*time.Minute)
	bin := galeratest.Binaries(t)
	c := galeratest.NewTest(t, galeratest.Config{Nodes: 2, SSTMethod: Name, PathPrepend: []string{bin}, BufferPool: "512M"})
	n1, n2 := c.Node(1), c.Node(2)
	testutil.Must(t, c.Bootstrap(ctx))
	testutil.Must(t, n1.LoadData(ctx, int64(mbs)<<20))
	for _, m := range []string{Name, "rsync", Name} {
		if n2.Running() {
			testutil.Must(t, n2.Stop(ctx))
		}
		testutil.Must(t, n2.Wipe())
		testutil.Must(t, n2.SetSSTMethod(m))
		exec.Command("sh", "-c", "sync; echo 3 > /proc/sys/vm/drop_caches").Run()
		o1 := logSize(n1)
		rctx, stopRSS := context.WithCancel(ctx)
		rss := make(chan map[string]int64, 1)
		go func() { rss <- peakRSS(rctx, []string{n1.DataDir, n2.DataDir}) }()
		t0 := time.Now()
		join(t, ctx, n2)
		el := time.Since(t0)
		stopRSS()
		dl := logSince(t, n1, o1)
		t.Logf("%s: Synced after %.1fs; peak RSS of SST processes (KiB): %v\n%s", m, el.Seconds(), <-rss, grepLines(dl, "first pass", "catch-up", "lock held", "verified", "Tables flushed", "resuming provider"))
		if err := galeratest.CompareChecksums(checksums(t, ctx, n1), checksums(t, ctx, n2)); err != nil {
			t.Fatal(err)
		}
	}
}

// writeLoad updates ranges of bench.t and inserts rows on n until ctx ends,
// and returns the number of transactions committed.
func writeLoad(ctx context.Context, n *galeratest.Node) int {
	db, err := n.DB(ctx)
	if err != nil {
		return 0
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET SESSION wsrep_on=ON"); err != nil {
		return 0
	}
	conn.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS bench.load (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(200)) ENGINE=InnoDB")
	var top int64
	conn.QueryRowContext(ctx, "SELECT MAX(id) FROM bench.t").Scan(&top)
	done := 0
	for i := int64(0); ctx.Err() == nil; i++ {
		lo := (i * 7919) % max(top, 1)
		if _, err := conn.ExecContext(ctx, fmt.Sprintf("UPDATE bench.t SET a = a + 1 WHERE id BETWEEN %d AND %d", lo, lo+2000)); err != nil {
			continue
		}
		if _, err := conn.ExecContext(ctx, "INSERT INTO bench.load (v) VALUES (REPEAT('x', 150))"); err != nil {
			continue
		}
		done++
	}
	return done
}

// waitEqual compares the checksums of a and b until they agree (b may
// still be applying the last write-sets) or ctx's deadline nears.
func waitEqual(ctx context.Context, a, b *galeratest.Node) error {
	var last error
	for i := 0; i < 20; i++ {
		sa, err := a.Checksums(ctx)
		if err != nil {
			return err
		}
		sb, err := b.Checksums(ctx)
		if err != nil {
			return err
		}
		if last = galeratest.CompareChecksums(sa, sb); last == nil {
			return nil
		}
		time.Sleep(500 * time.Millisecond)
	}
	return last
}

// peakRSS samples the VmHWM of every process whose command line names a
// wsrep_sst_ script and one of dirs, until ctx ends; keyed by role.
func peakRSS(ctx context.Context, dirs []string) map[string]int64 {
	peak := map[string]int64{}
	for ctx.Err() == nil {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			if _, err := strconv.Atoi(e.Name()); err != nil {
				continue
			}
			b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if err != nil || !bytes.Contains(b, []byte("wsrep_sst_")) {
				continue
			}
			cmd := string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
			match := false
			for _, d := range dirs {
				match = match || strings.Contains(cmd, filepath.Clean(d))
			}
			if !match {
				continue
			}
			role := "donor"
			if strings.Contains(cmd, "--role joiner") {
				role = "joiner"
			}
			st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
			if err != nil {
				continue
			}
			for _, l := range strings.Split(string(st), "\n") {
				if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
					kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
					peak[role] = max(peak[role], kb)
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return peak
}

// waitFailed waits until the joiner's SST has failed (its script logged an
// error) and its mariadbd has gone. mariadbd 10.11 sometimes hangs in its
// own abort after a failed SST ("Application state transfer failed" and
// "Will never receive state" racing); that is the server's, not the SST's,
// so such a node is killed after a grace period.
func waitFailed(t *testing.T, ctx context.Context, n *galeratest.Node, logOff int64) {
	t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	for !strings.Contains(logSince(t, n, logOff), "WSREP_SST: [ERROR]") {
		if time.Now().After(deadline) {
			t.Fatalf("node%d's SST logged no error within 120s:\n%s", n.N, grepLines(logSince(t, n, logOff), "WSREP_SST"))
		}
		if !n.Running() {
			break // died before its script could say why
		}
		time.Sleep(100 * time.Millisecond)
	}
	wctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	if err := n.Wait(wctx); err != nil && n.Running() {
		t.Logf("node%d's mariadbd hangs in its abort after the failed SST; killing it", n.N)
		testutil.Must(t, n.Kill())
	}
}

// The redo scan against the server's own log: with the server quiet, the
// end of the log liveRedo finds must be the server's LSN, after the log
// has wrapped around its file at least once.
func TestRealRedoEnd(t *testing.T) {
	ctx := ctxFor(t, 10*time.Minute)
	c := newCluster(t, nil)
	n1 := c.Node(1)
	testutil.Must(t, c.Bootstrap(ctx))
	testutil.Must(t, n1.CreateSampleTables(ctx))
	path := filepath.Join(n1.DataDir, "ib_logfile0")
	fi, err := os.Stat(path)
	testutil.Must(t, err)
	capacity := uint64(fi.Size() - redoStart)
	status := func(name string) uint64 {
		v, err := n1.Status(ctx, name)
		testutil.Must(t, err)
		u, err := strconv.ParseUint(v, 10, 64)
		testutil.Must(t, err)
		return u
	}
	check := func(what string) redoLive {
		for try := 0; ; try++ {
			// Only a log written out up to the server's LSN, before the
			// scan and after it, must scan to that LSN.
			cur := status("Innodb_lsn_current")
			written := status("Innodb_lsn_flushed") == cur
			f, err := os.Open(path)
			testutil.Must(t, err)
			live, err := liveRedo(f, fi.Size())
			f.Close()
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if written && status("Innodb_lsn_current") == cur && status("Innodb_lsn_flushed") == cur {
				if !live.Clean {
					t.Errorf("%s: the end at LSN %d is not the server's end marker", what, live.End)
				}
				if live.End != cur {
					t.Fatalf("%s: scan ends at LSN %d, the server is at %d\n%s", what, live.End, cur, redoAt(path, live.End))
				}
				t.Logf("%s: live LSN %d..%d (%d bytes), %d ranges", what, live.Checkpoint, live.End, live.End-live.Checkpoint, len(live.Ranges))
				return live
			}
			if try == 100 {
				t.Fatalf("%s: the server's LSN did not settle", what)
			}
			time.Sleep(200 * time.Millisecond) // purge or the log flush still running
		}
	}
	check("after start")
	// While the server writes, every scan must succeed (an end short of
	// the server's LSN is expected: it moves on). A scan slower than the
	// writer (-race on a busy machine) may be lapped; that is reported as
	// such and sends the log whole in an SST, so it only counts here.
	lctx, stopScans := context.WithCancel(ctx)
	scans := make(chan error, 1)
	go func() {
		n, lapped := 0, 0
		defer func() { t.Logf("%d scans during the load, %d more lapped by the writer", n, lapped) }()
		for lctx.Err() == nil {
			f, err := os.Open(path)
			if err != nil {
				scans <- err
				return
			}
			_, err = liveRedo(f, fi.Size())
			f.Close()
			if errors.Is(err, errLapped) {
				lapped++
				continue
			}
			if err != nil {
				scans <- fmt.Errorf("scan %d during the load: %w\n%s", n, err, redoDump(path))
				return
			}
			n++
		}
		if n == 0 {
			scans <- fmt.Errorf("no scan during the load reached the end (%d lapped)", lapped)
			return
		}
		scans <- nil
	}()
	testutil.Must(t, n1.LoadData(ctx, int64(capacity)*3/2))
	// Then small commits while the page cleaner flushes everything and
	// checkpoints often, as on a donor under light load.
	testutil.Must(t, n1.Exec(ctx, "SET GLOBAL innodb_max_dirty_pages_pct=0"))
	for i := 0; i < 1500; i++ {
		testutil.Must(t, n1.Exec(ctx, fmt.Sprintf("UPDATE gstest.kinds SET i = i + 1 WHERE id = %d", 1+i%500)))
		time.Sleep(5 * time.Millisecond)
	}
	stopScans()
	testutil.Must(t, <-scans)
	// Rows of varied size: records from a few bytes to whole pages, whose
	// lengths take the longer varint forms.
	for i := 0; i < 300; i++ {
		testutil.Must(t, n1.Exec(ctx, fmt.Sprintf("INSERT INTO gstest.kinds (s, t) VALUES ('redo', REPEAT(CHAR(65 + %d), %d))", i%26, 1+i*997%60000)))
	}
	live := check("after the load")
	f, err := os.Open(path)
	testutil.Must(t, err)
	hdr := make([]byte, 16)
	_, err = f.ReadAt(hdr, 0)
	f.Close()
	testutil.Must(t, err)
	if first := binary.BigEndian.Uint64(hdr[8:]); live.End-first < capacity {
		t.Errorf("the log did not wrap: %d bytes written into a %d-byte ring", live.End-first, capacity)
	}
}

// openRedo opens a redo log for the diagnostics below.
func openRedo(path string) (*ring, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	hdr := make([]byte, redoStart)
	if _, err := f.ReadAt(hdr, 0); err != nil {
		f.Close()
		return nil, nil, err
	}
	return &ring{f: f, first: binary.BigEndian.Uint64(hdr[8:]), capacity: uint64(fi.Size()) - redoStart}, hdr, nil
}

// redoDump describes the mini-transactions from the checkpoint on.
func redoDump(path string) string {
	r, hdr, err := openRedo(path)
	if err != nil {
		return err.Error()
	}
	defer r.f.(*os.File).Close()
	var b strings.Builder
	for _, o := range []int{redoCheckpoint1, redoCheckpoint2} {
		fmt.Fprintf(&b, "block %d: checkpoint %d end %d\n", o, binary.BigEndian.Uint64(hdr[o:]), binary.BigEndian.Uint64(hdr[o+8:]))
	}
	lsn := max(binary.BigEndian.Uint64(hdr[redoCheckpoint1:]), binary.BigEndian.Uint64(hdr[redoCheckpoint2:]))
	r.load(lsn, false)
	for k := 0; k < 40; k++ {
		i, n, ok, err := r.mtr(lsn)
		if err != nil || !ok {
			fmt.Fprintf(&b, "%d: end (%v)\n", lsn, err)
			break
		}
		fmt.Fprintf(&b, "%d: %d bytes: % x\n", lsn, n, r.buf[i:i+min(n, 24)])
		lsn += uint64(n)
	}
	return b.String()
}

// redoAt describes the records at lsn, where a scan stopped.
func redoAt(path string, lsn uint64) string {
	r, _, err := openRedo(path)
	if err != nil {
		return err.Error()
	}
	defer r.f.(*os.File).Close()
	r.load(lsn, false)
	b := r.buf
	var out strings.Builder
	fmt.Fprintf(&out, "offset %d, seq bit %d, first %d, capacity %d\n", r.offset(lsn), r.seqBit(lsn), r.first, r.capacity)
	j := 0
	for k := 0; k < 30 && j < len(b) && b[j] > 1; k++ {
		l, ok := recordLen(b[j:])
		fmt.Fprintf(&out, "  rec at +%d: %02x len %d ok %v: % x\n", j, b[j], l, ok, b[j:min(len(b), j+min(l, 20))])
		if !ok {
			break
		}
		j += l
	}
	if j+13 <= len(b) {
		fmt.Fprintf(&out, "  end byte at +%d: % x\n", j, b[j:j+13])
		fmt.Fprintf(&out, "  crc of [0,%d) = %08x\n", j, crc32.Checksum(b[:j], castagnoli))
	}
	return out.String()
}
