package quorum

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The model-based test of Decide. It simulates outage histories of a
// Galera cluster under supervisors, keeps the ground truth of which
// acknowledged commit each node holds, derives the files each node would
// find (grastate.dat, gvwstate.dat, the recovered seqno) by the rules in
// model_rules.md, and runs every waiting node's Decide on what it sees.
//
// go test ./supervisor/quorum -run TestDecideModel -model.histories=1000000
// (or GS_MODEL_HISTORIES=1000000) runs the long variant; -model.seed (or
// GS_MODEL_SEED) replays a failure.
var (
	modelHistories = flag.Int("model.histories", 0, "histories per cluster size (default 100000, GS_MODEL_HISTORIES)")
	modelSeed      = flag.Uint64("model.seed", 0, "first history's seed (default random, GS_MODEL_SEED)")
)

// commit is one acknowledged writeset in the ground truth: its seqno, the
// one before it on its history, and the Primary Component view it was
// ordered in.
type commit struct {
	seq    int64
	parent *commit
	view   int64
}

// holds reports whether the history ending at last contains c.
func holds(last, c *commit) bool {
	for x := last; x != nil && x.seq >= c.seq; x = x.parent {
		if x == c {
			return true
		}
	}
	return false
}

type mstatus int

const (
	mDown    mstatus = iota // mariadbd and its supervisor stopped
	mWaiting                // the supervisor waits with its peers
	mUp                     // mariadbd runs (in the Primary Component or not)
)

func (m *mnode) String() string { return m.addr }

type mnode struct {
	i       int
	addr    string
	status  mstatus
	inPC    bool
	applied *commit // the last commit InnoDB holds
	weight  int

	gcomm   string // gcomm UUID of the running (or last) mariadbd
	starts  int
	safeRun bool  // safe_to_bootstrap as Galera keeps it while running
	safe    bool  // safe_to_bootstrap in grastate.dat once stopped
	view    *View // gvwstate.dat, nil when absent
}

type world struct {
	r          *rand.Rand
	n          []*mnode
	pc         []*mnode // members of the Primary Component, nil when none
	pcLast     *commit
	viewSeq    int64
	acked      []*commit
	boots      int // bootstraps since the last Primary Component was lost
	log        []logEntry
	st         *modelStats
	weights    map[string]int
	stBuf      []State
	peerBuf    []Peer
	statesBuf  [16]*State
	presentBuf [16]*State
}

type modelStats struct {
	histories, bootstraps, pcRecoveries, joins atomic.Int64
	rules                                      [4]atomic.Int64
	inflightLost, inflightHistories            atomic.Int64
	comeBack, leftWaiting                      atomic.Int64
}

var modelRules = []string{RuleAllPresent, RuleSafe, RuleViewComplete, RuleViewMajority}

// errInflight ends a history in which the majority-of-the-last-view rule
// lost writesets in flight at the crash, as it may.
type errInflight struct{ n int }

func (e errInflight) Error() string { return fmt.Sprintf("%d in-flight writesets lost", e.n) }

// logf keeps an event of the history, formatted only if it fails.
func (w *world) logf(format string, args ...any) { w.log = append(w.log, logEntry{format, args}) }

type logEntry struct {
	format string
	args   []any
}

func (w *world) history() string {
	var b strings.Builder
	for _, e := range w.log {
		fmt.Fprintf(&b, e.format+"\n", e.args...)
	}
	return b.String()
}

// uuidOf is a gcomm UUID, fast: a and b in its first and last groups.
func uuidOf(a int, b int64) string {
	const hex = "0123456789abcdef"
	u := []byte("00000000-0000-4000-8000-000000000000")
	for i, v := 7, a; i >= 0; i, v = i-1, v>>4 {
		u[i] = hex[v&15]
	}
	for i, v := 35, b; i >= 24; i, v = i-1, v>>4 {
		u[i] = hex[v&15]
	}
	return string(u)
}

func (w *world) weight(ns []*mnode) int {
	s := 0
	for _, m := range ns {
		s += m.weight
	}
	return s
}

// start gives a starting mariadbd a new gcomm UUID (pc.recovery keeps the
// saved one).
func (m *mnode) start() {
	m.starts++
	m.gcomm = uuidOf(m.i+1, int64(m.starts))
	m.status = mUp
}

// install installs a Primary Component view of members: each writes it to
// gvwstate.dat and sets safe_to_bootstrap to whether it is alone.
func (w *world) install(members []*mnode) {
	w.viewSeq++
	w.pc = members
	uuids := make([]string, len(members))
	for k, m := range members {
		uuids[k] = m.gcomm
	}
	id := uuidOf(0xfff, w.viewSeq)
	for _, m := range members {
		m.inPC = true
		m.applied = w.pcLast // a view change drains the apply and commit monitors
		m.view = &View{MyUUID: m.gcomm, ViewID: id, Seq: w.viewSeq, Members: uuids}
		m.safeRun = len(members) == 1
	}
}

func (w *world) members(except func(*mnode) bool) []*mnode {
	var r []*mnode
	for _, m := range w.pc {
		if !except(m) {
			r = append(r, m)
		}
	}
	return r
}

func (w *world) loseQuorum(rest []*mnode) {
	for _, m := range rest {
		m.inPC = false // non-primary: keeps its gvwstate.dat and safe_to_bootstrap
	}
	w.pc = nil
	w.logf("  the rest lose quorum: non-primary")
}

func (w *world) write() {
	if w.pc == nil {
		return
	}
	origin := w.pc[w.r.IntN(len(w.pc))]
	c := &commit{seq: w.pcLast.seq + 1, parent: w.pcLast, view: w.viewSeq}
	w.pcLast = c
	origin.applied = c // commit order: the origin holds every earlier one
	for _, m := range w.pc {
		if m != origin && m.applied == c.parent && w.r.IntN(4) != 0 {
			m.applied = c
		}
	}
	w.acked = append(w.acked, c)
	w.logf("write %d on n%d", c.seq, origin.i+1)
}

func (w *world) catchUp() {
	if w.pc != nil {
		m := w.pc[w.r.IntN(len(w.pc))]
		m.applied = w.pcLast
	}
}

// stop shuts m down cleanly: a member applies what it received, leaves
// gracefully (the rest keep quorum), writes its seqno and
// safe_to_bootstrap, and removes gvwstate.dat.
func (w *world) stop(m *mnode) {
	w.logf("stop n%d", m.i+1)
	if m.inPC {
		m.applied = w.pcLast
		rest := w.members(func(x *mnode) bool { return x == m })
		if len(rest) == 0 {
			w.pc = nil
		} else {
			w.install(rest)
		}
	}
	m.status, m.inPC, m.safe, m.view = mDown, false, m.safeRun, nil
}

// crash kills every node of xs at once: grastate.dat keeps seqno -1 and
// the running safe_to_bootstrap, gvwstate.dat stays; the rest of the
// Primary Component goes on only with quorum.
func (w *world) crash(xs []*mnode) {
	w.logf("crash %s", xs)
	wasPC := w.weight(w.pc)
	for _, m := range xs {
		m.status, m.inPC, m.safe = mDown, false, m.safeRun
	}
	w.applyDelivered()
	if w.pc == nil {
		return
	}
	rest := w.members(func(x *mnode) bool { return x.status != mUp })
	switch {
	case len(rest) == len(w.pc):
	case len(rest) == 0:
		w.pc = nil
	case 2*w.weight(rest) > wasPC:
		w.install(rest)
	default:
		w.loseQuorum(rest)
	}
}

// applyDelivered: the running members apply what the view delivered to
// them (virtual synchrony): only a node that crashes loses what it had
// not applied yet.
func (w *world) applyDelivered() {
	for _, m := range w.pc {
		if m.status == mUp {
			m.applied = w.pcLast
		}
	}
}

// partition splits the Primary Component; the side with quorum goes on.
func (w *world) partition() {
	if len(w.pc) < 2 {
		return
	}
	var a, b []*mnode
	for _, m := range w.pc {
		if w.r.IntN(2) == 0 {
			a = append(a, m)
		} else {
			b = append(b, m)
		}
	}
	if len(a) == 0 || len(b) == 0 {
		return
	}
	total := w.weight(w.pc)
	w.logf("partition %d|%d", len(a), len(b))
	w.applyDelivered()
	switch {
	case 2*w.weight(a) > total:
		w.loseQuorum(b)
		w.install(a)
	case 2*w.weight(b) > total:
		w.loseQuorum(a)
		w.install(b)
	default:
		w.loseQuorum(w.pc)
	}
}

// heal lets the non-primary running nodes rejoin the Primary Component.
func (w *world) heal() {
	if w.pc == nil {
		return
	}
	joined := slices.Clone(w.pc)
	for _, m := range w.n {
		if m.status == mUp && !m.inPC {
			m.applied = w.pcLast
			joined = append(joined, m)
		}
	}
	if len(joined) > len(w.pc) {
		w.logf("heal")
		w.install(joined)
	}
}

// state is what m's supervisor tells its peers, in w's buffer (the model
// calls Decide millions of times).
func (w *world) state(m *mnode) *State {
	if w.stBuf == nil {
		w.stBuf = make([]State, len(w.n))
	}
	s := &w.stBuf[m.i]
	*s = State{ID: m.addr, Phase: PhaseWaiting, UUID: clusterA, Seqno: m.applied.seq, SafeToBootstrap: m.safe, View: m.view}
	if m.weight != 1 {
		s.Weight = &m.weight
	}
	if m.status == mUp {
		s.Phase, s.Primary = PhaseStarting, m.inPC
		if m.inPC {
			s.Phase = PhaseSynced
		}
	}
	return s
}

// decide runs m's Decide on what it sees: states[i] is node i's answer,
// nil when it is down.
func (w *world) decide(m *mnode, states []*State, waited time.Duration) Decision {
	in := Input{Self: *states[m.i], Waited: waited, BootstrapWait: time.Minute, AutoBootstrap: true, Weights: w.weights,
		Peers: w.peerBuf[:0]}
	for _, p := range w.n {
		if p != m {
			in.Peers = append(in.Peers, Peer{Addr: p.addr, State: states[p.i]})
		}
	}
	w.peerBuf = in.Peers
	return Decide(in)
}

// form checks that a new Primary Component from last holds every
// acknowledged commit: none is lost, but for writesets in flight at the
// crash of the last view when the majority rule chose.
func (w *world) form(last *commit, d Decision, newest *View) error {
	if w.pc != nil {
		return fmt.Errorf("a second Primary Component while %d nodes are in one", len(w.pc))
	}
	var lost []*commit
	for _, c := range w.acked {
		if !holds(last, c) {
			lost = append(lost, c)
		}
	}
	if len(lost) == 0 {
		return nil
	}
	if d.Rule == RuleViewMajority && newest != nil {
		for _, c := range lost {
			if c.view != newest.Seq {
				return fmt.Errorf("%s lost commit %d, acknowledged in view %d, before the crash of view %d: %s", d.Chosen, c.seq, c.view, newest.Seq, d.Reason)
			}
		}
		return errInflight{len(lost)}
	}
	return fmt.Errorf("%s lost %d acknowledged commits (first %d): %s", d.Chosen, len(lost), lost[0].seq, d.Reason)
}

// settle runs every waiting supervisor's Decide until nothing changes,
// acting on the decisions as the supervisors and Galera would.
func (w *world) settle(waited func(*mnode) time.Duration) error {
	for range 4 * len(w.n) {
		var boot []*mnode
		var bootD Decision
		var pcrec, join []*mnode
		chosen := ""
		states := w.statesBuf[:len(w.n)]
		clear(states)
		present := w.presentBuf[:0]
		for _, m := range w.n {
			if m.status != mDown {
				states[m.i] = w.state(m)
				present = append(present, states[m.i])
			}
		}
		for _, m := range w.n {
			if m.status != mWaiting {
				continue
			}
			d := w.decide(m, states, waited(m))
			if d.Chosen != "" {
				if chosen != "" && chosen != d.Chosen {
					return fmt.Errorf("supervisors chose %s and %s", chosen, d.Chosen)
				}
				chosen = d.Chosen
			}
			switch d.Action {
			case ActionBootstrap:
				boot, bootD = append(boot, m), d
			case ActionPCRecovery:
				pcrec = append(pcrec, m)
			case ActionJoin:
				join = append(join, m)
			}
		}
		newest := newestView(present)
		switch {
		case len(boot) > 1:
			return fmt.Errorf("%d nodes bootstrap at once", len(boot))
		case len(boot) == 1:
			b := boot[0]
			w.st.rules[slices.Index(modelRules, bootD.Rule)].Add(1)
			w.logf("n%d bootstraps (%s): %s", b.i+1, bootD.Rule, bootD.Reason)
			if w.boots++; w.boots > 1 {
				return fmt.Errorf("a second bootstrap in one outage")
			}
			if err := w.form(b.applied, bootD, newest); err != nil {
				return err
			}
			w.st.bootstraps.Add(1)
			b.start()
			w.pcLast = b.applied
			w.install([]*mnode{b})
		case len(pcrec) > 0:
			// Galera restores the view once every member is back: those
			// the supervisors started, and any running outside it.
			var members []*mnode
			for _, m := range w.n {
				if m.status != mDown && m.view.Same(newest) {
					members = append(members, m)
				}
			}
			if len(members) != len(newest.Members) || len(pcrec)+countUp(members) != len(members) {
				return fmt.Errorf("pc.recovery by %d of the %d members of view %d", len(pcrec), len(newest.Members), newest.Seq)
			}
			last := members[0].applied
			for _, m := range members {
				if m.applied.seq > last.seq {
					last = m.applied
				}
			}
			w.logf("pc.recovery of view %d", newest.Seq)
			if err := w.form(last, Decision{Chosen: "pc.recovery"}, nil); err != nil {
				return err
			}
			w.st.pcRecoveries.Add(1)
			w.pcLast = last
			for _, m := range members {
				m.status, m.applied = mUp, last // IST from the most advanced
			}
			w.install(members)
		case len(join) > 0:
			for _, m := range join {
				m.start()
				m.applied = w.pcLast
			}
			w.st.joins.Add(int64(len(join)))
			w.install(append(slices.Clone(w.pc), join...))
		default:
			return nil
		}
	}
	return fmt.Errorf("decisions did not settle")
}

func countUp(ns []*mnode) int {
	n := 0
	for _, m := range ns {
		if m.status == mUp {
			n++
		}
	}
	return n
}

func (w *world) up() []*mnode {
	var r []*mnode
	for _, m := range w.n {
		if m.status == mUp {
			r = append(r, m)
		}
	}
	return r
}

// history runs one random outage history over size nodes.
func runHistory(seed uint64, size int, st *modelStats) (*world, error) {
	r := rand.New(rand.NewPCG(seed, uint64(size)))
	w := &world{r: r, st: st, weights: map[string]int{}}
	weighted := r.IntN(5) == 0
	root := &commit{}
	for i := range size {
		m := &mnode{i: i, addr: "n" + strconv.Itoa(i+1), applied: root, weight: 1}
		if weighted {
			m.weight = 1 + r.IntN(3)
		}
		w.weights[m.addr] = m.weight
		m.start()
		w.n = append(w.n, m)
	}
	w.pcLast = root
	w.install(slices.Clone(w.n))
	never := map[*mnode]bool{}
	if r.IntN(3) == 0 {
		for range 1 + r.IntN(size/2+1) {
			never[w.n[r.IntN(size)]] = true
		}
	}
	long := func(*mnode) time.Duration { return time.Hour }
	events := 4 + r.IntN(12)
	for range events {
		if w.pc != nil {
			w.boots = 0
		}
		var err error
		switch k := r.IntN(20); {
		case k < 6:
			w.write()
		case k < 7:
			w.catchUp()
		case k < 10:
			if up := w.up(); len(up) > 0 {
				w.stop(up[r.IntN(len(up))])
			}
		case k < 12:
			if up := w.up(); len(up) > 0 {
				w.crash([]*mnode{up[r.IntN(len(up))]})
			}
		case k < 13:
			w.crash(w.up())
		case k < 14:
			w.partition()
		case k < 15:
			w.heal()
		case k < 18:
			var back []*mnode
			for _, m := range w.n {
				if m.status == mDown && r.IntN(2) == 0 {
					back = append(back, m)
					m.status = mWaiting
				}
			}
			if len(back) > 0 {
				w.logf("back: %d nodes", len(back))
				err = w.settle(func(*mnode) time.Duration { return 0 })
			}
		case k < 19:
			w.logf("bootstrap-wait passes")
			err = w.settle(func(m *mnode) time.Duration { return time.Duration(r.IntN(2)) * time.Hour })
		default:
			for _, m := range w.n {
				if m.status == mWaiting && r.IntN(2) == 0 {
					m.status = mDown
				}
			}
		}
		if err != nil {
			return w, err
		}
	}
	// The end: every running node goes down, cleanly or not, in any
	// order; then every node returns (but those that never do).
	for up := w.up(); len(up) > 0; up = w.up() {
		m := up[r.IntN(len(up))]
		if r.IntN(2) == 0 {
			w.stop(m)
		} else {
			w.crash([]*mnode{m})
		}
	}
	w.boots = 0
	for _, m := range w.n {
		if !never[m] {
			m.status = mWaiting
		}
	}
	w.logf("every node returns but %d", len(never))
	if err := w.settle(func(*mnode) time.Duration { return 0 }); err != nil {
		return w, err
	}
	if err := w.settle(long); err != nil {
		return w, err
	}
	if len(never) == 0 {
		if len(w.pc) != size {
			return w, fmt.Errorf("liveness: every node returned, %d of %d are in a Primary Component", len(w.pc), size)
		}
		st.comeBack.Add(1)
	} else if w.pc == nil {
		st.leftWaiting.Add(1)
	}
	return w, nil
}

func envInt(name string, def uint64) uint64 {
	if v, err := strconv.ParseUint(os.Getenv(name), 10, 64); err == nil {
		return v
	}
	return def
}

// TestDecideModel asserts over outage histories of 3, 5 and 7 nodes:
// safety (a bootstrapped or restored Primary Component holds every
// acknowledged commit, but writesets in flight at the crash when the
// majority-of-the-last-view rule chose: counted), at most one bootstrap
// per outage and never two Primary Components, and liveness (when every
// node returns, the cluster comes back without a person).
func TestDecideModel(t *testing.T) {
	n := uint64(*modelHistories)
	if n == 0 {
		n = envInt("GS_MODEL_HISTORIES", 100_000)
	}
	seed := *modelSeed
	if seed == 0 {
		seed = envInt("GS_MODEL_SEED", uint64(time.Now().UnixNano()))
	}
	for _, size := range []int{3, 5, 7} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			t.Parallel()
			st := &modelStats{}
			t0 := time.Now()
			for h := range n {
				s := seed + h
				w, err := runHistory(s, size, st)
				st.histories.Add(1)
				var inflight errInflight
				if e, ok := err.(errInflight); ok {
					inflight = e
					st.inflightLost.Add(int64(inflight.n))
					st.inflightHistories.Add(1)
					continue
				}
				if err != nil {
					t.Fatalf("history %d of %d nodes: %v\nreplay: go test ./supervisor/quorum -run 'TestDecideModel/%d$' -model.seed=%d -model.histories=1\n%s",
						h, size, err, size, s, w.history())
				}
			}
			var rules []string
			for i, r := range modelRules {
				rules = append(rules, fmt.Sprintf("%s %d", r, st.rules[i].Load()))
			}
			t.Logf("%d nodes: %d histories (seed %d) in %s: %d bootstraps (%s), %d pc.recoveries, %d joins; "+
				"every node back: the cluster came back %d times; with nodes never back, %d ended waiting; "+
				"%d in-flight writesets lost by the majority rule in %d histories",
				size, st.histories.Load(), seed, time.Since(t0).Round(time.Millisecond), st.bootstraps.Load(), strings.Join(rules, ", "),
				st.pcRecoveries.Load(), st.joins.Load(), st.comeBack.Load(), st.leftWaiting.Load(),
				st.inflightLost.Load(), st.inflightHistories.Load())
		})
	}
}
