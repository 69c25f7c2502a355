package main

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/galera-supervisor/galera-supervisor/sst/donorlock"
	"github.com/galera-supervisor/galera-supervisor/supervisor/galeratest"
)

type bench struct {
	cfg            *config
	specs          []method
	stdout, stderr io.Writer

	cluster *galeratest.Cluster
	report  Report
	// sstDir, with -baseline, is first in mariadbd's PATH: its
	// wsrep_sst_native-* links point into -bin or -baseline for each run.
	sstDir string
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.stderr, "[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// begin checks that the bench runs as root, makes the output dirs and
// starts the report.
func (b *bench) begin() error {
	if os.Geteuid() != 0 {
		return errors.New("galera-bench must run as root: it starts mariadbd as user mysql, drops the page cache and creates network namespaces")
	}
	if err := os.MkdirAll(filepath.Join(b.cfg.out, "logs"), 0o755); err != nil {
		return fmt.Errorf("create output dir: %w", err)
	}
	host, _ := os.Hostname()
	b.report = Report{Started: time.Now().UTC(), Host: host, SizeBytes: b.cfg.size, PauseSeconds: b.cfg.pause.Seconds()}
	return nil
}

func (b *bench) run(ctx context.Context) (err error) {
	if err := b.begin(); err != nil {
		return err
	}
	b.report.Tables = b.cfg.tables
	if b.cfg.tables > 0 {
		b.report.SizeBytes = 0
		b.report.Databases = min(b.cfg.databases, b.cfg.tables)
	}
	names := make([]string, len(b.specs))
	for i, m := range b.specs {
		names[i] = m.Name
	}
	b.logf("methods: %s; cp -r: %t; dataset %s; cold cache: %t; rest before each run: %s", strings.Join(names, ", "), b.cfg.cp, b.dataset(), b.cfg.cold, b.cfg.pause)

	if b.cfg.baseline != "" {
		b.report.Baseline = b.cfg.baseline
		// Under /var/tmp, as the nodes: user mysql must traverse it.
		if b.sstDir, err = os.MkdirTemp("/var/tmp", "galera-bench-sst-"); err != nil {
			return fmt.Errorf("create SST links dir: %w", err)
		}
		defer os.RemoveAll(b.sstDir)
		if err := os.Chmod(b.sstDir, 0o755); err != nil {
			return fmt.Errorf("create SST links dir: %w", err)
		}
		if err := b.useSSTBinaries(b.cfg.binDir); err != nil {
			return err
		}
	}
	c, err := galeratest.New(ctx, b.clusterConfig("rsync", "gcache.size=256M"))
	if err != nil {
		return fmt.Errorf("create cluster: %w", err)
	}
	b.cluster = c
	defer func() {
		b.logf("stopping the cluster")
		if ctx.Err() != nil {
			// Interrupted: a donor or joiner mid-SST ignores SIGTERM for as
			// long as its SST runs, and nothing on them is worth keeping.
			for i := 2; i >= 1; i-- {
				if kerr := c.Node(i).Kill(); kerr != nil {
					b.logf("warning: kill node%d: %v", i, kerr)
				}
			}
		}
		cerr := c.Close()
		if cerr != nil && err == nil {
			err = fmt.Errorf("stop cluster: %w", cerr)
		}
		// Only a cleanly stopped donor is worth starting from again.
		if b.cfg.reuse && cerr == nil && ctx.Err() == nil && b.report.PayloadBytes > 0 {
			if serr := b.saveDonor(); serr != nil {
				b.logf("warning: %v", serr)
			}
		}
		// The harness removes a dir it made; in a -base-dir only the node dirs are ours.
		if b.cfg.keep {
			b.logf("kept node dirs under %s", c.Dir())
		} else if b.cfg.baseDir != "" {
			for i := 1; i <= 2; i++ {
				os.RemoveAll(c.Node(i).Dir)
			}
		}
	}()

	n1 := c.Node(1)
	reused := b.cfg.reuse && b.restoreDonor()
	b.logf("bootstrapping node1 in %s", n1.Dir)
	if err := c.Bootstrap(ctx); err != nil {
		return fmt.Errorf("bootstrap node1: %w", err)
	}
	if !reused {
		load := b.load
		if b.cfg.tables > 0 {
			load = func(ctx context.Context) error { return b.loadTables(ctx, b.cfg.tables, b.cfg.databases) }
		}
		if err := load(ctx); err != nil {
			return err
		}
	}
	if err := b.settle(ctx); err != nil {
		return err
	}
	for _, q := range probeSchema {
		if err := n1.Exec(ctx, q); err != nil {
			return fmt.Errorf("create probe table on node1: %w", err)
		}
	}
	if err := b.probeFloor(ctx, 5*time.Second); err != nil {
		return err
	}
	b.report.PayloadBytes, b.report.DatadirBytes = treeSize(n1.DataDir)
	b.report.Files = fileCount(n1.DataDir)
	b.logf("donor datadir %s in %d files, payload without galera.cache %s", human(b.report.DatadirBytes), b.report.Files, human(b.report.PayloadBytes))
	if b.cfg.tables > 0 && b.cfg.floorFiles > 0 {
		f, err := measureFloor(filepath.Dir(n1.Dir), b.cfg.floorFiles)
		if err != nil {
			return err
		}
		b.report.Floor = &f
		b.logf("creating a %d KiB file on this disk: %.3f ms (%.3f ms with one syncfs at the end), over %d files", f.FileBytes>>10, f.CreateMs, f.CreateSyncMs, f.Files)
	}

	if err := b.rounds(ctx); err != nil {
		return err
	}
	b.report.Targets = append(Evaluate(b.report.Results), EvaluateFiles(b.report.Results, b.cfg.tables)...)
	b.report.Targets = append(b.report.Targets, EvaluateBaseline(b.report.Results)...)
	fmt.Fprintln(b.stdout)
	WriteTable(b.stdout, b.report.Results)
	fmt.Fprintln(b.stdout)
	WriteTargets(b.stdout, b.report.Targets)
	fmt.Fprintln(b.stdout)
	WritePerFile(b.stdout, &b.report)
	fmt.Fprintf(b.stdout, "\nlock probe noise floor (idle donor, longest write): %.3f s\n", b.report.ProbeIdleMaxS)
	return b.write()
}

// rounds runs every job -runs times and keeps each method's median run in
// the report.
func (b *bench) rounds(ctx context.Context) error {
	// Rounds run every method once each, so that drift in the machine's load
	// spreads over all methods; each method's median run is reported. Each
	// round starts one method later: on this kind of VM a run is slower just
	// after another wrote gigabytes, so no method may always follow the same
	// one (with as many rounds as methods, each runs once in each position).
	// A METHOD@baseline run stays next to METHOD's, the two alternating
	// which goes first, so that they compare in the same window.
	runs := map[string][]Result{}
	var order []string
	record := func(r Result) {
		if _, ok := runs[r.Method]; !ok {
			order = append(order, r.Method)
		}
		runs[r.Method] = append(runs[r.Method], r)
		b.log(r)
	}
	var jobs [][]func() Result
	if b.cfg.cp {
		jobs = append(jobs, []func() Result{func() Result { return b.cpRun(ctx) }})
	}
	for _, m := range b.specs {
		job := func() Result { return b.join(ctx, m, b.cluster.Node(2).Wipe) }
		if m.BinDir != "" && len(jobs) > 0 {
			jobs[len(jobs)-1] = append(jobs[len(jobs)-1], job)
			continue
		}
		jobs = append(jobs, []func() Result{job})
	}
	for round := 1; round <= b.cfg.runs; round++ {
		if b.cfg.runs > 1 {
			b.logf("round %d of %d", round, b.cfg.runs)
		}
		for _, job := range schedule(jobs, round) {
			r := job()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			record(r)
		}
	}
	// The table keeps the methods' usual order, whichever ran first.
	sort.SliceStable(order, func(i, j int) bool { return b.rank(order[i]) < b.rank(order[j]) })
	for _, name := range order {
		b.report.Results = append(b.report.Results, median(runs[name]))
	}
	return nil
}

func (b *bench) log(r Result) {
	switch {
	case !r.OK:
		b.logf("%s FAILED: %s", r.Method, r.Err)
	case r.Method == cpMethod:
		b.logf("%s: %.1f s, %.0f MB/s", r.Method, r.Seconds, r.MBps)
	default:
		logLock := "-"
		if r.LockLogS >= 0 {
			logLock = fmt.Sprintf("%.2f s", r.LockLogS)
		}
		b.logf("%s: %.1f s to Synced, %.0f MB/s, donor write lock %.2f s at +%.1f s (log: %s; donor state +%.1f..+%.1f s; longest write overall %.2f s at +%.1f s), SST RSS %.1f MiB",
			r.Method, r.Seconds, r.MBps, r.LockProbeS, r.LockProbeAtS, logLock, r.DonorFromS, r.DonorToS, r.ProbeMaxAnyS, r.ProbeMaxAnyAtS, r.RSSPeakMiB)
	}
}

// load fills node1 with bench.t, showing t.ibd's growth.
func (b *bench) load(ctx context.Context) error {
	n1 := b.cluster.Node(1)
	b.logf("loading %s into bench.t on node1", human(b.cfg.size))
	start := time.Now()
	stop := b.progress(ctx, "load", b.cfg.size, func() int64 {
		fi, err := os.Stat(filepath.Join(n1.DataDir, "bench", "t.ibd"))
		if err != nil {
			return 0
		}
		return fi.Size()
	})
	err := n1.LoadData(ctx, b.cfg.size)
	stop()
	if err != nil {
		return fmt.Errorf("load %s into node1: %w", human(b.cfg.size), err)
	}
	b.report.LoadSeconds = time.Since(start).Seconds()
	b.logf("loaded in %.0f s", b.report.LoadSeconds)
	return nil
}

// donorCache is where -reuse keeps node1's loaded datadir between runs.
func (b *bench) donorCache() (dir, marker string) {
	dir = filepath.Join(b.cluster.Dir(), "donor-cache")
	return dir, filepath.Join(dir, "size")
}

// restoreDonor puts a cached datadir loaded with the same -size in place of
// the fresh one the harness made.
func (b *bench) restoreDonor() bool {
	dir, marker := b.donorCache()
	want := b.datasetKey()
	if got, err := os.ReadFile(marker); err != nil || strings.TrimSpace(string(got)) != want {
		if err == nil {
			b.logf("donor cache %s holds dataset %s, not %s: loading afresh", dir, strings.TrimSpace(string(got)), want)
		}
		return false
	}
	n1 := b.cluster.Node(1)
	if err := os.RemoveAll(n1.DataDir); err != nil {
		b.logf("warning: remove %s: %v", n1.DataDir, err)
		return false
	}
	if err := os.Rename(filepath.Join(dir, "data"), n1.DataDir); err != nil {
		b.logf("warning: restore donor cache: %v", err)
		return false
	}
	os.Remove(marker)
	b.report.Notes = append(b.report.Notes, "node1's datadir was reused from "+dir)
	b.logf("reusing node1's datadir loaded with %s from %s", want, dir)
	return true
}

// datasetKey names what node1 was loaded with, for the donor cache: the
// -size in bytes (as before), or the tables and schemas.
func (b *bench) datasetKey() string {
	if b.cfg.tables > 0 {
		return fmt.Sprintf("tables=%d/%d", b.cfg.tables, b.cfg.databases)
	}
	return fmt.Sprint(b.cfg.size)
}

// saveDonor moves the stopped node1's datadir into the donor cache.
func (b *bench) saveDonor() error {
	dir, marker := b.donorCache()
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create donor cache: %w", err)
	}
	if err := os.Rename(b.cluster.Node(1).DataDir, filepath.Join(dir, "data")); err != nil {
		return fmt.Errorf("save donor cache: %w", err)
	}
	if err := os.WriteFile(marker, []byte(b.datasetKey()+"\n"), 0o644); err != nil {
		return fmt.Errorf("save donor cache: %w", err)
	}
	b.logf("kept node1's loaded datadir in %s for -reuse", dir)
	return nil
}

// settle writes bench.t's dirty pages out, as the baseline's load did, so
// that InnoDB's background flushing does not compete with the first run.
func (b *bench) settle(ctx context.Context) error {
	start := time.Now()
	db, err := b.cluster.Node(1).DB(ctx)
	if err != nil {
		return fmt.Errorf("connect to node1: %w", err)
	}
	defer db.Close()
	// FOR EXPORT holds a lock until UNLOCK TABLES in the same session.
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect to node1: %w", err)
	}
	defer conn.Close()
	if b.cfg.tables > 0 {
		// Thousands of tables: FLUSH TABLES ... FOR EXPORT would name each.
		// Files InnoDB writes during a run are sent again, under the lock.
		if err := b.flushDirty(ctx, conn); err != nil {
			return err
		}
	} else if _, err := conn.ExecContext(ctx, "FLUSH TABLES bench.t FOR EXPORT"); err != nil {
		b.logf("warning: node1: FLUSH TABLES bench.t FOR EXPORT: %v", err)
	}
	if _, err := conn.ExecContext(ctx, "UNLOCK TABLES"); err != nil {
		return fmt.Errorf("node1: UNLOCK TABLES: %w", err)
	}
	syscall.Sync()
	b.logf("flushed node1's dirty pages in %.1f s", time.Since(start).Seconds())
	return nil
}

// flushDirty has InnoDB write out its dirty pages, waiting up to two
// minutes, then puts its flushing back as it was.
func (b *bench) flushDirty(ctx context.Context, conn *sql.Conn) error {
	var pct string
	if err := conn.QueryRowContext(ctx, "SELECT @@GLOBAL.innodb_max_dirty_pages_pct").Scan(&pct); err != nil {
		return fmt.Errorf("node1: read innodb_max_dirty_pages_pct: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "SET GLOBAL innodb_max_dirty_pages_pct=0"); err != nil {
		return fmt.Errorf("node1: SET GLOBAL innodb_max_dirty_pages_pct=0: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "SET GLOBAL innodb_max_dirty_pages_pct="+pct)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var name string
		var dirty int64
		if err := conn.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'").Scan(&name, &dirty); err != nil {
			return fmt.Errorf("node1: read Innodb_buffer_pool_pages_dirty: %w", err)
		}
		if dirty <= 16 { // the statistics tables' background updates
			return nil
		}
		if time.Now().After(deadline) {
			b.logf("warning: node1 still has %d dirty pages after 2 minutes", dirty)
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// rest gives the disk -pause to finish the previous run's work: on a VM
// the host writes back the guest's gigabytes and discards after the guest
// calls them done, and a run started at once was 2-3 s slower (make bench).
func (b *bench) rest(ctx context.Context) {
	if b.cfg.pause <= 0 {
		return
	}
	syscall.Sync()
	select {
	case <-ctx.Done():
	case <-time.After(b.cfg.pause):
	}
}

// dropCaches syncs and drops the page cache, so the donor reads cold.
func (b *bench) dropCaches() bool {
	if !b.cfg.cold {
		return false
	}
	syscall.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
		b.logf("warning: drop page cache: %v (run is warm)", err)
		return false
	}
	return true
}

// cpRun copies the donor's live datadir with cp -r and syncs: the physical
// limit the issue compares native-copy against.
func (b *bench) cpRun(ctx context.Context) Result {
	r := Result{Method: cpMethod, LockLogS: -1}
	n1 := b.cluster.Node(1)
	dst := filepath.Join(filepath.Dir(n1.Dir), "cp-r-target")
	os.RemoveAll(dst)
	defer os.RemoveAll(dst)
	_, all := treeSize(n1.DataDir)
	r.PayloadBytes = all
	r.Files = fileCount(n1.DataDir)
	b.rest(ctx)
	r.Cold = b.dropCaches()
	b.logf("cp -r %s (%s) + sync", n1.DataDir, human(all))
	stop := b.progress(ctx, cpMethod, all, func() int64 { _, a := treeSize(dst); return a })
	start := time.Now()
	cmd := exec.CommandContext(ctx, "cp", "-r", n1.DataDir, dst)
	cmd.WaitDelay = 5 * time.Second
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err := cmd.Run()
	if err == nil {
		syscall.Sync()
	}
	r.Seconds = time.Since(start).Seconds()
	stop()
	if err != nil {
		r.Err = fmt.Sprintf("cp -r %s: %v: %s", n1.DataDir, err, strings.TrimSpace(errb.String()))
		return r
	}
	r.OK = true
	r.MBps = float64(r.PayloadBytes) / 1e6 / r.Seconds
	return r
}

// join prepares node2's datadir by reset (Wipe: empty) and joins it by m,
// measuring from the outside.
func (b *bench) join(ctx context.Context, m method, reset func() error) Result {
	r := Result{Method: m.Name, LockLogS: -1}
	n1, n2 := b.cluster.Node(1), b.cluster.Node(2)
	fail := func(format string, args ...any) Result {
		r.Err = fmt.Sprintf(format, args...)
		return r
	}
	if err := n2.Stop(ctx); err != nil {
		return fail("stop node2: %v", err)
	}
	if err := reset(); err != nil {
		return fail("prepare node2's datadir: %v", err)
	}
	for _, n := range []*galeratest.Node{n1, n2} {
		if err := n.SetSSTMethod(m.SST); err != nil {
			return fail("node%d: set wsrep_sst_method=%s: %v", n.N, m.SST, err)
		}
		if err := n.SetSST(m.sstOptions(b.cfg.sst)); err != nil {
			return fail("node%d: set [sst] options: %v", n.N, err)
		}
	}
	if b.sstDir != "" {
		dir := m.BinDir
		if dir == "" {
			dir = b.cfg.binDir
		}
		if err := b.useSSTBinaries(dir); err != nil {
			return fail("%v", err)
		}
	}
	r.PayloadBytes, _ = treeSize(n1.DataDir)
	r.Files = fileCount(n1.DataDir)
	logOff, joinerOff := fileSize(n1.ErrorLog), fileSize(n2.ErrorLog)
	b.rest(ctx)
	r.Cold = b.dropCaches()

	donorPID := n1.PID()
	cpu0 := cpuTicks(donorPID)
	lo0, _ := loRxBytes("/proc/net/dev")

	mctx, stopMeasure := context.WithCancel(ctx)
	var wg sync.WaitGroup
	sampler := newRSSSampler("/proc", map[string]int{"donor": donorPID, "joiner": 0})
	probe := &lockProbe{}
	db, err := n1.DB(ctx)
	if err != nil {
		stopMeasure()
		return fail("connect to node1 for the lock probe: %v", err)
	}
	defer db.Close()
	watch := &donorWatch{}
	var disk *diskSampler
	if b.cfg.delta {
		disk = newDiskSampler(n2.Dir)
		wg.Add(1)
		go func() { defer wg.Done(); disk.run(mctx, 250*time.Millisecond) }()
	}
	wg.Add(3)
	go func() { defer wg.Done(); sampler.run(mctx, 50*time.Millisecond) }()
	go func() { defer wg.Done(); probe.run(mctx, db, 10*time.Millisecond) }()
	go func() { defer wg.Done(); watch.run(mctx, db, 50*time.Millisecond) }()
	// Let the probe take its connection before the clock starts.
	time.Sleep(200 * time.Millisecond)

	b.logf("joining node2 by %s", m.Name)
	stopBar := b.progress(ctx, m.Name, r.PayloadBytes, func() int64 { p, _ := treeSize(n2.Dir); return p })
	start := time.Now()
	err = n2.Start(ctx)
	if err == nil {
		sampler.setSide("joiner", n2.PID())
		err = b.waitSynced(ctx, n2)
	}
	r.Seconds = time.Since(start).Seconds()
	stopBar()
	stopMeasure()
	wg.Wait()

	from, to := watch.window()
	if from.IsZero() {
		b.logf("warning: %s: never saw node1 in the Donor state; the lock column counts every probe write", m.Name)
	}
	probe.fill(&r, start, from, to)
	sampler.fill(&r)
	if disk != nil {
		r.ExtraDiskBytes = disk.peakExtra()
	}
	if jp := n2.PID(); jp > 0 {
		r.JoinerCPUS = float64(cpuTicks(jp)) / clockTicks
	}
	r.DonorCPUS = float64(cpuTicks(donorPID)-cpu0) / clockTicks
	if lo1, err := loRxBytes("/proc/net/dev"); err == nil && lo0 > 0 {
		r.LoBytes = lo1 - lo0
	}
	r.LockLogS = b.saveLogs(m.Name, n1.ErrorLog, logOff, n2.ErrorLog, joinerOff)
	if r.LockLogS < 0 {
		r.LockLogS = b.backupLog(m.Name, n1.DataDir, start)
	}

	if err != nil {
		// A joiner stopped mid-SST ignores SIGTERM until its SST script
		// ends; its datadir is thrown away anyway.
		if kerr := n2.Kill(); kerr != nil {
			b.logf("warning: kill node2: %v", kerr)
		}
		if ctx.Err() != nil {
			return fail("interrupted")
		}
		return fail("join node2 by %s: %v (logs in %s)", m.Name, err, filepath.Join(b.cfg.out, "logs"))
	}
	r.OK = true
	r.MBps = float64(r.PayloadBytes) / 1e6 / r.Seconds
	if b.cfg.tables > 0 {
		if k, err := countTables(ctx, n2); err != nil || k != b.cfg.tables {
			r.OK = false
			r.Err = fmt.Sprintf("node2 lists %d tenant tables after joining by %s, want %d (%v)", k, m.Name, b.cfg.tables, err)
		}
	}
	// Free node2's memory and disk before the next run.
	if err := n2.Stop(ctx); err != nil {
		b.logf("warning: stop node2 after %s: %v", m.Name, err)
	}
	return r
}

// useSSTBinaries points the links in sstDir at dir's SST binaries: the
// donor's mariadbd, started once, finds them there on its PATH as the
// joiner's does. Each link is replaced by a rename, never missing.
func (b *bench) useSSTBinaries(dir string) error {
	for _, n := range nativeSSTs {
		link := filepath.Join(b.sstDir, n)
		tmp := link + ".new"
		os.Remove(tmp)
		if err := os.Symlink(filepath.Join(dir, n), tmp); err != nil {
			return fmt.Errorf("link %s to %s: %w", n, dir, err)
		}
		if err := os.Rename(tmp, link); err != nil {
			return fmt.Errorf("link %s to %s: %w", n, dir, err)
		}
	}
	return nil
}

// waitSynced polls node2's state every 100 ms (the harness's WaitSynced runs
// alongside to notice a dead mariadbd early).
func (b *bench) waitSynced(ctx context.Context, n *galeratest.Node) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.timeout)
	defer cancel()
	harness := make(chan error, 1)
	go func() { harness <- n.WaitSynced(ctx) }()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	var db *sql.DB
	defer func() {
		if db != nil {
			db.Close()
		}
	}()
	for {
		select {
		case err := <-harness:
			if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("not Synced after %v: %w", b.cfg.timeout, err)
			}
			return err
		case <-t.C:
		}
		if db == nil {
			var err error
			if db, err = n.DB(ctx); err != nil {
				db = nil
				continue
			}
		}
		var name, state string
		qctx, qcancel := context.WithTimeout(ctx, time.Second)
		err := db.QueryRowContext(qctx, "SHOW GLOBAL STATUS LIKE 'wsrep_local_state_comment'").Scan(&name, &state)
		qcancel()
		if err == nil && state == "Synced" {
			return nil
		}
	}
}

// saveLogs copies what the donor's and the joiner's error logs gained during
// this join into the output dir, and returns the lock span the donor's part
// shows (-1: none).
func (b *bench) saveLogs(name, donorLog string, donorOff int64, joinerLog string, joinerOff int64) float64 {
	dir := filepath.Join(b.cfg.out, "logs")
	safe := b.logName(name)
	donor := tail(donorLog, donorOff)
	os.WriteFile(filepath.Join(dir, safe+".donor.log"), donor, 0o644)
	os.WriteFile(filepath.Join(dir, safe+".joiner.log"), tail(joinerLog, joinerOff), 0o644)
	if donor == nil {
		return -1
	}
	if d, ok := donorlock.ErrorLogSpan(bytes.NewReader(donor)); ok {
		return d.Seconds()
	}
	return -1
}

// tail returns path's content from off on (nil when unreadable).
func tail(path string, off int64) []byte {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() < off {
		off = 0 // the log was replaced since
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil
	}
	return b
}

// backupLog finds the mariadb-backup log the donor wrote during this join
// (the stock script's and native-backup's names), saves it and returns the
// BLOCK_DDL..END span it shows (-1: none).
func (b *bench) backupLog(name, datadir string, since time.Time) float64 {
	path, data, err := donorlock.FindBackupLog(datadir, since)
	if err != nil {
		return -1
	}
	safe := b.logName(name)
	os.WriteFile(filepath.Join(b.cfg.out, "logs", safe+".donor."+filepath.Base(path)), data, 0o644)
	if d, ok := donorlock.BackupLogSpan(bytes.NewReader(data)); ok {
		return d.Seconds()
	}
	return -1
}

// probeFloor runs the lock probe on the idle donor: the longest write with
// no SST running is the noise under every lock number.
func (b *bench) probeFloor(ctx context.Context, d time.Duration) error {
	db, err := b.cluster.Node(1).DB(ctx)
	if err != nil {
		return fmt.Errorf("connect to node1 for the lock probe: %w", err)
	}
	defer db.Close()
	p := &lockProbe{}
	pctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	p.run(pctx, db, 10*time.Millisecond)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var r Result
	p.fill(&r, time.Now(), time.Time{}, time.Time{})
	b.report.ProbeIdleMaxS = r.LockProbeS
	b.report.ProbeIdleWrites = r.ProbeWrites
	b.logf("lock probe on the idle donor: longest of %d writes in %v took %.3f s (the noise floor of the lock column)", r.ProbeWrites, d, r.LockProbeS)
	return nil
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

func cpuTicks(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	s, err := readStat("/proc", pid)
	if err != nil {
		return 0
	}
	return s.CPUTicks
}

func human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for v := n / unit; v >= unit; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// clusterConfig is the two nodes' setup, as the baseline's: 512M redo
// log, relaxed flushing, 2 appliers.
func (b *bench) clusterConfig(sstMethod string, provider ...string) galeratest.Config {
	hlog := func(string, ...any) {}
	if b.cfg.verbose {
		hlog = b.logf
	}
	return galeratest.Config{
		Dir:        b.cfg.baseDir,
		Nodes:      2,
		SSTMethod:  sstMethod,
		SST:        map[string]string{"time": "1"},
		BufferPool: b.cfg.bufferPool,
		Mysqld: map[string]string{
			"innodb_log_file_size":           "512M",
			"innodb_flush_log_at_trx_commit": "2",
			"wsrep_slave_threads":            "2",
			// mariadb-backup runs as OS user mysql, which has no account;
			// the harness's root has an empty password.
			"wsrep_sst_auth": galeratest.User + ":" + galeratest.Password,
		},
		ProviderOptions: provider,
		PathPrepend:     []string{cmp.Or(b.sstDir, b.cfg.binDir)},
		Keep:            b.cfg.keep,
		// Nothing on these nodes is worth a long clean shutdown.
		StopTimeout: 30 * time.Second,
		Logf:        hlog,
	}
}

// kind names the bench's output files: bench.*, tables.* or delta.*.
func (b *bench) kind() string {
	switch {
	case b.cfg.delta:
		return "delta"
	case b.cfg.tables > 0:
		return "tables"
	}
	return "bench"
}

// logName is the file name a run's log is saved under in logs/.
func (b *bench) logName(method string) string {
	safe := strings.NewReplacer("+", "-", " ", "-").Replace(method)
	if k := b.kind(); k != "bench" {
		safe = k + "-" + safe
	}
	return safe
}

// dataset describes node1's data in a line.
func (b *bench) dataset() string {
	if b.cfg.tables > 0 {
		return fmt.Sprintf("%d tables of 3 rows in %d schemas", b.cfg.tables, min(b.cfg.databases, b.cfg.tables))
	}
	return "bench.t " + human(b.report.SizeBytes)
}

// write saves the report files.
func (b *bench) write() error {
	k := b.kind()
	title := fmt.Sprintf("SST INTO AN EMPTY NODE: %s TABLE, %s DATADIR", human(b.report.SizeBytes), human(b.report.DatadirBytes))
	if b.cfg.tables > 0 {
		title = fmt.Sprintf("SST INTO AN EMPTY NODE: %d TABLES, %d FILES, %s DATADIR", b.cfg.tables, b.report.Files, human(b.report.DatadirBytes))
	}
	subtitle := fmt.Sprintf("galera-bench, %s, %s page cache, 2-node loopback cluster; MB/s = (datadir - galera.cache) / s to Synced",
		b.report.Started.Format("2006-01-02 15:04Z"), map[bool]string{true: "cold", false: "warm"}[b.cfg.cold])
	files := []struct {
		name  string
		write func(io.Writer) error
	}{
		{k + ".json", func(w io.Writer) error { return writeJSON(w, &b.report) }},
		{k + ".tsv", func(w io.Writer) error { return WriteTSV(w, b.report.Results) }},
		{k + ".md", func(w io.Writer) error {
			if err := WriteMarkdown(w, b.report.Results); err != nil {
				return err
			}
			fmt.Fprintln(w, "\n```")
			WriteTargets(w, b.report.Targets)
			fmt.Fprintln(w)
			WritePerFile(w, &b.report)
			fmt.Fprintln(w, "```")
			fmt.Fprintf(w, "\nDataset: %s, donor datadir %s in %d files (%s without galera.cache); %s page cache; the disk rested %s before each run; lock probe noise floor %.3f s.\n",
				b.dataset(), human(b.report.DatadirBytes), b.report.Files, human(b.report.PayloadBytes),
				map[bool]string{true: "cold", false: "warm"}[b.cfg.cold], b.cfg.pause, b.report.ProbeIdleMaxS)
			return nil
		}},
		{k + ".png", func(w io.Writer) error { return WritePNG(w, title, subtitle, b.report.Results) }},
	}
	for _, f := range files {
		path := filepath.Join(b.cfg.out, f.name)
		var buf bytes.Buffer
		if err := f.write(&buf); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	fmt.Fprintf(b.stdout, "\nwrote %s/{%s.json,%s.tsv,%s.md,%s.png,logs/}\n", b.cfg.out, k, k, k, k)
	return nil
}

// rotate returns s started at its k-th element, wrapping around.
func rotate[T any](s []T, k int) []T {
	if len(s) == 0 {
		return nil
	}
	k %= len(s)
	return append(append([]T(nil), s[k:]...), s[:k]...)
}

// schedule is round's order (from 1) of groups of runs: the groups rotated
// as rotate does, and within a group (METHOD, METHOD@baseline) the first
// going last in every second round.
func schedule[T any](groups [][]T, round int) []T {
	var out []T
	for _, g := range rotate(groups, round-1) {
		if round%2 == 0 {
			g = rotate(g, 1)
		}
		out = append(out, g...)
	}
	return out
}

// rank is a method's place in the report: cp -r, then the -methods order.
func (b *bench) rank(method string) int {
	if method == cpMethod {
		return -1
	}
	for i, m := range b.specs {
		if m.Name == method {
			return i
		}
	}
	return len(b.specs)
}
