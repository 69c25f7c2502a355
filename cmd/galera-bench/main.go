// Command galera-bench joins the same dataset into an empty Galera node by
// each SST method in turn, on one machine in one run, and compares them with
// cp -r of the donor's datadir: seconds to Synced, data MB/s, how long the
// donor refused writes, and the SST processes' peak RSS. It prints a table,
// checks the targets of issues 3 and 4, and writes JSON, TSV, Markdown and a
// PNG chart. It is what `make bench` runs.
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
	"strconv"
	"strings"
	"syscall"
	"time"
)

const usageText = `Usage: galera-bench [flags]

galera-bench starts a 2-node Galera cluster on loopback (real mariadbd and
galera-4, node dirs under -base-dir), fills node1 once with bench.t (random
hex plus repetitive text, about 3:1 for lz4, as in stock-baseline.md), and
then, for each method in -methods, joins an EMPTY node2 by that SST method:
node2 is stopped and wiped, the disk left to rest (-pause), the page cache
dropped (-cold), and the clock runs from starting node2's mariadbd until it
reports Synced. "cp -r" of node1's datadir plus sync is run the same way,
as the physical limit.

Measured per run:
  s to Synced     starting the joiner's mariadbd -> wsrep_local_state_comment=Synced
  MB/s            (donor datadir bytes - galera.cache) / s to Synced;
                  for cp -r: every byte copied / (cp + sync) seconds
  lock s (probe)  longest single write on the donor among those begun while
                  it was in the Donor/Desynced state (polled every 50 ms): a
                  probe commits a tiny UPDATE every 10 ms during the join;
                  FLUSH TABLES WITH READ LOCK, or the provider pause from
                  BACKUP STAGE BLOCK_DDL to END, holds it up, so this is how
                  long the donor refused writes (the methods' logs are not
                  trusted). The stalls outside that state (the joiner joining
                  the group, its flow control while it catches up) are in
                  bench.json, as is the probe's noise floor on the idle donor
  lock s (log)    cross-check, 1 s resolution: the donor's error log from
                  "Flushing tables for SST" to the line saying the lock went,
                  or its mariadb-backup log from BACKUP STAGE BLOCK_DDL to
                  "All tables unlocked" ("-": none found)
  SST RSS MiB     /proc sampled every 50 ms: per side, the summed RSS of every
                  descendant of that side's mariadbd (wsrep_sst_*, rsync, socat,
                  mbstream, lz4, the native binary; not mariadbd itself) at
                  one instant; the larger side's peak. mariadb-backup is left
                  out and shown on its own (issue 4)
  x ...           ratios against rsync, cp -r and mariabackup of the same run

The targets of issues 3 and 4 are then printed as PASS, MISS or N/A. They are
reported, never asserted: timings on a shared 2-core machine are noisy.

Methods: rsync, mariabackup (stock scripts), native-copy, native-backup
(wsrep_sst_native-* links next to this binary, see -bin), each optionally
with "+lz4" ([sst] compressor='lz4 -z', decompressor='lz4 -d'); rsync has
no lz4 variant. "all" means every method that is available here.

Outputs in -out: bench.json, bench.tsv, bench.md (table and targets for the
README), bench.png (chart) and logs/ (each run's joiner and donor logs).
Every process the bench starts is stopped by PID when it ends, fails or is
interrupted (Ctrl-C).

With -tables N, the dataset is N small InnoDB tables (three rows each,
spread over -databases schemas, one schema per tenant) instead of bench.t
(-size is then unused): every method joins it as above, the files, not the
bytes, set the time. The output adds each run's time per file of the
donor's datadir, and the cost of creating a file on this disk (-floor-files
files of 16 KiB written and closed in one directory, one syncfs at the end),
beside cp -r's. Files are named tables.* in -out.

With -delta, instead: the two nodes run in network namespaces the bench
creates (one each, joined by veth pairs to a bridge in a third; the nodes
listen on their veth addresses), node2 joins once, is stopped, and 2 % of
bench.t's pages change on node1 while it is down (1 % appended rows, 1 %
rows updated in 20 key ranges spread over the table) with a 1 MB gcache,
so that no IST can serve it. Every interface of the link is then shaped
by tc netem (-link, default rate 100mbit delay 20ms each way; a kernel
without netem gets the rate alone, by tbf, and the report says so), and node2,
its stale datadir restored before each run, rejoins by native-copy with
delta=auto, by native-copy with delta=0 (full) and by stock rsync. Per
run: seconds to Synced, and the peak of the joiner's extra disk use (the
blocks allocated under node2's dir, sampled every 250 ms, above what its
stale datadir held). Targets: delta <= 0.1x full native-copy, extra disk <
10 % of the datadir. A full native-copy of the 4G default moves about
5 GB at 100 Mbit/s: about 7 minutes, and rsync as long, so the whole -delta
run with its load takes about 25 minutes; -size 200M takes about 3.
Files are named delta.* in -out. Every namespace, link and process is
removed at the end or on Ctrl-C.

With -endpoint, instead: one node under the built galera-supervisor with
[galera-supervisor] http-address, its clustercheck at / asked over loopback
(GET, a new connection each) for -endpoint-seconds not at all, then at a
paced 1,000 requests/s, then as fast as -endpoint-clients clients go. Per
window: requests/s, the supervisor's CPU and what it adds over the idle
window (% of one core, and CPU µs per request), mariadbd's CPU and its
statements/s (Questions): the endpoint answers from the supervisor's own
state, so mariadbd's stay where they were. make bench runs it after the SST
runs.

With -baseline DIR, every native method in -methods also runs as
"METHOD@baseline" with the wsrep_sst_native-copy and wsrep_sst_native-backup
of DIR, another build (on donor and joiner alike: the bench puts a dir of
links first in mariadbd's PATH and points them at -bin's or DIR's binaries
before each run). Both run in the same rounds, one after the other, each
round alternating which goes first: on a noisy VM disk only runs alternating
in one window compare. The table gains "x baseline time" (this build's median
/ the baseline's median), and a line per native method, "native-copy vs
baseline: 1.03x time (want <= 1.05)", PASS or MISS, reported, never asserted.
A baseline build of an older commit:
  git worktree add /tmp/old <commit> && make -C /tmp/old build BIN=/var/tmp/old-bin
  make bench BENCH_FLAGS='-baseline /var/tmp/old-bin -runs 3'

Examples:
  make bench                                   all methods, 4G, into cmd/galera-bench/results/
  make bench BENCH_FLAGS='-lz4 -runs 3'        with lz4 variants, median of 3 rounds
  galera-bench -size 300M -methods rsync,native-copy -out /tmp/b   a quick check
  galera-bench -base-dir /var/tmp/gb4g -reuse  load once, reuse the donor next time
  galera-bench -tables 30000 -methods all      the many-tables dataset (make bench runs it)
  galera-bench -delta -size 200M -out /tmp/b   the shaped-link delta bench, small

Flags:
`

type config struct {
	size       int64
	methods    []string
	lz4        bool
	cp         bool
	out        string
	cold       bool
	pause      time.Duration
	keep       bool
	reuse      bool
	runs       int
	baseDir    string
	binDir     string
	baseline   string // -baseline: another build's SST binaries, run beside
	bufferPool string
	sst        map[string]string // -sst: more [sst] options for every run
	timeout    time.Duration
	verbose    bool

	tables     int // -tables: that many small tables instead of bench.t
	databases  int
	floorFiles int
	delta      bool   // the shaped-link delta bench instead of the SST runs
	link       string // tc netem parameters of the shaped link
	changedPct float64

	endpoint          bool // the -endpoint bench instead of the SST runs
	endpointWindowLen time.Duration
	endpointClients   int
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(os.Stderr, "galera-bench: interrupted; every process it started was stopped")
		os.Exit(130)
	default:
		fmt.Fprintf(os.Stderr, "galera-bench: %v\n", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("galera-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fs.PrintDefaults()
	}
	exe, _ := os.Executable()
	defBin := filepath.Dir(exe)
	c := &config{}
	size := fs.String("size", "4G", "size of bench.t to load on node1 (IEC suffix K, M, G, T; the baseline used 4G)")
	methods := fs.String("methods", "all", `comma-separated SST methods to join with, in order, e.g. "rsync,native-copy,mariabackup+lz4"; "all" = every available one`)
	fs.BoolVar(&c.lz4, "lz4", false, `also run the "+lz4" variant of every method that has one`)
	fs.BoolVar(&c.cp, "cp", true, "also run cp -r of the donor datadir (+ sync), the physical limit")
	fs.StringVar(&c.out, "out", filepath.Join(filepath.Dir(defBin), "cmd", "galera-bench", "results"), "directory for bench.json, bench.tsv, bench.md, bench.png and logs/")
	fs.BoolVar(&c.cold, "cold", true, "sync and drop the page cache (echo 3 > /proc/sys/vm/drop_caches) before each run, as the baseline did")
	fs.DurationVar(&c.pause, "pause", 30*time.Second, "before each run, after the wipe, let the disk rest this long: on a VM the host still writes back the previous run's gigabytes (0: start at once)")
	fs.BoolVar(&c.keep, "keep", false, "keep the node dirs (datadirs, configs, error logs) for inspection; the processes are stopped anyway")
	fs.IntVar(&c.runs, "runs", 1, "rounds of every method (and cp -r), each round starting one method later than the last; each method's median run is reported, all runs are in bench.json")
	fs.BoolVar(&c.reuse, "reuse", false, "keep the loaded node1 datadir in -base-dir/donor-cache after a clean run and start from it next time (same -size), skipping the load")
	fs.StringVar(&c.baseDir, "base-dir", "", "dir for the nodes (must be traversable by user mysql; default: a fresh dir under /var/tmp/gs-test/)")
	fs.StringVar(&c.binDir, "bin", defBin, "dir holding wsrep_sst_native-copy and wsrep_sst_native-backup (put first in mariadbd's PATH)")
	fs.StringVar(&c.baseline, "baseline", "", `dir holding another build's wsrep_sst_native-copy and wsrep_sst_native-backup: each native method also runs as "METHOD@baseline" with them, in the same rounds, and is compared (see above)`)
	fs.StringVar(&c.bufferPool, "buffer-pool", "1G", "innodb_buffer_pool_size of each node (the baseline used 1G)")
	sstOpts := fs.String("sst", "", `more [sst] options for every run, as key=value,key=value, e.g. "transfer-streams=4"`)
	fs.DurationVar(&c.timeout, "timeout", 30*time.Minute, "give up on one join after this long")
	fs.BoolVar(&c.verbose, "v", false, "log what the cluster harness does")
	fs.BoolVar(&c.endpoint, "endpoint", false, "instead of the SST runs: the supervisor's health endpoint under load (see above); writes endpoint.json and endpoint.md to -out")
	fs.IntVar(&c.tables, "tables", 0, "the many-tables dataset: this many small InnoDB tables (3 rows each) instead of bench.t, e.g. 30000")
	fs.IntVar(&c.databases, "databases", 100, "with -tables: the schemas the tables are spread over")
	fs.IntVar(&c.floorFiles, "floor-files", 10000, "with -tables: files created to measure what creating one costs on this disk (0: skip)")
	fs.BoolVar(&c.delta, "delta", false, "instead of the SST runs: a stale node rejoins over a shaped link by native-copy delta, full native-copy and rsync (see above); writes delta.* to -out")
	fs.StringVar(&c.link, "link", "rate 100mbit delay 20ms", "with -delta: tc netem parameters of every interface of the link between the nodes")
	fs.Float64Var(&c.changedPct, "changed", 2, "with -delta: percent of bench.t's pages changed while node2 is down")
	fs.DurationVar(&c.endpointWindowLen, "endpoint-seconds", 10*time.Second, "with -endpoint: the length of each window")
	fs.IntVar(&c.endpointClients, "endpoint-clients", 8, "with -endpoint: concurrent clients of the unpaced window")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if c.runs < 1 {
		return nil, fmt.Errorf("-runs %d: want at least 1", c.runs)
	}
	if c.reuse && c.baseDir == "" {
		return nil, errors.New("-reuse needs -base-dir: the donor cache lives there")
	}
	if c.tables < 0 || c.databases < 1 || c.floorFiles < 0 {
		return nil, fmt.Errorf("-tables %d, -databases %d, -floor-files %d: want -tables >= 0, -databases >= 1, -floor-files >= 0", c.tables, c.databases, c.floorFiles)
	}
	if c.changedPct <= 0 || c.changedPct > 50 {
		return nil, fmt.Errorf("-changed %v: want a percent above 0, at most 50", c.changedPct)
	}
	if n := btoi(c.delta) + btoi(c.endpoint) + btoi(c.tables > 0); n > 1 {
		return nil, errors.New("-delta, -endpoint and -tables are separate benches: give one")
	}
	if c.baseline != "" && (c.delta || c.endpoint) {
		return nil, errors.New("-baseline compares the SST runs: not with -delta or -endpoint")
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (see -help)", fs.Arg(0))
	}
	var err error
	if c.baseline != "" {
		// The links the bench points at it must not depend on its cwd.
		if c.baseline, err = filepath.Abs(c.baseline); err != nil {
			return nil, fmt.Errorf("-baseline: %w", err)
		}
	}
	if c.size, err = parseSize(*size); err != nil {
		return nil, fmt.Errorf("-size: %w", err)
	}
	if *sstOpts != "" {
		c.sst = map[string]string{}
		for _, kv := range strings.Split(*sstOpts, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
			if !ok || strings.TrimSpace(k) == "" {
				return nil, fmt.Errorf("-sst %q: want key=value", kv)
			}
			c.sst[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	for _, m := range strings.Split(*methods, ",") {
		if m = strings.TrimSpace(m); m != "" {
			c.methods = append(c.methods, m)
		}
	}
	if len(c.methods) == 0 {
		return nil, errors.New("-methods: empty")
	}
	return c, nil
}

// parseSize reads "300M", "4G", "1.5G" or a byte count, in IEC units like
// numfmt --from=iec.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(strings.ToUpper(s))
	s = strings.TrimSuffix(strings.TrimSuffix(s, "B"), "I")
	mult := 1.0
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult != 1 {
			s = s[:n-1]
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("bad size %q: want e.g. 300M or 4G", s)
	}
	return int64(v * mult), nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if cfg.endpoint {
		return runEndpointBench(ctx, cfg, stdout, stderr)
	}
	if cfg.delta {
		return runDeltaBench(ctx, cfg, stdout, stderr)
	}
	specs, err := resolveMethods(ctx, cfg.methods, cfg.lz4, cfg.binDir, func(f string, a ...any) { fmt.Fprintf(stderr, f+"\n", a...) })
	if err != nil {
		return err
	}
	if cfg.baseline != "" {
		if specs, err = withBaseline(ctx, specs, cfg.baseline); err != nil {
			return err
		}
	}
	b := &bench{cfg: cfg, specs: specs, stdout: stdout, stderr: stderr}
	err = b.run(ctx)
	if err != nil && ctx.Err() != nil {
		// Whatever failed did so because of the interrupt.
		return ctx.Err()
	}
	return err
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
