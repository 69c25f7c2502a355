package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/galera-supervisor/galera-supervisor/notify/unit"
	"github.com/galera-supervisor/galera-supervisor/supervisor"
	"github.com/galera-supervisor/galera-supervisor/supervisor/quorum"
)

const bootstrapLong = `
Starts the node's unit as the first node of a new cluster, as
galera_new_cluster does: it writes _WSREP_NEW_CLUSTER='--wsrep-new-cluster'
into the unit's wsrep-new-cluster EnvironmentFile= (found on the bus:
/run/mariadb-wsrep-new-cluster for mariadb.service and
galera-supervisor.service, /run/galera-supervisor-wsrep-new-cluster.<i> for
galera-supervisor@<i>.service), starts the unit through the system bus,
waits for the start job (for galera-supervisor: until the node is Synced),
and removes the file, so that a later restart joins instead.

It refuses when <datadir>/grastate.dat says safe_to_bootstrap: 0: this node
was not the last to leave the cluster, a more advanced node may exist, and
it names what may be lost: with no gvwstate.dat, the node left cleanly and
the Primary Component went on without it (every later commit); with one,
it crashed in that view (writesets in flight at the crash, and every later
commit if the others went on); and the supervisor's last decision (which
node it waits for, and why). Bootstrap the node with the highest seqno in
grastate.dat (when a seqno is -1, find it with "mariadbd --wsrep-recover"
on that node). With --force it sets safe_to_bootstrap: 1 in grastate.dat
first, as the manual procedure does, and logs what may be lost.

It also refuses when the unit is already active or activating, or when a
mariadbd holds grastate.dat.

Without --unit: the one of galera-supervisor.service and mariadb.service
that runs galera-supervisor and is enabled (the route this host took); else
the first that runs galera-supervisor, else the first that has a unit file.

The datadir comes from the option files the unit's ExecStart reads
(its --defaults-* arguments), unless --datadir or --defaults-* are given.

Exit codes:
  0  the unit started: the node is the Primary Component
  1  failure: no system bus, the start job failed (see journalctl -u UNIT)
  2  bad command line
  3  refused: grastate.dat says safe_to_bootstrap: 0 (use --force on the
     node with the highest seqno)
  4  refused: the unit is active or activating, or mariadbd runs
`

func cmdBootstrap() *command {
	return &command{
		name:  "bootstrap",
		usage: "[--unit U] [--force] [--datadir D | --defaults-file=F ...]",
		short: "start the node's unit as a new cluster (galera_new_cluster)",
		long:  bootstrapLong + "\nOptions:\n" + flagUsage(bootstrapFlags(new(bootstrapOptions))),
		run:   runBootstrap,
	}
}

type bootstrapOptions struct {
	nodeOptions
	force bool
}

func bootstrapFlags(o *bootstrapOptions) *flag.FlagSet {
	fs := newFlagSet("bootstrap")
	o.nodeOptions.addFlags(fs)
	fs.BoolVar(&o.force, "force", false, "bootstrap even though grastate.dat says safe_to_bootstrap: 0")
	return fs
}

// nodeOptions pick the node a command acts on: its unit, the service
// manager's bus, and its option files or datadir.
type nodeOptions struct {
	unit     string
	bus      string
	defaults supervisor.Defaults
	datadir  string
}

func (o *nodeOptions) addFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.unit, "unit", "", "the node's unit (default: the one running the datadir's node, else see below)")
	fs.StringVar(&o.bus, "bus", "", "D-Bus address of the service manager (default the system bus)")
	defaultsFlags(fs, &o.defaults)
	fs.StringVar(&o.datadir, "datadir", "", "the node's datadir (default from the option files)")
}

const (
	exitBootstrapUnsafe = 3
	exitBootstrapBusy   = 4
)

type refusal struct {
	code int
	err  error
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }
func (r *refusal) ExitCode() int { return r.code }

func runBootstrap(ctx context.Context, c *cli, args []string) error {
	var o bootstrapOptions
	if _, err := parseFlags(bootstrapFlags(&o), args); err != nil {
		return err
	}
	log := logger(c.stderr, "bootstrap: ")
	conn, err := unit.Dial(ctx, o.bus)
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	defer conn.Close()
	name, err := pickUnit(ctx, conn, o.unit)
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	st, err := conn.State(ctx, name)
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if st.LoadState != "loaded" {
		return fmt.Errorf("bootstrap: unit %s is %s", name, st.LoadState)
	}
	switch st.ActiveState {
	case "active", "activating", "reloading", "deactivating":
		return &refusal{exitBootstrapBusy, fmt.Errorf(
			"bootstrap: refusing: %s is %s (%s); a running node cannot become a new cluster: stop it first (systemctl stop %s)",
			name, st.ActiveState, st.SubState, name)}
	}
	envFile := ""
	for _, f := range st.EnvironmentFiles {
		if strings.Contains(filepath.Base(f), "wsrep-new-cluster") {
			envFile = f
		}
	}
	if envFile == "" {
		return fmt.Errorf("bootstrap: unit %s reads no *wsrep-new-cluster EnvironmentFile=, so it cannot be told --wsrep-new-cluster (EnvironmentFiles: %v)",
			name, st.EnvironmentFiles)
	}

	datadir := o.datadir
	if datadir == "" {
		d := o.defaults
		if d == (supervisor.Defaults{}) {
			d = unitDefaults(st)
		}
		opts, err := supervisor.LoadOptionFiles(d, nil)(ctx)
		if err != nil {
			return fmt.Errorf("bootstrap: read option files for the datadir: %w", err)
		}
		datadir = opts.Datadir()
	}
	grastate := filepath.Join(datadir, "grastate.dat")
	if err := checkGrastate(grastate, o.force, log); err != nil {
		return err
	}

	// Root-owned, in /run rather than the mysql-writable socket directory
	// (Debian's reason for /run/mariadb-wsrep-new-cluster).
	if err := os.WriteFile(envFile, []byte("_WSREP_NEW_CLUSTER='--wsrep-new-cluster'\n"), 0o644); err != nil {
		return fmt.Errorf("bootstrap: write %s: %w", envFile, err)
	}
	defer func() {
		if err := os.Remove(envFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
			log.Warn("cannot remove the bootstrap environment file", slog.String("path", envFile), slog.Any("error", err))
		}
	}()
	log.Info("starting the unit as a new cluster", slog.String("unit", name), slog.String("path", envFile))
	start := time.Now()
	if err := conn.Start(ctx, name); err != nil {
		after, _ := conn.State(context.WithoutCancel(ctx), name)
		return fmt.Errorf("bootstrap: %w (%s/%s, result %s, status %q; see journalctl -u %s)",
			err, after.ActiveState, after.SubState, after.Result, after.StatusText, name)
	}
	after, err := conn.State(ctx, name)
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	fmt.Fprintf(c.stdout, "%s started as a new cluster in %s: %s\n", name, time.Since(start).Round(time.Millisecond), after.StatusText)
	return nil
}

// checkGrastate refuses an unsafe bootstrap, or with force makes it safe.
// A missing grastate.dat is a node that never ran: safe.
func checkGrastate(path string, force bool, log *slog.Logger) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	defer f.Close()
	// Galera holds an exclusive flock on grastate.dat while the node runs.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return &refusal{exitBootstrapBusy, fmt.Errorf("bootstrap: refusing: %s is locked: a mariadbd runs on this datadir", path)}
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	g, err := supervisor.ParseGrastate(f)
	if err != nil {
		return fmt.Errorf("bootstrap: %s: %w", path, err)
	}
	if g.SafeToBootstrap {
		return nil
	}
	lost := atRisk(filepath.Dir(path), g.Seqno)
	if !force {
		return &refusal{exitBootstrapUnsafe, fmt.Errorf(`bootstrap: refusing: %s says safe_to_bootstrap: 0 (seqno %d): a more advanced node may exist. %s
Bootstrap the node with the highest seqno: compare "seqno:" in grastate.dat on every node (where it is -1, run "mariadbd --wsrep-recover" there and read "Recovered position"), then run "galera-supervisor bootstrap --force" on that node only`,
			path, g.Seqno, lost)}
	}
	if err := setSafeToBootstrap(path); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	log.Warn("--force: set safe_to_bootstrap: 1 in grastate", slog.String("path", path), slog.Int64("galera_seqno", g.Seqno), slog.String("may_lose", lost))
	return nil
}

// atRisk says what a bootstrap of a node with safe_to_bootstrap: 0 may
// lose, from its gvwstate.dat and the supervisor's last decision.
func atRisk(datadir string, seqno int64) string {
	var b strings.Builder
	v, err := quorum.ReadView(filepath.Join(datadir, "gvwstate.dat"))
	switch {
	case err != nil:
		fmt.Fprintf(&b, "What may be lost: every commit after seqno %d that another node holds (%v).", seqno, err)
	case v == nil:
		fmt.Fprintf(&b, "What may be lost: this node left the Primary Component cleanly (no gvwstate.dat) and it went on without it: every commit after seqno %d, made on the nodes that stayed, is lost to the new cluster, and those nodes can only rejoin it by SST.", seqno)
	default:
		fmt.Fprintf(&b, "What may be lost: this node crashed as a member of the Primary Component view seq %d (%d members, gvwstate.dat): writesets in flight at the crash that only other members applied, and every commit after it if the other members went on without this node.", v.Seq, len(v.Members))
	}
	if r, err := quorum.ReadRecord(datadir); err == nil && r != nil && r.Action == quorum.ActionWait {
		fmt.Fprintf(&b, " The supervisor last said (%s): %s", r.Time.Local().Format("2006-01-02 15:04:05 MST"), r.Reason)
	}
	return b.String()
}

var unsafeLine = regexp.MustCompile(`(?m)^(\s*safe_to_bootstrap:\s*)0\b`)

// setSafeToBootstrap rewrites grastate.dat with safe_to_bootstrap: 1, keeping
// every other byte, its mode and its owner, through a rename.
func setSafeToBootstrap(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	nb := unsafeLine.ReplaceAll(b, []byte("${1}1"))
	if string(nb) == string(b) {
		return fmt.Errorf("%s: no \"safe_to_bootstrap: 0\" line to change", path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	tmp := path + ".galera-supervisor.tmp"
	if err := os.WriteFile(tmp, nb, fi.Mode().Perm()); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		if err := os.Chown(tmp, int(sys.Uid), int(sys.Gid)); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("chown %s: %w", tmp, err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return nil
}
