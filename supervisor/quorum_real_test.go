package supervisor

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/supervisor/galeratest"
	"github.com/galera-supervisor/galera-supervisor/supervisor/quorum"
)

// TestRealQuorum runs three nodes under the built supervisor with peer
// coordination and takes the whole cluster down three ways: a clean full
// shutdown (stock aborts until galera_new_cluster), a kill -9 of every
// mariadbd (pc.recovery), and a kill -9 with one node kept down (a
// majority bootstraps after bootstrap-wait). Each time the cluster must come
// back without a person, with every row, decided as expected.
func TestRealQuorum(t *testing.T) {
	galeratest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	c := galeratest.NewTest(t, galeratest.Config{Nodes: 3})
	// The harness reserves the peer ports and writes the peer options
	// (bootstrap-wait 5 s); the supervisors run here, as root, to hear
	// their READY=1.
	if _, err := c.Supervise(galeratest.SupervisorConfig{Binary: builtSupervisor(t), BootstrapWait: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	nodes := []*galeratest.Node{c.Node(1), c.Node(2), c.Node(3)}
	q := newQuorumRun(t, ctx, nodes)
	sups, start, waitAll, decision, write, checkRows := q.sups, q.start, q.waitAll, q.decision, q.write, q.checkRows
	killAll := func(which ...int) {
		t.Helper()
		for _, i := range which {
			if pid := mariadbdPID(sups[i].cmd.Process.Pid); pid > 0 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		for _, i := range which {
			select {
			case <-sups[i].exited:
			case <-time.After(time.Minute):
				t.Fatalf("node%d: supervisor did not exit after mariadbd was killed", i+1)
			}
		}
	}
	// A new cluster, by hand as always.
	start(0, "--wsrep-new-cluster")
	waitAll(0)
	if err := nodes[0].Exec(ctx, "CREATE DATABASE gs"); err != nil {
		t.Fatal(err)
	}
	if err := nodes[0].Exec(ctx, "CREATE TABLE gs.q (a INT PRIMARY KEY) ENGINE=InnoDB"); err != nil {
		t.Fatal(err)
	}
	start(1)
	waitAll(1)
	start(2)
	waitAll(2)
	for i := 1; i < 3; i++ {
		if a := decision(i); a != quorum.ActionJoin {
			t.Errorf("node%d joined a running cluster by decision %s, want join", i+1, a)
		}
	}
	write(30)

	// 1. Clean full shutdown, 3 then 2 then 1: node1 is the last, the
	// most advanced; all three start at once.
	for _, i := range []int{2, 1, 0} {
		if code := sups[i].stop(t, 2*time.Minute); code != ExitOK {
			t.Fatalf("node%d: exit %d", i+1, code)
		}
		write(0)
	}
	t0 := time.Now()
	for i := range nodes {
		start(i)
	}
	waitAll(0, 1, 2)
	t.Logf("clean full shutdown: all Synced %.1fs after the start", time.Since(t0).Seconds())
	if a := decision(0); a != quorum.ActionBootstrap {
		t.Errorf("node1 (last down) decided %s, want bootstrap", a)
	}
	for i := 1; i < 3; i++ {
		if a := decision(i); a != quorum.ActionJoin {
			t.Errorf("node%d decided %s, want join", i+1, a)
		}
	}
	checkRows()
	write(30)

	// 2. kill -9 of every mariadbd: pc.recovery. node3's grastate.dat is
	// cut short, as by a crash while Galera rewrote it: it must not cost a
	// full SST (Galera reads such a file as uuid 0).
	killAll(0, 1, 2)
	errOff := fileSize(nodes[2].ErrorLog)
	if err := os.Truncate(filepath.Join(nodes[2].DataDir, "grastate.dat"), 0); err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	for i := range nodes {
		start(i)
	}
	waitAll(0, 1, 2)
	if b, _ := os.ReadFile(nodes[2].ErrorLog); len(b) > errOff && bytes.Contains(b[errOff:], []byte("Local state: "+ZeroUUID)) {
		t.Errorf("node3 took a full SST after its grastate.dat was cut short:\n%s", nodes[2].LogTail(30))
	}
	t.Logf("kill -9 of all: all Synced %.1fs after the start", time.Since(t0).Seconds())
	for i := range nodes {
		if a := decision(i); a != quorum.ActionPCRecovery {
			t.Errorf("node%d decided %s, want pc-recovery", i+1, a)
		}
	}
	checkRows()
	write(30)

	// 3. kill -9 of all, node3 kept down: 1 and 2 bootstrap after 5 s.
	killAll(0, 1, 2)
	t0 = time.Now()
	start(0)
	start(1)
	waitAll(0, 1)
	t.Logf("kill -9 of all, one kept down: two Synced %.1fs after the start (bootstrap-wait 5s)", time.Since(t0).Seconds())
	if a, b := decision(0), decision(1); !(a == quorum.ActionBootstrap && b == quorum.ActionJoin || a == quorum.ActionJoin && b == quorum.ActionBootstrap) {
		t.Errorf("decisions %s and %s, want one bootstrap and one join", a, b)
	}
	start(2)
	waitAll(2)
	if a := decision(2); a != quorum.ActionJoin {
		t.Errorf("node3 decided %s on its return, want join", a)
	}
	checkRows()

	// 4. kill -9 of all, and node3's supervisor dies after the others let
	// pc.recovery restore the view of three: they give up on it (exit 5)
	// once node3 has been gone 10 s, and their restart bootstraps without
	// it. node3's recovery is held by a mariadbd that sleeps instead, so
	// that it is still recovering, its view published, when 1 and 2 start.
	slow := filepath.Join(nodes[2].Dir, "slow-mariadbd") // mysql runs it
	if err := os.WriteFile(slow, []byte("#!/bin/sh\nfor a; do [ \"$a\" = --wsrep-recover ] && exec sleep 300; done\nexec /usr/sbin/mariadbd \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	killAll(0, 1, 2)
	offs := []int{fileSize(sups[0].log), fileSize(sups[1].log)}
	start(2, "--mariadbd="+slow)
	start(0)
	start(1)
	for _, i := range []int{0, 1} {
		waitLog(t, sups[i].log, offs[i], "starting mariadbd decision=pc-recovery", 2*time.Minute)
	}
	syscall.Kill(-sups[2].cmd.Process.Pid, syscall.SIGKILL)
	<-sups[2].exited
	t0 = time.Now()
	for _, i := range []int{0, 1} {
		select {
		case <-sups[i].exited:
		case <-time.After(2 * time.Minute):
			t.Fatalf("node%d: still waiting for pc.recovery 2 minutes after node3 went", i+1)
		}
		if code := sups[i].cmd.ProcessState.ExitCode(); code != ExitMariadbd {
			t.Errorf("node%d: exit %d, want %d", i+1, code, ExitMariadbd)
		}
	}
	t.Logf("node3 gone during pc.recovery: 1 and 2 gave up %.1fs later", time.Since(t0).Seconds())
	start(0)
	start(1)
	waitAll(0, 1)
	start(2)
	waitAll(2)
	checkRows()
	for _, i := range []int{2, 1, 0} {
		if code := sups[i].stop(t, 2*time.Minute); code != ExitOK {
			t.Errorf("node%d: exit %d", i+1, code)
		}
	}
}

// quorumRun runs the supervisors of a cluster's nodes, here as root to
// hear their READY=1, and counts the rows a test writes to them.
type quorumRun struct {
	t     *testing.T
	ctx   context.Context
	nodes []*galeratest.Node
	sups  []*supervised // by node index; start replaces them
	sds   []*systemdSocket
	rows  int
}

func newQuorumRun(t *testing.T, ctx context.Context, nodes []*galeratest.Node) *quorumRun {
	return &quorumRun{t: t, ctx: ctx, nodes: nodes, sups: make([]*supervised, len(nodes)), sds: make([]*systemdSocket, len(nodes))}
}

// start starts node index i's supervisor.
func (q *quorumRun) start(i int, args ...string) {
	q.sds[i] = newSystemdSocket(q.t)
	q.sups[i] = startSupervisor(q.t, q.nodes[i], q.sds[i], args...)
}

// waitAll waits for each node's READY=1, which comes once it is Synced.
func (q *quorumRun) waitAll(which ...int) {
	q.t.Helper()
	for _, i := range which {
		if _, err := q.sds[i].waitFor(q.ctx, "READY=1", q.sups[i].exited); err != nil {
			b, _ := os.ReadFile(q.sups[i].log)
			q.t.Fatalf("node%d: %v\n%s", i+1, err, b)
		}
	}
}

// decision is node index i's last recorded decision.
func (q *quorumRun) decision(i int) quorum.Action {
	q.t.Helper()
	r, err := quorum.ReadRecord(q.nodes[i].DataDir)
	if err != nil || r == nil {
		q.t.Fatalf("node%d: no decision: %v", i+1, err)
	}
	return r.Action
}

// write inserts n rows into gs.q, in turn on the nodes of the indexes
// given (every node when none).
func (q *quorumRun) write(n int, on ...int) {
	q.t.Helper()
	if len(on) == 0 {
		for i := range q.nodes {
			on = append(on, i)
		}
	}
	for range n {
		q.rows++
		if err := q.nodes[on[q.rows%len(on)]].Exec(q.ctx, "INSERT INTO gs.q VALUES (?)", q.rows); err != nil {
			q.t.Fatal(err)
		}
	}
}

// checkRows checks that the nodes of the indexes given (every node when
// none) hold every row written.
func (q *quorumRun) checkRows(which ...int) {
	q.t.Helper()
	if len(which) == 0 {
		for i := range q.nodes {
			which = append(which, i)
		}
	}
	for _, i := range which {
		got, err := q.nodes[i].QueryString(q.ctx, "SELECT COUNT(*) FROM gs.q")
		if err != nil || got != fmt.Sprint(q.rows) {
			q.t.Errorf("node%d: %s rows (%v), want %d", i+1, got, err, q.rows)
		}
	}
}
