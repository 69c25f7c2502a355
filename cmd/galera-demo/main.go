// Command galera-demo starts a 3-node MariaDB Galera cluster on loopback in
// which every node runs under galera-supervisor, as a systemd unit's
// ExecStart would run it: node1 bootstraps, node2 joins by native-copy,
// node3 joins empty by native-backup with a live progress bar, and a
// summary tells the SST's time, rate and the donor's lock time. It stops
// every process it started when the time is up, on Ctrl-C or on error.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

const usage = `galera-demo: a 3-node MariaDB Galera cluster on this machine's loopback, every
node run by galera-supervisor, as systemd would run it.

Usage:
  galera-demo [flags]          (make demo runs: bin/galera-demo -seconds $DEMO_SECONDS)

What it does:
  1. Allocates free ports and a fresh directory under /var/tmp/gs-test/ for each node
     (datadir, socket, my.cnf, logs; client, gmcast, IST and SST ports).
  2. Starts each node as "galera-supervisor run --defaults-file=<node>/my.cnf", the
     supervisor found beside this binary, with NOTIFY_SOCKET set to a socket this demo
     listens on, as systemd does for a Type=notify unit: it shows what the supervisor
     tells systemd (STATUS=, READY=1). The supervisor starts mariadbd as its child.
  3. node1 bootstraps a new cluster (galera-supervisor run --wsrep-new-cluster).
  4. Loads -data bytes into bench.t on node1, plus a few sample tables (InnoDB, Aria,
     MyISAM).
  5. node2 joins with an EMPTY datadir by SST with native-copy.
  6. node3 joins with an EMPTY datadir by SST with native-backup, from node1
     (wsrep_sst_donor), and the demo draws its progress from node3's STATUS= lines:
     redrawn in place on a terminal; otherwise a line per phase, and one every
     -interval (1 s at most) while it receives.
  7. Prints the SUMMARY line: how long node3 took to READY=1, how long its SST took,
     how many MB it received at what MB/s (from the joiner's log), and how long the
     donor blocked writes (from the donor's mariadb-backup log: BACKUP STAGE BLOCK_DDL
     to END).
  8. Prints each node's process tree (galera-supervisor -> mariadbd) and its last
     STATUS=, the wsrep state of every node, and checks that every table checksums
     the same on every node; then the state every -interval.
  9. On Ctrl-C, SIGTERM, after -seconds, or on an error: SIGTERM to each supervisor,
     last node first (each stops its mariadbd and waits for it), SIGKILL to any process
     it saw that is still alive, removes the directories, and scans /proc to show that
     nothing it started is left.

The state columns:
  STATE   wsrep_local_state_comment: Joining, Donor/Desynced, Joined, Synced
  SIZE    wsrep_cluster_size: how many nodes this node sees in its component
  STATUS  wsrep_cluster_status: Primary (may take writes) or non-Primary
  READY   wsrep_ready: ON once the node accepts queries

Needs: root; Debian's mariadb-server, mariadb-backup and galera-4; galera-supervisor
and its wsrep_sst_native-copy and wsrep_sst_native-backup links beside this binary
(make demo installs and builds them). mariadbd runs as the mysql user.

Exit status: 0 when the demo ran (or was interrupted) and stopped everything; 1 on
an error (the message says which step, and the node's logs); 2 on a bad flag.

Flags:
`

type options struct {
	seconds  int
	data     int64
	interval time.Duration
	keep     bool
	verbose  bool
}

func main() {
	var o options
	fs := flag.NewFlagSet("galera-demo", flag.ExitOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), `
Examples:
  galera-demo                      run until Ctrl-C
  galera-demo -seconds 10          stop 10 seconds after the cluster is up
  galera-demo -data 1GB            a bigger SST for node3
  galera-demo -keep                keep the datadirs and logs (the path is printed)
`)
	}
	fs.IntVar(&o.seconds, "seconds", 0, "keep the cluster up this many `seconds` once synced; 0 = until Ctrl-C")
	data := fs.String("data", "512MB", "`size` of the data loaded into node1 before the joiners come, e.g. 8MB, 1GB")
	fs.DurationVar(&o.interval, "interval", 2*time.Second, "print the cluster's state this often (and the bar, when not on a terminal, at least every 1s)")
	fs.BoolVar(&o.keep, "keep", false, "keep the cluster directory (datadirs, error logs, supervisor logs) at the end")
	fs.BoolVar(&o.verbose, "v", false, "show the harness's own log lines")
	fs.Parse(os.Args[1:])
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "galera-demo: unexpected argument %q (see -help)\n", fs.Arg(0))
		os.Exit(2)
	}
	var err error
	if o.data, err = parseSize(*data); err != nil {
		fmt.Fprintf(os.Stderr, "galera-demo: -data: %v\n", err)
		os.Exit(2)
	}
	if o.seconds < 0 || o.interval <= 0 {
		fmt.Fprintln(os.Stderr, "galera-demo: -seconds must be 0 or more and -interval more than 0")
		os.Exit(2)
	}

	// A second Ctrl-C during the cleanup is caught too: the cleanup goes on.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err = run(ctx, o, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "galera-demo: %v\n", err)
		os.Exit(1)
	}
}
