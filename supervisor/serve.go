package supervisor

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/galera-supervisor/galera-supervisor/notify"
	"github.com/galera-supervisor/galera-supervisor/sst/progress"
	"github.com/galera-supervisor/galera-supervisor/supervisor/endpoint"
	"github.com/galera-supervisor/galera-supervisor/supervisor/maintenance"
	"github.com/galera-supervisor/galera-supervisor/supervisor/quorum"
)

// What the supervisor shows outside: the snapshot its HTTP endpoint and
// metrics answer from, the maintenance mode, and the counters.

// Snapshot is the node's state as last published, nil before the first.
func (s *Supervisor) Snapshot() *endpoint.Snapshot { return s.published.Load() }

// Metrics are the supervisor's counters.
func (s *Supervisor) Metrics() *endpoint.Metrics { return s.metrics }

// ReloadMaintenance reads the maintenance mode again (SIGUSR2, sent over
// D-Bus by "galera-supervisor maintenance" for a unit).
func (s *Supervisor) ReloadMaintenance() {
	if _, err := s.applyMaintenance(); err != nil {
		s.log.Warn("cannot read the maintenance mode", slog.Any("error", err))
	}
}

// inMaintenance reports whether the node is in maintenance.
func (s *Supervisor) inMaintenance() bool { return s.maint.Load() != nil }

// applyMaintenance reads the mode from the datadir and puts it in force:
// the endpoint drains, the peers and STATUS= are told, and auto-bootstrap
// and give-ups pause (they ask inMaintenance).
func (s *Supervisor) applyMaintenance() (*maintenance.State, error) {
	s.maintMu.Lock()
	defer s.maintMu.Unlock()
	if s.datadir == "" {
		return nil, nil // SIGUSR2 before the option files were read: Run reads the mode itself
	}
	st, err := maintenance.Read(s.datadir)
	if err != nil {
		return s.maint.Load(), err
	}
	old := s.maint.Swap(st)
	switch {
	case st != nil && old == nil:
		s.log.Warn("maintenance on: the endpoint answers 503; auto-bootstrap and give-ups are paused",
			slog.String("maintenance", "on"), slog.String("by", st.By), slog.String("reason", st.Reason))
	case st == nil && old != nil:
		s.log.Info("maintenance off: the endpoint answers as the node is; auto-bootstrap and give-ups resume",
			slog.String("maintenance", "off"))
	}
	s.pubMu.Lock()
	if p := s.published.Load(); p != nil {
		c := *p
		c.Maintenance = st
		s.published.Store(&c)
	}
	s.pubMu.Unlock()
	if c := s.coord.Load(); c != nil {
		c.update(func(q *quorum.State) { q.Maintenance = st != nil })
	}
	select {
	case s.maintChanged <- struct{}{}:
	default:
	}
	return st, nil
}

// startEndpoint reads the endpoint's options and, when http-address is
// set, serves it until ctx is done. The control socket for "maintenance"
// is always served. The returned func stops both and waits.
func (s *Supervisor) startEndpoint(ctx context.Context, opts Options, uid, gid int) (func(), error) {
	look := func(m map[string]string) quorum.Lookup {
		return func(name string) (string, bool) { v, ok := m[Key(name)]; return v, ok }
	}
	cfg, err := endpoint.ConfigFrom(look(opts.Supervisor), look(opts.SST))
	if err != nil {
		return nil, err
	}
	*s.httpCfg = *cfg
	s.datadir = opts.Datadir()
	if _, err := s.applyMaintenance(); err != nil {
		s.log.Warn("cannot read the maintenance mode", slog.Any("error", err))
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{}, 2)
	n := 0
	ctl, err := maintenance.Listen(s.cfg.RuntimeDir, s.datadir, uid, gid, s.applyMaintenance)
	if err != nil {
		s.log.Warn(`maintenance socket: "galera-supervisor maintenance" reaches this supervisor by SIGUSR2 only`, slog.Any("error", err))
	} else {
		n++
		go func() { ctl.Serve(ctx); done <- struct{}{} }()
	}
	if cfg.Enabled() {
		srv, err := endpoint.Listen(s.httpCfg, s.Snapshot, s.metrics, s.log)
		if err != nil {
			cancel()
			for range n {
				<-done
			}
			return nil, err
		}
		scheme := "http"
		if cfg.TLS != nil {
			scheme = "https"
		}
		s.log.Info("serving the health endpoint and metrics", slog.String("scheme", scheme),
			slog.String("http_address", srv.Addr().String()), slog.Bool("available_when_donor", cfg.AvailableWhenDonor),
			slog.Bool("available_when_readonly", cfg.AvailableWhenReadonly))
		n++
		go func() {
			if err := srv.Serve(ctx); err != nil {
				s.log.Error("health endpoint stopped", slog.Any("error", err))
			}
			done <- struct{}{}
		}()
	}
	return func() {
		cancel()
		for range n {
			<-done
		}
	}, nil
}

// countingSender counts the keepalives sent to systemd.
type countingSender struct {
	notify.Sender
	m *endpoint.Metrics
}

func (c countingSender) Notify(state string) error {
	for _, l := range strings.Split(state, "\n") {
		switch {
		case strings.HasPrefix(l, "EXTEND_TIMEOUT_USEC="):
			c.m.Keepalive(endpoint.KeepaliveExtend)
		case l == "WATCHDOG=1":
			c.m.Keepalive(endpoint.KeepaliveWatchdog)
		}
	}
	return c.Sender.Notify(state)
}

// publish makes the runner's view the snapshot the endpoint answers from.
func (r *runner) publish(now time.Time) {
	s := r.s
	v := &r.view
	snap := &endpoint.Snapshot{
		Phase: string(v.phase(now)), Status: v.line(now), Ready: r.ready, Stopping: v.stopping,
		Wsrep: r.wsrep, Answering: v.sqlUp, CheckedAt: r.checkedAt, Decision: r.decision,
	}
	if v.sqlUp {
		n := v.node
		snap.Node = endpoint.Node{LocalState: n.LocalState, LocalStateComment: n.Comment, ClusterStatus: n.ClusterStatus,
			ClusterSize: n.ClusterSize, Ready: n.Ready, ReadOnly: n.ReadOnly, ClusterUUID: n.ClusterUUID, LastCommitted: n.LastCommitted}
		if snap.Node.LocalState == 0 {
			snap.Node.LocalState = localState(n.Comment)
		}
	}
	if !v.lastProg.IsZero() {
		e := v.meter.Last()
		t := &endpoint.SST{Role: e.Role, Method: e.Method, Phase: e.Phase, Peer: e.Peer, Done: e.Done, Total: e.Total,
			Start: r.sstStart, Last: v.lastProg, Error: e.Err}
		if rate, ok := v.meter.Rate(); ok {
			t.Rate = rate
		}
		if eta, ok := v.meter.ETA(); ok {
			t.ETA = eta.Seconds()
		}
		snap.SST = t
	}
	s.pubMu.Lock()
	snap.Maintenance = s.maint.Load()
	s.published.Store(snap)
	s.pubMu.Unlock()
}

// localState is wsrep_local_state from its comment, for a server that did
// not say the number.
func localState(comment string) int {
	switch {
	case strings.HasPrefix(comment, "Joining"):
		return endpoint.StateJoining
	case comment == "Donor/Desynced":
		return endpoint.StateDonor
	case comment == "Joined":
		return endpoint.StateJoined
	case comment == "Synced":
		return endpoint.StateSynced
	}
	return 0
}

// sstEvent counts an SST that ended, from its progress events: the first
// event of an SST starts its clock.
func (r *runner) sstEvent(e progress.Event, now time.Time) {
	at := e.Time
	if at.IsZero() || at.After(now) {
		at = now
	}
	key := e.Role + "/" + e.Method
	if e.PID != 0 {
		key += "/" + strconv.Itoa(e.PID)
	}
	if r.sstKey != key {
		r.sstKey, r.sstStart, r.sstBytes, r.sstCounted = key, at, 0, false
	}
	// The done event counts nothing itself: the SST moved the most bytes
	// its events counted.
	r.sstBytes = max(r.sstBytes, e.Done)
	if r.sstCounted || e.Phase != progress.PhaseDone && e.Phase != progress.PhaseFailed {
		return
	}
	r.sstCounted = true
	result := endpoint.ResultSucceeded
	if e.Phase == progress.PhaseFailed {
		result = endpoint.ResultFailed
	}
	r.s.metrics.SSTEnded(e.Method, e.Role, result, r.sstBytes, at.Sub(r.sstStart).Seconds())
}
