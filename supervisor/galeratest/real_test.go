package galeratest

import (
	"context"
	"os"
	"strings"
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
