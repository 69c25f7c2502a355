package supervisor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/supervisor/galeratest"
	"github.com/galera-supervisor/galera-supervisor/supervisor/quorum"
)

// TestRealQuorumTLS: three supervised nodes whose peers prove who they are
// by mutual TLS alone (peer-tls = on, no peer-secret-file), with a CA and
// one certificate per node made here; the same [sst] certificates carry
// the native-copy SSTs (encrypt = 4). After a clean full shutdown all
// three supervisors start at once: the last down bootstraps, the others
// join, every row is there. Then node3 is given a certificate from another
// CA: its peers refuse it, each log names the peer and the TLS error, and
// node3 never starts mariadbd (it left cleanly, before the others), while
// node1, the last down (safe_to_bootstrap: 1), bootstraps and 2 joins,
// without it.
func TestRealQuorumTLS(t *testing.T) {
	galeratest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	c := galeratest.NewTest(t, galeratest.Config{Nodes: 3, SSTMethod: "native-copy"})
	nodes := []*galeratest.Node{c.Node(1), c.Node(2), c.Node(3)}
	certs := filepath.Join(c.Dir(), "certs")
	ca, err := galeratest.NewCA(certs, "cluster-ca")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		cert, key, err := ca.Issue(certs, n.Name(), n.Addr())
		if err != nil {
			t.Fatal(err)
		}
		if err := n.SetSST(map[string]string{"encrypt": "4", "tcert": cert, "tkey": key, "tca": ca.File}); err != nil {
			t.Fatal(err)
		}
	}
	sv, err := c.Supervise(galeratest.SupervisorConfig{Binary: builtSupervisor(t), BootstrapWait: 5 * time.Second,
		Options: map[string]string{"peer-secret-file": "", "peer-tls": "on"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if b, _ := os.ReadFile(n.ConfigFile); strings.Contains(string(b), "peer-secret-file") || !strings.Contains(string(b), "peer-tls=on") {
			t.Fatalf("node%d: want peer-tls=on and no peer-secret-file in:\n%s", n.N, b)
		}
	}
	q := newQuorumRun(t, ctx, nodes)
	sups, start, waitAll, decision := q.sups, q.start, q.waitAll, q.decision
	stopAll := func(which ...int) {
		t.Helper()
		for _, i := range which {
			if code := sups[i].stop(t, 2*time.Minute); code != ExitOK {
				t.Fatalf("node%d: exit %d", i+1, code)
			}
		}
	}
	// node3 is refused later: the rows go to 1 and 2.
	write := func(n int) { q.write(n, 0, 1) }
	checkRows := q.checkRows

	// A new cluster, by hand; 2 and 3 join by SST over TLS.
	start(0, "--wsrep-new-cluster")
	waitAll(0)
	for _, q := range []string{"CREATE DATABASE gs", "CREATE TABLE gs.q (a INT PRIMARY KEY) ENGINE=InnoDB"} {
		if err := nodes[0].Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	start(1)
	waitAll(1)
	write(10)
	start(2)
	waitAll(2)
	for _, n := range nodes[1:] {
		if b, _ := os.ReadFile(n.ErrorLog); !strings.Contains(string(b), "tls=verify-ca") {
			t.Errorf("node%d's SST did not go over TLS verify-ca:\n%s", n.N, n.LogTail(30))
		}
	}
	write(20)

	// 1. Clean full shutdown, 3 then 2 then 1; all three start at once.
	stopAll(2, 1, 0)
	t0 := time.Now()
	for i := range nodes {
		start(i)
	}
	waitAll(0, 1, 2)
	t.Logf("clean full shutdown under peer-tls: all Synced %.1fs after the start", time.Since(t0).Seconds())
	if a := decision(0); a != quorum.ActionBootstrap {
		t.Errorf("node1 (last down) decided %s, want bootstrap", a)
	}
	for i := 1; i < 3; i++ {
		if a := decision(i); a != quorum.ActionJoin {
			t.Errorf("node%d decided %s, want join", i+1, a)
		}
	}
	checkRows(0, 1, 2)
	write(20)

	// 2. node3 gets a certificate from another CA (its tca still the
	// cluster's), and the cluster goes down cleanly again.
	stopAll(2, 1, 0)
	rogue, err := galeratest.NewCA(certs, "other-ca")
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := rogue.Issue(certs, "node3-other", nodes[2].Addr())
	if err != nil {
		t.Fatal(err)
	}
	if err := nodes[2].SetSST(map[string]string{"tcert": cert, "tkey": key}); err != nil {
		t.Fatal(err)
	}
	offs := []int{fileSize(sups[0].log), fileSize(sups[1].log), fileSize(sups[2].log)}
	errOff := fileSize(nodes[2].ErrorLog)
	// node3 first: node1, the last down, bootstraps at its first poll,
	// which must already meet node3's refusal.
	start(2)
	waitLog(t, sups[2].log, offs[2], "answering peers", 30*time.Second)
	t0 = time.Now()
	start(0)
	start(1)
	waitAll(0, 1)
	t.Logf("node3 refused: 1 and 2 Synced %.1fs after their start", time.Since(t0).Seconds())
	if a, b := decision(0), decision(1); a != quorum.ActionBootstrap || b != quorum.ActionJoin {
		t.Errorf("node1 decided %s and node2 %s, want bootstrap and join", a, b)
	}
	checkRows(0, 1)
	// Each side names the other and the TLS error: node3's peers refuse
	// its certificate, and node3 is told so for each peer.
	for _, i := range []int{0, 1} {
		waitLog(t, sups[i].log, offs[i], "peer refused peer=", 10*time.Second)
		waitLog(t, sups[i].log, offs[i], escaped(`peer authentication failed: TLS: peer certificate "node3-other" (issuer "other-ca"): x509: certificate signed by unknown authority`), 10*time.Second)
		waitLog(t, sups[i].log, offs[i], "peer does not answer peer="+sv.PeerAddress(nodes[2])+` error="`+
			escaped(`peer authentication failed: TLS: peer certificate "node3-other": x509: certificate signed by unknown authority`), 10*time.Second)
	}
	for _, i := range []int{0, 1} {
		waitLog(t, sups[2].log, offs[2], "peer does not answer peer="+sv.PeerAddress(nodes[i])+` error="peer authentication failed: TLS: the peer refused this node's certificate`, 10*time.Second)
	}
	// node3 would have joined within a poll of a Primary Component it
	// could see; give it a few.
	time.Sleep(3 * time.Second)
	select {
	case <-sups[2].exited:
		t.Fatalf("node3's supervisor exited: %v", sups[2].err)
	default:
	}
	if pid := mariadbdPID(sups[2].cmd.Process.Pid); pid != 0 {
		t.Errorf("node3 runs mariadbd (pid %d) with a certificate its peers refuse", pid)
	}
	if fileSize(nodes[2].ErrorLog) != errOff {
		t.Errorf("node3 started mariadbd:\n%s", nodes[2].LogTail(20))
	}
	if a := decision(2); a != quorum.ActionWait {
		t.Errorf("node3 decided %s, want wait", a)
	}
	b, _ := os.ReadFile(sups[2].log)
	log3 := string(b[offs[2]:])
	if strings.Contains(log3, "bootstrapping a new Primary Component from this node") || strings.Contains(log3, "starting mariadbd decision=") {
		t.Errorf("node3 started on its own:\n%s", log3)
	}
	if !strings.Contains(log3, "waiting for one of "+sv.PeerAddress(nodes[0])+", "+sv.PeerAddress(nodes[1])+", however long") {
		t.Errorf("node3's log does not say why it waits:\n%s", log3)
	}
	stopAll(2, 1, 0)
}
