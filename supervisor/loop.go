package supervisor

import (
	"context"
	"errors"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/galera-supervisor/galera-supervisor/notify"
	"github.com/galera-supervisor/galera-supervisor/optionfile"
	"github.com/galera-supervisor/galera-supervisor/sst/progress"
	"github.com/galera-supervisor/galera-supervisor/supervisor/quorum"
)

// The loop that supervises a running mariadbd: messages, health, stop.

// runner is the state of one Run; only Run's goroutine touches it, but for
// the fields the watchdog reads through Supervisor's atomics.
type runner struct {
	s        *Supervisor
	opts     Options
	started  *optionfile.Set // the option files mariadbd started with
	snapshot string          // what the SST reads its options from; "" none
	changes  <-chan struct{} // the option files changed
	cred     *syscall.Credential
	wsrep    bool
	msgs     <-chan notify.Message
	progress <-chan progress.Event
	// syncProgress makes the events sent so far readable on progress.
	syncProgress func() error
	env          []string
	health       Health
	healthMu     sync.Mutex
	coord        *coordination // nil when the node does not coordinate with peers
	// abandoned says why mariadbd was killed: the Primary Component it was
	// to join or restore could not form.
	abandoned string
	grastate  *Grastate // as read before the start, nil when unreadable

	view       view
	keep       notify.Keepalive
	ready      bool
	lastStatus string
	lastSaidAt time.Time
	lastPhase  Phase
	seenPhases map[Phase]bool
	deniedOnce bool

	sstJoiner     bool // a joiner SST was seen (progress or mariadbd's monitor)
	sstJoinerDone bool
	// sstJoinerEnded: the joiner's SST process ended; whether it succeeded
	// is told by what mariadbd does next.
	sstJoinerEnded bool
	// own: the node's own files as they were when its joiner SST began,
	// put back when it ends; nil outside one.
	own         ownFiles
	sstFailed   string
	sstFailedAt time.Time
	abortKilled bool
	// startKnown: mariadbd started with a known position, so its join may
	// be an IST; a node without one joins by SST.
	startKnown bool
	measure    sstMeasure

	// For the endpoint (serve.go): when the health check last answered,
	// the last decision, and the SST its progress events tell of.
	checkedAt  time.Time
	decision   *quorum.Record
	sstKey     string
	sstStart   time.Time
	sstBytes   int64
	sstCounted bool
	// pauseLogged: a give-up paused by maintenance was logged.
	pauseLogged bool
}

// say sends STATUS= when it changed; progress lines at most once a second.
func (r *runner) say(force bool) {
	now := time.Now()
	r.view.maintenance = r.s.inMaintenance()
	r.publish(now)
	line := r.view.line(now)
	phase := r.view.phase(now)
	if line == r.lastStatus {
		return
	}
	if !force && phase == r.lastPhase && now.Sub(r.lastSaidAt) < time.Second {
		return
	}
	if phase != r.lastPhase {
		r.s.log.Info("phase", slog.String("node_state", string(phase)), slog.String("status", line))
		// A phase reached for the first time before READY is progress too
		// (SST done, then joined, ...): each earns one window. Only the
		// first time, so that a flapping health check cannot keep a node
		// that never syncs alive.
		if !r.ready && !r.view.stopping && r.lastPhase != "" && !r.seenPhases[phase] && r.keep.Advanced(now) {
			r.s.notify(notify.ExtendTimeout(r.keep.Window))
		}
		if r.seenPhases == nil {
			r.seenPhases = map[Phase]bool{}
		}
		r.seenPhases[phase] = true
	}
	r.lastStatus, r.lastSaidAt, r.lastPhase = line, now, phase
	r.s.notify(notify.Status(line))
	r.coord.update(func(st *quorum.State) { st.Status = line })
}

func (r *runner) getHealth() Health {
	r.healthMu.Lock()
	defer r.healthMu.Unlock()
	return r.health
}

type healthResult struct {
	state NodeState
	err   error
}

// run starts mariadbd and supervises it until it exits.
func (r *runner) run(ctx context.Context, args []string) error {
	s := r.s
	cctx, stopChild := context.WithCancel(context.Background())
	defer stopChild()
	cmd, closeOutput, err := r.startChild(cctx, args)
	if err != nil {
		return err
	}
	defer closeOutput()
	pid := cmd.Process.Pid
	s.pid.Store(int64(pid))
	defer s.pid.Store(0)
	s.log.Info("started mariadbd", slog.String("command", s.cfg.Mariadbd), slog.Int("pid", pid), slog.String("args", strings.Join(args, " ")))
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	r.say(true)
	defer r.startWatchdog(ctx, pid)()
	l := &loop{r: r, cmd: cmd, pid: pid, stopChild: stopChild, exited: exited, keep: map[int]bool{pid: true}}
	return l.run(ctx)
}

// startChild starts mariadbd with its output copied to the configured
// writers; the returned func closes that copy once mariadbd is gone.
func (r *runner) startChild(cctx context.Context, args []string) (*exec.Cmd, func(), error) {
	s := r.s
	cmd := exec.CommandContext(cctx, s.cfg.Mariadbd, args...)
	cmd.Env = r.env
	// Its own process group, as under systemd: the SST scripts run
	// "kill -- -$PARENT" on it, and we kill the group when it is gone.
	// Started as mariadbd's user, as User=mysql in the stock unit does,
	// rather than letting it drop root: the kernel clears Pdeathsig when a
	// process changes its credentials, and rsync SST breaks as root.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM, Credential: r.cred}
	// SIGTERM to the whole group, as systemd's KillMode=control-group did
	// for the stock unit: a running SST script is told too, so a joiner
	// stopped mid-transfer does not wait on it.
	cmd.Cancel = func() error {
		if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM); err != nil {
			return cmd.Process.Signal(syscall.SIGTERM)
		}
		return nil
	}
	cmd.WaitDelay = s.cfg.StopTimeout
	stdout, closeOut := outFile(s.cfg.Stdout)
	stderr, closeErr := outFile(s.cfg.Stderr)
	closeBoth := func() { closeOut(); closeErr() }
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		closeBoth()
		return nil, nil, exitErr(ExitConfig, "start %s: %w", s.cfg.Mariadbd, err)
	}
	return cmd, closeBoth, nil
}

// startWatchdog runs the watchdog while mariadbd runs; the returned func
// stops it and waits for it.
func (r *runner) startWatchdog(ctx context.Context, pid int) func() {
	s := r.s
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if s.cfg.Watchdog > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			notify.Watchdog(wctx, s.cfg.Systemd, s.cfg.Watchdog, r.watchdogCheck(pid), s.log)
		}()
	}
	return func() {
		stop()
		wg.Wait()
	}
}

// loop is the select loop of one mariadbd's life.
type loop struct {
	r         *runner
	cmd       *exec.Cmd
	pid       int
	stopChild context.CancelFunc
	exited    <-chan struct{}
	keep      map[int]bool // the processes that are not orphans to reap

	healthRes chan healthResult
	checking  bool
	sstScans  int

	stopTick  <-chan time.Time
	stopStart time.Time
	// stopAsked: when the stop was asked for, which may be before the
	// loop sees it.
	stopAsked atomic.Int64
}

// check starts a health check unless one is running.
func (l *loop) check() {
	if l.checking {
		return
	}
	l.checking = true
	h := l.r.getHealth()
	interval := l.r.s.cfg.HealthInterval
	go func() {
		hctx, cancel := context.WithTimeout(context.Background(), max(interval, 2*time.Second))
		defer cancel()
		st, err := h.Check(hctx)
		l.healthRes <- healthResult{st, err}
	}()
}

func (l *loop) askedAt() time.Time {
	if ns := l.stopAsked.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Now()
}

func (l *loop) run(ctx context.Context) error {
	r, s := l.r, l.r.s
	l.healthRes = make(chan healthResult, 1)
	healthTick := time.NewTicker(s.cfg.HealthInterval)
	defer healthTick.Stop()
	sstTick := time.NewTicker(100 * time.Millisecond)
	defer sstTick.Stop()
	reapTick := time.NewTicker(time.Second)
	defer reapTick.Stop()
	defer context.AfterFunc(ctx, func() { l.stopAsked.Store(time.Now().UnixNano()) })()
	done := ctx.Done()
	for {
		select {
		case <-done:
			done = nil
			stopTicker := l.stop()
			defer stopTicker()

		case <-l.stopTick:
			if time.Since(l.stopStart) < s.cfg.StopTimeout && stoppedOrGone(l.pid) == nil {
				s.notify(notify.ExtendTimeout(stopExtend))
			}

		case m := <-r.msgs:
			r.childMessage(m, l.check)

		case e, ok := <-r.progress:
			if !ok {
				r.progress = nil
				continue
			}
			r.progressEvent(e, false)

		case res := <-r.diskResults():
			r.diskScanned(res)

		case <-healthTick.C:
			if !r.view.stopping {
				l.check()
			}
			r.say(false)

		case res := <-l.healthRes:
			l.checking = false
			r.healthResult(res)

		case <-sstTick.C:
			// Every 100 ms while joining (a short SST must not be missed),
			// every second after (a donor's SST lasts longer).
			if l.sstScans++; !r.ready || l.sstScans%10 == 0 {
				r.scanSST(l.pid)
			}
			r.measureTick(time.Now())

		case <-reapTick.C:
			for _, p := range reapOrphans(l.keep) {
				s.log.Info("reaped orphan process", slog.Int("pid", p))
			}
			r.killHungAbort(l.pid, l.stopStart)
			r.abandonStart(l.pid)

		case <-s.reload:
			r.reloadOptions(ctx, l.cmd, true)

		case <-s.maintChanged:
			r.say(true)

		case <-r.changes:
			r.reloadOptions(ctx, l.cmd, false)

		case <-l.exited:
			if !r.view.stopping && ctx.Err() != nil {
				// The stop and mariadbd's end came together (SIGTERM
				// to the whole group): it was a stop all the same.
				r.view.stopping, l.stopStart = true, l.askedAt()
			}
			r.lastProgress()
			return r.exited(l.cmd, l.stopStart, l.keep)
		}
	}
}

// stop begins a stop on request: SIGTERM to mariadbd's process group, and
// EXTEND_TIMEOUT_USEC while it winds down. The returned func stops the
// extension ticker.
func (l *loop) stop() func() {
	r, s := l.r, l.r.s
	r.view.stopping = true
	l.stopStart = l.askedAt()
	s.notify("STOPPING=1\n" + notify.Status(string(PhaseStopping)))
	r.lastStatus, r.lastPhase = string(PhaseStopping), PhaseStopping
	s.log.Info("stopping mariadbd: SIGTERM to its process group, SIGKILL after stop_timeout", slog.Int("pid", l.pid), slog.Duration("stop_timeout", s.cfg.StopTimeout))
	l.stopChild()
	t := time.NewTicker(stopExtendEvery)
	l.stopTick = t.C
	// The first extension at once: systemd's TimeoutStopSec may be
	// shorter than ours.
	s.notify(notify.ExtendTimeout(stopExtend))
	return t.Stop
}

const (
	// stopAbortGrace bounds a joiner's abort after a stop cancelled its
	// SST: 10.11 aborts at once, or hangs.
	stopAbortGrace  = 10 * time.Second
	stopExtendEvery = 10 * time.Second
	stopExtend      = 30 * time.Second
)

// watchdogCheck is the watchdog's health check: mariadbd runs (not gone,
// not stopped by SIGSTOP) and, once the node is ready, answers SQL.
func (r *runner) watchdogCheck(pid int) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := stoppedOrGone(pid); err != nil {
			return err
		}
		if !r.s.readyFlag.Load() {
			return nil
		}
		_, err := r.getHealth().Check(ctx)
		return err
	}
}

func (r *runner) childMessage(m notify.Message, check func()) {
	s := r.s
	c := notify.Classify(m)
	if c.Status != "" {
		if c.SSTMonitor {
			ongoing := !strings.Contains(c.Status, "completed")
			if strings.Contains(c.Status, "joiner") {
				if ongoing {
					r.joinerSST()
				} else {
					r.sstJoinerDone = true
					r.keepOwnFiles()
					r.measuredDone()
				}
			}
			if ongoing != r.view.sstMonitor {
				s.log.Info("mariadbd status", slog.String("mariadbd_status", c.Status))
			}
			r.view.sstMonitor = ongoing
		} else {
			r.view.childStatus = c.Status
		}
	}
	if c.Extend > 0 && (!r.ready || r.view.stopping) {
		s.notify(notify.ExtendTimeout(c.Extend))
	}
	r.monitorExtend(c)
	if c.Ready && !r.ready {
		s.log.Info("mariadbd accepts connections (its READY=1); READY=1 waits for Synced")
		check()
	}
	r.say(false)
}

func (r *runner) healthResult(res healthResult) {
	s := r.s
	r.coord.update(func(st *quorum.State) {
		st.Primary = res.err == nil && res.state.ClusterStatus == "Primary"
		switch {
		case st.Primary && res.state.Synced():
			st.Phase = quorum.PhaseSynced
		case st.Primary:
			st.Phase = quorum.PhaseJoined
		default:
			st.Phase = quorum.PhaseStarting
		}
		if st.Primary {
			st.Bootstrapping = false
			if validUUID(res.state.ClusterUUID) {
				st.UUID, st.Seqno = res.state.ClusterUUID, res.state.LastCommitted
			}
		}
	})
	if res.err == nil && res.state.ClusterStatus == "Primary" {
		r.coord.stopWatching()
	}
	if res.err != nil {
		r.view.sqlUp = false
		if errors.Is(res.err, ErrAccessDenied) {
			r.view.healthErr = "health check: access denied"
			if !r.deniedOnce {
				r.deniedOnce = true
				s.log.Warn("health check failed", slog.Any("error", res.err))
			}
		}
		r.say(false)
		return
	}
	r.view.sqlUp, r.view.node, r.view.healthErr = true, res.state, ""
	r.logicalSST(res.state)
	r.checkedAt = time.Now()
	if !r.ready && !r.view.stopping && (!r.wsrep || res.state.Synced()) {
		r.ready = true
		s.readyFlag.Store(true)
		line := r.view.line(time.Now())
		r.lastStatus, r.lastPhase, r.lastSaidAt = line, r.view.phase(time.Now()), time.Now()
		r.publish(time.Now())
		s.notify("READY=1\n" + notify.Status(line))
		s.log.Info("node is ready: READY=1", slog.String("node_state", string(r.lastPhase)), slog.String("status", line))
		r.sstCompleted()
		close(s.ready)
		return
	}
	r.say(false)
}
