package quorum

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCoordinatorWait drives the loop with fake peers: it waits while a
// peer is unreachable and the majority's wait runs, logs each new decision
// once (not each poll), publishes its phase, records the decisions, and
// returns the bootstrap with Bootstrapping set for the peers to see.
func TestCoordinatorWait(t *testing.T) {
	srv := &Server{}
	v := func(me string) *View { return view(me, 5, g1, g2, g3) }
	srv.Set(State{ID: "a", Phase: PhaseWaiting, UUID: clusterA, Seqno: 9, View: v(g1)})
	two := 2
	var mu sync.Mutex
	polls := 0
	query := func(_ context.Context, addr string, _ Auth) (*State, error) {
		mu.Lock()
		defer mu.Unlock()
		polls++
		if addr == "b" {
			return with(node("b", 8), func(s *State) { s.View, s.Weight = v(g2), &two }), nil
		}
		return nil, errors.New("connection refused")
	}
	var logs bytes.Buffer
	var recs []Record
	c := &Coordinator{
		Config: &Config{Peers: []string{"b", "c"}, BootstrapWait: 600 * time.Millisecond, AutoBootstrap: true},
		Server: srv, Log: slog.New(slog.NewTextHandler(&logs, nil)), Poll: 20 * time.Millisecond, Query: query,
		Record: func(r Record) { recs = append(recs, r) },
	}
	t0 := time.Now()
	d, err := c.Wait(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d.Action != ActionBootstrap || d.Chosen != "a" || time.Since(t0) < 600*time.Millisecond {
		t.Fatalf("Wait = %+v after %v; want a bootstrap of a after the 600ms wait", d, time.Since(t0))
	}
	if st := srv.State(); !st.Bootstrapping || st.Phase != PhaseStarting {
		t.Errorf("served state %+v: want bootstrapping, starting", st)
	}
	out := logs.String()
	if n := strings.Count(out, "not starting yet"); n != 1 {
		t.Errorf("%d wait lines over %d polls, want 1 (the countdown is not news):\n%s", n, polls, out)
	}
	for _, want := range []string{"decision=wait", "message_id=" + MessageWait, "decision=bootstrap", "message_id=" + MessageBootstrap,
		"galera_seqno=9", `msg="peer does not answer" peer=c`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if len(recs) != 2 || recs[0].Action != ActionWait || recs[1].Action != ActionBootstrap || recs[1].Seqno != 9 || recs[1].Weights["b"] != 2 {
		t.Errorf("records: %+v", recs)
	}

	// Cancelled while waiting: ctx's error, not a decision to start.
	srv.Set(State{ID: "a", Phase: PhaseWaiting, UUID: clusterA, Seqno: 1})
	c.Config.BootstrapWait = time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if d, err := c.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) || d.Final() {
		t.Errorf("cancelled Wait = %+v, %v", d, err)
	}
}

// TestCoordinatorSelf: a peer address that is this node (the same
// Instance answers) is left out, and does not count as a member.
func TestCoordinatorSelf(t *testing.T) {
	srv := &Server{}
	me := State{ID: "host:4569", Instance: NewInstance(), Phase: PhaseWaiting, UUID: clusterA, Seqno: 9}
	srv.Set(me)
	query := func(_ context.Context, addr string, _ Auth) (*State, error) {
		if addr == "10.0.0.1:4569" {
			st := srv.State()
			return &st, nil
		}
		return with(node("b", 3), func(s *State) { s.Instance = NewInstance() }), nil
	}
	var logs bytes.Buffer
	c := &Coordinator{Config: &Config{Peers: []string{"10.0.0.1:4569", "10.0.0.2:4569"}, AutoBootstrap: true},
		Server: srv, Log: slog.New(slog.NewTextHandler(&logs, nil)), Poll: 10 * time.Millisecond, Query: query}
	d, err := c.Wait(context.Background())
	if err != nil || d.Action != ActionBootstrap || !strings.Contains(d.Reason, "every configured node present (2 of 2)") {
		t.Errorf("Wait = %+v, %v; want a bootstrap with 2 of 2", d, err)
	}
	if strings.Join(c.Config.Peers, ",") != "10.0.0.2:4569" || !strings.Contains(logs.String(), "is this node") {
		t.Errorf("peers %v, log:\n%s", c.Config.Peers, logs.String())
	}
}

// TestCoordinatorPaused: a bootstrap Decide chose waits while the node is
// in maintenance, and is said to wait for it; it goes ahead once the
// maintenance ends. A join is never held.
func TestCoordinatorPaused(t *testing.T) {
	srv := &Server{}
	srv.Set(State{ID: "a", Phase: PhaseWaiting, UUID: clusterA, Seqno: 9})
	var paused sync.Mutex
	on := true
	query := func(_ context.Context, addr string, _ Auth) (*State, error) { return node("b", 8), nil }
	var logs bytes.Buffer
	var mu sync.Mutex
	var recs []Record
	c := &Coordinator{
		Config: &Config{Peers: []string{"b"}, AutoBootstrap: true},
		Server: srv, Log: slog.New(slog.NewTextHandler(&logs, nil)), Poll: 10 * time.Millisecond, Query: query,
		Record: func(r Record) { mu.Lock(); recs = append(recs, r); mu.Unlock() },
		Paused: func() bool { paused.Lock(); defer paused.Unlock(); return on },
	}
	time.AfterFunc(300*time.Millisecond, func() { paused.Lock(); on = false; paused.Unlock() })
	t0 := time.Now()
	d, err := c.Wait(context.Background())
	if err != nil || d.Action != ActionBootstrap || time.Since(t0) < 300*time.Millisecond {
		t.Fatalf("Wait = %+v, %v after %v; want a bootstrap once the maintenance ended (300ms)", d, err, time.Since(t0))
	}
	mu.Lock()
	if len(recs) != 2 || recs[0].Action != ActionWait || !strings.Contains(recs[0].Reason, "auto-bootstrap is paused: the node is in maintenance") {
		t.Errorf("records: %+v", recs)
	}
	mu.Unlock()

	// A join goes ahead in maintenance.
	srv.Set(State{ID: "a", Phase: PhaseWaiting, UUID: clusterA, Seqno: 9})
	paused.Lock()
	on = true
	paused.Unlock()
	c.Query = func(_ context.Context, addr string, _ Auth) (*State, error) {
		return with(node("b", 8), func(s *State) { s.Phase, s.Primary = PhaseSynced, true }), nil
	}
	if d, err := c.Wait(context.Background()); err != nil || d.Action != ActionJoin {
		t.Errorf("Wait in maintenance with a Primary Component = %+v, %v; want join", d, err)
	}
}
