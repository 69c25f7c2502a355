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
	// bootstrap by a majority of the last known membership.
	BootstrapWait time.Duration
	// AutoBootstrap allows a bootstrap; without it the node only joins or
	// lets pc.recovery work.
	AutoBootstrap bool
}

// Decision is Decide's answer, with its reasons.
type Decision struct {
	Action Action `json:"action"`
	// Reason says why, in a sentence that names the peers and positions.
	Reason string `json:"reason"`
	// Chosen is the ID of the node chosen to bootstrap, if one is.
	Chosen string `json:"chosen,omitempty"`
	// Peers summarises what each node said, for the log.
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
//     Otherwise views only count the membership, when every present node
//     has one.
//  4. Otherwise, with auto-bootstrap, once every present node has its
//     position: the most advanced eligible node bootstraps (seqno, then a
//     member of the newest view, then safe_to_bootstrap, then the lowest
//     ID), immediately when every member of the last known membership is
//     present, after BootstrapWait with a majority of it, never without.
//     A node whose last SST did not complete, or without data, is never
//     eligible; nodes of different cluster UUIDs are never compared.
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
	d := Decision{Peers: summary(in)}
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
	// The last known membership: the newest view's members when every
	// present node has a view to place it in, else the configured cluster
	// (a node without gvwstate.dat stopped cleanly, after any view of a
	// node that crashed before it).
	size, counted := len(in.Peers)+1, len(present)
	what := "configured members"
	if newest != nil && allHaveViews(present) {
		size, counted, what = len(newest.Members), 0, "members of the last Primary Component view"
		for _, s := range present {
			if s.View != nil && newest.Has(s.View.MyUUID) {
				counted++
			}
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
	switch {
	case counted >= size:
	case 2*counted > size && in.Waited >= in.BootstrapWait:
	case 2*counted > size:
		return wait("%d of %d %s present (missing: %s): a majority; bootstrapping in %s unless they return",
			counted, size, what, strings.Join(missing, ", "), (in.BootstrapWait - in.Waited).Round(time.Second))
	default:
		return wait("only %d of %d %s present (missing: %s): no majority: not bootstrapping", counted, size, what, strings.Join(missing, ", "))
	}
	slices.SortStableFunc(eligible, func(a, b *State) int {
		return cmp.Or(
			cmp.Compare(b.Seqno, a.Seqno),
			cmpBool(inView(b, newest), inView(a, newest)),
			cmpBool(b.SafeToBootstrap, a.SafeToBootstrap),
			strings.Compare(a.ID, b.ID))
	})
	best := eligible[0]
	d.Chosen = best.ID
	reason := fmt.Sprintf("%s is the most advanced eligible node (%s:%d", best.ID, best.UUID, best.Seqno)
	if len(eligible) > 1 && eligible[1].Seqno == best.Seqno {
		reason += ", a seqno tie broken by view membership, safe_to_bootstrap, then the lowest ID"
	}
	reason += fmt.Sprintf(") with %d of %d %s present", counted, size, what)
	if counted < size {
		reason += fmt.Sprintf(" after waiting %s for %s", in.Waited.Round(time.Second), strings.Join(missing, ", "))
	}
	if len(why) > 0 {
		reason += "; not eligible: " + strings.Join(why, "; ")
	}
	if best != &self {
		return wait("%s; waiting for it to bootstrap", reason)
	}
	d.Action, d.Reason = ActionBootstrap, reason
	return d
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

func allHaveViews(present []*State) bool {
	for _, s := range present {
		if s.View == nil {
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
		if s.View != nil && SameNode(s.View.MyUUID, uuid) {
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

// summary is one word group per node: "id=phase uuid:seqno [flags]".
func summary(in Input) string {
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
