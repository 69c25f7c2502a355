package quorum

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

const (
	clusterA = "5f2e1a3c-0000-4000-8000-00000000000a"
	clusterB = "5f2e1a3c-0000-4000-8000-00000000000b"
	g1       = "11111111-0000-4000-8000-000000000001"
	g2       = "22222222-0000-4000-8000-000000000002"
	g3       = "33333333-0000-4000-8000-000000000003"
	vcreator = "aaaaaaaa-0000-4000-8000-00000000000a"
)

func view(me string, seq int64, members ...string) *View {
	return &View{MyUUID: me, ViewID: vcreator, Seq: seq, Members: members}
}

// node is a waiting node at clusterA:seqno.
func node(id string, seqno int64) *State {
	return &State{ID: id, Phase: PhaseWaiting, UUID: clusterA, Seqno: seqno}
}

func with(s *State, f func(*State)) *State { f(s); return s }

func TestDecide(t *testing.T) {
	all3 := func(me string) *View { return view(me, 5, g1, g2, g3) }
	tests := []struct {
		name   string
		self   *State
		peers  []*State // nil: unreachable
		waited time.Duration
		noAuto bool
		// weights: the peers' pc.weight as they last answered
		weights map[string]int
		want    Action
		chosen  string
		reason  string // a substring of the reason
	}{
		{name: "a peer is Primary: join",
			self:  node("n1", 10),
			peers: []*State{with(node("n2", 20), func(s *State) { s.Phase, s.Primary = PhaseSynced, true }), nil},
			want:  ActionJoin, reason: "n2 is in a Primary Component"},
		{name: "a peer is Primary, even when this node is more advanced: nobody bootstraps",
			self:  node("n1", 99),
			peers: []*State{nil, with(node("n3", 1), func(s *State) { s.Phase, s.Primary = PhaseJoined, true })},
			want:  ActionJoin},
		{name: "a peer is Primary in another cluster: not joining it over this node's data",
			self:  node("n1", 10),
			peers: []*State{with(node("n2", 2), func(s *State) { s.Phase, s.Primary, s.UUID = PhaseSynced, true, clusterB }), nil},
			want:  ActionWait, reason: "another cluster"},
		{name: "an empty node joins any Primary",
			self:  with(node("n1", -1), func(s *State) { s.UUID = ZeroUUID }),
			peers: []*State{with(node("n2", 2), func(s *State) { s.Phase, s.Primary, s.UUID = PhaseSynced, true, clusterB }), nil},
			want:  ActionJoin},
		{name: "a peer bootstraps: wait for it",
			self:  node("n1", 10),
			peers: []*State{with(node("n2", 10), func(s *State) { s.Phase, s.Bootstrapping = PhaseStarting, true }), node("n3", 10)},
			want:  ActionWait, reason: "n2 is bootstrapping"},
		{name: "clean full shutdown: the most advanced bootstraps at once",
			self:  node("n1", 9116),
			peers: []*State{node("n2", 8987), node("n3", 8851)},
			want:  ActionBootstrap, chosen: "n1", reason: "3 of 3"},
		{name: "clean full shutdown, seen by a less advanced node: waits for it",
			self:  node("n2", 8987),
			peers: []*State{node("n1", 9116), node("n3", 8851)},
			want:  ActionWait, chosen: "n1", reason: "waiting for it to bootstrap"},
		{name: "seqno tie: safe_to_bootstrap wins",
			self:  node("n1", 50),
			peers: []*State{with(node("n2", 50), func(s *State) { s.SafeToBootstrap = true }), node("n3", 50)},
			want:  ActionWait, chosen: "n2", reason: "tie"},
		{name: "seqno tie: the lowest ID wins, deterministically",
			self:  node("n2", 50),
			peers: []*State{node("n3", 50), node("n1", 50)},
			want:  ActionWait, chosen: "n1"},
		{name: "seqno tie seen by the lowest ID: it bootstraps",
			self:  node("n1", 50),
			peers: []*State{node("n3", 50), node("n2", 50)},
			want:  ActionBootstrap, chosen: "n1"},
		{name: "half-SST'd node ties with the best: never chosen",
			self:  with(node("n1", 983), func(s *State) { s.SSTIncomplete, s.SafeToBootstrap = true, true }),
			peers: []*State{node("n2", 983), node("n3", 983)},
			want:  ActionWait, chosen: "n2", reason: "n1: its last SST did not complete"},
		{name: "half-SST'd node ahead of the others: still never chosen",
			self:  node("n2", 10),
			peers: []*State{with(node("n1", 99), func(s *State) { s.SSTIncomplete = true }), node("n3", 9)},
			want:  ActionBootstrap, chosen: "n2"},
		{name: "a node without data (uuid 0) is never chosen",
			self:  with(node("n1", -1), func(s *State) { s.UUID, s.SafeToBootstrap = ZeroUUID, true }),
			peers: []*State{node("n2", 5), node("n3", 4)},
			want:  ActionWait, chosen: "n2", reason: "uuid 0"},
		{name: "only ineligible nodes: nobody",
			self:  with(node("n1", 7), func(s *State) { s.SSTIncomplete = true }),
			peers: []*State{with(node("n2", -1), func(s *State) { s.UUID = ZeroUUID }), with(node("n3", 3), func(s *State) { s.SSTIncomplete = true })},
			want:  ActionWait, reason: "no present node may bootstrap"},
		{name: "different cluster UUIDs: never compared",
			self:  node("n1", 5),
			peers: []*State{with(node("n2", 500), func(s *State) { s.UUID = clusterB }), node("n3", 5)},
			want:  ActionWait, reason: "different cluster UUIDs"},
		{name: "a peer still recovering: wait for its position",
			self:  node("n1", 5),
			peers: []*State{with(node("n2", -1), func(s *State) { s.Phase = PhaseRecovering }), node("n3", 5)},
			want:  ActionWait, reason: "n2 is still recovering"},
		{name: "a peer runs mariadbd outside a Primary Component: wait",
			self:  node("n1", 5),
			peers: []*State{with(node("n2", 5), func(s *State) { s.Phase = PhaseStarting }), node("n3", 5)},
			want:  ActionWait, reason: "outside a Primary Component"},
		// The rolling shutdown: n1 and n2 left cleanly (safe_to_bootstrap:
		// 0, no gvwstate.dat), the Primary Component went on without them
		// on p3, which left last. They never count, however long.
		{name: "rolling shutdown, the last to leave missing: wait for it, naming it",
			self:   node("n1", 5),
			peers:  []*State{node("n2", 4), nil},
			waited: 10 * time.Second,
			want:   ActionWait, reason: "waiting for p3, however long"},
		{name: "rolling shutdown, the last to leave missing: still waiting long after bootstrap-wait",
			self:   node("n1", 5),
			peers:  []*State{node("n2", 4), nil},
			waited: 24 * time.Hour,
			want:   ActionWait, reason: "n1 (seqno 5), n2 (seqno 4) left a Primary Component that went on without them"},
		{name: "the last to leave (safe_to_bootstrap: 1) back: it bootstraps at once, without the others",
			self:  with(node("n3", 157), func(s *State) { s.SafeToBootstrap = true }),
			peers: []*State{nil, nil},
			want:  ActionBootstrap, chosen: "n3", reason: "safe_to_bootstrap: 1"},
		{name: "the last to leave back with a node that left earlier: that node waits for it",
			self:  node("n1", 108),
			peers: []*State{with(node("n3", 157), func(s *State) { s.SafeToBootstrap = true }), nil},
			want:  ActionWait, chosen: "n3", reason: "waiting for it to bootstrap"},
		{name: "two members missing: no majority, ever",
			self:   node("n1", 5),
			peers:  []*State{nil, nil},
			waited: time.Hour,
			want:   ActionWait, reason: "waiting for one of p2, p3, however long"},
		{name: "auto-bootstrap off: only joins",
			self:   node("n1", 9116),
			peers:  []*State{node("n2", 8987), node("n3", 8851)},
			noAuto: true,
			want:   ActionWait, reason: "auto-bootstrap is off"},
		{name: "duplicate IDs: refuse",
			self:  node("n1", 5),
			peers: []*State{node("n1", 4), node("n3", 3)},
			want:  ActionWait, reason: "two nodes call themselves n1"},

		// pc.recovery (gvwstate.dat).
		{name: "every member of the last view back with it: pc.recovery, before recovery ends",
			self: with(node("n1", 5), func(s *State) { s.View = all3(g1) }),
			peers: []*State{with(node("n2", -1), func(s *State) { s.View, s.Phase = all3(g2), PhaseRecovering }),
				with(node("n3", 5), func(s *State) { s.View = all3(g3) })},
			want: ActionPCRecovery, reason: "3 members"},
		{name: "pc.recovery even with a half-SST'd member: Galera SSTs it",
			self: with(node("n1", 5), func(s *State) { s.View = all3(g1) }),
			peers: []*State{with(node("n2", 5), func(s *State) { s.View = all3(g2) }),
				with(node("n3", 5), func(s *State) { s.View, s.SSTIncomplete = all3(g3), true })},
			want: ActionPCRecovery},
		{name: "a member started for pc.recovery: join the restoring",
			self: with(node("n3", 5), func(s *State) { s.View = all3(g3) }),
			peers: []*State{with(node("n1", 5), func(s *State) { s.View, s.Phase, s.PCRecovery = all3(g1), PhaseStarting, true }),
				with(node("n2", 5), func(s *State) { s.View, s.Phase, s.PCRecovery = all3(g2), PhaseStarting, true })},
			want: ActionPCRecovery},
		{name: "stale member (not in the newest view) returns with the rest: it waits",
			self: with(node("n3", 6766), func(s *State) { s.View = view(g3, 13, g1, g2, g3) }),
			peers: []*State{with(node("n1", 7168), func(s *State) { s.View = view(g1, 14, g1, g2) }),
				with(node("n2", 7168), func(s *State) { s.View = view(g2, 14, g1, g2) })},
			want: ActionWait, reason: "not a member of the newest Primary Component view (seq 14"},
		{name: "stale member returns with the rest: the others pc-recover without it",
			self: with(node("n1", 7168), func(s *State) { s.View = view(g1, 14, g1, g2) }),
			peers: []*State{with(node("n2", 7168), func(s *State) { s.View = view(g2, 14, g1, g2) }),
				with(node("n3", 6766), func(s *State) { s.View = view(g3, 13, g1, g2, g3) })},
			want: ActionPCRecovery, reason: "2 members"},
		{name: "a stale member without gvwstate.dat waits too",
			self: node("n3", 6766),
			peers: []*State{with(node("n1", 7168), func(s *State) { s.View = view(g1, 14, g1, g2) }),
				with(node("n2", 7168), func(s *State) { s.View = view(g2, 14, g1, g2) })},
			want: ActionWait, reason: "not a member"},
		{name: "a stale member, one member of the newest view missing: no pc.recovery, no majority of that view",
			self:   with(node("n3", 6766), func(s *State) { s.View = view(g3, 13, g1, g2, g3) }),
			peers:  []*State{with(node("n1", 7168), func(s *State) { s.View = view(g1, 14, g1, g2) }), nil},
			waited: time.Hour,
			want:   ActionWait, reason: "only 1 of 2 members of the last Primary Component view (seq 14) present with it (n1): no majority (1 more of its members needed); waiting for p3"},
		{name: "a half-SST'd node died, then the others shut down cleanly: its old view does not hold them",
			self: node("n1", 900),
			peers: []*State{node("n2", 880),
				with(node("n3", 500), func(s *State) { s.View, s.SSTIncomplete = all3(g3), true })},
			want: ActionBootstrap, chosen: "n1", reason: "every configured node present"},
		{name: "the same, seen by the half-SST'd node",
			self:  with(node("n3", 500), func(s *State) { s.View, s.SSTIncomplete = all3(g3), true }),
			peers: []*State{node("n1", 900), node("n2", 880)},
			want:  ActionWait, chosen: "n1"},
		{name: "one member of the last view missing: majority after the wait, counted in the view",
			self:   with(node("n2", 7), func(s *State) { s.View = all3(g2) }),
			peers:  []*State{with(node("n1", 8), func(s *State) { s.View = all3(g1) }), nil},
			waited: 31 * time.Second,
			want:   ActionWait, chosen: "n1", reason: "2 of 3 members of the last Primary Component view (seq 5) present"},
		{name: "one member of the last view missing: the reason names what may be lost",
			self:   with(node("n1", 8), func(s *State) { s.View = all3(g1) }),
			peers:  []*State{with(node("n2", 7), func(s *State) { s.View = all3(g2) }), nil},
			waited: 31 * time.Second,
			want:   ActionBootstrap, chosen: "n1", reason: "after waiting 31s for p3: writesets in flight at the crash"},
		{name: "every configured node present, but the last view has more members: peers lacks one, which may hold later commits",
			self:   with(node("n1", 8), func(s *State) { s.View = view(g1, 5, g1, g2, g3, vcreator) }),
			peers:  []*State{with(node("n2", 8), func(s *State) { s.View = view(g2, 5, g1, g2, g3, vcreator) }), node("n3", 6)},
			waited: time.Hour,
			want:   ActionWait, reason: "only 2 of 4 members of the last Primary Component view (seq 5) present with it (n1, n2): no majority (1 more of its members needed); waiting for a node that is not among the configured peers"},
		{name: "a node that left cleanly never adds to a majority of the last view",
			self:   with(node("n1", 8), func(s *State) { s.View = all3(g1) }),
			peers:  []*State{node("n2", 6), nil},
			waited: time.Hour,
			want:   ActionWait, reason: "only 1 of 3 members of the last Primary Component view (seq 5) present with it (n1): no majority (1 more of its members needed); waiting for p3"},
		{name: "one member of the last view missing, before the wait",
			self:   with(node("n1", 8), func(s *State) { s.View = all3(g1) }),
			peers:  []*State{with(node("n2", 7), func(s *State) { s.View = all3(g2) }), nil},
			waited: time.Second,
			want:   ActionWait, reason: "a majority; bootstrapping in 29s"},
		{name: "after a pc.recovery that could not complete, my_uuid's clock sequence is bumped: still the members",
			self: with(node("n1", 104), func(s *State) { s.View = all3(g1); s.View.MyUUID = "11111111-0000-4000-8001-000000000001" }),
			peers: []*State{with(node("n2", 104), func(s *State) { s.View = all3(g2); s.View.MyUUID = "22222222-0000-4000-8001-000000000002" }),
				nil},
			waited: time.Minute,
			want:   ActionBootstrap, chosen: "n1", reason: "2 of 3 members of the last Primary Component view"},
		{name: "a member of the last view with an older view: no pc.recovery, bootstrap",
			self: with(node("n1", 8), func(s *State) { s.View = view(g1, 14, g1, g2) }),
			peers: []*State{with(node("n2", 8), func(s *State) { s.View = view(g2, 13, g1, g2, g3) }),
				nil},
			want: ActionBootstrap, chosen: "n1"},
		{name: "a seqno tie between a view member and a stale node: the member wins",
			self: with(node("n2", 50), func(s *State) { s.View = view(g2, 14, g2, g3) }),
			peers: []*State{with(node("n1", 50), func(s *State) { s.View = view(g1, 13, g1, g2, g3) }),
				with(node("n3", 50), func(s *State) { s.View = view(g3, 13, g1, g2, g3) })},
			want: ActionBootstrap, chosen: "n2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := Input{Self: *tt.self, Waited: tt.waited, BootstrapWait: 30 * time.Second, AutoBootstrap: !tt.noAuto, Weights: tt.weights}
			for i, p := range tt.peers {
				in.Peers = append(in.Peers, Peer{Addr: "p" + string(rune('2'+i)), State: p})
			}
			d := Decide(in)
			if d.Action != tt.want || d.Chosen != tt.chosen || !strings.Contains(d.Reason, tt.reason) {
				t.Errorf("Decide = %s chosen %q: %s\nwant %s chosen %q, reason containing %q\npeers: %s",
					d.Action, d.Chosen, d.Reason, tt.want, tt.chosen, tt.reason, Summary(in))
			}
		})
	}
}

// TestDecideAgree: every node of a cluster that sees the same states
// reaches the same choice, and exactly one of them bootstraps.
func TestDecideAgree(t *testing.T) {
	cases := [][]*State{
		{node("a", 5), node("b", 5), node("c", 5)},
		{node("a", 4), node("b", 6), node("c", 5)},
		{with(node("a", 9), func(s *State) { s.SSTIncomplete = true }), node("b", 7), with(node("c", 7), func(s *State) { s.SafeToBootstrap = true })},
	}
	for i, nodes := range cases {
		boot := 0
		chosen := map[string]bool{}
		for j := range nodes {
			in := Input{Self: *nodes[j], AutoBootstrap: true}
			for k := range nodes {
				if k != j {
					in.Peers = append(in.Peers, Peer{Addr: nodes[k].ID, State: nodes[k]})
				}
			}
			d := Decide(in)
			if d.Action == ActionBootstrap {
				boot++
			}
			chosen[d.Chosen] = true
		}
		if boot != 1 || len(chosen) != 1 {
			t.Errorf("case %d: %d nodes bootstrap, chosen %v; want exactly one, the same for all", i, boot, chosen)
		}
	}
}

// TestDecideViewMajority: the majority that bootstrap-wait allows is one of
// the members of the newest saved view, counted among the nodes that hold
// it, by pc.weight when set; never one of the configured nodes.
func TestDecideViewMajority(t *testing.T) {
	uuid := func(i int) string { return fmt.Sprintf("%08d-0000-4000-8000-%012d", i, i) }
	w := func(n int) *int { return &n }
	tests := []struct {
		name    string
		size    int   // configured nodes, all members of the view
		holders int   // present with the view: nodes 1..holders
		clean   int   // present without it (left cleanly): the next ones
		weight  []int // pc.weight of nodes 1..size, nil: unset
		told    bool  // the missing nodes' weights were seen before
		want    Action
		reason  string
	}{
		{name: "5 nodes, 3 crashed with the view back", size: 5, holders: 3, want: ActionBootstrap, reason: "3 of 5 members"},
		{name: "5 nodes, 2 back with the view", size: 5, holders: 2, want: ActionWait, reason: "only 2 of 5 members of the last Primary Component view (seq 9) present with it (n1, n2): no majority (1 more of its members needed); waiting for one of n3, n4, n5, however long"},
		{name: "5 nodes, 2 back with the view and 1 that left cleanly", size: 5, holders: 2, clean: 1, want: ActionWait, reason: "n3 (seqno 100) left a Primary Component"},
		{name: "7 nodes, 4 back", size: 7, holders: 4, want: ActionBootstrap, reason: "4 of 7 members"},
		{name: "7 nodes, 3 back", size: 7, holders: 3, want: ActionWait, reason: "only 3 of 7 members"},
		{name: "7 nodes, 2 back", size: 7, holders: 2, want: ActionWait, reason: "(2 more of its members needed)"},
		{name: "pc.weight: the heavy node back alone", size: 3, holders: 1, weight: []int{3, 1, 1}, told: true, want: ActionBootstrap, reason: "pc.weight 3 of 5"},
		{name: "pc.weight: the light nodes back without the heavy one", size: 3, holders: 2, weight: []int{1, 1, 3}, told: true, want: ActionWait, reason: "pc.weight 2 of 5"},
		{name: "pc.weight: two light nodes, the heavy one never seen: counted at 1", size: 3, holders: 2, weight: []int{1, 1, 3}, want: ActionBootstrap, reason: "2 of 3 members"},
		{name: "pc.weight 0 counts for nothing", size: 3, holders: 2, weight: []int{1, 0, 1}, told: true, want: ActionWait, reason: "pc.weight 1 of 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			members := make([]string, tt.size)
			for i := range members {
				members[i] = uuid(i + 1)
			}
			in := Input{Waited: time.Hour, BootstrapWait: time.Minute, AutoBootstrap: true, Weights: map[string]int{}}
			for i := 1; i <= tt.size; i++ {
				id := fmt.Sprintf("n%d", i)
				s := node(id, int64(100+tt.size-i))
				if i <= tt.holders {
					s.View = &View{MyUUID: uuid(i), ViewID: vcreator, Seq: 9, Members: members}
				}
				if tt.weight != nil {
					s.Weight = w(tt.weight[i-1])
				}
				switch {
				case i == 1:
					in.Self = *s
				case i <= tt.holders+tt.clean:
					in.Peers = append(in.Peers, Peer{Addr: id, State: s})
				default:
					in.Peers = append(in.Peers, Peer{Addr: id})
					if tt.told {
						in.Weights[id] = s.weight()
					}
				}
			}
			if tt.clean > 0 {
				in.Peers[tt.holders-1].State.Seqno = 100 // the clean leaver is behind
			}
			d := Decide(in)
			if d.Action != tt.want || !strings.Contains(d.Reason, tt.reason) {
				t.Errorf("Decide = %s chosen %q: %s\nwant %s, reason containing %q", d.Action, d.Chosen, d.Reason, tt.want, tt.reason)
			}
		})
	}
}
