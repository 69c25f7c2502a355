package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/galera-supervisor/galera-supervisor/notify"
	"github.com/galera-supervisor/galera-supervisor/notify/logging"
	"github.com/galera-supervisor/galera-supervisor/optionfile"
	"github.com/galera-supervisor/galera-supervisor/sst"
	"github.com/galera-supervisor/galera-supervisor/sst/progress"
	"github.com/galera-supervisor/galera-supervisor/supervisor/quorum"
)

// Config configures a Supervisor. The zero value of each field but
// LoadOptions is usable.
type Config struct {
	Mariadbd   string   // default /usr/sbin/mariadbd
	Defaults   Defaults // passed first to mariadbd and to --wsrep-recover
	ExtraArgs  []string // appended to mariadbd's command line
	NewCluster bool     // bootstrap a new cluster (--wsrep-new-cluster)

	// LoadOptions reads the option files; it is called again on Reload.
	LoadOptions func(context.Context) (Options, error)
	// Watch re-reads the option files of Defaults when one changes, as
	// Reload does but without SIGHUP to mariadbd.
	Watch bool
	// NewHealth builds the health check; default NewSQLHealth.
	NewHealth func(Options) Health

	// RuntimeDir holds the notify and progress sockets; it is created
	// traversable by mariadbd's user. Default $RUNTIME_DIRECTORY, else
	// /run/galera-supervisor.
	RuntimeDir string
	// StopTimeout bounds a clean shutdown: mariadbd gets SIGTERM, then
	// after StopTimeout SIGKILL with its whole process group.
	StopTimeout time.Duration
	// StallTimeout is the keepalive window: while the node is not ready,
	// each advance of SST progress extends systemd's start timeout by it
	// (notify.ChooseStallWindow); 0 is DefaultStallTimeout, and
	// notify.NoStallWindow (TimeoutStartSec=infinity) extends nothing.
	StallTimeout time.Duration
	// Watchdog is systemd's WatchdogSec (WATCHDOG_USEC); 0 disables it.
	Watchdog time.Duration
	// HealthInterval is the period of the health check; default 1s.
	HealthInterval time.Duration
	// AbortGrace is how long mariadbd may take to abort after its joiner
	// SST failed before its process group is killed; default 60s.
	AbortGrace time.Duration

	Systemd notify.Sender // where notifications go; default notify.Discard
	// Stdout and Stderr receive mariadbd's output; default os.Stderr.
	Stdout, Stderr io.Writer
	// Env is the base environment for mariadbd; default os.Environ().
	// systemd's variables (NOTIFY_SOCKET, WATCHDOG_*, LISTEN_*) are dropped.
	Env []string
	// Log is where the supervisor logs; default nowhere.
	Log *slog.Logger
}

// Defaults for Config.
const (
	DefaultMariadbd     = "/usr/sbin/mariadbd"
	DefaultStopTimeout  = 870 * time.Second // mariadb.service's TimeoutStopSec=900, less a margin
	DefaultStallTimeout = notify.DefaultStallWindow
	// After "Will never receive state. Need to abort" 10.11 aborts within
	// a second, but at times hangs there with every thread waiting.
	DefaultAbortGrace = 60 * time.Second
)

// Supervisor runs one node. Use New, then Run.
type Supervisor struct {
	cfg    Config
	log    *slog.Logger
	ready  chan struct{}
	reload chan struct{}

	readyFlag atomic.Bool
	pid       atomic.Int64
}

// New returns a Supervisor for cfg.
func New(cfg Config) *Supervisor {
	if cfg.Mariadbd == "" {
		cfg.Mariadbd = DefaultMariadbd
	}
	if cfg.NewHealth == nil {
		cfg.NewHealth = func(o Options) Health { return NewSQLHealth(o) }
	}
	if cfg.RuntimeDir == "" {
		cfg.RuntimeDir = os.Getenv("RUNTIME_DIRECTORY")
		if i := strings.IndexByte(cfg.RuntimeDir, ':'); i >= 0 {
			cfg.RuntimeDir = cfg.RuntimeDir[:i]
		}
		if cfg.RuntimeDir == "" {
			cfg.RuntimeDir = "/run/galera-supervisor"
		}
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = DefaultStopTimeout
	}
	if cfg.StallTimeout == 0 {
		cfg.StallTimeout = DefaultStallTimeout
	}
	if cfg.AbortGrace <= 0 {
		cfg.AbortGrace = DefaultAbortGrace
	}
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = time.Second
	}
	if cfg.Systemd == nil {
		cfg.Systemd = notify.Discard
	}
	if cfg.Stdout == nil {
		cfg.Stdout = os.Stderr
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	if cfg.Env == nil {
		cfg.Env = os.Environ()
	}
	cfg.Log = logging.OrDiscard(cfg.Log)
	return &Supervisor{cfg: cfg, log: cfg.Log, ready: make(chan struct{}), reload: make(chan struct{}, 1)}
}

// Ready is closed once the node is Synced and answers queries, when READY=1
// went to systemd.
func (s *Supervisor) Ready() <-chan struct{} { return s.ready }

// PID is mariadbd's PID, 0 while it is not running.
func (s *Supervisor) PID() int { return int(s.pid.Load()) }

// Reload asks Run to re-read the option files (SIGHUP).
func (s *Supervisor) Reload() {
	select {
	case s.reload <- struct{}{}:
	default:
	}
}

func (s *Supervisor) notify(state string) {
	if err := s.cfg.Systemd.Notify(state); err != nil {
		s.log.Warn(err.Error())
	}
}

// Run recovers the node's position, runs mariadbd until ctx is done or it
// exits, and stops it cleanly. It returns nil after a clean stop on
// request, and otherwise an *ExitError whose Code is documented in exit.go.
func (s *Supervisor) Run(ctx context.Context) error {
	if s.cfg.LoadOptions == nil {
		return exitErr(ExitConfig, "supervisor: no option loader")
	}
	opts, err := s.loadOptions(ctx)
	if err != nil {
		return exitErr(ExitConfig, "read option files: %w", err)
	}
	datadir := opts.Datadir()
	wsrep := opts.Bool("wsrep-on", false)
	userName := opts.Server["user"]
	if userName == "" {
		userName = "mysql"
	}
	uid, gid := -1, -1
	cred, err := credential(userName)
	if err != nil {
		return exitErr(ExitConfig, "%w", err)
	}
	if cred != nil {
		uid, gid = int(cred.Uid), int(cred.Gid)
	}

	if err := os.MkdirAll(s.cfg.RuntimeDir, 0o755); err != nil {
		return exitErr(ExitConfig, "create runtime dir: %w", err)
	}
	id := strconv.Itoa(os.Getpid())
	nl, err := notify.Listen(filepath.Join(s.cfg.RuntimeDir, "notify-"+id+".sock"), uid, gid)
	if err != nil {
		return exitErr(ExitFailure, "%w", err)
	}
	defer nl.Close()
	pl, err := progress.Listen(filepath.Join(s.cfg.RuntimeDir, "progress-"+id+".sock"))
	if err != nil {
		return exitErr(ExitFailure, "%w", err)
	}
	defer pl.Close()
	msgs := make(chan notify.Message, 64)
	go func() {
		for {
			m, err := nl.Receive()
			if err != nil {
				if !errors.Is(err, notify.ErrClosed) {
					s.log.Warn(err.Error())
				}
				return
			}
			select {
			case msgs <- m:
			default: // a flood from the child must not block us
			}
		}
	}()
	var snapshot string
	if opts.Files != nil {
		snapshot = filepath.Join(s.cfg.RuntimeDir, "options-"+id+".json")
		if err := writeSnapshot(snapshot, opts.Files, opts.Files, cred); err != nil {
			return exitErr(ExitFailure, "%w", err)
		}
		defer os.Remove(snapshot)
	}
	changes, stopWatch, err := s.watch(ctx)
	if err != nil {
		return exitErr(ExitConfig, "%w", err)
	}
	defer stopWatch()
	env := childEnv(s.cfg.Env, nl.Path(), pl.Path(), snapshot)

	r := &runner{s: s, opts: opts, started: opts.Files, snapshot: snapshot, changes: changes,
		cred: cred, wsrep: wsrep, msgs: msgs, progress: pl.Events(), env: env,
		syncProgress: func() error { return pl.Sync(time.Second) },
		view:         view{wsrep: wsrep, meter: &progress.Meter{}},
		keep:         notify.Keepalive{Window: s.cfg.StallTimeout}}
	r.health = s.cfg.NewHealth(opts)
	defer func() { r.health.Close() }()

	args := append(s.cfg.Defaults.Args(), s.cfg.ExtraArgs...)
	incomplete := ""
	if wsrep {
		incomplete = findIncompleteSST(opts)
	}
	if err := CleanSST(opts, s.log); err != nil {
		return exitErr(ExitRecovery, "%w", err)
	}
	if wsrep {
		if incomplete != "" {
			s.log.Warn("the last SST into this node did not complete: it never bootstraps a cluster until it is Synced again",
				slog.String("sst_incomplete", incomplete))
			if err := markSSTIncomplete(datadir, incomplete); err != nil {
				s.log.Warn(err.Error())
			}
		}
		cleanSSTMarkers(datadir, s.log)
		coord, err := s.startCoordination(ctx, opts, datadir, incomplete != "")
		if err != nil {
			return exitErr(ExitConfig, "%w", err)
		}
		defer coord.stop()
		r.coord = coord
		pos, err := r.recoverPosition(ctx, datadir, userName)
		if err != nil {
			return err
		}
		if incomplete == "" && r.grastate == nil && pos != nil {
			if err := r.repairGrastate(datadir, *pos); err != nil {
				s.log.Warn(err.Error())
			}
		}
		switch {
		case pos != nil && pos.Known():
			args = append(args, "--wsrep_start_position="+pos.String())
		case pos != nil:
			s.log.Info(fmt.Sprintf("recovered position %s tells nothing: no --wsrep_start_position", pos))
		}
		if ctx.Err() != nil {
			return nil
		}
		bootstrap, err := r.decide(ctx, datadir, pos)
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		if (s.cfg.NewCluster || bootstrap) && !slices.Contains(args, "--wsrep-new-cluster") {
			args = append(args, "--wsrep-new-cluster")
		}
	} else {
		s.log.Info("wsrep_on is off in the option files: no position recovery, READY when the server answers")
	}
	if ctx.Err() != nil {
		return nil
	}
	return r.run(ctx, args)
}

func (s *Supervisor) loadOptions(ctx context.Context) (Options, error) {
	o, err := s.cfg.LoadOptions(ctx)
	if err != nil {
		return Options{}, err
	}
	if o.Server == nil {
		o.Server = map[string]string{}
	}
	if o.Client == nil {
		o.Client = map[string]string{}
	}
	// The command line wins over the option files, as for mariadbd.
	AddArgs(o.Server, s.cfg.ExtraArgs)
	return o, nil
}

// credential is the user mariadbd runs as when we are root, nil otherwise.
func credential(name string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("look up mariadbd's user %q (option user): %w", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	c := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	gids, _ := u.GroupIds()
	for _, g := range gids {
		if n, err := strconv.Atoi(g); err == nil {
			c.Groups = append(c.Groups, uint32(n))
		}
	}
	if len(c.Groups) == 0 {
		c.Groups = []uint32{uint32(gid)}
	}
	return c, nil
}

// childEnv is env without systemd's variables meant for us, plus ours.
// An empty snapshot leaves the SST to read the option files itself.
func childEnv(env []string, notifySocket, progressSocket, snapshot string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == notify.EnvSocket, k == progress.EnvSocket, k == sst.EnvOptions,
			k == "WATCHDOG_USEC", k == "WATCHDOG_PID",
			strings.HasPrefix(k, "LISTEN_"):
			continue
		}
		out = append(out, kv)
	}
	out = append(out, notify.EnvSocket+"="+notifySocket, progress.EnvSocket+"="+progressSocket)
	if snapshot != "" {
		out = append(out, sst.EnvOptions+"="+snapshot)
	}
	return out
}

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
	sstFailed      string
	sstFailedAt    time.Time
	abortKilled    bool
}

// say sends STATUS= when it changed; progress lines at most once a second.
func (r *runner) say(force bool) {
	now := time.Now()
	line := r.view.line(now)
	phase := r.view.phase(now)
	if line == r.lastStatus {
		return
	}
	if !force && phase == r.lastPhase && now.Sub(r.lastSaidAt) < time.Second {
		return
	}
	if phase != r.lastPhase {
		r.s.log.Info("phase: "+line, slog.String("node_state", string(phase)))
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
}

func (r *runner) getHealth() Health {
	r.healthMu.Lock()
	defer r.healthMu.Unlock()
	return r.health
}

// recoverPosition reads grastate.dat and runs --wsrep-recover when the
// seqno is unknown. It returns nil when mariadbd needs no start position.
func (r *runner) recoverPosition(ctx context.Context, datadir, userName string) (*Position, error) {
	s := r.s
	path := filepath.Join(datadir, "grastate.dat")
	g, err := ReadGrastate(path)
	switch {
	case err == nil:
		r.grastate = g
		s.log.Info(fmt.Sprintf("%s: uuid %s seqno %d safe_to_bootstrap %v", path, g.UUID, g.Seqno, g.SafeToBootstrap))
		if s.cfg.NewCluster && !g.SafeToBootstrap {
			return nil, exitErr(ExitBootstrapRefused, "refusing to bootstrap a new cluster: %s says safe_to_bootstrap: 0 "+
				"(another node may have newer data; bootstrap the most advanced node, or set safe_to_bootstrap: 1 if you are sure)", path)
		}
		if g.Seqno != SeqnoUnknown {
			return nil, nil
		}
	case errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrBadGrastate):
		if errors.Is(err, ErrBadGrastate) {
			// Galera rewrites grastate.dat in place: a crash at that moment
			// leaves it empty or cut short. InnoDB still knows the position.
			if s.cfg.NewCluster {
				return nil, exitErr(ExitBootstrapRefused, "refusing to bootstrap a new cluster: %v: safe_to_bootstrap cannot be read "+
					"(fix or remove the file once you are sure this node has the newest data)", err)
			}
			s.log.Warn(fmt.Sprintf("%v: taking the position as unknown", err))
		}
		// A datadir without grastate.dat: recover only when InnoDB has data
		// (a server turned into a node); an empty one joins by SST, and a
		// recovery run would create files in it.
		if _, err := os.Stat(filepath.Join(datadir, "ibdata1")); err != nil {
			s.log.Info(fmt.Sprintf("%s: none and no InnoDB data: nothing to recover", path))
			return nil, nil
		}
	default:
		return nil, exitErr(ExitRecovery, "%w", err)
	}

	r.view.recovering = true
	r.say(true)
	defer func() { r.view.recovering = false }()
	type result struct {
		pos Position
		err error
	}
	done := make(chan result, 1)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		pos, err := Recover(rctx, RecoverConfig{
			Mariadbd: s.cfg.Mariadbd, Defaults: s.cfg.Defaults, ExtraArgs: s.cfg.ExtraArgs,
			User: userName, Credential: r.cred, Env: r.env,
		})
		done <- result{pos, err}
	}()
	for {
		select {
		case m := <-r.msgs:
			// InnoDB crash recovery extends the start timeout itself: relay.
			if c := notify.Classify(m); c.Extend > 0 {
				r.s.notify(notify.ExtendTimeout(c.Extend))
			}
		case res := <-done:
			if res.err != nil {
				if ctx.Err() != nil {
					return nil, nil
				}
				return nil, exitErr(ExitRecovery, "recover position: %w", res.err)
			}
			s.log.Info(fmt.Sprintf("recovered position %s", res.pos))
			return &res.pos, nil
		}
	}
}

// CleanSST undoes what a killed SST joiner left in the node's directories:
// a joiner killed while it swapped in a snapshot leaves the old contents
// half moved aside, so this must run before anything reads the datadir.
// A running joiner's work is left alone (sst.Cleanup).
func CleanSST(opts Options, log *slog.Logger) error {
	dirs := sst.DirsFrom(opts.Datadir(), func(o string) string { v, _ := opts.Get(o); return v })
	for _, root := range dirs.Roots() {
		if err := sst.Cleanup(root, log); err != nil {
			return err
		}
	}
	return nil
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
	defer closeOut()
	stderr, closeErr := outFile(s.cfg.Stderr)
	defer closeErr()
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		return exitErr(ExitConfig, "start %s: %w", s.cfg.Mariadbd, err)
	}
	pid := cmd.Process.Pid
	s.pid.Store(int64(pid))
	defer s.pid.Store(0)
	s.log.Info(fmt.Sprintf("started %s (pid %d): %s", s.cfg.Mariadbd, pid, strings.Join(args, " ")))
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	r.say(true)

	wctx, stopWatchdog := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if s.cfg.Watchdog > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			notify.Watchdog(wctx, s.cfg.Systemd, s.cfg.Watchdog, r.watchdogCheck(pid), s.log)
		}()
	}
	defer func() {
		stopWatchdog()
		wg.Wait()
	}()

	healthTick := time.NewTicker(s.cfg.HealthInterval)
	defer healthTick.Stop()
	healthRes := make(chan healthResult, 1)
	checking := false
	check := func() {
		if checking {
			return
		}
		checking = true
		h := r.getHealth()
		go func() {
			hctx, cancel := context.WithTimeout(context.Background(), max(s.cfg.HealthInterval, 2*time.Second))
			defer cancel()
			st, err := h.Check(hctx)
			healthRes <- healthResult{st, err}
		}()
	}
	sstTick := time.NewTicker(100 * time.Millisecond)
	defer sstTick.Stop()
	reapTick := time.NewTicker(time.Second)
	defer reapTick.Stop()
	keep := map[int]bool{pid: true}
	sstScans := 0

	done := ctx.Done()
	var stopTick <-chan time.Time
	var stopStart time.Time
	// When the stop was asked for, which may be before this loop sees it.
	var stopAsked atomic.Int64
	defer context.AfterFunc(ctx, func() { stopAsked.Store(time.Now().UnixNano()) })()
	askedAt := func() time.Time {
		if ns := stopAsked.Load(); ns != 0 {
			return time.Unix(0, ns)
		}
		return time.Now()
	}
	for {
		select {
		case <-done:
			done = nil
			r.view.stopping = true
			stopStart = askedAt()
			s.notify("STOPPING=1\n" + notify.Status(string(PhaseStopping)))
			r.lastStatus, r.lastPhase = string(PhaseStopping), PhaseStopping
			s.log.Info(fmt.Sprintf("stopping mariadbd (pid %d): SIGTERM to its process group, SIGKILL after %v", pid, s.cfg.StopTimeout))
			stopChild()
			t := time.NewTicker(stopExtendEvery)
			defer t.Stop()
			stopTick = t.C
			// The first extension at once: systemd's TimeoutStopSec may be
			// shorter than ours.
			s.notify(notify.ExtendTimeout(stopExtend))

		case <-stopTick:
			if time.Since(stopStart) < s.cfg.StopTimeout && stoppedOrGone(pid) == nil {
				s.notify(notify.ExtendTimeout(stopExtend))
			}

		case m := <-r.msgs:
			r.childMessage(m, check)

		case e, ok := <-r.progress:
			if !ok {
				r.progress = nil
				continue
			}
			r.progressEvent(e)

		case <-healthTick.C:
			if !r.view.stopping {
				check()
			}
			r.say(false)

		case res := <-healthRes:
			checking = false
			r.healthResult(res)

		case <-sstTick.C:
			// Every 100 ms while joining (a short SST must not be missed),
			// every second after (a donor's SST lasts longer).
			if sstScans++; !r.ready || sstScans%10 == 0 {
				r.scanSST(pid)
			}

		case <-reapTick.C:
			for _, p := range reapOrphans(keep) {
				s.log.Info(fmt.Sprintf("reaped orphan process %d", p))
			}
			r.killHungAbort(pid)
			r.abandonStart(pid)

		case <-s.reload:
			r.reloadOptions(ctx, cmd, true)

		case <-r.changes:
			r.reloadOptions(ctx, cmd, false)

		case <-exited:
			if !r.view.stopping && ctx.Err() != nil {
				// The stop and mariadbd's end came together (SIGTERM
				// to the whole group): it was a stop all the same.
				r.view.stopping, stopStart = true, askedAt()
			}
			r.lastProgress()
			return r.exited(cmd, stopStart, keep)
		}
	}
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
				}
			}
			if ongoing != r.view.sstMonitor {
				s.log.Info(fmt.Sprintf("mariadbd: %s", c.Status))
			}
			r.view.sstMonitor = ongoing
		} else {
			r.view.childStatus = c.Status
		}
	}
	if c.Extend > 0 && (!r.ready || r.view.stopping) {
		s.notify(notify.ExtendTimeout(c.Extend))
	}
	if c.Ready && !r.ready {
		s.log.Info("mariadbd accepts connections (its READY=1); READY=1 waits for Synced")
		check()
	}
	r.say(false)
}

// liveness phases are those without byte counts: any event is progress.
func livenessPhase(p string) bool {
	return p == progress.PhasePreparing || p == progress.PhaseVerifying || p == progress.PhaseMoving
}

func (r *runner) progressEvent(e progress.Event) {
	s := r.s
	now := time.Now()
	if r.view.meter.Late(e) {
		// A tick sent before the SST's next phase, read after it.
		return
	}
	prev := r.view.meter.Last().Phase
	first := r.view.lastProg.IsZero()
	advanced := r.view.meter.Observe(e, now)
	r.view.lastProg, r.view.progRole = now, e.Role
	if first || e.Phase != prev {
		advanced = true
		s.log.Info(fmt.Sprintf("SST %s %s: %s %s", e.Role, e.Method, e.Phase, e.Peer),
			slog.String("sst_role", e.Role), slog.String("sst_method", e.Method), slog.String("sst_phase", e.Phase), slog.String("sst_peer", sst.PeerAddr(e.Peer)))
	}
	if livenessPhase(e.Phase) {
		advanced = true
	}
	if e.Role == "joiner" {
		r.joinerSST()
		switch e.Phase {
		case progress.PhaseDone:
			r.sstJoinerDone = true
		case progress.PhaseFailed:
			r.sstFailed = e.Err
			if r.sstFailedAt.IsZero() {
				// When the SST said so, not when we read it: a stop
				// requested in between did not cause the failure.
				r.sstFailedAt = now
				if !e.Time.IsZero() && e.Time.Before(now) {
					r.sstFailedAt = e.Time
				}
			}
			s.log.Error("SST joiner failed: "+e.Err, slog.String("sst_role", e.Role), slog.String("sst_method", e.Method), slog.String("sst_peer", sst.PeerAddr(e.Peer)))
		}
	}
	if advanced && !r.ready && !r.view.stopping && e.Phase != progress.PhaseFailed && r.keep.Advanced(now) {
		s.notify(notify.ExtendTimeout(r.keep.Window))
	}
	r.say(e.Phase != prev)
}

// killHungAbort kills mariadbd when its joiner SST failed and it has not
// aborted within the grace: a joiner whose SST failed never recovers, and
// a hung one would hold the unit in "activating" until the start timeout,
// or in "deactivating" for the stop timeout when a stop cancelled the SST
// (the grace is then at most stopAbortGrace). Until its SST is in place
// mariadbd has opened no data, so a SIGKILL loses nothing.
func (r *runner) killHungAbort(pid int) {
	g := r.s.cfg.AbortGrace
	if r.view.stopping {
		g = min(g, stopAbortGrace)
	}
	if r.ready || r.abortKilled || r.sstFailedAt.IsZero() || time.Since(r.sstFailedAt) < g {
		return
	}
	r.abortKilled = true
	r.s.log.Warn(fmt.Sprintf("mariadbd (pid %d) has not aborted %v after its SST failed: SIGKILL to its process group", pid, g))
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// scanSST notes an SST method running below mariadbd.
func (r *runner) scanSST(pid int) {
	role, method, ok := sstProcess(pid)
	if ok == r.view.sstRunning && role == r.view.sstRole {
		return
	}
	if ok {
		r.s.log.Info(fmt.Sprintf("SST: %s wsrep_sst_%s running", role, method))
		if role == "joiner" && !r.ready {
			r.joinerSST()
		}
	} else if r.view.sstRunning {
		r.s.log.Info(fmt.Sprintf("SST: %s wsrep_sst_%s ended", r.view.sstRole, r.view.sstMethod))
		if r.view.sstRole == "joiner" {
			r.sstJoinerEnded = true
		}
	}
	r.view.sstRunning, r.view.sstRole, r.view.sstMethod = ok, role, method
	r.say(true)
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
				s.log.Warn(res.err.Error())
			}
		}
		r.say(false)
		return
	}
	r.view.sqlUp, r.view.node, r.view.healthErr = true, res.state, ""
	if !r.ready && !r.view.stopping && (!r.wsrep || res.state.Synced()) {
		r.ready = true
		s.readyFlag.Store(true)
		line := r.view.line(time.Now())
		r.lastStatus, r.lastPhase, r.lastSaidAt = line, r.view.phase(time.Now()), time.Now()
		s.notify("READY=1\n" + notify.Status(line))
		s.log.Info("node is "+line+": READY=1", slog.String("node_state", string(r.lastPhase)))
		r.sstCompleted()
		close(s.ready)
		return
	}
	r.say(false)
}

// reloadOptions reads the option files again. An edit that does not read,
// or that newProblems refuses, leaves the configuration as it was; else
// [sst] applies to the next SST and a server group needs a restart. With
// forward (SIGHUP), mariadbd gets a SIGHUP too.
func (r *runner) reloadOptions(ctx context.Context, cmd *exec.Cmd, forward bool) {
	s := r.s
	o, err := s.loadOptions(ctx)
	var bad []string
	if err == nil && o.Files != nil {
		bad = newProblems(r.opts.Files, o.Files)
	}
	switch {
	case err != nil:
		s.log.Warn(fmt.Sprintf("option files: %v; keeping the last good configuration", err))
	case len(bad) > 0:
		for _, p := range bad {
			s.log.Warn("option files: " + p + "; keeping the last good configuration")
		}
	default:
		// The snapshot first: once logged, the next SST has it.
		if r.snapshot != "" && o.Files != nil {
			if err := writeSnapshot(r.snapshot, r.started, o.Files, r.cred); err != nil {
				s.log.Error(fmt.Sprintf("%v; the next SST reads the options of before", err))
			}
		}
		r.logChanges(r.opts, o)
		if !mapsEqual(r.opts.Client, o.Client) || r.opts.Server["socket"] != o.Server["socket"] {
			s.log.Info("reload: health check credentials or socket changed; using the new ones")
			h := s.cfg.NewHealth(o)
			r.healthMu.Lock()
			old := r.health
			r.health = h
			r.healthMu.Unlock()
			old.Close()
		}
		r.opts = o
	}
	if !forward {
		return
	}
	// mariadbd's SIGHUP flushes logs, privileges and caches, what
	// ExecReload=kill -HUP $MAINPID did in the stock unit (logrotate relies
	// on it). Before mariadbd installs its handler SIGHUP would kill it, so
	// it is forwarded only once the server answers queries.
	if r.view.sqlUp && !r.view.stopping {
		if err := cmd.Process.Signal(syscall.SIGHUP); err == nil {
			s.log.Info(fmt.Sprintf("reload: forwarded SIGHUP to mariadbd (pid %d)", cmd.Process.Pid))
		}
	} else {
		s.log.Info("reload: SIGHUP not forwarded: mariadbd does not answer queries yet")
	}
}

func (r *runner) exited(cmd *exec.Cmd, stopStart time.Time, keep map[int]bool) error {
	s := r.s
	ps := cmd.ProcessState
	pid := cmd.Process.Pid
	// Whatever mariadbd left behind: SST scripts in its group, orphans
	// re-parented to us. None may outlive it.
	delete(keep, pid)
	killLeftovers(pid, keep, 5*time.Second, s.log)
	ws, _ := ps.Sys().(syscall.WaitStatus)
	how := ps.String()
	if r.view.stopping {
		switch {
		case ws.Signaled() && ws.Signal() == syscall.SIGKILL && time.Since(stopStart) >= s.cfg.StopTimeout:
			return exitErr(ExitStopTimeout, "mariadbd (pid %d) did not stop within %v after SIGTERM: killed", pid, s.cfg.StopTimeout)
		case ps.Success():
			s.log.Info(fmt.Sprintf("mariadbd (pid %d) stopped cleanly", pid))
			return nil
		case !r.sstFailedAt.IsZero() && r.sstFailedAt.Before(stopStart):
			// The SST had failed on its own: the stop only came first.
			return exitErr(ExitSST, "mariadbd (pid %d) %s while stopping, after its SST had failed: %s", pid, how, r.sstFailed)
		case !r.ready:
			// mariadbd aborts a join cut short by the stop: 10.11 takes
			// a cancelled SST for done, then dies of SIGABRT.
			what := "its join"
			if r.sstJoiner {
				what += " by SST"
			}
			if r.abortKilled {
				what += ", and it was killed, hung in its abort,"
			}
			s.log.Info(fmt.Sprintf("mariadbd (pid %d) %s while stopping: %s was aborted by the stop", pid, how, what))
			return nil
		case ws.Signaled() && crashSignal(ws.Signal()):
			return exitErr(ExitMariadbd, "mariadbd (pid %d) crashed while stopping: %s", pid, how)
		}
		s.log.Warn(fmt.Sprintf("mariadbd (pid %d) %s while stopping", pid, how))
		return nil
	}
	if r.abandoned != "" {
		return exitErr(ExitMariadbd, "mariadbd (pid %d) killed: %s; a restart decides again", pid, r.abandoned)
	}
	// Died before Synced after an SST began for it: the SST failed, or the
	// node could not start from what it received. Either way restarting
	// would only run another full SST, hence its own code.
	if r.joining() || !r.ready && r.sstFailed != "" {
		msg := " while joining by SST"
		if r.sstJoinerEnded {
			msg = " after its SST ended, before Synced"
		}
		if r.sstFailed != "" {
			msg += ": " + r.sstFailed
		}
		return exitErr(ExitSST, "mariadbd (pid %d) %s%s", pid, how, msg)
	}
	if ps.Success() && r.ready {
		s.log.Info(fmt.Sprintf("mariadbd (pid %d) exited on its own with status 0 (SHUTDOWN?)", pid))
		return nil
	}
	return exitErr(ExitMariadbd, "mariadbd (pid %d) %s", pid, how)
}

// lastProgress handles the events sent before mariadbd exited: its SST's
// failure, sent just before, decides the exit code.
func (r *runner) lastProgress() {
	if r.progress == nil {
		return
	}
	if err := r.syncProgress(); err != nil {
		r.s.log.Warn(err.Error())
	}
	for {
		select {
		case e, ok := <-r.progress:
			if !ok {
				return
			}
			r.progressEvent(e)
		default:
			return
		}
	}
}

// joining: a joiner SST began and the node has not yet been ready.
func (r *runner) joining() bool { return !r.ready && r.sstJoiner && !r.sstJoinerDone }

// crashSignal tells a crash from an end by request (SIGTERM, SIGKILL).
func crashSignal(sig syscall.Signal) bool {
	switch sig {
	case syscall.SIGSEGV, syscall.SIGBUS, syscall.SIGILL, syscall.SIGFPE, syscall.SIGABRT:
		return true
	}
	return false
}

// outFile returns an *os.File for w: w itself, or a pipe copied into w by
// a goroutine that is not tied to the child's Wait (leftover grandchildren
// holding the pipe must not block it).
func outFile(w io.Writer) (*os.File, func()) {
	if f, ok := w.(*os.File); ok {
		return f, func() {}
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, func() {}
	}
	done := make(chan struct{})
	go func() {
		io.Copy(w, pr)
		pr.Close()
		close(done)
	}()
	return pw, func() {
		pw.Close()
		select {
		case <-done:
		case <-time.After(time.Second):
		}
	}
}

func diffOptions(a, b map[string]string) []string {
	var out []string
	for k, v := range b {
		if old, ok := a[k]; !ok {
			out = append(out, fmt.Sprintf("%s added: %q", k, v))
		} else if old != v {
			out = append(out, fmt.Sprintf("%s changed: %q -> %q", k, old, v))
		}
	}
	for k, v := range a {
		if _, ok := b[k]; !ok {
			out = append(out, fmt.Sprintf("%s removed (was %q)", k, v))
		}
	}
	slices.Sort(out)
	return out
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
