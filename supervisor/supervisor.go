package supervisor

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/galera-supervisor/galera-supervisor/notify"
	"github.com/galera-supervisor/galera-supervisor/notify/logging"
	"github.com/galera-supervisor/galera-supervisor/sst/progress"
	"github.com/galera-supervisor/galera-supervisor/supervisor/endpoint"
	"github.com/galera-supervisor/galera-supervisor/supervisor/maintenance"
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

	// What the endpoint answers from (serve.go): the snapshot the run
	// publishes, the endpoint's options, the counters.
	published atomic.Pointer[endpoint.Snapshot]
	pubMu     sync.Mutex
	httpCfg   *endpoint.Config
	metrics   *endpoint.Metrics
	// The maintenance mode, read from datadir; maintChanged tells the
	// run's loop to say it.
	datadir      string
	maint        atomic.Pointer[maintenance.State]
	maintMu      sync.Mutex
	maintChanged chan struct{}
	coord        atomic.Pointer[coordination]
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
		cfg.RuntimeDir = DefaultRuntimeDir()
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
	s := &Supervisor{cfg: cfg, log: cfg.Log, ready: make(chan struct{}), reload: make(chan struct{}, 1),
		httpCfg: &endpoint.Config{AvailableWhenReadonly: true}, maintChanged: make(chan struct{}, 1)}
	s.metrics = endpoint.NewMetrics(s.Snapshot, s.httpCfg)
	s.cfg.Systemd = countingSender{Sender: cfg.Systemd, m: s.metrics}
	return s
}

// DefaultRuntimeDir is the runtime directory when none is given: the
// unit's (the first of $RUNTIME_DIRECTORY), else /run/galera-supervisor.
func DefaultRuntimeDir() string {
	d, _, _ := strings.Cut(os.Getenv("RUNTIME_DIRECTORY"), ":")
	if d == "" {
		d = "/run/galera-supervisor"
	}
	return d
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
		s.log.Warn("sd_notify failed", slog.Any("error", err))
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
	stopEndpoint, err := s.startEndpoint(ctx, opts, uid, gid)
	if err != nil {
		return exitErr(ExitConfig, "%w", err)
	}
	defer stopEndpoint()
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
					s.log.Warn("reading mariadbd's notify socket failed", slog.Any("error", err))
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
				s.log.Warn("cannot mark the SST incomplete", slog.Any("error", err))
			}
		}
		cleanSSTMarkers(datadir, s.log)
		coord, err := s.startCoordination(ctx, opts, datadir, incomplete != "")
		if err != nil {
			return exitErr(ExitConfig, "%w", err)
		}
		defer coord.stop()
		r.coord = coord
		s.coord.Store(coord)
		if coord != nil {
			s.applyMaintenance() // the peers hear it too
		}
		pos, err := r.recoverPosition(ctx, datadir, userName)
		if err != nil {
			return err
		}
		if incomplete == "" && r.grastate == nil && pos != nil {
			if err := r.repairGrastate(datadir, *pos); err != nil {
				s.log.Warn("cannot repair grastate", slog.Any("error", err))
			}
		}
		switch {
		case pos != nil && pos.Known():
			args = append(args, "--wsrep_start_position="+pos.String())
		case pos != nil:
			s.log.Info("recovered position tells nothing: no --wsrep_start_position", slog.String("position", pos.String()))
		}
		r.startKnown = pos != nil && pos.Known() || pos == nil && r.grastate != nil && r.grastate.Seqno != SeqnoUnknown
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
