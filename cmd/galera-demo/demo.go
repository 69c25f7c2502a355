package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/galera-supervisor/galera-supervisor/sst/donorlock"
	"github.com/galera-supervisor/galera-supervisor/supervisor/galeratest"
)

// The demo's three nodes and how each one comes up.
const (
	nodes      = 3
	node2SST   = "native-copy"
	node3SST   = "native-backup"
	supervisor = "galera-supervisor"
)

// demo carries one run: its output, clock, cluster and what it saw.
type demo struct {
	out   io.Writer
	tty   bool
	t0    time.Time
	o     options
	bin   string // dir of galera-supervisor and the wsrep_sst_native-* links
	c     *galeratest.Cluster
	socks map[int]*notifySocket // by node number
	seen  seen
}

func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "[%6.1fs] %s\n", time.Since(d.t0).Seconds(), fmt.Sprintf(format, args...))
}

func run(ctx context.Context, o options, out io.Writer) (err error) {
	d := &demo{out: out, tty: isTerminal(out), t0: time.Now(), o: o, socks: map[int]*notifySocket{}, seen: seen{}}
	if err := galeratest.Check(); err != nil {
		return fmt.Errorf("cannot start real nodes: %w", err)
	}
	if d.bin, err = binDir(); err != nil {
		return err
	}
	cfg := galeratest.Config{
		Nodes:     nodes,
		SSTMethod: node2SST,
		Keep:      o.keep,
		// native-backup logs in to the donor to run mariadb-backup.
		Mysqld: map[string]string{"wsrep_sst_auth": galeratest.User + ":" + galeratest.Password},
		// mariadbd, below the supervisor, finds wsrep_sst_native-* on its PATH.
		PathPrepend: []string{d.bin},
	}
	if o.verbose {
		cfg.Logf = func(format string, args ...any) { d.say(format, args...) }
	}

	fmt.Fprintf(out, "galera-demo: %d MariaDB Galera nodes on loopback, each run by %s (%s),\n"+
		"as a systemd unit's ExecStart; this demo listens on each node's NOTIFY_SOCKET as systemd would.\n",
		nodes, supervisor, filepath.Join(d.bin, supervisor))
	d.say("reserving ports, writing configs, mariadb-install-db for node1 ...")
	d.c, err = galeratest.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := d.shutdown(); err == nil {
			err = cerr
		}
	}()
	n3 := d.c.Node(3)
	if err := n3.SetSSTMethod(node3SST); err != nil {
		return err
	}
	if err := n3.SetMysqld(map[string]string{"wsrep_sst_donor": d.c.Node(1).Name()}); err != nil {
		return err
	}
	fmt.Fprintf(out, "Cluster %s in %s\n", d.c.Name(), d.c.Dir())
	for _, n := range d.c.Nodes() {
		fmt.Fprintf(out, "  %s  client 127.0.0.1:%-5d  gmcast :%-5d  IST :%-5d  SST :%-5d  %s\n",
			n.Name(), n.Port, n.GmcastPort, n.ISTPort, n.SSTPort, n.ConfigFile)
	}
	fmt.Fprintln(out)

	err = d.up(ctx)
	if errors.Is(err, context.Canceled) {
		d.say("interrupted")
		return nil
	}
	if err != nil {
		return err
	}
	d.printTrees()
	d.printTable(ctx)
	if err := d.compare(ctx); err != nil {
		return err
	}
	return d.watch(ctx)
}

// up brings the three nodes up, each under its supervisor, and prints the
// summary of node3's join.
func (d *demo) up(ctx context.Context) error {
	n1, n2, n3 := d.c.Node(1), d.c.Node(2), d.c.Node(3)
	d.say("node1: %s run --wsrep-new-cluster: bootstraps a new cluster ...", supervisor)
	if _, err := d.start(ctx, n1, "--wsrep-new-cluster"); err != nil {
		return err
	}

	d.say("node1: loading %s into bench.t and sample tables ...", formatSize(d.o.data))
	t := time.Now()
	if err := n1.CreateSampleTables(ctx); err != nil {
		return err
	}
	if err := n1.LoadData(ctx, d.o.data); err != nil {
		return err
	}
	rows, _ := n1.QueryString(ctx, "SELECT COUNT(*) FROM bench.t")
	d.say("node1: loaded %s rows in %v", rows, since(t))

	d.say("node2: %s run: joins with an EMPTY datadir by SST (%s) ...", supervisor, node2SST)
	if _, err := d.start(ctx, n2); err != nil {
		return err
	}

	d.say("node3: %s run: joins with an EMPTY datadir by SST (%s, donor node1) ...", supervisor, node3SST)
	donorOff := logSize(n1.ErrorLog)
	joinerOff := logSize(n3.ErrorLog)
	start := time.Now()
	lines, err := d.start(ctx, n3)
	if err != nil {
		return err
	}
	s := summary{Joiner: n3.Name(), Method: node3SST, Donor: n1.Name(), Join: lines.ready.Sub(start)}
	if !s.parseJoinerLog(readFrom(n3.ErrorLog, joinerOff)) {
		s.fromStatus(lines.all)
	}
	s.Lock, s.LockErr = donorlock.Find(readFrom(n1.ErrorLog, donorOff), n1.DataDir, start.Add(-time.Second))
	fmt.Fprintf(d.out, "\n%s\n\n", s.String())
	return nil
}

// joinLog is what a node's supervisor said while it started.
type joinLog struct {
	all   []statusLine
	ready time.Time
}

// start runs node n under galera-supervisor and waits for its READY=1,
// showing its STATUS= lines: node3's as a bar, the others' when the phase
// changes.
func (d *demo) start(ctx context.Context, n *galeratest.Node, args ...string) (joinLog, error) {
	sock, err := listenNotify(filepath.Join(n.Dir, "notify.sock"))
	if err != nil {
		return joinLog{}, fmt.Errorf("%s: %w", n.Name(), err)
	}
	d.socks[n.N] = sock
	ch := make(chan statusLine, 256)
	unsub := sock.subscribe(ch)
	defer unsub()

	// env(1) execs the supervisor, which keeps the PID the harness watches.
	argv := []string{"/usr/bin/env", "NOTIFY_SOCKET=" + sock.path, filepath.Join(d.bin, supervisor), "run",
		"--defaults-file=" + n.ConfigFile, "--runtime-dir=" + filepath.Join(n.Dir, "run"), "--health-interval=200ms"}
	argv = append(argv, args...)
	t0 := time.Now()
	if err := n.StartProgram(ctx, true, argv...); err != nil {
		return joinLog{}, err
	}
	readyc := make(chan error, 1)
	var ready time.Time
	go func() {
		var err error
		ready, err = sock.waitReady(ctx, n.Exited())
		readyc <- err
	}()

	var jl joinLog
	var bar *barPrinter
	if n.N == 3 {
		bar = &barPrinter{w: d.out, tty: d.tty, every: min(d.o.interval, time.Second), label: n.Name() + " SST"}
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var lastKey string
	var last sstStatus
	var inSST bool
	for {
		select {
		case err := <-readyc:
			d.drain(ch, &jl, bar, &lastKey, n)
			if bar != nil {
				bar.finish()
			}
			if err != nil {
				if errors.Is(err, context.Canceled) {
					return jl, err
				}
				if errors.Is(err, errExited) {
					err = fmt.Errorf("%s %s (%s)", supervisor, err, exitString(n.Wait(context.Background())))
				}
				return jl, d.failed(n, err)
			}
			jl.ready = ready
			d.record(n)
			d.say("%s: READY=1 after %v, with %d EXTEND_TIMEOUT_USEC before it; %s pid %d -> mariadbd pid %d; STATUS=%s",
				n.Name(), ready.Sub(t0).Round(10*time.Millisecond), sock.Extends(), supervisor, n.PID(), d.mariadbd(n), sock.Status())
			return jl, nil
		case l := <-ch:
			jl.all = append(jl.all, l)
			st, ok := parseStatus(l.Text)
			if bar != nil && ok {
				last, inSST = st, true
				bar.update(st, l.At)
				continue
			}
			if bar != nil && inSST {
				bar.finish()
				inSST = false
			}
			d.phase(n, l.Text, &lastKey)
		case now := <-tick.C:
			// The SST's processes, so that the cleanup can check them.
			d.record(n)
			d.record(d.c.Node(1))
			if bar != nil && bar.tty && inSST {
				bar.update(last, now)
			}
		}
	}
}

// drain takes the STATUS= lines still queued when READY=1 came.
func (d *demo) drain(ch <-chan statusLine, jl *joinLog, bar *barPrinter, lastKey *string, n *galeratest.Node) {
	for {
		select {
		case l := <-ch:
			jl.all = append(jl.all, l)
			if _, ok := parseStatus(l.Text); ok && bar != nil {
				continue
			}
			if bar != nil {
				bar.finish()
			}
			d.phase(n, l.Text, lastKey)
		default:
			return
		}
	}
}

// phase prints a STATUS= line when it starts a new phase: "receiving SST
// 10%" and "receiving SST 20%" are one.
func (d *demo) phase(n *galeratest.Node, line string, lastKey *string) {
	key := line
	if st, ok := parseStatus(line); ok {
		key = st.Phase
	}
	if key == *lastKey {
		return
	}
	*lastKey = key
	d.say("%s: STATUS=%s", n.Name(), line)
}

// failed explains a node that did not become ready: the supervisor's last
// lines and the server's.
func (d *demo) failed(n *galeratest.Node, err error) error {
	sup, _ := os.ReadFile(filepath.Join(n.Dir, "stdout.log"))
	return fmt.Errorf("%s: %v; %s said (%s):\n%s\n%s's error log %s ends:\n%s", n.Name(), err,
		supervisor, filepath.Join(n.Dir, "stdout.log"), lastLines(string(sup), 15), n.Name(), n.ErrorLog, n.LogTail(20))
}

// record remembers n's processes.
func (d *demo) record(n *galeratest.Node) {
	if pid := n.PID(); pid != 0 {
		ps, _ := tree(allProcs(), pid)
		d.seen.add(ps...)
	}
}

// mariadbd is the PID of the server below n's supervisor, 0 when none.
func (d *demo) mariadbd(n *galeratest.Node) int {
	ps, _ := tree(allProcs(), n.PID())
	for _, p := range ps {
		if p.Comm == "mariadbd" && p.PID != n.PID() {
			return p.PID
		}
	}
	return 0
}

// printTrees shows that every node runs under its supervisor: each
// supervisor with what runs below it, and the STATUS= it gives systemd.
func (d *demo) printTrees() {
	fmt.Fprintf(d.out, "Every node runs under %s (what systemd would see in each unit's cgroup):\n", supervisor)
	ps := allProcs()
	for _, n := range d.c.Nodes() {
		t, depth := tree(ps, n.PID())
		if len(t) == 0 {
			fmt.Fprintf(d.out, "  %s  not running\n", n.Name())
			continue
		}
		d.seen.add(t...)
		for i, p := range t {
			prefix := fmt.Sprintf("  %-6s", n.Name())
			if i > 0 {
				prefix = "        " + strings.Repeat("   ", depth[i]-1) + "└─ "
			}
			fmt.Fprintf(d.out, "%s%s  pid %d\n", prefix, describe(p), p.PID)
		}
		if s := d.socks[n.N]; s != nil {
			fmt.Fprintf(d.out, "        STATUS=%s\n", s.Status())
		}
	}
	fmt.Fprintln(d.out)
}

// printTable prints every node's wsrep state as a table.
func (d *demo) printTable(ctx context.Context) {
	fmt.Fprintf(d.out, "  %-6s %-8s %-15s %-5s %-12s %-5s\n", "NODE", "PID", "STATE", "SIZE", "STATUS", "READY")
	for _, n := range d.c.Nodes() {
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
func (d *demo) compare(ctx context.Context) error {
	first, err := d.c.Node(1).Checksums(ctx)
	if err != nil {
		return err
	}
	for _, n := range d.c.Nodes()[1:] {
		sums, err := n.Checksums(ctx)
		if err != nil {
			return err
		}
		if err := galeratest.CompareChecksums(first, sums); err != nil {
			return fmt.Errorf("node1 and %s differ: %w", n.Name(), err)
		}
	}
	d.say("CHECKSUM TABLE: all %d user tables are identical on all %d nodes", len(first), len(d.c.Nodes()))
	return nil
}

func (d *demo) watch(ctx context.Context) error {
	var deadline <-chan time.Time
	if d.o.seconds > 0 {
		d.say("cluster is up; printing its state every %v for %ds (Ctrl-C to stop sooner)", d.o.interval, d.o.seconds)
		deadline = time.After(time.Duration(d.o.seconds) * time.Second)
	} else {
		d.say("cluster is up; printing its state every %v until Ctrl-C", d.o.interval)
	}
	tick := time.NewTicker(d.o.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(d.out)
			d.say("interrupted")
			return nil
		case <-deadline:
			d.say("%ds are up", d.o.seconds)
			return nil
		case <-tick.C:
		}
		var parts []string
		for _, n := range d.c.Nodes() {
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

// shutdown stops every supervisor, last node first, kills by PID whatever
// the demo saw that is still alive, removes the directories and scans
// /proc for anything left.
func (d *demo) shutdown() error {
	var errs []error
	for i := nodes; i >= 1; i-- {
		n := d.c.Node(i)
		pid := n.PID()
		if pid == 0 {
			continue
		}
		d.record(n)
		d.say("%s: SIGTERM to %s pid %d (it stops mariadbd pid %d) ...", n.Name(), supervisor, pid, d.mariadbd(n))
		t := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		err := n.Stop(ctx)
		werr := n.Wait(ctx)
		cancel()
		if err != nil {
			errs = append(errs, err)
		}
		last := ""
		if s := d.socks[i]; s != nil {
			last = "; last STATUS=" + s.Status()
		}
		d.say("%s: %s exited (%s) in %v%s", n.Name(), supervisor, exitString(werr), since(t), last)
	}
	if err := d.c.Close(); err != nil {
		errs = append(errs, fmt.Errorf("stop cluster: %w", err))
	}
	for _, s := range d.socks {
		s.Close()
	}
	if left := d.seen.kill(); len(left) > 0 {
		errs = append(errs, fmt.Errorf("still alive after the stop, killed: %s", procList(left)))
	}
	dir := d.c.Dir()
	left := mentioning(allProcs(), dir)
	for _, pid := range d.c.Leftovers() {
		if p, err := readProc(pid); err == nil {
			left = append(left, p)
		}
	}
	if len(left) > 0 {
		errs = append(errs, fmt.Errorf("process scan: still running: %s", procList(left)))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	d.say("process scan: none of the %d processes this demo saw (%s) is alive, and none names %s: nothing left running",
		len(d.seen), d.seen.names(), dir)
	if _, err := os.Stat(dir); err == nil {
		d.say("kept %s (logs: %s/node*/error.log, %s/node*/stdout.log)", dir, dir, dir)
	} else {
		d.say("removed %s", dir)
	}
	return nil
}

func procList(ps []proc) string {
	var s []string
	for _, p := range ps {
		s = append(s, fmt.Sprintf("%s pid %d", describe(p), p.PID))
	}
	return strings.Join(s, ", ")
}

func exitString(err error) string {
	var ee interface{ ExitCode() int }
	switch {
	case err == nil:
		return "exit 0"
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return fmt.Sprintf("exit %d", ee.ExitCode())
	}
	return err.Error()
}

// binDir is the directory of this binary, where make build puts
// galera-supervisor and its wsrep_sst_native-* links.
func binDir() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find own executable: %w", err)
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return "", fmt.Errorf("find own executable: %w", err)
	}
	dir := filepath.Dir(exe)
	for _, name := range []string{supervisor, "wsrep_sst_" + node2SST, "wsrep_sst_" + node3SST} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return "", fmt.Errorf("the demo runs %s beside it (make build puts it there): %w", name, err)
		}
	}
	return dir, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func logSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// readFrom returns path's content from off on; nil when unreadable.
func readFrom(path string, off int64) []byte {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) < off {
		return b
	}
	return b[off:]
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(ls[max(0, len(ls)-n):], "\n")
}

func since(t time.Time) time.Duration { return time.Since(t).Round(10 * time.Millisecond) }

// names counts the remembered processes by name, e.g. "3 galera-supervisor, 3 mariadbd".
func (s seen) names() string {
	count := map[string]int{}
	for _, p := range s {
		count[p.name()]++
	}
	var keys []string
	for k := range count {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		out = append(out, fmt.Sprintf("%d %s", count[k], k))
	}
	return strings.Join(out, ", ")
}
