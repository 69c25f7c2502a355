package galeratest

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRealMonitorSplitBrain makes the split brain the outage tests must
// never see, by hand, to show that the Monitor sees it: three stock nodes,
// each in its own network namespace; node3 is cut off, stopped, and forced
// to bootstrap a Primary Component of its own (--wsrep-new-cluster) while
// {1,2} is one. Before that, no sweep may report two Primary Components.
func TestRealMonitorSplitBrain(t *testing.T) {
	Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	c := NewTest(t, Config{Nodes: 3})
	w, err := c.Partitionable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.StartAll(ctx); err != nil {
		t.Fatal(err)
	}
	m, err := StartMonitor(c.Nodes(), 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	n1, n2, n3 := c.Node(1), c.Node(2), c.Node(3)
	if _, err := m.Wait(ctx, Synced(n1, n2, n3)); err != nil {
		t.Fatal(err)
	}
	if err := w.Cut(ctx, n3); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Wait(ctx, Synced(n1, n2)); err != nil {
		t.Fatal(err)
	}
	if err := m.Err(); err != nil {
		t.Fatalf("before the split brain: %v", err)
	}
	if err := n3.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n3.markSafeToBootstrap(); err != nil {
		t.Fatal(err)
	}
	if err := n3.Start(ctx, "--wsrep-new-cluster"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Wait(ctx, func(vs []View) bool {
		i := slices.IndexFunc(vs, func(v View) bool { return v.Node == 3 })
		return vs[i].Primary()
	}, n3.Exited()); err != nil {
		t.Fatal(err)
	}
	err = m.Err()
	if err == nil || !strings.Contains(err.Error(), "two Primary Components") {
		t.Fatalf("node3 bootstrapped alone while {1,2} is Primary: Err() = %v", err)
	}
	t.Logf("the monitor saw it: %v", err)
}
