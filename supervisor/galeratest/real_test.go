package galeratest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRealThreeNodeSST: node1 bootstraps, node2 joins, data is loaded, node3
// joins empty by the stock rsync SST; every table must then checksum the
// same on every node, and nothing may be left running after Close.
func TestRealThreeNodeSST(t *testing.T) {
	Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c := NewTest(t, Config{Nodes: 3})

	t0 := time.Now()
	if err := c.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("bootstrap: %v", time.Since(t0))
	n1, n2, n3 := c.Node(1), c.Node(2), c.Node(3)

	if err := n1.CreateSampleTables(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n1.LoadData(ctx, 4<<20); err != nil {
		t.Fatal(err)
	}

	t0 = time.Now()
	if err := n2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n2.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("node2 join: %v", time.Since(t0))

	// Replicated writes after node2 joined: node3 must get them by SST too.
	if err := n2.Exec(ctx, "INSERT INTO gstest.part SELECT seq, -seq FROM gstest.seq_1001_to_1200"); err != nil {
		t.Fatal(err)
	}

	if _, err := os.Stat(n3.DataDir + "/mysql"); err == nil {
		t.Fatalf("node3 datadir %s is not empty before its SST", n3.DataDir)
	}
	t0 = time.Now()
	if err := n3.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n3.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("node3 join by rsync SST: %v", time.Since(t0))

	log, err := os.ReadFile(n3.ErrorLog)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "wsrep_sst_rsync") {
		t.Errorf("node3's error log shows no rsync SST:\n%s", n3.LogTail(40))
	}
	for _, n := range c.Nodes() {
		s, err := n.Wsrep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if s.State != "Synced" || s.ClusterSize != "3" || s.ClusterStatus != "Primary" || s.Ready != "ON" {
			t.Errorf("node%d: %+v, want Synced in a Primary Component of 3", n.N, s)
		}
	}

	// Replicated writes through every node, after the SSTs.
	t0 = time.Now()
	if err := n3.LoadData(ctx, 20<<20); err != nil {
		t.Fatal(err)
	}
	t.Logf("replicated load on node3: %v", time.Since(t0))
	if err := n1.Exec(ctx, "UPDATE gstest.kinds SET i = i + 1 WHERE id % 3 = 0"); err != nil {
		t.Fatal(err)
	}

	sums := make([]map[string]string, 3)
	for i, n := range c.Nodes() {
		if sums[i], err = n.Checksums(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, table := range []string{"bench.t", "gstest.kinds", "gstest.aria", "gstest.myisam", "gstest.part"} {
		if v, ok := sums[0][table]; !ok || v == "NULL" || v == "0" {
			t.Errorf("node1: checksum of %s = %q, want a real checksum", table, v)
		}
	}
	for i := 1; i < 3; i++ {
		if err := CompareChecksums(sums[0], sums[i]); err != nil {
			t.Errorf("node1 vs node%d: %v", i+1, err)
		}
	}
	if n, err := n3.QueryString(ctx, "SELECT COUNT(*) FROM bench.t"); err != nil || n == "0" {
		t.Errorf("node3 bench.t rows = %s, %v", n, err)
	}

	pids := []int{n1.PID(), n2.PID(), n3.PID()}
	if len(c.Leftovers()) < 3 {
		t.Errorf("Leftovers() = %v before Close, want at least the 3 mariadbd", c.Leftovers())
	}
	dir := c.Dir()
	t0 = time.Now()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("close: %v", time.Since(t0))
	for i, pid := range pids {
		if alive(pid) {
			t.Errorf("node%d pid %d alive after Close", i+1, pid)
		}
	}
	if left := markedPIDs(markerEnv + "=" + dir + "/"); len(left) > 0 {
		t.Errorf("processes left after Close: %v", left)
	}
	if _, err := os.Stat(dir); os.Getenv("GS_TEST_KEEP") != "1" && err == nil {
		t.Errorf("cluster dir %s still exists after Close", dir)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestRealStartFailureFailsFast: a node that cannot start must make
// WaitSynced fail at once, quoting the error log, not wait for the deadline.
func TestRealStartFailureFailsFast(t *testing.T) {
	Require(t)
	c := NewTest(t, Config{Nodes: 1, Mysqld: map[string]string{"no_such_option_galeratest": "1"}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t0 := time.Now()
	err := c.Bootstrap(ctx)
	if err == nil {
		t.Fatal("Bootstrap succeeded with an unknown option")
	}
	if d := time.Since(t0); d > 30*time.Second {
		t.Errorf("Bootstrap failed after %v, want at once", d)
	}
	if !strings.Contains(err.Error(), "no_such_option_galeratest") || !strings.Contains(err.Error(), "exited") {
		t.Errorf("error does not name the exit and the bad option:\n%v", err)
	}
	if c.Node(1).Running() {
		t.Error("node1 still running")
	}
}

// TestRealOrphanSafety: when the test process dies hard (SIGKILL, a panic in
// another goroutine, go test's timeout), its mariadbd dies with it
// (Pdeathsig), and the next cluster removes what it left under Root.
func TestRealOrphanSafety(t *testing.T) {
	Require(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "GS_HELPER=cluster")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var dir string
	var pid int
	if _, err := fmt.Fscan(out, &dir, &pid); err != nil {
		t.Fatalf("read helper's cluster dir and pid: %v", err)
	}
	if !alive(pid) {
		t.Fatalf("helper's mariadbd %d not running", pid)
	}
	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if alive(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("mariadbd %d outlived its test process by 10s", pid)
	}
	sweepStale(t.Logf)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s not swept after its owner died: %v", dir, err)
		os.RemoveAll(dir)
	}
}

// helperCluster runs in the child of TestRealOrphanSafety.
func helperCluster() {
	ctx := context.Background()
	c, err := New(ctx, Config{Nodes: 1})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := c.Bootstrap(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		c.Close()
		os.Exit(1)
	}
	fmt.Println(c.Dir(), c.Node(1).PID())
	time.Sleep(2 * time.Minute)
	c.Close()
	os.Exit(0)
}

// TestRealKillJoinerDuringSST: killing a joiner in the middle of its rsync
// SST takes its SST script and rsync daemon down with it; the donor goes back
// to Synced and the wiped joiner can join again.
func TestRealKillJoinerDuringSST(t *testing.T) {
	Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := NewTest(t, Config{Nodes: 2})
	if err := c.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	n1, n2 := c.Node(1), c.Node(2)
	if err := n1.LoadData(ctx, 128<<20); err != nil {
		t.Fatal(err)
	}
	if err := n2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	marker := markerEnv + "=" + n2.Dir
	var rsync int
	deadline := time.Now().Add(time.Minute)
	for rsync == 0 && time.Now().Before(deadline) && n2.Running() {
		for _, pid := range markedPIDs(marker) {
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
			if strings.TrimSpace(string(comm)) == "rsync" {
				rsync = pid
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if rsync == 0 {
		t.Fatalf("never saw node2's rsync running; node2 log:\n%s", n2.LogTail(30))
	}
	helpers := markedPIDs(marker)
	if err := n2.Kill(); err != nil {
		t.Fatal(err)
	}
	if left := markedPIDs(marker); len(left) > 0 {
		t.Errorf("node2's processes %v left after Kill (during SST: %v)", left, helpers)
	}
	if alive(rsync) {
		t.Errorf("node2's rsync %d alive after Kill", rsync)
	}
	// node1 alone is half of a 2-node cluster: once it notices node2 is
	// gone it has no quorum, and must be told to form a Primary Component.
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	err := n1.WaitStatus(wctx, "wsrep_cluster_status", "non-Primary")
	wcancel()
	if err != nil {
		t.Fatal(err)
	}
	if err := n1.Exec(ctx, "SET GLOBAL wsrep_provider_options='pc.bootstrap=YES'"); err != nil {
		t.Fatal(err)
	}
	if err := n1.WaitSynced(ctx); err != nil {
		t.Fatalf("donor after the failed SST: %v", err)
	}
	if err := n2.Wipe(); err != nil {
		t.Fatal(err)
	}
	if err := n2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n2.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	a, err := n1.Checksums(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := n2.Checksums(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := CompareChecksums(a, b); err != nil {
		t.Error(err)
	}
}

// TestRealStartProgram: a wrapper started as root that runs mariadbd (as a
// supervisor would) is waited for, stopped and cleaned up like mariadbd.
func TestRealStartProgram(t *testing.T) {
	Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := NewTest(t, Config{Nodes: 1})
	n := c.Node(1)
	// The shell stays as the parent of mariadbd, which drops root itself.
	// It traps SIGTERM, so a stop never reaches mariadbd.
	err := n.StartProgram(ctx, true, "/bin/sh", "-c", `trap 'echo TERM' TERM; "$@"; echo "mariadbd exited $?"`, "sh",
		Mariadbd, "--defaults-file="+n.ConfigFile, "--wsrep-new-cluster")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	var mariadbd int
	for _, pid := range markedPIDs(markerEnv + "=" + n.Dir) {
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) == "mariadbd" {
			mariadbd = pid
		}
	}
	if mariadbd == 0 || mariadbd == n.PID() {
		t.Fatalf("mariadbd pid %d under wrapper %d", mariadbd, n.PID())
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", mariadbd))
	if err != nil {
		t.Fatal(err)
	}
	uid, _, _ := runUser()
	if !strings.Contains(string(status), fmt.Sprintf("\nUid:\t%d\t", uid)) {
		t.Errorf("mariadbd does not run as %s:\n%s", RunUser, status)
	}
	// SIGTERM reaches the wrapper only; sh waits for mariadbd, which never
	// hears of it, so Stop must end with the group kill.
	c.cfg.StopTimeout = 2 * time.Second
	if err := n.Stop(ctx); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("Stop = %v, want a kill after the timeout", err)
	}
	if alive(mariadbd) {
		t.Errorf("mariadbd %d alive after Stop", mariadbd)
	}
}
