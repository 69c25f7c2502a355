package supervisor

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/supervisor/galeratest"
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

// outage is a supervised 3-node cluster with its load and monitor.
type outage struct {
	t    *testing.T
	c    *galeratest.Cluster
	s    *galeratest.Supervised
	m    *galeratest.Monitor
	load *galeratest.Load
	rng  *rand.Rand
}

// newOutage forms a 3-node cluster under supervisors (node1 bootstraps
// with --wsrep-new-cluster, the others join by SST), creates the load
// table, and starts the monitor and the load. The cleanup stops the load
// and fails the test if the monitor ever saw two Primary Components.
func newOutage(t *testing.T, ctx context.Context, cfg galeratest.Config, wait time.Duration) *outage {
	t.Helper()
	cfg.Nodes = 3
	cfg.PathPrepend = []string{filepath.Dir(builtSupervisor(t))}
	if cfg.SSTMethod == "" {
		cfg.SSTMethod = "native-copy"
	}
	c := galeratest.NewTest(t, cfg)
	seed := uint64(time.Now().UnixNano())
	t.Logf("random seed %d", seed)
	o := &outage{t: t, c: c, rng: rand.New(rand.NewPCG(seed, seed))}
	s, err := c.Supervise(galeratest.SupervisorConfig{Binary: builtSupervisor(t), BootstrapWait: wait})
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
	o := newOutage(t, ctx, galeratest.Config{}, 10*time.Second)
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
		t.Logf("round %d: all 3 Synced %.2f s after the restart; %d rows committed; bootstrapped: %v", r, d.Seconds(), o.load.Acked(), o.bootstrapped(offs))
	}
	o.stopLoad(ctx, all...)
	t.Logf("recovery after kill -9 of every mariadbd, %d rounds: %s; %d rows committed (%s)", rounds, durations(times), o.load.Acked(), o.load.Counts())
}
