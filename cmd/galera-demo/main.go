// Command galera-demo starts a small MariaDB Galera cluster on loopback and
// shows it working: node1 bootstraps, data is loaded, the other nodes join,
// the last one empty, by State Snapshot Transfer (SST). It prints each node's
// wsrep state until the time is up or Ctrl-C, then stops every process it
// started.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/galera-supervisor/galera-supervisor/supervisor/galeratest"
)

const usage = `galera-demo: a MariaDB Galera cluster on this machine's loopback, in seconds.

Usage:
  galera-demo [flags]          (make demo runs: bin/galera-demo -seconds $DEMO_SECONDS)

What it does:
  1. Allocates free ports and a fresh directory under /var/tmp/gs-test/ for each node
     (its own datadir, socket, client port, and galera ports: gmcast, IST, SST).
  2. node1 bootstraps a new cluster (mariadbd --wsrep-new-cluster) and becomes the
     Primary Component of one.
  3. Loads -data bytes into bench.t on node1, plus a few sample tables (InnoDB,
     Aria, MyISAM).
  4. node2, then node3, join with EMPTY datadirs: each receives the whole state
     from a donor by SST, using -sst-method (stock: rsync).
  5. Prints every node's wsrep state, checks that all tables checksum the same on
     every node, and keeps printing the state every -interval.
  6. On Ctrl-C, SIGTERM or after -seconds, stops every mariadbd it started (by PID,
     SIGTERM first), kills anything they left (SST helpers), removes the directory.

The columns:
  STATE   wsrep_local_state_comment: Joining, Donor/Desynced, Joined, Synced
  SIZE    wsrep_cluster_size: how many nodes this node sees in its component
  STATUS  wsrep_cluster_status: Primary (may take writes) or non-Primary
  READY   wsrep_ready: ON once the node accepts queries

Needs: root, Debian's mariadb-server and galera-4, rsync (make demo installs them).
mariadbd runs as the mysql user.

Flags:
`

type options struct {
	seconds   int
	nodes     int
	sstMethod string
	data      int64
	interval  time.Duration
	keep      bool
	verbose   bool
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
  galera-demo -seconds 20          run for 20 seconds after the cluster is up
  galera-demo -data 256MB          a bigger SST
  galera-demo -sst-method native-copy
                                   the joiners use the project's native SST; needs
                                   wsrep_sst_native-copy beside this binary (make build)
`)
	}
	fs.IntVar(&o.seconds, "seconds", 0, "keep the cluster up this many `seconds` once synced; 0 = until Ctrl-C")
	fs.IntVar(&o.nodes, "nodes", 3, "number of `nodes` (2 or more)")
	fs.StringVar(&o.sstMethod, "sst-method", "rsync", "wsrep_sst_method for the joiners: rsync, mariabackup, native-copy, ...")
	data := fs.String("data", "32MB", "data to load into node1 before the joiners come, e.g. 8MB, 1GB")
	fs.DurationVar(&o.interval, "interval", 5*time.Second, "print the wsrep state this often")
	fs.BoolVar(&o.keep, "keep", false, "keep the cluster directory (datadirs, error logs) at the end")
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
	if o.nodes < 2 {
		fmt.Fprintln(os.Stderr, "galera-demo: -nodes must be 2 or more")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err = run(ctx, o, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "galera-demo: %v\n", err)
		os.Exit(1)
	}
}

// demo carries the output and the clock of one run.
type demo struct {
	out io.Writer
	t0  time.Time
}

func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "[%6.1fs] %s\n", time.Since(d.t0).Seconds(), fmt.Sprintf(format, args...))
}

func run(ctx context.Context, o options, out io.Writer) (err error) {
	d := &demo{out: out, t0: time.Now()}
	if err := galeratest.Check(); err != nil {
		return fmt.Errorf("cannot start real nodes: %w", err)
	}
	cfg := galeratest.Config{
		Nodes:     o.nodes,
		SSTMethod: o.sstMethod,
		Keep:      o.keep,
		// Methods that log in to the donor (mariabackup, native-backup) need it.
		Mysqld: map[string]string{"wsrep_sst_auth": galeratest.User + ":" + galeratest.Password},
	}
	if o.verbose {
		cfg.Logf = func(format string, args ...any) { d.say(format, args...) }
	}
	if !isStockMethod(o.sstMethod) {
		// mariadbd finds wsrep_sst_<method> on its PATH: put ours first.
		dir, err := exeDir()
		if err != nil {
			return err
		}
		script := filepath.Join(dir, "wsrep_sst_"+o.sstMethod)
		if _, err := os.Stat(script); err != nil {
			return fmt.Errorf("-sst-method %s needs %s (run make build): %w", o.sstMethod, script, err)
		}
		cfg.PathPrepend = []string{dir}
	}

	fmt.Fprintf(out, "galera-demo: %d MariaDB Galera nodes on loopback; joiners use SST method %q.\n", o.nodes, o.sstMethod)
	d.say("reserving ports, writing configs, mariadb-install-db for node1 ...")
	c, err := galeratest.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := shutdown(d, c); err == nil {
			err = cerr
		}
	}()
	fmt.Fprintf(out, "Cluster %s in %s\n", c.Name(), c.Dir())
	for _, n := range c.Nodes() {
		fmt.Fprintf(out, "  %s  client 127.0.0.1:%-5d  gmcast :%-5d  IST :%-5d  SST :%-5d  socket %s\n",
			n.Name(), n.Port, n.GmcastPort, n.ISTPort, n.SSTPort, n.Socket)
	}
	fmt.Fprintln(out)

	err = up(ctx, d, c, o)
	if errors.Is(err, context.Canceled) {
		d.say("interrupted")
		return nil
	}
	if err != nil {
		return err
	}
	printTable(ctx, d, c)
	if err := compare(ctx, d, c); err != nil {
		return err
	}
	return watch(ctx, d, c, o)
}

func up(ctx context.Context, d *demo, c *galeratest.Cluster, o options) error {
	n1 := c.Node(1)
	d.say("node1: bootstrapping a new cluster (mariadbd --wsrep-new-cluster) ...")
	t := time.Now()
	if err := c.Bootstrap(ctx); err != nil {
		return err
	}
	d.say("node1: Synced in %v, pid %d", since(t), n1.PID())

	d.say("node1: loading %s into bench.t and sample tables ...", formatSize(o.data))
	t = time.Now()
	if err := n1.CreateSampleTables(ctx); err != nil {
		return err
	}
	if err := n1.LoadData(ctx, o.data); err != nil {
		return err
	}
	rows, _ := n1.QueryString(ctx, "SELECT COUNT(*) FROM bench.t")
	d.say("node1: loaded %s rows in %v", rows, since(t))

	for _, n := range c.Nodes()[1:] {
		d.say("%s: joining with an empty datadir; a donor sends it the state by SST (%s) ...", n.Name(), o.sstMethod)
		t := time.Now()
		if err := n.Start(ctx); err != nil {
			return err
		}
		if err := n.WaitSynced(ctx); err != nil {
			return err
		}
		d.say("%s: Synced in %v, pid %d", n.Name(), since(t), n.PID())
	}
	return nil
}

// printTable prints every node's wsrep state as a table.
func printTable(ctx context.Context, d *demo, c *galeratest.Cluster) {
	fmt.Fprintf(d.out, "\n  %-6s %-8s %-15s %-5s %-12s %-5s\n", "NODE", "PID", "STATE", "SIZE", "STATUS", "READY")
	for _, n := range c.Nodes() {
		s, err := wsrep(ctx, n)
		if err != nil {
			fmt.Fprintf(d.out, "  %-6s %-8d %v\n", n.Name(), n.PID(), err)
			continue
		}
		fmt.Fprintf(d.out, "  %-6s %-8d %-15s %-5s %-12s %-5s\n", n.Name(), n.PID(), s.State, s.ClusterSize, s.ClusterStatus, s.Ready)
	}
	fmt.Fprintln(d.out)
}

func wsrep(ctx context.Context, n *galeratest.Node) (galeratest.WsrepState, error) {
	if !n.Running() {
		return galeratest.WsrepState{}, errors.New("not running")
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return n.Wsrep(ctx)
}

// compare checks that every node holds the same tables, by CHECKSUM TABLE.
func compare(ctx context.Context, d *demo, c *galeratest.Cluster) error {
	first, err := c.Node(1).Checksums(ctx)
	if err != nil {
		return err
	}
	for _, n := range c.Nodes()[1:] {
		sums, err := n.Checksums(ctx)
		if err != nil {
			return err
		}
		if err := galeratest.CompareChecksums(first, sums); err != nil {
			return fmt.Errorf("node1 and %s differ: %w", n.Name(), err)
		}
	}
	d.say("CHECKSUM TABLE: all %d user tables are identical on all %d nodes", len(first), len(c.Nodes()))
	return nil
}

func watch(ctx context.Context, d *demo, c *galeratest.Cluster, o options) error {
	var deadline <-chan time.Time
	if o.seconds > 0 {
		d.say("cluster is up; printing its state every %v for %ds (Ctrl-C to stop sooner)", o.interval, o.seconds)
		deadline = time.After(time.Duration(o.seconds) * time.Second)
	} else {
		d.say("cluster is up; printing its state every %v until Ctrl-C", o.interval)
	}
	tick := time.NewTicker(o.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(d.out)
			d.say("interrupted")
			return nil
		case <-deadline:
			d.say("%ds are up", o.seconds)
			return nil
		case <-tick.C:
		}
		var parts []string
		for _, n := range c.Nodes() {
			s, err := wsrep(ctx, n)
			if err != nil {
				parts = append(parts, fmt.Sprintf("%s: %v", n.Name(), err))
				continue
			}
			parts = append(parts, fmt.Sprintf("%s %s size=%s %s ready=%s", n.Name(), s.State, s.ClusterSize, s.ClusterStatus, s.Ready))
		}
		d.say("%s", strings.Join(parts, " | "))
	}
}

func shutdown(d *demo, c *galeratest.Cluster) error {
	var pids []string
	for i := len(c.Nodes()); i >= 1; i-- {
		if pid := c.Node(i).PID(); pid != 0 {
			pids = append(pids, fmt.Sprintf("node%d=%d", i, pid))
		}
	}
	d.say("stopping every node, last first, by PID (SIGTERM): %s", strings.Join(pids, " "))
	t := time.Now()
	err := c.Close()
	if err != nil {
		return fmt.Errorf("stop cluster: %w", err)
	}
	if left := c.Leftovers(); len(left) > 0 {
		return fmt.Errorf("processes still alive after stop: %v", left)
	}
	d.say("all stopped in %v; nothing left running", since(t))
	if _, err := os.Stat(c.Dir()); err == nil {
		d.say("kept %s (error logs: %s/node*/error.log)", c.Dir(), c.Dir())
	}
	return nil
}

func isStockMethod(m string) bool {
	switch m {
	case "rsync", "rsync_wan", "mariabackup", "mysqldump":
		return true
	}
	return false
}

// exeDir is the directory of this binary: make build puts the
// wsrep_sst_native-* links beside it.
func exeDir() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find own executable: %w", err)
	}
	exe, err = filepath.EvalSymlinks(exe)
	if err != nil {
		return "", fmt.Errorf("find own executable: %w", err)
	}
	return filepath.Dir(exe), nil
}

func since(t time.Time) time.Duration { return time.Since(t).Round(10 * time.Millisecond) }
