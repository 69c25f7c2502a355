package supervisor

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/supervisor/galeratest"
	"github.com/galera-supervisor/galera-supervisor/supervisor/quorum"
)

// The tests of whole-cluster recovery (issue 11): three real nodes, each
// under the built galera-supervisor with the peer options, a write load
// that counts only committed rows, and a monitor that fails the test
// whenever it sees two Primary Components. Each outage is one that stock
// Galera does not recover from alone (../shared/reference/stock-outage.md),
// except the fast path, which is timed against stock.

// outageRounds is the number of kill -9 rounds: GS_OUTAGE_ROUNDS, 20 by
// default.
func outageRounds(t *testing.T) int {
	s := os.Getenv("GS_OUTAGE_ROUNDS")
	if s == "" {
		return 20
	}
	k, err := strconv.Atoi(s)
	if err != nil || k < 1 {
		t.Fatalf("GS_OUTAGE_ROUNDS=%q: want a number of rounds >= 1", s)
	}
	return k
}

// outageOpts are newOutage's choices.
type outageOpts struct {
	nodes         int           // 3 when 0
	wait          time.Duration // bootstrap-wait
	preload       int64         // bytes of bench.t on node1 before the others join
	partitionable bool          // each node in a network namespace of its own
}

// outage is a supervised 3-node cluster with its load and monitor.
type outage struct {
	t    *testing.T
	c    *galeratest.Cluster
	s    *galeratest.Supervised
	m    *galeratest.Monitor
	load *galeratest.Load
	net  *galeratest.Network // with outageOpts.partitionable
	rng  *rand.Rand
	t0   time.Time // the last start of supervisors, for decisions
}

// outageTest is newOutage for a test that has timeout to run.
func outageTest(t *testing.T, timeout time.Duration, opts outageOpts) (*outage, context.Context) {
	t.Helper()
	galeratest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return newOutage(t, ctx, opts), ctx
}

// newOutage forms a 3-node cluster under supervisors (node1 bootstraps
// with --wsrep-new-cluster, the others join by SST), creates the load
// table, and starts the monitor and the load. The cleanup stops the load
// and fails the test if the monitor ever saw two Primary Components.
func newOutage(t *testing.T, ctx context.Context, opts outageOpts) *outage {
	t.Helper()
	cfg := galeratest.Config{Nodes: cmp.Or(opts.nodes, 3)}
	cfg.PathPrepend = []string{filepath.Dir(builtSupervisor(t))}
	cfg.SSTMethod = "native-copy"
	c := galeratest.NewTest(t, cfg)
	seed := uint64(time.Now().UnixNano())
	t.Logf("random seed %d", seed)
	o := &outage{t: t, c: c, rng: rand.New(rand.NewPCG(seed, seed))}
	if opts.partitionable {
		net, err := c.Partitionable(ctx)
		if err != nil {
			t.Fatal(err)
		}
		o.net = net
	}
	s, err := c.Supervise(galeratest.SupervisorConfig{Binary: builtSupervisor(t), BootstrapWait: opts.wait})
	if err != nil {
		t.Fatal(err)
	}
	o.s = s
	if err := s.Start(ctx, c.Node(1), "--wsrep-new-cluster"); err != nil {
		t.Fatal(err)
	}
	if err := c.Node(1).WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if err := galeratest.CreateLoadTable(ctx, c.Node(1)); err != nil {
		t.Fatal(err)
	}
	if opts.preload > 0 {
		if err := c.Node(1).LoadData(ctx, opts.preload); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range c.Nodes()[1:] {
		if err := s.Start(ctx, n); err != nil {
			t.Fatal(err)
		}
		if err := n.WaitSynced(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if o.m, err = galeratest.StartMonitor(c.Nodes(), 150*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if o.load, err = galeratest.StartLoad(c.Nodes(), 5*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		o.load.Stop()
		o.m.Stop()
		if err := o.m.Err(); err != nil {
			t.Error(err)
		}
	})
	return o
}

// writesFlow waits for k more committed rows.
func (o *outage) writesFlow(ctx context.Context, k int) {
	o.t.Helper()
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := o.load.WaitAcked(wctx, k); err != nil {
		o.t.Fatal(err)
	}
}

// killMariadbd kills -9 the mariadbd of nodes and checks that each
// supervisor exited with a code systemd's Restart= acts on.
func (o *outage) killMariadbd(ctx context.Context, nodes ...*galeratest.Node) {
	o.t.Helper()
	codes, err := o.s.KillMariadbd(ctx, o.rng, nodes...)
	if err != nil {
		o.t.Fatal(err)
	}
	for i, code := range codes {
		if code == 0 || slices.Contains([]int{3, 4, 6, 78}, code) {
			o.t.Fatalf("node%d: supervisor exited %d after its mariadbd was killed: a unit would not restart it", nodes[i].N, code)
		}
	}
}

// recover starts the supervisors of nodes at once and waits until they
// form one Primary Component of exactly those nodes, all Synced; it
// returns the time that took.
func (o *outage) recover(ctx context.Context, within time.Duration, nodes ...*galeratest.Node) time.Duration {
	o.t.Helper()
	t0 := time.Now()
	o.t0 = t0
	if err := o.s.StartAll(ctx, nodes...); err != nil {
		o.t.Fatal(err)
	}
	return o.waitSynced(ctx, t0, within, nodes...)
}

func (o *outage) waitSynced(ctx context.Context, t0 time.Time, within time.Duration, nodes ...*galeratest.Node) time.Duration {
	o.t.Helper()
	wctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	var exited []<-chan struct{}
	for _, n := range nodes {
		exited = append(exited, n.Exited())
	}
	at, err := o.m.Wait(wctx, galeratest.Synced(nodes...), exited...)
	if err != nil {
		o.t.Fatalf("no Primary Component of %d Synced nodes within %v of the start: %v", len(nodes), within, err)
	}
	return at.Sub(t0)
}

// verify checks that every committed row is on each of nodes.
func (o *outage) verify(ctx context.Context, nodes ...*galeratest.Node) {
	o.t.Helper()
	if err := o.load.Verify(ctx, nodes...); err != nil {
		o.t.Fatal(err)
	}
}

// logOffsets are the sizes of the nodes' error logs, for bootstrapped.
func (o *outage) logOffsets() []int64 {
	var offs []int64
	for _, n := range o.c.Nodes() {
		fi, err := os.Stat(n.ErrorLog)
		if err != nil {
			offs = append(offs, 0)
			continue
		}
		offs = append(offs, fi.Size())
	}
	return offs
}

// bootstrapped lists the nodes whose mariadbd started a new Primary
// Component (--wsrep-new-cluster) since the offsets were taken; a Primary
// Component that pc.recovery restores is not a bootstrap.
func (o *outage) bootstrapped(offs []int64) []int {
	var out []int
	for i, n := range o.c.Nodes() {
		b, err := os.ReadFile(n.ErrorLog)
		if err != nil || int64(len(b)) < offs[i] {
			continue
		}
		if bytes.Contains(b[offs[i]:], []byte("gcomm: bootstrapping new group")) {
			out = append(out, n.N)
		}
	}
	return out
}

// finish checks that writes flow on the cluster again, then stops the load
// and checks every node's rows.
func (o *outage) finish(ctx context.Context) {
	o.t.Helper()
	o.writesFlow(ctx, 30)
	o.stopLoad(ctx, o.c.Nodes()...)
}

// stopLoad stops the load and checks that nodes hold every committed row,
// and the same rows.
func (o *outage) stopLoad(ctx context.Context, nodes ...*galeratest.Node) {
	o.t.Helper()
	o.load.Stop()
	o.verify(ctx, nodes...)
	if err := o.load.Same(ctx, nodes...); err != nil {
		o.t.Fatal(err)
	}
}

// decisions says what each node's supervisor last decided, and when
// (seconds after the last recover's start).
func (o *outage) decisions() string {
	var b strings.Builder
	for _, n := range o.c.Nodes() {
		r, err := quorum.ReadRecord(n.DataDir)
		switch {
		case err != nil:
			fmt.Fprintf(&b, "node%d: %v; ", n.N, err)
		case r == nil:
			fmt.Fprintf(&b, "node%d: no decision; ", n.N)
		default:
			fmt.Fprintf(&b, "node%d %s at %+.2f s (%s); ", n.N, r.Action, r.Time.Sub(o.t0).Seconds(), r.Reason)
		}
	}
	return strings.TrimSuffix(b.String(), "; ")
}

func durations(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	var med time.Duration
	if k := len(s); k%2 == 1 {
		med = s[k/2]
	} else {
		med = (s[k/2-1] + s[k/2]) / 2
	}
	return fmt.Sprintf("median %.2f s, max %.2f s, min %.2f s over %d", med.Seconds(), s[len(s)-1].Seconds(), s[0].Seconds(), len(s))
}

// TestRealOutageKillAll is the power loss, repeated (GS_OUTAGE_ROUNDS, 20
// by default): while committed writes flow on every node, every mariadbd is
// killed -9 at a random moment, the supervisors exit, and all three restart
// at once. Each round must end with one Primary Component of the three
// nodes, all Synced, without a human, and with every committed row on every
// node.
func TestRealOutageKillAll(t *testing.T) {
	galeratest.Require(t)
	rounds := outageRounds(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rounds)*time.Minute+5*time.Minute)
	defer cancel()
	o := newOutage(t, ctx, outageOpts{wait: 10 * time.Second})
	all := o.c.Nodes()
	var times []time.Duration
	for r := 1; r <= rounds; r++ {
		o.writesFlow(ctx, 30)
		time.Sleep(time.Duration(o.rng.IntN(2000)) * time.Millisecond)
		offs := o.logOffsets()
		o.killMariadbd(ctx, all...)
		d := o.recover(ctx, 3*time.Minute, all...)
		times = append(times, d)
		o.writesFlow(ctx, 30)
		o.verify(ctx, all...)
		t.Logf("round %d: all 3 Synced %.2f s after the restart; %d rows committed; bootstrapped: %v; %s", r, d.Seconds(), o.load.Acked(), o.bootstrapped(offs), o.decisions())
	}
	o.stopLoad(ctx, all...)
	t.Logf("recovery after kill -9 of every mariadbd, %d rounds: %s; %d rows committed (%s)", rounds, durations(times), o.load.Acked(), o.load.Counts())
}

// TestRealOutageOneNodeDown is the power loss with one node kept down:
// stock Galera's two survivors wait for it forever. Ours wait
// bootstrap-wait, then one of them bootstraps (a majority of the last
// view), the other joins; the third joins when it comes back.
func TestRealOutageOneNodeDown(t *testing.T) {
	galeratest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const wait = 8 * time.Second
	o := newOutage(t, ctx, outageOpts{wait: wait})
	all := o.c.Nodes()
	o.writesFlow(ctx, 50)
	offs := o.logOffsets()
	o.killMariadbd(ctx, all...)
	// What Galera leaves after a crash: seqno -1, safe_to_bootstrap: 0,
	// the last Primary Component view in gvwstate.dat.
	for _, n := range all {
		o.files(n, -1, false, true)
	}
	d := o.recover(ctx, 3*time.Minute, all[0], all[1])
	t.Logf("nodes 1 and 2 Synced %.2f s after the restart (bootstrap-wait %v); bootstrapped: %v; %s", d.Seconds(), wait, o.bootstrapped(offs), o.decisions())
	if d < wait {
		t.Errorf("a Primary Component of 2 of 3 after %v, before bootstrap-wait (%v) ran out", d, wait)
	}
	if b := o.bootstrapped(offs); len(b) != 1 || b[0] == 3 {
		t.Errorf("bootstrapped: %v, want one of node1, node2", b)
	}
	o.writesFlow(ctx, 30)
	o.verify(ctx, all[0], all[1])
	t0 := time.Now()
	if err := o.s.Start(ctx, all[2]); err != nil {
		t.Fatal(err)
	}
	d = o.waitSynced(ctx, t0, 3*time.Minute, all...)
	t.Logf("node3 back: all 3 Synced %.2f s after its start", d.Seconds())
	o.finish(ctx)
}

// files checks what Galera left in n's datadir: grastate.dat's seqno
// (-1, or any recovered one when seqno >= 0 is asked with -2),
// safe_to_bootstrap, and whether gvwstate.dat exists.
func (o *outage) files(n *galeratest.Node, seqno int64, safe, view bool) *Grastate {
	o.t.Helper()
	f, err := os.Open(filepath.Join(n.DataDir, "grastate.dat"))
	if err != nil {
		o.t.Fatal(err)
	}
	defer f.Close()
	g, err := ParseGrastate(f)
	if err != nil {
		o.t.Fatal(err)
	}
	_, verr := os.Stat(filepath.Join(n.DataDir, "gvwstate.dat"))
	if seqno == -1 && g.Seqno != -1 || seqno == -2 && g.Seqno < 0 || g.SafeToBootstrap != safe || (verr == nil) != view {
		o.t.Errorf("node%d: grastate.dat seqno %d safe_to_bootstrap %v, gvwstate.dat %v; want seqno %s, safe_to_bootstrap %v, gvwstate.dat %v",
			n.N, g.Seqno, g.SafeToBootstrap, verr == nil, map[int64]string{-1: "-1", -2: ">= 0"}[seqno], safe, view)
	}
	return g
}

// neverPrimary starts the supervisors of nodes and watches them for d:
// none may become Primary, and each must decide to wait, saying why in
// words that contain why.
func (o *outage) neverPrimary(ctx context.Context, d time.Duration, why string, nodes ...*galeratest.Node) {
	o.t.Helper()
	before := map[int]int{}
	for _, n := range nodes {
		before[n.N] = o.m.PrimarySweeps(n.N)
	}
	o.t0 = time.Now()
	if err := o.s.StartAll(ctx, nodes...); err != nil {
		o.t.Fatal(err)
	}
	time.Sleep(d)
	for _, n := range nodes {
		if k := o.m.PrimarySweeps(n.N) - before[n.N]; k > 0 {
			o.t.Errorf("node%d was Primary in %d sweeps: %s", n.N, k, o.decisions())
		}
		r, err := quorum.ReadRecord(n.DataDir)
		if err != nil || r == nil || r.Action != quorum.ActionWait || !strings.Contains(r.Reason, why) {
			o.t.Errorf("node%d: last decision %+v (%v); want a wait saying %q", n.N, r, err, why)
		}
		if b, _ := os.ReadFile(n.SupervisorLog()); !bytes.Contains(b, []byte(why)) {
			o.t.Errorf("node%d's log does not say %q", n.N, why)
		}
	}
	o.t.Logf("%s: never Primary for %v: %s", nodeNames(nodes), d, o.decisions())
}

func nodeNames(nodes []*galeratest.Node) string {
	var s []string
	for _, n := range nodes {
		s = append(s, "node"+strconv.Itoa(n.N))
	}
	return strings.Join(s, ", ")
}

// TestRealOutageRollingShutdown is issue 15's data loss: node1 stops
// cleanly, rows are written, node2 stops, more rows are written on node3
// alone, node3 stops last (safe_to_bootstrap: 1). Nodes 1 and 2 come back
// without it: they left a Primary Component that went on without them, so
// they never become Primary (stock Galera refuses too), and each says it
// waits for node3 and why. When node3 returns it bootstraps, and all
// three are Synced with every acknowledged row.
func TestRealOutageRollingShutdown(t *testing.T) {
	const wait = 6 * time.Second
	o, ctx := outageTest(t, 10*time.Minute, outageOpts{wait: wait})
	all := o.c.Nodes()
	o.writesFlow(ctx, 30)
	for _, n := range all {
		if _, err := o.s.StopAll(ctx, n); err != nil {
			t.Fatal(err)
		}
		if n.N < 3 {
			o.writesFlow(ctx, 30) // on the nodes still up
		}
	}
	// What Galera leaves after a clean stop: the seqno, no gvwstate.dat,
	// safe_to_bootstrap: 1 only on the last to leave.
	g1, g3 := o.files(all[0], -2, false, false), o.files(all[2], -2, true, false)
	o.files(all[1], -2, false, false)
	if g3.Seqno <= g1.Seqno {
		t.Errorf("node3 left at seqno %d, node1 at %d: want node3 ahead", g3.Seqno, g1.Seqno)
	}
	offs := o.logOffsets()
	o.neverPrimary(ctx, 3*wait, "waiting for "+o.s.PeerAddress(all[2])+", however long", all[0], all[1])
	t0 := time.Now()
	if err := o.s.Start(ctx, all[2]); err != nil {
		t.Fatal(err)
	}
	d := o.waitSynced(ctx, t0, 3*time.Minute, all...)
	t.Logf("node3 back: all 3 Synced %.2f s after its start; bootstrapped: %v; %s", d.Seconds(), o.bootstrapped(offs), o.decisions())
	if b := o.bootstrapped(offs); !slices.Equal(b, []int{3}) {
		t.Errorf("bootstrapped: %v, want node3 alone (the last one down)", b)
	}
	o.finish(ctx)
}

// TestRealOutageFiveNodes: five nodes lose power. With two kept down, the
// three present are a majority of the last view: one bootstraps after
// bootstrap-wait, with every acknowledged row. After the two rejoin and
// the power is lost again, the two present with three kept down never
// become Primary (2 of 5 is no majority); when the three return, the
// cluster is whole again.
func TestRealOutageFiveNodes(t *testing.T) {
	const wait = 6 * time.Second
	o, ctx := outageTest(t, 15*time.Minute, outageOpts{nodes: 5, wait: wait})
	all := o.c.Nodes()
	o.writesFlow(ctx, 50)
	offs := o.logOffsets()
	o.killMariadbd(ctx, all...)
	d := o.recover(ctx, 3*time.Minute, all[:3]...)
	t.Logf("nodes 1-3 Synced %.2f s after the restart (bootstrap-wait %v); bootstrapped: %v; %s", d.Seconds(), wait, o.bootstrapped(offs), o.decisions())
	if d < wait {
		t.Errorf("a Primary Component of 3 of 5 after %v, before bootstrap-wait (%v) ran out", d, wait)
	}
	if b := o.bootstrapped(offs); len(b) != 1 || b[0] > 3 {
		t.Errorf("bootstrapped: %v, want one of nodes 1-3", b)
	}
	o.writesFlow(ctx, 30)
	o.verify(ctx, all[:3]...)
	t0 := time.Now()
	if err := o.s.StartAll(ctx, all[3:]...); err != nil {
		t.Fatal(err)
	}
	d = o.waitSynced(ctx, t0, 3*time.Minute, all...)
	t.Logf("nodes 4, 5 back: all 5 Synced %.2f s after their start", d.Seconds())

	o.writesFlow(ctx, 50)
	o.killMariadbd(ctx, all...)
	o.neverPrimary(ctx, 3*wait, "only 2 of 5 members of the last Primary Component view", all[:2]...)
	t0 = time.Now()
	if err := o.s.StartAll(ctx, all[2:]...); err != nil {
		t.Fatal(err)
	}
	d = o.waitSynced(ctx, t0, 3*time.Minute, all...)
	t.Logf("nodes 3-5 back: all 5 Synced %.2f s after their start; %s", d.Seconds(), o.decisions())
	o.finish(ctx)
}

// TestRealOutageCleanShutdown stops every node cleanly (3, 2, then 1, with
// writes flowing) and starts all three at once: stock Galera aborts after
// 32 s until a person runs galera_new_cluster on node1. Ours bootstraps
// node1, the last one down and the most advanced, and nobody else.
func TestRealOutageCleanShutdown(t *testing.T) {
	o, ctx := outageTest(t, 10*time.Minute, outageOpts{wait: 10 * time.Second})
	all := o.c.Nodes()
	o.writesFlow(ctx, 50)
	codes, err := o.s.StopAll(ctx, all[2], all[1], all[0])
	if err != nil {
		t.Fatal(err)
	}
	for i, code := range codes {
		if code != 0 {
			t.Errorf("node%d: supervisor exited %d after SIGTERM, want 0", 3-i, code)
		}
	}
	offs := o.logOffsets()
	d := o.recover(ctx, 3*time.Minute, all...)
	t.Logf("after a clean full shutdown, all 3 Synced %.2f s after the start; bootstrapped: %v; %s", d.Seconds(), o.bootstrapped(offs), o.decisions())
	if b := o.bootstrapped(offs); !slices.Equal(b, []int{1}) {
		t.Errorf("bootstrapped: %v, want node1 alone (the last one down)", b)
	}
	o.finish(ctx)
}

// TestRealOutageStaleMember kills node3, lets the cluster run on as {1,2}
// with writes, then kills 1 and 2 and starts all three at once: stock
// Galera deadlocks (node3's old view blocks pc.recovery). Ours brings node1
// and node2 back, and node3 joins them.
func TestRealOutageStaleMember(t *testing.T) {
	o, ctx := outageTest(t, 10*time.Minute, outageOpts{wait: 10 * time.Second})
	all := o.c.Nodes()
	o.writesFlow(ctx, 30)
	o.killMariadbd(ctx, all[2])
	o.withoutNode3(ctx, "stale")
	o.finish(ctx)
}

// TestRealOutageHalfSST is stock's scenario 6a: node3 is wiped and joins by
// rsync SST (which writes into the datadir itself), and loses power once
// ibdata1 and the redo log are in, before the tables: its datadir is half a
// copy, with an emptied grastate.dat and sst_in_progress, and
// --wsrep-recover reports a position that ties with the others. The
// cluster runs on as {1,2}, then loses power too, and all three start at
// once. node3 must never be chosen; it joins by a full SST, and no
// committed row or table is lost.
func TestRealOutageHalfSST(t *testing.T) {
	o, ctx := outageTest(t, 10*time.Minute, outageOpts{wait: 10 * time.Second, preload: 64 << 20})
	before := o.halfSSTNode3(ctx)
	o.withoutNode3(ctx, "half-SST'd")
	o.finish(ctx)
	o.noTableLost(ctx, before)
}

// TestRealOutageHalfSSTCleanShutdown leaves node3 half SST'd as
// TestRealOutageHalfSST does, then shuts node2 and node1 down cleanly,
// which removes their gvwstate.dat: someone must bootstrap. Stock Galera
// would accept only node3 (its emptied grastate.dat reads as
// safe_to_bootstrap) besides node1, and bootstrapping node3 lost tables.
// Ours must bootstrap node1, the last one down, and node3 joins by SST.
func TestRealOutageHalfSSTCleanShutdown(t *testing.T) {
	o, ctx := outageTest(t, 10*time.Minute, outageOpts{wait: 10 * time.Second, preload: 64 << 20})
	all := o.c.Nodes()
	before := o.halfSSTNode3(ctx)
	o.writesFlow(ctx, 50)
	if _, err := o.s.StopAll(ctx, all[1], all[0]); err != nil {
		t.Fatal(err)
	}
	offs := o.logOffsets()
	d := o.recover(ctx, 4*time.Minute, all...)
	t.Logf("half-SST'd node3 after a clean shutdown of the others: all 3 Synced %.2f s after the start; bootstrapped: %v; %s", d.Seconds(), o.bootstrapped(offs), o.decisions())
	if b := o.bootstrapped(offs); !slices.Equal(b, []int{1}) {
		t.Errorf("bootstrapped: %v, want node1 alone (the last one down)", b)
	}
	o.finish(ctx)
	o.noTableLost(ctx, before)
}

// halfSSTNode3 wipes node3 and starts it, to join by rsync SST (which
// writes into the datadir itself), and cuts its power once ibdata1 and the
// redo log are in, before the tables: its datadir is then half a copy, with
// an emptied grastate.dat and sst_in_progress, and --wsrep-recover reports a
// position that ties with the others. It returns node1's table checksums.
func (o *outage) halfSSTNode3(ctx context.Context) map[string]string {
	t := o.t
	t.Helper()
	n3 := o.c.Node(3)
	before := mustChecksums(t, ctx, o.c.Node(1))
	o.writesFlow(ctx, 30)
	if err := n3.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n3.Wipe(); err != nil {
		t.Fatal(err)
	}
	if err := n3.SetSSTMethod("rsync"); err != nil {
		t.Fatal(err)
	}
	offs := o.logOffsets()
	if err := o.s.Start(ctx, n3); err != nil {
		t.Fatal(err)
	}
	frozen := o.freezeDonorMidSST(ctx, offs)
	if err := o.s.PowerLoss(n3); err != nil {
		t.Fatal(err)
	}
	for _, pid := range frozen {
		syscall.Kill(pid, syscall.SIGCONT) // the donor's SST fails; it carries on
	}
	if _, err := os.Stat(filepath.Join(n3.DataDir, "sst_in_progress")); err != nil {
		t.Fatalf("node3 is not half SST'd: %v", err)
	}
	if _, err := os.Stat(filepath.Join(n3.DataDir, "ibdata1")); err != nil {
		t.Fatalf("node3 has no ibdata1 from its SST: %v", err)
	}
	_, err := os.Stat(filepath.Join(n3.DataDir, "bench", "t.ibd"))
	t.Logf("node3 lost power mid-SST (bench/t.ibd: %v)", err)
	return before
}

// noTableLost checks that every node holds each table of before (node1's
// checksums) as it was; the load's table, which grows, only exists.
func (o *outage) noTableLost(ctx context.Context, before map[string]string) {
	o.t.Helper()
	if _, ok := before["bench.t"]; !ok {
		o.t.Fatalf("no bench.t among node1's tables before: %v", before)
	}
	for _, n := range o.c.Nodes() {
		got := mustChecksums(o.t, ctx, n)
		for table, sum := range before {
			switch g, ok := got[table]; {
			case !ok:
				o.t.Errorf("node%d lost table %s", n.N, table)
			case table != galeratest.LoadTable && g != sum:
				o.t.Errorf("node%d: %s checksum %s, want %s (half a copy)", n.N, table, g, sum)
			}
		}
	}
}

// withoutNode3 lets {1,2} run on without the dead node3, with writes,
// then kills both and starts all three at once: they must come back as one
// Primary Component of three, and node3 must not bootstrap.
func (o *outage) withoutNode3(ctx context.Context, what string) {
	o.t.Helper()
	time.Sleep(5 * time.Second) // node3 is evicted; {1,2} carries on
	o.writesFlow(ctx, 100)
	offs := o.logOffsets()
	o.killMariadbd(ctx, o.c.Node(1), o.c.Node(2))
	d := o.recover(ctx, 4*time.Minute, o.c.Nodes()...)
	o.t.Logf("%s node3 with the rest: all 3 Synced %.2f s after the start; bootstrapped: %v; %s", what, d.Seconds(), o.bootstrapped(offs), o.decisions())
	if slices.Contains(o.bootstrapped(offs), 3) {
		o.t.Errorf("the %s node3 bootstrapped", what)
	}
}

// freezeDonorMidSST waits until the donor of node3's rsync SST has sent
// ibdata1 and the redo log, and SIGSTOPs its rsync processes, which then
// copy the tables; it returns their PIDs.
func (o *outage) freezeDonorMidSST(ctx context.Context, offs []int64) []int {
	o.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		for i, n := range o.c.Nodes()[:2] {
			b, err := os.ReadFile(n.ErrorLog)
			if err != nil || int64(len(b)) < offs[i] || !bytes.Contains(b[offs[i]:], []byte("Transfer of InnoDB log files done")) {
				continue
			}
			var pids []int
			for _, p := range descendants(n.PID()) {
				if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p.PID)); string(comm) == "rsync\n" {
					syscall.Kill(p.PID, syscall.SIGSTOP)
					pids = append(pids, p.PID)
				}
			}
			o.t.Logf("node%d, the donor, sent ibdata1 and the redo log: %d rsync processes stopped", n.N, len(pids))
			return pids
		}
		time.Sleep(2 * time.Millisecond)
	}
	o.t.Fatal("no donor sent node3 its redo log by rsync within 2 minutes")
	return nil
}

// TestRealOutageFastPath times the one outage stock Galera recovers from
// alone, every member of the last view returning after a power loss,
// against ours, alternately on the same cluster and data: stock as its unit
// does it (galera_recovery, then mariadbd --wsrep_start_position, all three
// at once; pc.recovery restores the Primary Component), ours by the
// supervisors. Both times are printed; none is asserted.
func TestRealOutageFastPath(t *testing.T) {
	o, ctx := outageTest(t, 12*time.Minute, outageOpts{wait: 10 * time.Second})
	all := o.c.Nodes()
	var ours, stock []time.Duration
	for r := 1; r <= 3; r++ {
		o.writesFlow(ctx, 30)
		o.killMariadbd(ctx, all...)
		d := o.startStock(ctx, all...)
		stock = append(stock, d)
		o.writesFlow(ctx, 30)
		for _, n := range all {
			if err := n.Kill(); err != nil {
				t.Fatal(err)
			}
		}
		d2 := o.recover(ctx, 3*time.Minute, all...)
		ours = append(ours, d2)
		t.Logf("round %d: stock %.2f s, ours %.2f s; %s", r, d.Seconds(), d2.Seconds(), o.decisions())
	}
	o.finish(ctx)
	t.Logf("every member of the last view back after kill -9, launch to all 3 Synced: stock %s; ours %s", durations(stock), durations(ours))
}

// startStock starts nodes at once the way stock mariadb.service does, each
// galera_recovery and then mariadbd --wsrep_start_position, and returns the
// time from the launch until they are one Primary Component, all Synced.
func (o *outage) startStock(ctx context.Context, nodes ...*galeratest.Node) time.Duration {
	o.t.Helper()
	t0 := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := exec.CommandContext(ctx, "/usr/bin/galera_recovery", "--defaults-file="+n.ConfigFile).Output()
			if err != nil {
				errs[i] = fmt.Errorf("node%d: galera_recovery: %w", n.N, err)
				return
			}
			errs[i] = n.Start(ctx, strings.Fields(string(out))...)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			o.t.Fatal(err)
		}
	}
	return o.waitSynced(ctx, t0, 3*time.Minute, nodes...)
}

// TestRealOutagePartition cuts node3 off the network while {1,2}, a
// Primary Component, carries on with writes, and restarts node3 there, as
// a crash and Restart= would: alone, with no peer reachable, it must never
// bootstrap (1 of 3 is no majority, and a Primary Component lives on the
// other side), however long it waits. Once the network heals, it joins.
func TestRealOutagePartition(t *testing.T) {
	galeratest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const wait = 5 * time.Second
	o := newOutage(t, ctx, outageOpts{wait: wait, partitionable: true})
	all := o.c.Nodes()
	n3 := all[2]
	o.writesFlow(ctx, 50)
	if err := o.net.Cut(ctx, n3); err != nil {
		t.Fatal(err)
	}
	d := o.waitSynced(ctx, time.Now(), 2*time.Minute, all[0], all[1])
	t.Logf("node3 cut off: {1,2} Primary again %.2f s later", d.Seconds())
	o.writesFlow(ctx, 30)
	offs := o.logOffsets()
	o.killMariadbd(ctx, n3)
	primary := o.m.PrimarySweeps(3)
	if err := o.s.Start(ctx, n3); err != nil {
		t.Fatal(err)
	}
	// Several bootstrap-waits: long enough for any timer to run out.
	watch := 4 * wait
	time.Sleep(watch)
	o.writesFlow(ctx, 30)
	if !n3.Running() {
		t.Fatalf("node3's supervisor exited while cut off: %s", n3.LogTail(20))
	}
	if k := o.m.PrimarySweeps(3) - primary; k > 0 {
		t.Errorf("node3 was Primary in %d sweeps while cut off", k)
	}
	if b := o.bootstrapped(offs); len(b) > 0 {
		t.Errorf("bootstrapped during the partition: %v", b)
	}
	t.Logf("node3 restarted alone, watched %v: never Primary; %s", watch, o.decisions())
	t0 := time.Now()
	if err := o.net.Heal(ctx, n3); err != nil {
		t.Fatal(err)
	}
	d = o.waitSynced(ctx, t0, 3*time.Minute, all...)
	t.Logf("network healed: all 3 Synced %.2f s later; %s", d.Seconds(), o.decisions())
	o.finish(ctx)
}

// TestRealOutagePowerFlicker cuts the power twice in a row: every node's
// whole tree (supervisor, mariadbd, any SST) is killed -9, all restart at
// once, and at a random moment of that recovery (0-4 s in: recovering,
// deciding, pc.recovery, IST) the power goes again. The third start must
// bring the cluster back, GS_OUTAGE_ROUNDS/4 times (at least 2), with every
// committed row.
func TestRealOutagePowerFlicker(t *testing.T) {
	rounds := max(outageRounds(t)/4, 2)
	o, ctx := outageTest(t, time.Duration(rounds)*2*time.Minute+5*time.Minute, outageOpts{wait: 10 * time.Second})
	all := o.c.Nodes()
	powerLoss := func() {
		if err := o.s.PowerLoss(all...); err != nil {
			t.Fatal(err)
		}
	}
	var times []time.Duration
	for r := 1; r <= rounds; r++ {
		o.writesFlow(ctx, 30)
		powerLoss()
		if err := o.s.StartAll(ctx, all...); err != nil {
			t.Fatal(err)
		}
		flicker := time.Duration(o.rng.IntN(4000)) * time.Millisecond
		time.Sleep(flicker)
		powerLoss()
		d := o.recover(ctx, 3*time.Minute, all...)
		times = append(times, d)
		o.writesFlow(ctx, 30)
		o.verify(ctx, all...)
		t.Logf("round %d: power back for %v, then lost again; all 3 Synced %.2f s after the next start; %s", r, flicker, d.Seconds(), o.decisions())
	}
	o.stopLoad(ctx, all...)
	t.Logf("recovery after a power flicker, %d rounds: %s", rounds, durations(times))
}
