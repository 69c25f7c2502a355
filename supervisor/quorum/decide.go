package quorum

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Action is what a waiting node does next.
type Action string

// Actions.
const (
	// ActionJoin starts mariadbd normally: a peer is in a Primary
	// Component, and the node joins it (by IST when the donor's gcache
	// allows).
	ActionJoin Action = "join"
	// ActionPCRecovery starts mariadbd normally: every member of the last
	// Primary Component is back with its gvwstate.dat, and Galera's
	// pc.recovery restores it.
	ActionPCRecovery Action = "pc-recovery"
	// ActionBootstrap starts mariadbd with --wsrep-new-cluster.
	ActionBootstrap Action = "bootstrap"
	// ActionWait starts nothing yet; Decide is asked again.
	ActionWait Action = "wait"
)

// Peer is one configured peer as last polled.
type Peer struct {
	Addr  string // as configured (peers option)
	State *State // nil when it did not answer
	Err   string // why it did not answer
}

// Input is everything Decide looks at.
type Input struct {
	Self  State
	Peers []Peer
	// Waited is how long this node has been waiting since its recovery.
	Waited time.Duration
	// BootstrapWait is how long to wait for missing members before a
	// bootstrap by a majority of the members of the last Primary
	// Component view.
	BootstrapWait time.Duration
	// AutoBootstrap allows a bootstrap; without it the node only joins or
	// lets pc.recovery work.
	AutoBootstrap bool
	// Weights are the pc.weight each peer (by address) last reported, for
	// the peers that do not answer now; 1 for a peer not in it.
	Weights map[string]int
}

// Decision is Decide's answer, with its reasons.
type Decision struct {
	Action Action `json:"action"`
	// Reason says why, in a sentence that names the peers and positions.
	Reason string `json:"reason"`
	// Chosen is the ID of the node chosen to bootstrap, if one is.
	Chosen string `json:"chosen,omitempty"`
	// Rule is the bootstrap rule that chose it (Rule* constants).
	Rule string `json:"rule,omitempty"`
	// Peers summarises what each node said, for the log (Summary; Decide
	// leaves it empty).
	Peers string `json:"peers"`
	// Members are the addresses of the peers in the view that pc.recovery
	// restores (ActionPCRecovery): the node watches that they stay.
	Members []string `json:"members,omitempty"`
}

// Final reports whether the decision starts mariadbd.
func (d Decision) Final() bool { return d.Action != ActionWait }

// Decide decides how a recovered node starts, from what it and its peers
// say. It is a pure function of in: every supervisor that sees the same
// states reaches the same choice. The rules, in order:
//
//  1. A peer in a Primary Component: join it, unless it holds another
//     cluster UUID than this node's data (joining would SST over it).
//  2. A peer bootstrapping: wait for its Primary Component.
//  3. Every member of the newest saved view (gvwstate.dat) back, each with
//     that view: pc.recovery (a node outside that view waits for it).
//  4. Otherwise, with auto-bootstrap, once every present node has its
//     position, a bootstrap grounded on the last Primary Component (see
//     bootstrapRule): only a node that may hold every acknowledged commit
//     bootstraps, and a node that left a component which went on without
//     it never counts. A node whose last SST did not complete, or without
//     data, is never eligible; nodes of different cluster UUIDs are never
//     compared.
func Decide(in Input) Decision {
	self := in.Self
	present := []*State{&self}
	var missing []string
	for _, p := range in.Peers {
		if p.State == nil {
			missing = append(missing, p.Addr)
			continue
		}
		present = append(present, p.State)
	}
	var d Decision
	wait := func(format string, args ...any) Decision {
		d.Action, d.Reason = ActionWait, fmt.Sprintf(format, args...)
		return d
	}

	// 1, 2: a running or starting Primary Component.
	for _, s := range present[1:] {
		if s.Primary && differentCluster(self.UUID, s.UUID) {
			return wait("peer %s is in a Primary Component of another cluster (%s) than this node's data (%s): not joining it, which would replace this node's data by SST; bootstrap or wipe by hand",
				s.ID, s.UUID, self.UUID)
		}
	}
	for _, s := range present[1:] {
		if s.Primary {
			d.Action = ActionJoin
			d.Reason = fmt.Sprintf("peer %s is in a Primary Component (%s)", s.ID, s.Phase)
			return d
		}
	}
	for _, s := range present[1:] {
		if s.Bootstrapping {
			return wait("peer %s is bootstrapping a new Primary Component; joining once it is Primary", s.ID)
		}
	}

	// 3: pc.recovery, when every member of the newest view is back with
	// it: Galera then restores the Primary Component by itself, and any
	// other node joining the group would keep it from doing so.
	newest := newestView(present)
	if pcPossible(present, newest) {
		if !self.View.Same(newest) || !newest.Has(self.View.MyUUID) {
			return wait("this node is not a member of the newest Primary Component view (seq %d), whose members are all back: waiting for pc.recovery to restore it, then joining it",
				newest.Seq)
		}
		d.Action = ActionPCRecovery
		for _, p := range in.Peers {
			if p.State != nil && p.State.View != nil && newest.Has(p.State.View.MyUUID) {
				d.Members = append(d.Members, p.Addr)
			}
		}
		d.Reason = fmt.Sprintf("every member of the last Primary Component view (seq %d, %d members) is back with its gvwstate.dat: pc.recovery restores it",
			newest.Seq, len(newest.Members))
		return d
	}

	// 4: bootstrap.
	if !in.AutoBootstrap {
		return wait("no peer is in a Primary Component and pc.recovery does not apply; auto-bootstrap is off: bootstrap by hand (galera-supervisor bootstrap) on the most advanced node")
	}
	for _, s := range present[1:] {
		if s.Phase.Running() {
			return wait("peer %s runs mariadbd outside a Primary Component (%s)", s.ID, s.Phase)
		}
		if !s.Known() {
			return wait("peer %s is still recovering its position", s.ID)
		}
	}
	var eligible []*State
	var why []string
	uuids := map[string]bool{}
	for _, s := range present {
		if ok, no := s.Eligible(); !ok {
			why = append(why, s.ID+": "+no)
			continue
		}
		eligible = append(eligible, s)
		uuids[s.UUID] = true
	}
	if len(eligible) == 0 {
		return wait("no present node may bootstrap (%s)", strings.Join(why, "; "))
	}
	if len(uuids) > 1 {
		var us []string
		for _, s := range eligible {
			us = append(us, s.ID+"="+s.UUID)
		}
		return wait("the nodes hold different cluster UUIDs (%s): refusing to compare them; bootstrap by hand", strings.Join(us, ", "))
	}
	if dup := duplicateID(present); dup != "" {
		return wait("two nodes call themselves %s: every node needs its own peer-address", dup)
	}
	r := bootstrapRule(in, present, eligible, missing, newest)
	if r.wait != "" {
		d.Action, d.Reason = ActionWait, r.wait
		return d
	}
	d.Chosen, d.Rule = r.best.ID, r.name
	reason := r.reason
	if len(why) > 0 {
		reason += "; not eligible: " + strings.Join(why, "; ")
	}
	if r.best != &self {
		return wait("%s; waiting for it to bootstrap", reason)
	}
	d.Action, d.Reason = ActionBootstrap, reason
	return d
}

// The bootstrap rules, as Decision.Rule names them.
const (
	RuleAllPresent   = "all-present"   // every configured node present
	RuleSafe         = "safe"          // the last to leave, cleanly, present
	RuleViewComplete = "view-complete" // every member of the newest view present
	// RuleViewMajority: a majority of the newest view's members after
	// bootstrap-wait; writesets in flight at the crash may be lost.
	RuleViewMajority = "view-majority"
)

// rule is bootstrapRule's answer: the node to bootstrap, by which rule
// and why, or why to wait.
type rule struct {
	best   *State
	name   string
	reason string
	wait   string
}

// bootstrapRule chooses the node that bootstraps, grounded on the last
// Primary Component. Only two kinds of node can hold every acknowledged
// commit: the last to leave it cleanly (safe_to_bootstrap: 1, which
// Galera writes only on a node that was alone in its Primary Component),
// and the members of its last view that crashed with it (gvwstate.dat).
// A node that left cleanly with safe_to_bootstrap: 0 knows the component
// went on without it: it never counts. In order:
//
//   - every configured node present: the most advanced bootstraps at once
//     (no node is missing that could hold a later commit);
//   - a node with safe_to_bootstrap: 1 present: it bootstraps at once;
//   - every member of the newest saved view present: the most advanced of
//     them bootstraps at once;
//   - a majority of the newest view's members (by pc.weight when set),
//     counted among the present nodes that hold that view: after
//     BootstrapWait, the most advanced of them bootstraps, and writesets
//     in flight at the crash on the missing members may be lost;
//   - otherwise wait, however long, for a node that may hold later
//     commits, named.
func bootstrapRule(in Input, present, eligible []*State, missing []string, newest *View) rule {
	most := func(ok func(*State) bool) *State {
		var c []*State
		for _, s := range eligible {
			if ok(s) {
				c = append(c, s)
			}
		}
		if len(c) == 0 {
			return nil
		}
		slices.SortStableFunc(c, func(a, b *State) int {
			return cmp.Or(
				cmp.Compare(b.Seqno, a.Seqno),
				cmpBool(inView(b, newest), inView(a, newest)),
				cmpBool(b.SafeToBootstrap, a.SafeToBootstrap),
				strings.Compare(a.ID, b.ID))
		})
		return c[0]
	}
	pos := func(s *State) string {
		p := fmt.Sprintf("%s:%d", s.UUID, s.Seqno)
		if n := len(eligible); n > 1 {
			ties := 0
			for _, e := range eligible {
				if e.Seqno == s.Seqno {
					ties++
				}
			}
			if ties > 1 {
				p += ", a seqno tie broken by view membership, safe_to_bootstrap, then the lowest ID"
			}
		}
		return p
	}
	// Every configured node present, and no saved view with more members
	// than that (a node missing from peers may hold later commits).
	if len(missing) == 0 && (newest == nil || len(newest.Members) <= len(present)) {
		best := most(func(*State) bool { return true })
		return rule{best: best, name: RuleAllPresent, reason: fmt.Sprintf("%s is the most advanced eligible node (%s) with every configured node present (%d of %d)",
			best.ID, pos(best), len(present), len(present))}
	}
	if best := most(func(s *State) bool { return s.SafeToBootstrap }); best != nil {
		return rule{best: best, name: RuleSafe, reason: fmt.Sprintf("%s left the last Primary Component last, cleanly (safe_to_bootstrap: 1 at %s): it holds every acknowledged commit; missing: %s",
			best.ID, pos(best), strings.Join(missing, ", "))}
	}
	stale := cleanLeavers(present)
	if newest == nil {
		return rule{wait: needed(stale, missing, "")}
	}
	var holders []*State
	held := 0
	for _, s := range present {
		if inView(s, newest) {
			holders = append(holders, s)
			held += s.weight()
		}
	}
	best := most(func(s *State) bool { return inView(s, newest) })
	if best == nil {
		return rule{wait: needed(stale, missing, fmt.Sprintf("no present member of the last Primary Component view (seq %d) may bootstrap", newest.Seq))}
	}
	if len(holders) >= len(newest.Members) {
		return rule{best: best, name: RuleViewComplete, reason: fmt.Sprintf("%s is the most advanced member (%s) of the last Primary Component view (seq %d), all %d members present",
			best.ID, pos(best), newest.Seq, len(newest.Members))}
	}
	total := held + missingWeight(in, present, len(newest.Members)-len(holders))
	ids := make([]string, len(holders))
	for i, s := range holders {
		ids[i] = s.ID
	}
	count := fmt.Sprintf("%d of %d members of the last Primary Component view (seq %d) present with it (%s)",
		len(holders), len(newest.Members), newest.Seq, strings.Join(ids, ", "))
	if total != len(newest.Members) {
		count += fmt.Sprintf(", pc.weight %d of %d", held, total)
	}
	if 2*held <= total {
		short := "no majority"
		if total == len(newest.Members) {
			short += fmt.Sprintf(" (%d more of its members needed)", len(newest.Members)/2+1-len(holders))
		}
		return rule{wait: needed(stale, missing, "only "+count+": "+short)}
	}
	if in.Waited < in.BootstrapWait {
		return rule{wait: fmt.Sprintf("%s: a majority; bootstrapping in %s unless the missing return (missing: %s)",
			count, (in.BootstrapWait - in.Waited).Round(time.Second), strings.Join(missing, ", "))}
	}
	return rule{best: best, name: RuleViewMajority, reason: fmt.Sprintf("%s is the most advanced member (%s) of the last Primary Component view; %s, a majority, after waiting %s for %s: writesets in flight at the crash that only they applied may be lost",
		best.ID, pos(best), count, in.Waited.Round(time.Second), strings.Join(missing, ", "))}
}

// cleanLeavers are the present nodes that left a Primary Component that
// went on without them: no gvwstate.dat, safe_to_bootstrap: 0.
func cleanLeavers(present []*State) []string {
	var ids []string
	for _, s := range present {
		if s.View == nil && !s.SafeToBootstrap && s.Known() {
			ids = append(ids, s.ID+" (seqno "+strconv.FormatInt(s.Seqno, 10)+")")
		}
	}
	return ids
}

// needed says which node the wait is for, and why.
func needed(stale, missing []string, first string) string {
	var b strings.Builder
	if first != "" {
		b.WriteString(first + "; ")
	}
	who := "one of " + strings.Join(missing, ", ")
	switch len(missing) {
	case 0:
		who = "a node that is not among the configured peers (check [galera-supervisor] peers)"
	case 1:
		who = missing[0]
	}
	b.WriteString("waiting for " + who + ", however long: only the node that left the last Primary Component last (safe_to_bootstrap: 1) or the members of its last view that crashed with it hold every acknowledged commit")
	if len(stale) > 0 {
		b.WriteString("; " + strings.Join(stale, ", ") + " left a Primary Component that went on without them (safe_to_bootstrap: 0, no gvwstate.dat): they may lack later commits and never count")
	}
	b.WriteString("; to bootstrap anyway, losing what only the missing hold: galera-supervisor bootstrap --force on the most advanced node")
	return b.String()
}

// missingWeight bounds the pc.weight of n members of the newest view that
// are not present with it: the heaviest n of the missing peers (as they
// last answered, 1 when never seen) and the present nodes outside it.
func missingWeight(in Input, present []*State, n int) int {
	var ws []int
	for _, p := range in.Peers {
		if p.State == nil {
			w, ok := in.Weights[p.Addr]
			if !ok {
				w = 1
			}
			ws = append(ws, w)
		}
	}
	for _, s := range present {
		if s.View == nil {
			ws = append(ws, s.weight())
		}
	}
	slices.Sort(ws)
	slices.Reverse(ws)
	sum := 0
	for i := 0; i < n; i++ {
		w := 1
		if i < len(ws) {
			w = ws[i]
		}
		sum += w
	}
	return sum
}

// differentCluster: both UUIDs name a cluster, and not the same one.
func differentCluster(a, b string) bool {
	known := func(u string) bool { return u != "" && u != ZeroUUID }
	return known(a) && known(b) && a != b
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

func inView(s *State, v *View) bool { return v != nil && s.View != nil && v.Has(s.View.MyUUID) }

// pcPossible: every member of v is present, each holding v.
func pcPossible(present []*State, v *View) bool {
	if v == nil {
		return false
	}
	for _, m := range v.Members {
		if s := byMember(present, m); s == nil || !s.View.Same(v) {
			return false
		}
	}
	return true
}

// newestView is the saved view with the highest seq among the present.
func newestView(present []*State) *View {
	var v *View
	for _, s := range present {
		if s.View != nil && (v == nil || s.View.Seq > v.Seq || s.View.Seq == v.Seq && s.View.ViewID < v.ViewID) {
			v = s.View
		}
	}
	return v
}

func byMember(present []*State, uuid string) *State {
	for _, s := range present {
		if s.View != nil && sameNode(s.View.MyUUID, uuid) {
			return s
		}
	}
	return nil
}

func duplicateID(present []*State) string {
	seen := map[string]bool{}
	for _, s := range present {
		if seen[s.ID] {
			return s.ID
		}
		seen[s.ID] = true
	}
	return ""
}

// Summary is one word group per node, for Decision.Peers:
// "id=phase uuid:seqno [flags]".
func Summary(in Input) string {
	one := func(s *State) string {
		b := s.ID + "=" + string(s.Phase)
		if s.Known() {
			b += " " + shortUUID(s.UUID) + ":" + strconv.FormatInt(s.Seqno, 10)
		}
		if s.Primary {
			b += " primary"
		}
		if s.Bootstrapping {
			b += " bootstrapping"
		}
		if s.SSTIncomplete {
			b += " sst-incomplete"
		}
		if s.SafeToBootstrap {
			b += " safe"
		}
		if s.View != nil {
			b += " view:" + strconv.FormatInt(s.View.Seq, 10)
		}
		return b
	}
	parts := []string{one(&in.Self)}
	for _, p := range in.Peers {
		if p.State == nil {
			parts = append(parts, p.Addr+"=unreachable")
		} else {
			parts = append(parts, one(p.State))
		}
	}
	return strings.Join(parts, ", ")
}

func shortUUID(u string) string {
	if len(u) > 8 {
		return u[:8]
	}
	return u
}
