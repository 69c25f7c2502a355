package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/supervisor/galeratest"
)

// TestRealDemo runs the demo as make demo does, briefly, and checks that it
// reached a synced 3-node cluster with equal tables and stopped everything.
func TestRealDemo(t *testing.T) {
	galeratest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, options{seconds: 1, nodes: 3, sstMethod: "rsync", data: 4 << 20, interval: 300 * time.Millisecond}, &out)
	t.Logf("output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"node3: Synced in",
		"identical on all 3 nodes",
		"Synced size=3 Primary ready=ON",
		"nothing left running",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	var rows int
	for _, l := range strings.Split(out.String(), "\n") {
		f := strings.Fields(l)
		if len(f) == 6 && strings.HasPrefix(f[0], "node") && f[2] == "Synced" && f[3] == "3" && f[4] == "Primary" && f[5] == "ON" {
			rows++
		}
	}
	if rows != 3 {
		t.Errorf("state table has %d synced rows, want 3", rows)
	}
}

// TestRealDemoInterrupted: Ctrl-C while a node joins still stops everything.
func TestRealDemoInterrupted(t *testing.T) {
	galeratest.Require(t)
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	w := &notifyWriter{w: &out, match: "node2: joining", fn: cancel}
	err := run(ctx, options{seconds: 0, nodes: 3, sstMethod: "rsync", data: 1 << 20, interval: time.Second}, w)
	t.Logf("output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"interrupted", "nothing left running"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out.String(), "node3: joining") {
		t.Error("node3 started joining after the interrupt")
	}
}

// notifyWriter calls fn once the output contains match.
type notifyWriter struct {
	w     *bytes.Buffer
	match string
	fn    func()
	done  bool
}

func (n *notifyWriter) Write(p []byte) (int, error) {
	k, err := n.w.Write(p)
	if !n.done && strings.Contains(n.w.String(), n.match) {
		n.done = true
		n.fn()
	}
	return k, err
}
