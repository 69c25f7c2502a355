package galeratest

import (
	"strings"
	"testing"
)

func TestTwoPrimaries(t *testing.T) {
	p := func(node int, uuid string, members ...string) View {
		return View{Node: node, Up: true, Status: "Primary", State: "Synced", UUID: uuid, Members: members}
	}
	np := func(node int, members ...string) View {
		return View{Node: node, Up: true, Status: "non-Primary", State: "Initialized", UUID: "u", Members: members}
	}
	for _, tc := range []struct {
		name  string
		views []View
		two   bool
	}{
		{"one component", []View{p(1, "u", "a", "b", "c"), p(2, "u", "a", "b", "c"), p(3, "u", "a", "b", "c")}, false},
		{"a view change seen half-way", []View{p(1, "u", "a", "b"), p(2, "u", "a", "b", "c"), p(3, "u", "a", "b", "c")}, false},
		{"a minority that is not Primary", []View{p(1, "u", "a", "b"), p(2, "u", "a", "b"), np(3, "c")}, false},
		{"a node down", []View{p(1, "u", "a", "b"), {Node: 2}, p(3, "u", "a", "b")}, false},
		{"disjoint members", []View{p(1, "u", "a", "b"), p(2, "u", "a", "b"), p(3, "u", "c")}, true},
		{"another cluster", []View{p(1, "u", "a", "b", "c"), p(2, "v", "a", "b", "c")}, true},
	} {
		msg := twoPrimaries(tc.views)
		if (msg != "") != tc.two {
			t.Errorf("%s: twoPrimaries = %q, want two: %v", tc.name, msg, tc.two)
		}
		if tc.two && !strings.Contains(msg, "two Primary Components") {
			t.Errorf("%s: %q", tc.name, msg)
		}
	}
}

func TestSynced(t *testing.T) {
	c := fakeCluster(Config{})
	v := func(node int, status, state, size, conf string) View {
		return View{Node: node, Up: true, Status: status, State: state, Size: size, ConfID: conf}
	}
	all := []View{v(1, "Primary", "Synced", "3", "7"), v(2, "Primary", "Synced", "3", "7"), v(3, "Primary", "Synced", "3", "7")}
	if !Synced(c.Nodes()...)(all) {
		t.Error("3 Synced nodes in one view: not Synced")
	}
	lagging := []View{v(1, "Primary", "Synced", "3", "7"), v(2, "Primary", "Synced", "3", "6"), v(3, "Primary", "Joined", "3", "7")}
	if Synced(c.Nodes()...)(lagging) {
		t.Error("a Joined node, and two conf ids: Synced")
	}
	two := []View{v(1, "Primary", "Synced", "2", "9"), {Node: 2}, v(3, "Primary", "Synced", "2", "9")}
	if !Synced(c.Node(1), c.Node(3))(two) {
		t.Error("nodes 1 and 3 of size 2: not Synced")
	}
	if Synced(c.Nodes()...)(two) {
		t.Error("node2 down: all Synced")
	}
}
