package sst

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/galera-supervisor/galera-supervisor/notify/logging"
	"github.com/galera-supervisor/galera-supervisor/schema"
	"github.com/galera-supervisor/galera-supervisor/sst/progress"
)

// Method is an SST method: one process plays one role per run. A method
// registers itself with Register from an init function or from main.
type Method interface {
	// Joiner receives a snapshot: print Ready, receive into a Staging,
	// verify, swap in, then print Coordinates.
	Joiner(ctx context.Context, s *Session) error
	// Donor sends a snapshot (or only the state with --bypass) and prints
	// Done once the joiner confirmed receipt.
	Donor(ctx context.Context, s *Session) error
}

var (
	regMu   sync.Mutex
	methods = map[string]Method{}
)

// Register makes m available as wsrep_sst_<name>. It panics on a
// duplicate name, which is a programming error.
func Register(name string, m Method) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := methods[name]; dup {
		panic("sst: method " + name + " registered twice")
	}
	methods[name] = m
}

// Lookup returns the method registered as name.
func Lookup(name string) (Method, bool) {
	regMu.Lock()
	defer regMu.Unlock()
	m, ok := methods[name]
	return m, ok
}

// Methods lists the registered method names, sorted.
func Methods() []string {
	regMu.Lock()
	defer regMu.Unlock()
	var names []string
	for n := range methods {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Session is everything one SST run knows: its arguments, environment,
// options, the protocol writer and where to log. Methods get it from Run.
type Session struct {
	Method  string
	Args    *Args
	Env     Env
	Options Options
	Proto   *Protocol
	// Log is where the method logs. On stderr its records read
	// "WSREP_SST: [INFO]/[WARNING]/[ERROR] ...", which the server puts in
	// its error log; it carries sst_role and sst_method.
	Log      *slog.Logger
	Progress progress.Reporter

	mu    sync.Mutex
	peer  string // the last progress event's peer
	bytes int64  // and its byte count
	delta bool   // SetDelta: every event says so
	// syslog is the prefix of syslog tags when the SST logs to syslog.
	syslog *string
	// Datadir is --datadir, cleaned and absolute.
	Datadir string
	pv      *pvLines // [sst] progress: pv's lines, nil without
	// IncompleteBefore says why a joiner's datadir may be half written
	// by an earlier SST that wrote into it in place (a stock method's
	// leftover sst_in_progress), "" when nothing says so.
	IncompleteBefore string
}

// Env is what the server passes an SST process in its environment.
// Credentials come from nowhere else.
type Env struct {
	Auth              string // WSREP_SST_OPT_AUTH: user:password, may be empty
	RemoteAuth        string // WSREP_SST_OPT_REMOTE_AUTH (donor): the joiner's CN:secret
	InnoDBDataHomeDir string // INNODB_DATA_HOME_DIR (donor, once InnoDB is up)
}

// EnvFrom reads Env through getenv (os.Getenv in production).
func EnvFrom(getenv func(string) string) Env {
	return Env{
		Auth:              getenv("WSREP_SST_OPT_AUTH"),
		RemoteAuth:        getenv("WSREP_SST_OPT_REMOTE_AUTH"),
		InnoDBDataHomeDir: getenv("INNODB_DATA_HOME_DIR"),
	}
}

// Credentials splits WSREP_SST_OPT_AUTH at the first ':'.
func (e Env) Credentials() (user, password string) {
	user, password, _ = strings.Cut(e.Auth, ":")
	return user, password
}

// Option returns the [sst] option name, or def when unset or empty.
func (s *Session) Option(name, def string) string {
	if s.Options == nil {
		return def
	}
	if v, ok := s.Options.Lookup(SSTGroups, name); ok && v != "" {
		return v
	}
	return def
}

// Values reads the typed [sst] options, as package schema defines them.
func (s *Session) Values() schema.Values {
	return schema.Values{Group: schema.SST, Look: func(name string) (string, bool) {
		if s.Options == nil {
			return "", false
		}
		return s.Options.Lookup(SSTGroups, name)
	}}
}

// OptionIn is Option over the given groups.
func (s *Session) OptionIn(groups []string, name, def string) string {
	if s.Options == nil {
		return def
	}
	if v, ok := s.Options.Lookup(groups, name); ok && v != "" {
		return v
	}
	return def
}

// Dirs are the directories a physical copy covers, absolute. Each is the
// datadir unless configured elsewhere.
type Dirs struct {
	Data, InnoDBData, InnoDBLog, InnoDBUndo, AriaLog string
}

// DirsFrom resolves the directories of a node whose datadir is datadir,
// value giving each server option's setting ("innodb-data-home-dir",
// "innodb-log-group-home-dir", "innodb-undo-directory",
// "aria-log-dir-path"): unset means the datadir, a relative path is taken
// against it, as wsrep_sst_common's create_dirs does.
func DirsFrom(datadir string, value func(option string) string) Dirs {
	pick := func(opt string) string {
		v := value(opt)
		if v == "" {
			return datadir
		}
		if !filepath.IsAbs(v) {
			v = filepath.Join(datadir, v)
		}
		return filepath.Clean(v)
	}
	return Dirs{
		Data:       datadir,
		InnoDBData: pick("innodb-data-home-dir"),
		InnoDBLog:  pick("innodb-log-group-home-dir"),
		InnoDBUndo: pick("innodb-undo-directory"),
		AriaLog:    pick("aria-log-dir-path"),
	}
}

// Roots are the distinct directories of d, the datadir first: where an SST
// stages and swaps.
func (d Dirs) Roots() []string {
	var out []string
	for _, r := range []string{d.Data, d.InnoDBData, d.InnoDBLog, d.InnoDBUndo, d.AriaLog} {
		if r = filepath.Clean(r); !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// Dirs resolves the InnoDB and Aria directories from the command line,
// then (data home only) the environment, then the server's option groups.
func (s *Session) Dirs() Dirs {
	a := s.Args
	given := map[string]string{
		"innodb-data-home-dir":      cmp.Or(a.InnoDBDataHomeDir, s.Env.InnoDBDataHomeDir),
		"innodb-log-group-home-dir": a.InnoDBLogGroupHomeDir,
		"innodb-undo-directory":     a.InnoDBUndoDirectory,
		"aria-log-dir-path":         a.AriaLogDirPath,
	}
	return DirsFrom(s.Datadir, func(opt string) string {
		return cmp.Or(given[opt], s.OptionIn(ServerGroups, opt, ""))
	})
}

// Binlog returns the binlog basename and index file as absolute paths, or
// empty strings when binary logging is off for this SST.
func (s *Session) Binlog() (base, index string) {
	b := s.Args.Binlog
	if b == "" {
		return "", ""
	}
	if !filepath.IsAbs(b) {
		b = filepath.Join(s.Datadir, b)
	}
	b = strings.TrimSuffix(b, ".index")
	idx := s.Args.BinlogIndex
	switch {
	case idx == "":
		idx = b + ".index"
	case !filepath.IsAbs(idx):
		idx = filepath.Join(s.Datadir, idx)
	}
	if filepath.Ext(idx) == "" {
		idx += ".index"
	}
	return b, idx
}

// SetDelta marks the SST a delta from here on: its progress events count
// the bytes that differ against the whole datadir (progress.Event.Delta).
func (s *Session) SetDelta() {
	s.mu.Lock()
	s.delta = true
	s.mu.Unlock()
}

// Report sends a progress event to the supervisor, with role and method
// filled in.
// Reporter forwards an engine's progress to the supervisor and, with
// --progress 1, to the server as total/complete lines.
func (s *Session) Reporter() progress.Reporter {
	var mu sync.Mutex
	var total int64 = -1
	return progress.Func(func(e progress.Event) {
		mu.Lock()
		defer mu.Unlock()
		s.Report(e)
		if e.Total > 0 && e.Total != total {
			total = e.Total
			s.Proto.Total(e.Total)
		}
		if e.Done > 0 {
			s.Proto.Complete(e.Done)
		}
	})
}

func (s *Session) Report(e progress.Event) {
	s.mu.Lock()
	e.Delta = e.Delta || s.delta
	if e.Peer != "" {
		s.peer = PeerAddr(e.Peer)
	}
	if e.Done > s.bytes {
		s.bytes = e.Done
	}
	s.mu.Unlock()
	if s.pv != nil {
		s.pv.Report(e)
	}
	if s.Progress == nil {
		return
	}
	if e.Role == "" {
		e.Role = string(s.Args.Role)
	}
	if e.Method == "" {
		e.Method = s.Method
	}
	s.Progress.Report(e)
}

// loadOptions reads the supervisor's snapshot when it names one, else the
// option files, with the parser the supervisor and "config check" use.
func (s *Session) loadOptions(args *Args, snapshot string) (Options, error) {
	if snapshot != "" {
		o, ok, err := LoadSnapshot(snapshot, args)
		switch {
		case err != nil:
			s.Log.Warn("option snapshot unreadable; reading the option files instead", slog.String("option_snapshot", snapshot), slog.Any("error", err))
		case !ok:
			s.Log.Warn("option snapshot ($"+schema.EnvOptions+") was read from other option files than this SST's; reading them instead",
				slog.String("option_snapshot", snapshot))
		default:
			s.Log.Info("options: the supervisor's last good option files", slog.String("option_snapshot", snapshot))
			return o, nil
		}
	}
	return LoadOptions(args)
}

// checkOptions checks the [sst] group as "config check" and the
// supervisor's live guard do: a bad value fails the SST, naming every one;
// an option this method does not read is logged with what it means here.
func (s *Session) checkOptions() (warnings []*schema.ValueError, err error) {
	errs, warnings := s.Values().Problems(s.Method)
	if len(errs) > 0 {
		return nil, WithErrno(EINVAL, fmt.Errorf("sst %s: %w", s.Method, errors.Join(errs...)))
	}
	return warnings, nil
}

// Config is what Run needs from the process around it.
type Config struct {
	Stdout, Stderr io.Writer
	// Log overrides the logger (default: "WSREP_SST: [INFO] ..." lines on
	// Stderr).
	Log    *slog.Logger
	Getenv func(string) string // default os.Getenv
	// Options overrides the option-file reader (default: the supervisor's
	// snapshot, else the files the command line's --defaults-* flags name).
	Options func(*Args) Options
	// Progress overrides the progress reporter (default progress.FromEnv).
	Progress progress.Reporter
	// PreviousSSTWait is how long to wait for a previous SST's
	// wsrep_sst.pid to go away; default 30s as in the stock scripts.
	PreviousSSTWait time.Duration
	Now             func() time.Time
}

// Run executes one SST run of method with argv (without argv[0]), as the
// server's SST contract says: parse, lock wsrep_sst.pid, watch the parent,
// run the method's role. The error it returns carries the exit code
// (ExitCode); it never unwraps to context.Canceled, since an interrupted
// SST is a failure.
func Run(ctx context.Context, method string, argv []string, cfg Config) (err error) {
	if cfg.Getenv == nil {
		cfg.Getenv = os.Getenv
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Stderr == nil {
		cfg.Stderr = io.Discard
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(logging.NewText(cfg.Stderr, logging.TextOptions{Style: logging.SST, Now: cfg.Now}))
	}
	s := &Session{Method: method, Log: cfg.Log.With(slog.String("sst_method", method))}
	start := cfg.Now()
	var logs io.Closer = nopCloser{}
	defer func() {
		defer logs.Close()
		if err != nil {
			if errors.Is(err, context.Canceled) {
				cause := context.Cause(ctx)
				if cause == nil || errors.Is(cause, context.Canceled) {
					cause = errors.New("interrupted")
				}
				err = &Error{Errno: EINTR, Err: fmt.Errorf("sst %s: %v", method, cause)}
			}
			err = WithErrno(EPIPE, err)
			peer, bytes := s.result()
			s.Log.Error("SST failed",
				slog.String("message_id", logging.MessageSSTFailed), slog.String("sst_result", "failed"),
				slog.Int("sst_exit", ExitCode(err)), slog.String("sst_error", err.Error()),
				slog.String("sst_peer", peer), slog.Int64("sst_bytes", bytes),
				slog.String("sst_seconds", seconds(cfg.Now().Sub(start))))
		}
	}()
	m, ok := Lookup(method)
	if !ok {
		return Errorf(EINVAL, "sst: unknown method %q (have %s)", method, strings.Join(Methods(), ", "))
	}
	args, err := ParseArgs(argv)
	if err != nil {
		return err
	}
	s.Args = args
	s.Log = s.Log.With(slog.String("sst_role", string(args.Role)))
	s.Env = EnvFrom(cfg.Getenv)
	dd, err := filepath.Abs(args.Datadir)
	if err != nil {
		return Errorf(EINVAL, "sst: --datadir %s: %w", args.Datadir, err)
	}
	s.Datadir = dd
	if fi, err := os.Stat(dd); err != nil {
		return Errorf(ENOENT, "sst: datadir: %w", err)
	} else if !fi.IsDir() {
		return Errorf(ENOENT, "sst: datadir %s is not a directory", dd)
	}
	if cfg.Options != nil {
		s.Options = cfg.Options(args)
	} else if s.Options, err = s.loadOptions(args, cfg.Getenv(schema.EnvOptions)); err != nil {
		return err
	}
	unused, err := s.checkOptions()
	if err != nil {
		return err
	}
	s.Progress = cfg.Progress
	if s.Progress == nil {
		s.Progress = progress.FromEnv()
	}
	s.Proto = NewProtocol(cfg.Stdout, args.Role, args.Progress)
	pid, err := AcquirePIDFile(ctx, filepath.Join(dd, PIDFile), cfg.PreviousSSTWait, s.Log)
	if err != nil {
		return err
	}
	defer pid.Release()
	// Only the SST holding wsrep_sst.pid may touch the logs.
	archive, err := ArchiveFrom(func(name string) string { return s.Option(name, "") })
	if err != nil {
		s.Log.Warn("[sst] log archive: archiving as by default", slog.Any("error", err))
	}
	names := []string{LogName(method, Joiner), LogName(method, Donor)}
	if ln, ok := m.(LogNamer); ok {
		names = append(names, ln.LogNames()...)
	}
	archive.Run(dd, names, cfg.Now(), s.Log)
	logs = s.openLogs(cfg, cfg.Log.Handler())
	for _, w := range unused {
		s.Log.Warn("[sst] option ignored", slog.String("option_group", string(w.Group)), slog.String("sst_option", w.Option),
			slog.String("sst_option_value", w.Value), slog.String("reason", w.Msg))
	}
	pv, pvc := s.openProgress(cfg.Stderr, cfg.Now)
	defer pvc.Close()
	s.pv = pv
	s.Log.Info("SST started",
		slog.String("message_id", logging.MessageSSTStarted), slog.String("sst_result", "started"), slog.Int("pid", os.Getpid()),
		slog.String("sst_address", args.Address), slog.String("sst_datadir", dd))

	if args.Role == Joiner && args.Parent > 0 {
		var stop func()
		ctx, stop = WatchParent(ctx, args.Parent, 500*time.Millisecond)
		defer stop()
	}
	start = cfg.Now()
	if args.Role == Joiner {
		marker := filepath.Join(dd, InProgressFile)
		s.IncompleteBefore = incompleteBefore(dd)
		if f, err := os.OpenFile(marker, os.O_CREATE|os.O_WRONLY, 0o640); err == nil {
			f.Close()
			defer os.Remove(marker)
		}
		err = m.Joiner(ctx, s)
	} else {
		err = m.Donor(ctx, s)
	}
	if err != nil {
		s.Report(progress.Event{Phase: progress.PhaseFailed, Err: err.Error()})
		return err
	}
	s.Report(progress.Event{Phase: progress.PhaseDone})
	el := cfg.Now().Sub(start)
	peer, bytes := s.result()
	s.Log.Info("SST finished",
		slog.String("message_id", logging.MessageSSTFinished), slog.String("sst_result", "finished"),
		slog.String("sst_peer", peer), slog.Int64("sst_bytes", bytes), slog.String("sst_seconds", seconds(el)))
	if on, _, _ := s.Values().Bool("time"); on {
		// The stock script's closing line with time=1, in its shape: tools
		// that time stock SSTs read it.
		s.Log.Info(fmt.Sprintf("Total time on %s: %d seconds", args.Role, int(el.Seconds())))
	}
	return nil
}

// PeerAddr is the address of a progress event's peer ("donor
// 127.0.0.1:4444" or the address alone), for the SST_PEER field.
func PeerAddr(peer string) string {
	if role, addr, ok := strings.Cut(peer, " "); ok && (role == string(Donor) || role == string(Joiner)) {
		return addr
	}
	return peer
}

// result is the peer and bytes the progress events told of.
func (s *Session) result() (peer string, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peer, s.bytes
}

// seconds is d for the SST_SECONDS field: seconds with one decimal.
func seconds(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) }

// Marker files in the datadir.
const (
	PIDFile        = "wsrep_sst.pid"
	InProgressFile = "sst_in_progress"
)

// PIDLock is a held wsrep_sst.pid.
type PIDLock struct{ path string }

// AcquirePIDFile creates path holding our pid, so that two SSTs never run
// on one datadir at once. A file whose process is gone is stale and taken
// over; a live one is waited for up to wait (30s when 0), then EALREADY.
func AcquirePIDFile(ctx context.Context, path string, wait time.Duration, log *slog.Logger) (*PIDLock, error) {
	log = logging.OrDiscard(log)
	if wait <= 0 {
		wait = 30 * time.Second
	}
	deadline := time.Now().Add(wait)
	me := strconv.Itoa(os.Getpid())
	logged := false
	for {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
		if err == nil {
			_, werr := f.WriteString(me + "\n")
			cerr := f.Close()
			if werr != nil || cerr != nil {
				os.Remove(path)
				return nil, Errorf(EPIPE, "sst: write %s: %v", path, errors.Join(werr, cerr))
			}
			return &PIDLock{path: path}, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, Errorf(EACCES, "sst: create %s: %w", path, err)
		}
		b, _ := os.ReadFile(path)
		other, perr := strconv.Atoi(strings.TrimSpace(string(b)))
		if perr != nil || other <= 0 || !processAlive(other) {
			// Stale: its process is gone (or it was never written fully).
			if perr != nil && time.Since(modTime(path)) < time.Second {
				// Possibly being written right now; look again shortly.
			} else {
				os.Remove(path)
				continue
			}
		} else if !logged {
			log.Info("previous SST is still running, waiting up to wait", slog.Int("pid", other), slog.Duration("wait", wait))
			logged = true
		}
		if time.Now().After(deadline) {
			return nil, Errorf(EALREADY, "sst: previous SST (pid %d, %s) still running after %s", other, path, wait)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func modTime(path string) time.Time {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// Release removes the pid file if it is still ours.
func (l *PIDLock) Release() {
	if l == nil {
		return
	}
	b, err := os.ReadFile(l.path)
	if err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(os.Getpid()) {
		os.Remove(l.path)
	}
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// WatchParent returns a context cancelled, with a cause naming it, when
// process pid (the joiner's mariadbd) is gone, so that the joiner stops and
// cleans up instead of being orphaned.
func WatchParent(ctx context.Context, pid int, every time.Duration) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if !processAlive(pid) || (os.Getppid() != pid && os.Getppid() == 1) {
					cancel(fmt.Errorf("parent mariadbd (pid %d) terminated unexpectedly", pid))
					return
				}
			}
		}
	}()
	var once sync.Once
	return ctx, func() { once.Do(func() { close(done); cancel(nil) }) }
}
