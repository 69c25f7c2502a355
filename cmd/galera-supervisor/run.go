package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/go-sql-driver/mysql"

	"github.com/galera-supervisor/galera-supervisor/notify"
	"github.com/galera-supervisor/galera-supervisor/notify/logging"
	"github.com/galera-supervisor/galera-supervisor/notify/unit"
	"github.com/galera-supervisor/galera-supervisor/supervisor"
)

const runLong = `
The ExecStart of a Type=notify unit: galera-supervisor stays the unit's main
process and mariadbd runs as its child.

  1. Reads the option files (server groups [mysqld] [server] [mariadb]
     [galera] [mysqld-10.11]... with --defaults-group-suffix) for datadir,
     socket, user, wsrep_on; [client] then [galera-supervisor] for the health
     check's user and password. An [sst] or [galera-supervisor] value that
     "config check" calls an error stops it here (exit 78), each named with
     its file:line.
  2. Undoes what a killed SST joiner left: a half-done swap of a new
     snapshot into the datadir (or a separate InnoDB/Aria directory) is
     rolled back from <dir>/.sst-native-old, and <dir>/.sst-native is
     removed. A joiner still running keeps its work (it holds a lock).
     Exit 3 when the rollback cannot finish; the message names the path.
     Then reads <datadir>/grastate.dat. With --wsrep-new-cluster and
     safe_to_bootstrap: 0 it refuses (exit 6). When the seqno is -1 it runs
     "mariadbd <defaults> --wsrep-recover --disable-log-error --user=<user>"
     (as galera_recovery did) and passes --wsrep_start_position=<pos>,
     but not 00000000-0000-0000-0000-000000000000:-1 (a datadir that never
     joined a cluster), which tells mariadbd nothing.
     Nothing is recovered when wsrep_on is off, or when the datadir is empty
     (the node joins by SST). A grastate.dat that does not parse (empty or
     cut short by a crash while Galera rewrote it) counts as seqno -1, and
     a --wsrep-new-cluster start is then refused (exit 6); when no SST was
     under way it is rewritten from the recovered cluster UUID, since
     Galera would read it as uuid 0 and take a full SST instead of IST.
  3. Starts mariadbd <defaults> [extra args] in its own process group, with
     NOTIFY_SOCKET set to a socket of the supervisor's and
     GALERA_SUPERVISOR_PROGRESS to the SST progress socket, both in
     --runtime-dir.

Unattended rejoin and whole-cluster recovery, with peers ([galera-supervisor]):
  Between the recovery (2) and the start (3) the supervisors of a cluster
  tell each other their node's position over an authenticated channel, and
  decide how each node starts, so that after a power loss the cluster comes
  back without a person:
    peer-address = host:port   where this supervisor answers its peers
        (default wsrep_node_address's host, else 0.0.0.0, port 4569); it
        also names the node among its peers (the seqno tie-break)
    peers = host:port,...      the other supervisors (default the hosts of
        wsrep_cluster_address at peer-address's port); this node may be
        listed, under any of its addresses: it knows itself and skips it
    peer-secret-file = path    a shared secret, at least 16 bytes, not
        readable by others: HMAC-SHA256 challenge-response both ways over
        fresh nonces (replay-safe)
    peer-tls = on              mutual TLS with the [sst] tcert, tkey and tca
        (a CA is required); may be combined with peer-secret-file
    bootstrap-wait = 300       how long to wait for the missing members of
        the last Primary Component view before a majority of them
        bootstraps, never a majority of the configured nodes (seconds,
        or with a unit: 5m, 300s)
    auto-bootstrap = on|off    default on when peer authentication is set;
        without it the supervisor never bootstraps by itself, does not
        coordinate, and says so in the log
  What a supervisor tells its peers, also while mariadbd runs: its phase
  (recovering, waiting, starting, joined, synced), whether its node is in a
  Primary Component, cluster UUID, seqno, safe_to_bootstrap, whether its
  last SST was left incomplete, and its gvwstate.dat view. The decision,
  polled every 250 ms, in this order:
    join         a peer is in a Primary Component: start normally and join
                 it (by IST when the donor's gcache allows); nobody
                 bootstraps while one is reachable. A Primary Component of
                 another cluster UUID than this node's data is not joined
                 (its SST would replace the data): the node waits, says so
    wait         a peer is bootstrapping: join once it is Primary
    pc-recovery  every member of the newest gvwstate.dat view is back with
                 it: start normally, Galera's pc.recovery restores the
                 Primary Component; a node outside that view (one that died
                 earlier) waits for it, then joins
    give up      after a pc-recovery start, a member of the view gone, or
                 after a join, no peer in a Primary Component any more, for
                 bootstrap-wait (at least 10 s) before this node is Primary:
                 Galera would wait forever, deaf to SIGTERM, so mariadbd is
                 killed and the supervisor exits 5; its restart decides again
    bootstrap    once every present node has its position, one node that
                 may hold every acknowledged commit sets safe_to_bootstrap:
                 1 in grastate.dat and starts with --wsrep-new-cluster. Only
                 two kinds of node may hold them all: the last to leave
                 the Primary Component cleanly (safe_to_bootstrap: 1, which
                 Galera writes only on a node alone in its Primary
                 Component), and the members of its last view that crashed
                 with it (gvwstate.dat). A node that left cleanly with
                 safe_to_bootstrap: 0 knows the component went on without
                 it: it never counts. In order: every configured node
                 present: the most advanced (highest seqno; ties: a member
                 of the newest view, then safe_to_bootstrap: 1, then the
                 lowest peer address), at once; else a node with
                 safe_to_bootstrap: 1, at once; else every member of the
                 newest view present: the most advanced of them, at once;
                 else a majority of the newest view's members (by
                 pc.weight when set; a missing member counts at the weight
                 it last told its peers, 1 if never seen), counted among
                 the present nodes that hold that view: the most advanced
                 of them after bootstrap-wait, and writesets in flight at
                 the crash that only the missing members applied may be
                 lost (the reason says so); else wait, however long,
                 naming the node needed and why, until it returns or a
                 person runs "galera-supervisor bootstrap". Never a node
                 whose last SST did not complete (sst_in_progress or
                 staging found, or
                 <datadir>/galera-supervisor.sst-incomplete, written when an
                 SST into it begins and removed once it is Synced), nor one
                 without data; nodes of different cluster UUIDs are never
                 compared (it waits, and says so).
  Each decision is logged with DECISION=, REASON=, PEERS=, GALERA_UUID=,
  GALERA_SEQNO= (CHOSEN= and RULE=, the bootstrap rule that chose it:
  all-present, safe, view-complete or view-majority), MESSAGE_ID=
  fab74ea5fc174868bf2eda932c641fa3 for a bootstrap and
  7a3a6f68340440c8868ffee3ba749561 for a wait; the last one is kept in
  <datadir>/galera-supervisor.decision and "galera-supervisor status" shows
  it. STATUS= says "waiting for peers: " and the reason meanwhile, and the
  start timeout is extended through bootstrap-wait (a restart would begin
  the wait anew); a node still waiting after it lets the start time out,
  and Restart= asks the peers again. With --wsrep-new-cluster
  the node bootstraps as asked and tells its peers. A bad option exits 78.
  Stale sst_in_progress, wsrep_sst.pid and rsync_sst.pid (their process
  gone) are removed before the start.

What systemd hears (NotifyAccess=main is enough):
  READY=1      once the node is Synced (wsrep_local_state_comment=Synced,
               wsrep_ready=ON, Primary) and answers over its unix socket;
               mariadbd's own READY=1 is not relayed.
  STATUS=      one line: recovering, starting, waiting for primary,
               receiving SST 45% 2.0/4.5 GiB 310 MB/s ETA 8s, preparing, IST,
               joined, synced, donor, desynced, stopping. The rate is
               over the last 5 s, by the times the SST stamped its
               progress with; an SST's phases only go forward. A method
               that reports no progress (the stock rsync, rsync_wan,
               mariabackup, mysqldump) is measured by the supervisor:
               "receiving SST by rsync 1.2 GiB 40 MB/s", the bytes landing
               on the joiner's disk, with a % and an ETA when the donor's
               supervisor is a peer (it tells its datadir's size). A
               donor says "donor: sending SST by METHOD to JOINER" with its
               bytes: the method's own count, or for a stock method what
               its SST processes read (/proc/PID/io), e.g. "donor: sending
               SST by rsync to 10.0.0.2:4444/rsync_sst 55% 1.1/2.0 GiB
               40 MB/s ETA 23s". A native-copy delta tells how much of the
               datadir differs instead of a %: "receiving SST delta: 3.1
               GiB of 412.0 GiB differ so far 310 MB/s", then "moving delta:
               3.1 GiB of 412.0 GiB differ" (journal fields
               DELTA_DIFFER_BYTES, DELTA_TOTAL_BYTES).
  EXTEND_TIMEOUT_USEC=
               before READY, each time SST progress advances (or the node's
               phase changes), by the stall window, at most every quarter of
               it: a transfer that stalls lets the start timeout fire one
               window after its last byte. Progress is the method's own
               events, and, for every method, from the SST's start to
               READY, bytes landing in (or files written in) the datadir
               and the InnoDB and Aria directories outside it, scanned
               every second (rsync and rsync_wan write there, mariabackup
               into <datadir>/.sst, mysqldump grows the datadir;
               galera.cache, grastate.dat, gvwstate.dat, logs and pid files
               do not count), and bytes the joiner's socat, nc, rsync,
               mbstream or mariadb-backup read (/proc/PID/io): mbstream
               writes only whole 10 MiB chunks. The window is the unit's own
               TimeoutStartSec= (read over D-Bus at start, at least 10 s),
               so TimeoutStartSec=20 fails a stalled SST's start 20 s after
               the stall (then the stop, within TimeoutStopSec=); nothing is
               extended under TimeoutStartSec=infinity; 60 s when not under
               systemd or the bus does not answer; --sst-stall-timeout
               overrides it. The log says which. The joiner itself gives up
               after [sst] transfer-idle-timeout (120 s) without data.
               mariadbd's SST monitor extensions (a minute every 30 s,
               progress or not) are relayed only as a floor, while the
               supervisor can read none of those directories (the log
               says so); InnoDB's (crash recovery, buffer pool) are
               relayed. While stopping, 30 s every 10 s as long as mariadbd
               is alive, up to --stop-timeout.
  WATCHDOG=1   every WatchdogSec/2 while mariadbd runs (not SIGSTOPped) and,
               once ready, answers SQL.
  STOPPING=1   on SIGTERM/SIGINT.

Health check credentials: user/password from [galera-supervisor], else
[client]; with none it connects as the OS user it runs as (root or mysql),
which MariaDB's unix_socket authentication admits. "Access denied" is shown
in STATUS and logged; READY then never comes.

Logs: "galera-supervisor: ..." lines on stderr, each a short fixed message
and its facts as key=value attributes (a value quoted when it holds a
space, '=' or '"'), e.g.
  galera-supervisor: started mariadbd command=/usr/sbin/mariadbd pid=4242 args="..."
When stderr is the journal (JOURNAL_STREAM names it, as under the units),
native journal entries instead, whose MESSAGE is that line without the
prefix, every attribute a field of its own: NODE_STATE= at each phase change, SST_ROLE=,
SST_METHOD=, SST_PHASE= and SST_PEER= as an SST moves; the SST processes
add SST_RESULT=, SST_BYTES=, SST_SECONDS= and MESSAGE_IDs that
"journalctl -x" explains (see "help sst"). For example
"journalctl -u mariadb SST_RESULT=failed".

Signals:
  SIGTERM, SIGINT  STOPPING=1, SIGTERM to mariadbd's process group (mariadbd
                   and a running SST script, as KillMode=control-group did);
                   after --stop-timeout SIGKILL to the group. Exit when
                   mariadbd and everything below it are gone.
  SIGHUP           re-read the option files as an edit does (below); forward
                   SIGHUP to mariadbd (it flushes logs and privileges, as
                   ExecReload=kill -HUP did) once it answers queries.
  SIGUSR2          re-read the maintenance mode (<datadir>/galera-supervisor
                   .maintenance); "galera-supervisor maintenance" sends it
                   over D-Bus to a unit's main process.

Health endpoint for load balancers, and metrics ([galera-supervisor], off by
default; answers come from the health check's last result, refreshed every
--health-interval, never from a query per request):
    http-address = host:port   listen there (":9200": every address, on
        the port clustercheck used under xinetd)
    available-when-donor = 0|1     / answers 200 for a Donor/Desynced node
        (wsrep_local_state 2), as clustercheck's available_when_donor (0)
    available-when-readonly = 0|1  0: a read_only node answers 503 at /
        (as clustercheck's available_when_readonly, default 1)
    http-tls = on              serve HTTPS with the [sst] tcert and tkey,
        the peers' certificate (TLS 1.2 or later)
    http-verify-client = on    with http-tls: a client must present a
        certificate that the [sst] tca signed
  Paths, each answering GET, HEAD and OPTIONS (/ answers any method):
    /                   clustercheck, as Percona's: 200 "MariaDB Galera
                        Cluster Node is synced." when wsrep_cluster_status is
                        Primary and wsrep_local_state 4 (or 2 with
                        available-when-donor = 1); else 503 "... is not synced
                        or non-PRIM.", "... is read-only." (available-when-
                        readonly = 0) or "... is in maintenance."; text/plain,
                        Connection: close
    /synced             200 when Synced (4) in the Primary Component, not in
                        maintenance; 503 otherwise
    /donor-ok           the same, Donor/Desynced (2) included
    /primary-component  200 when in the Primary Component, in any state,
                        maintenance or not
    /health             JSON: phase, STATUS= line, the node's wsrep state,
                        SST progress, last decision, maintenance, and what /
                        answers and why; 200 while mariadbd answers, else 503
    /metrics            Prometheus text format, names galera_supervisor_*:
                        up, ready, node_state (wsrep_local_state),
                        phase_info{phase}, cluster_size, cluster_status
                        {status}, last_committed, read_only, maintenance,
                        available, sst_progress_bytes and sst_size_bytes
                        {method,role} during an SST; counters ssts_total
                        {method,role,result}, sst_bytes_total and
                        sst_seconds_total {method,role}, keepalives_total
                        {kind: extend_timeout, watchdog}, decisions_total
                        {action}, option_reloads_total{result: applied,
                        refused}, http_requests_total{path,code}; and the
                        Go and process metrics (process_cpu_seconds_total...)
  Every check answers 503 when the node is stopping (from SIGTERM on), or
  when the health check has not answered for 5 s.
  HAProxy: option httpchk, http-check expect status 200, and
  "server node1 10.0.0.1:3306 check port 9200 inter 2000 rise 2 fall 2".

Maintenance ("galera-supervisor maintenance on|off"): the mode is kept in
<datadir>/galera-supervisor.maintenance, read at start, on SIGUSR2 and on
a request on <runtime-dir>/control.sock; the node's own mode and last
decision survive a joiner SST, never the donor's. While it is on, every check but
/primary-component answers 503 (load balancers drain the node), the
supervisor does not bootstrap by itself (a bootstrap Decide chose waits)
and does not give a start up, STATUS= ends with "; maintenance: drained,
auto-bootstrap and give-ups paused", and the peers see it.

Live option files (--watch, on by default): every directory of the include
tree is watched, so that an editor's rename over a file, an in-place write,
a new .cnf in an !includedir, a retargeted symlink on the way
(/etc/mysql/my.cnf -> /etc/alternatives/my.cnf -> ...) and a default file
that did not exist are all seen. Once the edit settles (100 ms) the files
are read again and each change is logged with the file:line of the value:
  option files: changed, the next SST uses it option=rlimit old=10M new=20M
  option_group=sst option_file=/etc/mysql/conf.d/sst.cnf option_line=3
      no restart: the native methods read the snapshot named by
      GALERA_SUPERVISOR_OPTIONS (see "help sst"), which now has it; the
      stock scripts (rsync, mariabackup) read the files themselves.
  option files: changed, needs a restart of mariadbd option=max-connections
  old=unset new=500 option_group=mysqld option_file=/etc/mysql/my.cnf option_line=12
      server groups ([mysqld] [server] [mariadb] [galera] ...) are only
      logged; nothing is restarted.
An edit that does not read (a malformed line) or that gives an [sst] or
[galera-supervisor] value "config check" calls an error is logged with its file:line
and refused: the last good configuration stays in force, for the next SST
too.
No process outlives mariadbd: its process group is killed after it exits,
and the supervisor is a child subreaper, so orphaned SST processes and
mariadb-backup re-parent to it and are stopped and reaped. A joiner whose
SST failed must abort; one still running 60 s after a native method reported
the failure (10.11 hangs there at times) is killed with its group (exit 4);
10 s after a stop that cancelled its SST (exit 0), 5 s after a stop that cut
a stock method's SST short (its script reports nothing; exit 0).

Exit codes (for Restart= and RestartPreventExitStatus=3 4 6 78):
  0  stopped on request: however mariadbd ends once told to stop (a join
     or SST it aborts for the stop included), but for 4, 5 and 7 below
  1  internal or unexpected failure
  2  the Go runtime crashed (a panic, or SIGABRT): restart
  3  position recovery (--wsrep-recover) failed
  4  mariadbd died while joining by SST (a failed SST; do not loop on it),
     or was stopped after its SST had failed
  5  mariadbd exited or died on its own, or a node that had been ready
     crashed (SIGSEGV, SIGABRT...) while stopping
  6  --wsrep-new-cluster refused: grastate.dat says safe_to_bootstrap: 0
  7  mariadbd ignored SIGTERM for --stop-timeout and was killed
  78 usage or configuration error (flags, option files, cannot start
     mariadbd): EX_CONFIG, so that a unit does not restart it

A unit: Type=notify, ExecStart=galera-supervisor run $_WSREP_NEW_CLUSTER
(galera_new_cluster's variable expands to --wsrep-new-cluster),
KillMode=mixed, TimeoutStopSec=900, RestartPreventExitStatus=3 4 6 78.
`

func cmdRun() *command {
	return &command{
		name:  "run",
		usage: "[--defaults-file=F] [--defaults-extra-file=F] [--defaults-group-suffix=S] [--mariadbd=PATH] [--wsrep-new-cluster] [options] [-- mariadbd args]",
		short: "run mariadbd as a child and keep systemd informed (a unit's ExecStart)",
		long:  runLong + "\nOptions:\n" + flagUsage(runFlags(new(runOptions))),
		run:   runRun,
	}
}

type runOptions struct {
	defaults     supervisor.Defaults
	mariadbd     string
	newCluster   bool
	runtimeDir   string
	stopTimeout  time.Duration
	stallTimeout positiveDuration
	healthEvery  time.Duration
	watch        bool
}

type flagSet = flag.FlagSet

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func runFlags(o *runOptions) *flag.FlagSet {
	fs := newFlagSet("run")
	defaultsFlags(fs, &o.defaults)
	fs.StringVar(&o.mariadbd, "mariadbd", supervisor.DefaultMariadbd, "the server binary")
	fs.BoolVar(&o.newCluster, "wsrep-new-cluster", false, "bootstrap a new cluster from this node (refused when safe_to_bootstrap: 0)")
	fs.StringVar(&o.runtimeDir, "runtime-dir", "", "dir for the notify and progress sockets (default $RUNTIME_DIRECTORY, else /run/galera-supervisor)")
	fs.DurationVar(&o.stopTimeout, "stop-timeout", supervisor.DefaultStopTimeout, "how long mariadbd may take to stop after SIGTERM before SIGKILL")
	fs.Var(&o.stallTimeout, "sst-stall-timeout", "before READY, how long SST progress may stall before systemd's start timeout may fire (default the unit's TimeoutStartSec, at least 10s; 1m0s when it cannot be read)")
	fs.DurationVar(&o.healthEvery, "health-interval", time.Second, "period of the SQL health check")
	fs.BoolVar(&o.watch, "watch", true, "re-read the option files when one changes; --watch=false: only on SIGHUP")
	return fs
}

// positiveDuration is a duration flag that must be positive; unset it is 0
// and shows no default.
type positiveDuration time.Duration

func (d *positiveDuration) String() string {
	if *d == 0 {
		return ""
	}
	return time.Duration(*d).String()
}

func (d *positiveDuration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	if v <= 0 {
		return fmt.Errorf("%s is not positive", s)
	}
	*d = positiveDuration(v)
	return nil
}

func defaultsFlags(fs *flag.FlagSet, d *supervisor.Defaults) {
	fs.StringVar(&d.File, "defaults-file", "", "read only this option file")
	fs.StringVar(&d.ExtraFile, "defaults-extra-file", "", "read this option file after the global ones")
	fs.StringVar(&d.GroupSuffix, "defaults-group-suffix", "", "also read groups with this suffix ([mysqld.N])")
	fs.BoolVar(&d.NoDefaults, "no-defaults", false, "read no option files")
}

func flagUsage(fs *flag.FlagSet) string {
	var b strings.Builder
	fs.VisitAll(func(f *flag.Flag) {
		def := ""
		if f.DefValue != "" && f.DefValue != "false" {
			def = " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(&b, "  --%s\n        %s%s\n", f.Name, f.Usage, def)
	})
	return b.String()
}

// parseFlags parses args, keeping what follows "--" aside.
func parseFlags(fs *flag.FlagSet, args []string) (rest []string, err error) {
	for i, a := range args {
		if a == "--" {
			rest = args[i+1:]
			args = args[:i]
			break
		}
	}
	if err := fs.Parse(args); err != nil {
		return nil, usageError(err.Error())
	}
	if fs.NArg() > 0 {
		return nil, usageError(fmt.Sprintf("unexpected argument %q (mariadbd's arguments go after --)", fs.Arg(0)))
	}
	return rest, nil
}

// logger writes one line per record to w, each starting with prefix.
func logger(w io.Writer, prefix string) *slog.Logger {
	return slog.New(logging.NewText(w, logging.TextOptions{Prefix: prefix}))
}

func runRun(ctx context.Context, c *cli, args []string) error {
	var o runOptions
	fs := runFlags(&o)
	extra, err := parseFlags(fs, args)
	if err != nil {
		// A unit must not restart a bad ExecStart line.
		return &supervisor.ExitError{Code: supervisor.ExitConfig, Err: err}
	}
	// galera_new_cluster style: the flag may also come with mariadbd's args.
	for _, a := range extra {
		if a == "--wsrep-new-cluster" {
			o.newCluster = true
		}
	}
	// Under systemd, native journal entries with fields; text otherwise.
	log := logging.New(c.stderr, "galera-supervisor", logging.TextOptions{Prefix: "galera-supervisor: "})
	// The driver logs dropped connections on its own; the health check
	// already reports what matters.
	mysql.SetLogger(stdlog.New(io.Discard, "", 0))
	if err := supervisor.SetSubreaper(); err != nil {
		log.Warn("cannot become a subreaper; orphaned SST processes will re-parent to init", slog.Any("error", err))
	}
	watchdog, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		log.Warn("watchdog: cannot read WATCHDOG_USEC", slog.Any("error", err))
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	usr2 := make(chan os.Signal, 1)
	signal.Notify(usr2, syscall.SIGUSR2)
	defer signal.Stop(usr2)

	stallWindow := notify.ChooseStallWindow(ctx, log, time.Duration(o.stallTimeout),
		notify.NotUnderSystemd(), unit.OwnStartTimeout)
	sup := supervisor.New(supervisor.Config{
		Mariadbd:       o.mariadbd,
		Defaults:       o.defaults,
		ExtraArgs:      extra,
		NewCluster:     o.newCluster,
		LoadOptions:    supervisor.LoadOptionFiles(o.defaults, log),
		RuntimeDir:     o.runtimeDir,
		StopTimeout:    o.stopTimeout,
		StallTimeout:   stallWindow,
		Watchdog:       watchdog,
		HealthInterval: o.healthEvery,
		Watch:          o.watch,
		Systemd:        notify.FromEnv(),
		Log:            log,
	})
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case <-hup:
				log.Info("SIGHUP: reloading")
				sup.Reload()
			case <-usr2:
				sup.ReloadMaintenance()
			case <-done:
				return
			}
		}
	}()
	return sup.Run(ctx)
}
