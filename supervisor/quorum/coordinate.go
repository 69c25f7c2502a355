package quorum

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
)

// MESSAGE_IDs of the decisions in the journal (packaging/galera-supervisor.catalog).
const (
	MessageBootstrap = "fab74ea5fc174868bf2eda932c641fa3" // this node bootstraps
	MessageWait      = "7a3a6f68340440c8868ffee3ba749561" // waiting, not bootstrapping, and why
	// MessageStart has no catalog entry of its own: join and pc-recovery
	// are logged without a MESSAGE_ID.
)

// Coordinator waits with the peers until the node may start.
type Coordinator struct {
	Config *Config
	Server *Server // serves this node's state; its phase is set here
	Log    *slog.Logger
	// Record, when set, is called with each decision logged (to persist it).
	Record func(Record)
	// Poll is the period between polls; PollInterval when 0.
	Poll time.Duration
	// Query asks one peer; quorum.Query when nil (tests replace it).
	Query func(ctx context.Context, addr string, auth Auth) (*State, error)
	// Waiting, when set, is called after each poll that did not end the
	// wait, with how long Wait has waited.
	Waiting func(waited time.Duration)
	// Weights are the pc.weight each peer last reported, by address (from
	// the last Record): Wait adds the peers that answer, and Decide counts
	// a missing member of the last view at its weight.
	Weights map[string]int
	// Paused, when set and true, holds a bootstrap that Decide chose: the
	// node is in maintenance, and Wait goes on polling (a join or a
	// pc-recovery start goes ahead).
	Paused func() bool
}

// Record is a decision as persisted for "galera-supervisor status".
type Record struct {
	Time     time.Time `json:"time"`
	Decision `json:"decision"`
	UUID     string `json:"uuid"`
	Seqno    int64  `json:"seqno"`
	// Weights are the peers' pc.weight as they last answered, by address.
	Weights map[string]int `json:"peer_weights,omitempty"`
}

// Wait polls the peers until Decide's answer starts mariadbd, logging each
// new decision with its reasons. It returns ctx's error when cancelled.
func (c *Coordinator) Wait(ctx context.Context) (Decision, error) {
	poll := c.Poll
	if poll <= 0 {
		poll = PollInterval
	}
	query := c.Query
	if query == nil {
		query = Query
	}
	c.Server.Update(func(s *State) { s.Phase = PhaseWaiting })
	start := time.Now()
	lastKey, lastLog := "", time.Time{}
	errs := map[string]string{}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		peers := c.poll(ctx, query)
		if me := c.Server.State().Instance; me != "" {
			var others []Peer
			for _, p := range peers {
				if p.State != nil && p.State.Instance == me {
					c.Log.Info("peer is this node: leaving it out", slog.String("peer", p.Addr))
					c.Config.Peers = slices.DeleteFunc(c.Config.Peers, func(a string) bool { return a == p.Addr })
					continue
				}
				others = append(others, p)
			}
			peers = others
		}
		for _, p := range peers {
			if p.Err != errs[p.Addr] {
				if p.Err != "" {
					c.Log.Info("peer does not answer", slog.String("peer", p.Addr), slog.String("error", p.Err))
				} else if p.State != nil {
					c.Log.Info("peer answers", slog.String("peer", p.Addr),
						slog.String("peer_id", p.State.ID), slog.String("peer_phase", string(p.State.Phase)))
				}
				errs[p.Addr] = p.Err
			}
		}
		if c.Weights == nil {
			c.Weights = map[string]int{}
		}
		for _, p := range peers {
			if p.State != nil {
				c.Weights[p.Addr] = p.State.weight()
			}
		}
		in := Input{Self: c.Server.State(), Peers: peers, Waited: time.Since(start),
			BootstrapWait: c.Config.BootstrapWait, AutoBootstrap: c.Config.AutoBootstrap, Weights: c.Weights}
		d := Decide(in)
		d.Peers = Summary(in)
		if d.Action == ActionBootstrap && c.Paused != nil && c.Paused() {
			d = Decision{Action: ActionWait, Peers: d.Peers,
				Reason: "auto-bootstrap is paused: the node is in maintenance (galera-supervisor maintenance off resumes); it would bootstrap: " + d.Reason}
		}
		if key := logKey(d); key != lastKey || time.Since(lastLog) > 30*time.Second || d.Final() {
			lastKey, lastLog = key, time.Now()
			c.log(in.Self, d)
		}
		if d.Final() {
			switch d.Action {
			case ActionBootstrap:
				c.Server.Update(func(s *State) { s.Bootstrapping = true; s.Phase = PhaseStarting })
			case ActionPCRecovery:
				c.Server.Update(func(s *State) { s.PCRecovery = true; s.Phase = PhaseStarting })
			default:
				c.Server.Update(func(s *State) { s.Phase = PhaseStarting })
			}
			return d, nil
		}
		if c.Waiting != nil {
			c.Waiting(in.Waited)
		}
		select {
		case <-ctx.Done():
			return d, ctx.Err()
		case <-t.C:
		}
	}
}

// logKey is what makes a decision new: its words without the numbers that
// count down.
func logKey(d Decision) string {
	return string(d.Action) + d.Chosen + strings.Map(func(r rune) rune {
		if unicode.IsDigit(r) {
			return -1
		}
		return r
	}, d.Reason)
}

func (c *Coordinator) log(self State, d Decision) {
	attrs := []any{
		slog.String("decision", string(d.Action)), slog.String("reason", d.Reason),
		slog.String("peers", d.Peers), slog.String("galera_uuid", self.UUID), slog.Int64("galera_seqno", self.Seqno),
	}
	if d.Chosen != "" {
		attrs = append(attrs, slog.String("chosen", d.Chosen), slog.String("rule", d.Rule))
	}
	switch d.Action {
	case ActionBootstrap:
		c.Log.Warn("bootstrapping a new Primary Component from this node", append(attrs, slog.String("message_id", MessageBootstrap))...)
	case ActionWait:
		c.Log.Info("not starting yet", append(attrs, slog.String("message_id", MessageWait))...)
	default:
		c.Log.Info("starting mariadbd", attrs...)
	}
	if c.Record != nil {
		c.Record(Record{Time: time.Now().UTC(), Decision: d, UUID: self.UUID, Seqno: self.Seqno, Weights: maps.Clone(c.Weights)})
	}
}

func (c *Coordinator) poll(ctx context.Context, query func(context.Context, string, Auth) (*State, error)) []Peer {
	peers := make([]Peer, len(c.Config.Peers))
	var wg sync.WaitGroup
	for i, addr := range c.Config.Peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := query(ctx, addr, c.Config.Auth)
			peers[i] = Peer{Addr: addr, State: st}
			if err != nil {
				peers[i] = Peer{Addr: addr, Err: err.Error()}
			}
		}()
	}
	wg.Wait()
	return peers
}

// DecisionFile is where the last decision is kept, in the datadir: it
// survives a reboot, and status reads it. No SST sends it; the joiner's
// supervisor keeps it across a joiner SST (supervisor/ownfiles.go).
const DecisionFile = "galera-supervisor.decision"

// WriteRecord writes r to dir/DecisionFile atomically.
func WriteRecord(dir string, r Record) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, DecisionFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o640); err != nil {
		return fmt.Errorf("write decision: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write decision: %w", err)
	}
	return nil
}

// ReadRecord reads dir/DecisionFile; (nil, nil) when there is none.
func ReadRecord(dir string) (*Record, error) {
	path := filepath.Join(dir, DecisionFile)
	b, err := readFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read decision: %w", err)
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// Watch asks the peers at addrs for their state every poll until ctx is
// done, and calls seen with each that answers: the supervisor's watch on
// the members of a view it lets pc.recovery restore.
func (c *Coordinator) Watch(ctx context.Context, addrs []string, seen func(addr string, st *State)) {
	poll := c.Poll
	if poll <= 0 {
		poll = PollInterval
	}
	query := c.Query
	if query == nil {
		query = Query
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		var wg sync.WaitGroup
		for _, a := range addrs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if st, err := query(ctx, a, c.Config.Auth); err == nil {
					seen(a, st)
				}
			}()
		}
		wg.Wait()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
