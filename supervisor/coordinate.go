package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/galera-supervisor/galera-supervisor/notify"
	"github.com/galera-supervisor/galera-supervisor/sst"
	"github.com/galera-supervisor/galera-supervisor/supervisor/quorum"
)

// SSTIncompleteFile marks, in the datadir, a node whose last SST as a
// joiner did not complete: written when one is seen to begin (or its
// leftovers are found), removed once the node is Synced. Such a node never
// bootstraps a cluster, and a native-copy joiner reads it to tell whether
// its old datadir may be half written (sst.HalfWritten). No SST sends it;
// the joiner's supervisor keeps it across the SST (ownfiles.go).
const SSTIncompleteFile = sst.IncompleteFile

// findIncompleteSST says why the node's last SST did not complete, "" when
// nothing says so. It must run before CleanSST removes the evidence.
func findIncompleteSST(opts Options) string {
	datadir := opts.Datadir()
	if b, err := os.ReadFile(filepath.Join(datadir, SSTIncompleteFile)); err == nil {
		return strings.TrimSpace(string(b))
	}
	if _, err := os.Lstat(filepath.Join(datadir, sst.InProgressFile)); err == nil {
		return sst.InProgressFile + " left in " + datadir
	}
	dirs := sst.DirsFrom(datadir, func(o string) string { v, _ := opts.Get(o); return v })
	for _, root := range dirs.Roots() {
		if _, err := os.Lstat(filepath.Join(root, sst.StagingDirName)); err == nil {
			return "staging " + filepath.Join(root, sst.StagingDirName) + " left"
		}
	}
	return ""
}

// markSSTIncomplete writes the marker with why.
func markSSTIncomplete(datadir, why string) error {
	if err := os.WriteFile(filepath.Join(datadir, SSTIncompleteFile), []byte(why+"\n"), 0o640); err != nil {
		return fmt.Errorf("mark incomplete SST: %w", err)
	}
	return nil
}

// staleSSTFiles are markers an SST script leaves when it is killed:
// sst_in_progress always, the pid files when their process is gone.
var stalePIDFiles = []string{sst.PIDFile, "rsync_sst.pid"}

// cleanSSTMarkers removes what a killed SST left in the datadir, once
// findIncompleteSST has read it: mariadbd is not running, so no SST of
// its is. A pid file whose process still lives is left alone.
func cleanSSTMarkers(datadir string, log *slog.Logger) {
	p := filepath.Join(datadir, sst.InProgressFile)
	if err := os.Remove(p); err == nil {
		log.Info("removed a stale SST marker", slog.String("path", p))
	}
	for _, name := range stalePIDFiles {
		p := filepath.Join(datadir, name)
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 && syscall.Kill(pid, 0) == nil {
			log.Info("SST pid file's process still runs; leaving it", slog.String("path", p), slog.Int("pid", pid))
			continue
		}
		if err := os.Remove(p); err == nil {
			log.Info("removed a stale SST pid file", slog.String("path", p))
		}
	}
}

var safeLine = regexp.MustCompile(`(?m)^safe_to_bootstrap:[ \t]*[01][ \t]*$`)

// setSafeToBootstrap sets safe_to_bootstrap: 1 in grastate.dat, as a
// person does before galera_new_cluster, keeping the file's owner. A
// missing or unreadable file is written anew from pos.
func setSafeToBootstrap(datadir string, pos Position, uid, gid int) error {
	path := filepath.Join(datadir, "grastate.dat")
	b, err := os.ReadFile(path)
	var out []byte
	if _, perr := ParseGrastate(strings.NewReader(string(b))); err == nil && perr == nil {
		if safeLine.Match(b) {
			out = safeLine.ReplaceAll(b, []byte("safe_to_bootstrap: 1"))
		} else {
			out = append(append([]byte(nil), b...), "\nsafe_to_bootstrap: 1\n"...)
		}
	} else {
		out = fmt.Appendf(nil, "# GALERA saved state\nversion: 2.1\nuuid:    %s\nseqno:   %d\nsafe_to_bootstrap: 1\n", pos.UUID, pos.Seqno)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o660)
	if err != nil {
		return fmt.Errorf("set safe_to_bootstrap: %w", err)
	}
	_, werr := f.Write(out)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("set safe_to_bootstrap in %s: %w", path, err)
	}
	if uid >= 0 {
		os.Chown(path, uid, gid)
	}
	return nil
}

// repairGrastate rewrites a grastate.dat that a crash cut short (or that
// is gone) from the position InnoDB recovered, when no SST was under way:
// Galera reads such a file as uuid 0 and takes a full SST whatever
// --wsrep_start_position says, where the intact data needs only IST.
func (r *runner) repairGrastate(datadir string, pos Position) error {
	if pos.UUID == ZeroUUID || pos.Seqno < 0 || !validUUID(pos.UUID) {
		return nil
	}
	path := filepath.Join(datadir, "grastate.dat")
	b := fmt.Appendf(nil, "# GALERA saved state\nversion: 2.1\nuuid:    %s\nseqno:   -1\nsafe_to_bootstrap: 0\n", pos.UUID)
	if err := os.WriteFile(path, b, 0o660); err != nil {
		return fmt.Errorf("repair grastate: %w", err)
	}
	if r.cred != nil {
		os.Chown(path, int(r.cred.Uid), int(r.cred.Gid))
	}
	r.s.log.Info("grastate.dat was unreadable and no SST was under way: rewritten with the recovered cluster UUID, so that the node rejoins by IST",
		slog.String("path", path), slog.String("galera_uuid", pos.UUID), slog.Int64("galera_seqno", pos.Seqno))
	return nil
}

// coordination is the supervisor's side of package quorum for one Run.
type coordination struct {
	cfg    *quorum.Config
	server *quorum.Server
	log    *slog.Logger
	ctx    context.Context // the Run's, until stop
	cancel context.CancelFunc
	done   chan struct{}

	// After a pc-recovery or join start, until the node is Primary: when
	// each member of the view last answered, when a peer last said it was
	// in a Primary Component.
	mu          sync.Mutex
	watching    quorum.Action
	lastSeen    map[string]time.Time
	primarySeen time.Time
	unwatch     context.CancelFunc
}

// startGrace is the least time a start may wait for a member of the view
// that went away (pc-recovery), or for a Primary Component that went away
// (join), before it is given up; bootstrap-wait when longer.
const startGrace = 10 * time.Second

// watch follows the peers after a pc-recovery start (the members of the
// view) or a join (every peer) until the node is Primary.
func (c *coordination) watch(co *quorum.Coordinator, d quorum.Decision) {
	addrs := c.cfg.Peers
	if d.Action == quorum.ActionPCRecovery {
		addrs = d.Members
	}
	now := time.Now()
	wctx, cancel := context.WithCancel(c.ctx)
	c.mu.Lock()
	c.watching, c.lastSeen, c.primarySeen, c.unwatch = d.Action, map[string]time.Time{}, now, cancel
	for _, a := range addrs {
		c.lastSeen[a] = now
	}
	c.mu.Unlock()
	go co.Watch(wctx, addrs, func(addr string, st *quorum.State) {
		c.mu.Lock()
		if c.lastSeen != nil {
			c.lastSeen[addr] = time.Now()
			if st.Primary {
				c.primarySeen = time.Now()
			}
		}
		c.mu.Unlock()
	})
}

// stuck says why the start cannot complete, "" while it may: a member of
// the view pc.recovery was to restore has not answered for longer than the
// grace, or, for a join, no peer has been in a Primary Component for that
// long. Galera would wait forever in either case.
func (c *coordination) stuck() string {
	if c == nil {
		return ""
	}
	grace := max(c.cfg.BootstrapWait, startGrace)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lastSeen == nil {
		return ""
	}
	if c.watching == quorum.ActionJoin {
		if d := time.Since(c.primarySeen); d > grace {
			return fmt.Sprintf("the Primary Component this node was joining is gone: no peer has been in one for %s", d.Round(time.Second))
		}
		return ""
	}
	for addr, t := range c.lastSeen {
		if d := time.Since(t); d > grace {
			return fmt.Sprintf("pc.recovery cannot restore the Primary Component: member %s has not answered for %s", addr, d.Round(time.Second))
		}
	}
	return ""
}

// stopWatching ends the watch: the node is in a Primary Component.
func (c *coordination) stopWatching() {
	if c == nil {
		return
	}
	c.mu.Lock()
	if c.unwatch != nil {
		c.unwatch()
	}
	c.lastSeen, c.unwatch = nil, nil
	c.mu.Unlock()
}

// startCoordination reads the peer options and, when peer authentication
// is configured, starts answering peers. It returns nil when the node
// does not coordinate (said in the log).
func (s *Supervisor) startCoordination(ctx context.Context, opts Options, datadir string, incomplete bool) (*coordination, error) {
	look := func(m map[string]string) quorum.Lookup {
		return func(name string) (string, bool) { v, ok := m[Key(name)]; return v, ok }
	}
	cfg, err := quorum.ConfigFrom(look(opts.Supervisor), look(opts.Server), look(opts.SST))
	if err != nil {
		return nil, err
	}
	log := s.log
	if !cfg.Enabled() {
		log.Info("starting without peer coordination; this node never bootstraps by itself",
			slog.String("decision", "uncoordinated"), slog.String("reason", cfg.Why), slog.String("message_id", quorum.MessageWait))
		return nil, nil
	}
	srv, err := quorum.Listen(cfg.Listen, cfg.Auth, log)
	if err != nil {
		return nil, err
	}
	// gvwstate.dat is read before the recovery, so that peers can see a
	// pc.recovery is possible while this node still recovers.
	view, err := quorum.ReadView(filepath.Join(datadir, "gvwstate.dat"))
	if err != nil {
		log.Warn("ignoring gvwstate.dat", slog.Any("error", err))
	}
	srv.Set(quorum.State{ID: cfg.ID, Instance: quorum.NewInstance(), Phase: quorum.PhaseRecovering, Seqno: SeqnoUnknown, SSTIncomplete: incomplete, View: view, Weight: cfg.Weight})
	cctx, cancel := context.WithCancel(ctx)
	c := &coordination{cfg: cfg, server: srv, log: log, ctx: cctx, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		if err := srv.Serve(cctx); err != nil {
			log.Error("peer channel stopped", slog.Any("error", err))
		}
	}()
	auth := "shared secret"
	if cfg.Auth.ServerTLS != nil {
		auth = "mutual TLS"
		if len(cfg.Auth.Secret) > 0 {
			auth += " and shared secret"
		}
	}
	log.Info("answering peers", slog.String("peer_address", srv.Addr().String()), slog.String("node_id", cfg.ID),
		slog.String("peers", strings.Join(cfg.Peers, ",")), slog.String("auth", auth), slog.Bool("auto_bootstrap", cfg.AutoBootstrap))
	return c, nil
}

func (c *coordination) stop() {
	if c == nil {
		return
	}
	c.cancel()
	<-c.done
}

// update changes the state the peers see; c may be nil.
func (c *coordination) update(f func(*quorum.State)) {
	if c != nil {
		c.server.Update(f)
	}
}

// decide publishes the recovered position and, when the node coordinates,
// waits with the peers for how to start. It reports whether this node
// bootstraps (then grastate.dat says safe_to_bootstrap: 1).
func (r *runner) decide(ctx context.Context, datadir string, recovered *Position) (bool, error) {
	c := r.coord
	if c == nil {
		return false, nil
	}
	pos := Position{UUID: ZeroUUID, Seqno: SeqnoUnknown}
	safe := false
	if g := r.grastate; g != nil {
		pos, safe = g.Position(), g.SafeToBootstrap
	}
	if recovered != nil {
		pos = *recovered
	}
	c.update(func(st *quorum.State) {
		st.Phase, st.UUID, st.Seqno, st.SafeToBootstrap = quorum.PhaseWaiting, pos.UUID, pos.Seqno, safe
	})
	if rec, err := quorum.ReadRecord(datadir); err == nil && rec != nil {
		r.decision = rec
		c.update(func(st *quorum.State) { st.Decision = rec })
	}
	record := func(rec quorum.Record) {
		if err := quorum.WriteRecord(datadir, rec); err != nil {
			c.log.Warn("cannot keep the decision for status", slog.Any("error", err))
		}
		if rec.Action == quorum.ActionWait {
			r.view.waitingWhy = rec.Reason
			r.say(true)
		}
		r.decision = &rec
		r.s.metrics.Decision(string(rec.Action))
		c.update(func(st *quorum.State) { st.Decision = &rec })
	}
	if r.s.cfg.NewCluster {
		d := quorum.Decision{Action: quorum.ActionBootstrap, Reason: "asked to (--wsrep-new-cluster)"}
		c.log.Warn("bootstrapping a new Primary Component from this node", slog.String("decision", string(d.Action)),
			slog.String("reason", d.Reason), slog.String("galera_uuid", pos.UUID), slog.Int64("galera_seqno", pos.Seqno),
			slog.String("message_id", quorum.MessageBootstrap))
		record(quorum.Record{Time: time.Now().UTC(), Decision: d, UUID: pos.UUID, Seqno: pos.Seqno})
		c.update(func(st *quorum.State) { st.Bootstrapping, st.Phase = true, quorum.PhaseStarting })
		return false, nil
	}
	r.view.waiting = true
	r.say(true)
	defer func() { r.view.waiting, r.view.waitingWhy = false, "" }()
	var weights map[string]int
	if last, err := quorum.ReadRecord(datadir); err == nil && last != nil {
		weights = last.Weights // the peers' pc.weight, for those that do not answer
	}
	co := &quorum.Coordinator{Config: c.cfg, Server: c.server, Log: c.log, Record: record, Weights: weights,
		Paused: r.s.inMaintenance,
		Waiting: func(waited time.Duration) {
			r.waitingForPeers(waited, c.cfg.BootstrapWait)
			r.say(false) // the maintenance mode may have changed
		}}
	d, err := co.Wait(ctx)
	if err != nil {
		return false, nil // cancelled: Run stops
	}
	if d.Action == quorum.ActionPCRecovery || d.Action == quorum.ActionJoin {
		c.watch(co, d)
	}
	if d.Action != quorum.ActionBootstrap {
		return false, nil
	}
	uid, gid := -1, -1
	if r.cred != nil {
		uid, gid = int(r.cred.Uid), int(r.cred.Gid)
	}
	if err := setSafeToBootstrap(datadir, pos, uid, gid); err != nil {
		return false, exitErr(ExitRecovery, "%w", err)
	}
	c.log.Info("grastate.dat: safe_to_bootstrap: 1 set for this bootstrap", slog.String("datadir", datadir))
	return true, nil
}

// waitingForPeers keeps systemd's start timeout from cutting the wait for
// peers short: a restart would begin bootstrap-wait anew, and a node
// waiting for a majority would never get there. Beyond bootstrap-wait the
// node still cannot decide (no majority): the start is left to time out
// one window later, and Restart= asks the peers again.
func (r *runner) waitingForPeers(waited, bootstrapWait time.Duration) {
	if waited > bootstrapWait {
		return
	}
	if r.keep.Advanced(time.Now()) {
		r.s.notify(notify.ExtendTimeout(r.keep.Window))
	}
}

// joinerSST notes that an SST into this node began: until the node is
// Synced, it may hold half a datadir.
func (r *runner) joinerSST() {
	if r.sstJoiner {
		return
	}
	r.sstJoiner = true
	// An earlier SST's marker stays: the node was not Synced since, and
	// what that SST was (a stock one may have left the datadir half
	// written) still holds for the datadir this one starts from.
	if _, err := os.Lstat(filepath.Join(r.opts.Datadir(), SSTIncompleteFile)); err != nil {
		if err := markSSTIncomplete(r.opts.Datadir(), sst.IncompleteWhy(r.joinerMethod(), time.Now())); err != nil {
			r.s.log.Warn("cannot mark the SST incomplete", slog.Any("error", err))
		}
	}
	r.own = readOwnFiles(r.opts.Datadir(), r.s.log)
}

// keepOwnFiles puts the node's own files back as they were before its
// joiner SST: at each sign that the SST ended (a stock joiner may have
// removed them) and once Synced.
func (r *runner) keepOwnFiles() {
	if r.own != nil {
		r.own.restore(r.opts.Datadir(), r.s.maint.Load(), r.s.log)
	}
}

// sstCompleted clears the incomplete-SST marker once the node is Synced.
func (r *runner) sstCompleted() {
	if r.own != nil {
		delete(r.own, SSTIncompleteFile) // removed below
		r.keepOwnFiles()
		r.own = nil
	}
	discardResume(r.opts, r.s.log)
	p := filepath.Join(r.opts.Datadir(), SSTIncompleteFile)
	if err := os.Remove(p); err == nil {
		r.s.log.Info("node Synced: removed the incomplete-SST marker", slog.String("path", p))
	}
	r.coord.update(func(st *quorum.State) { st.SSTIncomplete = false })
}

// abandonStart kills mariadbd when the Primary Component it was started
// to join or to restore cannot form (stuck). Galera would wait forever,
// ignoring SIGTERM; the supervisor exits (5) instead, and its restart
// decides again.
func (r *runner) abandonStart(pid int) {
	if r.ready || r.view.stopping || r.abandoned != "" {
		return
	}
	why := r.coord.stuck()
	if why == "" {
		r.pauseLogged = false
		return
	}
	if r.s.inMaintenance() {
		if !r.pauseLogged {
			r.pauseLogged = true
			r.s.log.Warn("not giving the start up: the node is in maintenance (galera-supervisor maintenance off resumes)",
				slog.String("decision", "paused"), slog.String("reason", why), slog.String("message_id", quorum.MessageWait))
		}
		return
	}
	r.abandoned = why
	r.s.metrics.Decision("abandon")
	r.s.log.Warn("killing mariadbd to decide again", slog.String("decision", "abandon"),
		slog.String("reason", why), slog.String("message_id", quorum.MessageWait))
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}
