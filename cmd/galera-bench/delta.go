package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/galera-supervisor/galera-supervisor/supervisor/galeratest"
)

// deltaMethods are the -delta runs: the same stale datadir rejoined by
// native-copy delta, a full native-copy and stock rsync.
var deltaMethods = []method{
	{Name: "native-copy delta", SST: "native-copy", Native: true, Opts: map[string]string{"delta": "auto"}},
	{Name: "native-copy full", SST: "native-copy", Native: true, Opts: map[string]string{"delta": "0"}},
	{Name: "rsync", SST: "rsync"},
}

// deltaGcache holds less than the writes made while node2 is down, and
// its pages go once released, so node2's rejoin cannot be an IST.
var deltaGcache = []string{"gcache.size=1M", "gcache.page_size=1M"}

// runDeltaBench is -delta: a stale node rejoins over a shaped link.
func runDeltaBench(ctx context.Context, cfg *config, stdout, stderr io.Writer) error {
	if ok, why := nativeAvailable(ctx, cfg.binDir, "native-copy"); !ok {
		return fmt.Errorf("-delta needs native-copy: %s", why)
	}
	b := &bench{cfg: cfg, specs: deltaMethods, stdout: stdout, stderr: stderr}
	err := b.runDelta(ctx)
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

func (b *bench) runDelta(ctx context.Context) (err error) {
	if err := b.begin(); err != nil {
		return err
	}
	b.report.ChangedPct = b.cfg.changedPct
	b.logf("delta bench: bench.t %s, %.1f %% of its pages changed while node2 is down, link %s; cold cache: %t",
		human(b.cfg.size), b.cfg.changedPct, b.cfg.link, b.cfg.cold)
	c, err := galeratest.New(ctx, b.clusterConfig("native-copy", deltaGcache...))
	if err != nil {
		return fmt.Errorf("create cluster: %w", err)
	}
	b.cluster = c
	n1, n2 := c.Node(1), c.Node(2)
	stale := filepath.Join(c.Dir(), "node2-stale")
	defer func() {
		b.logf("stopping the cluster, removing its network namespaces")
		if ctx.Err() != nil {
			for i := 2; i >= 1; i-- {
				if kerr := c.Node(i).Kill(); kerr != nil {
					b.logf("warning: kill node%d: %v", i, kerr)
				}
			}
		}
		// Close stops the nodes, then deletes the namespaces, which takes
		// their links and qdiscs with them.
		if cerr := c.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("stop cluster: %w", cerr)
		}
		if b.cfg.keep {
			b.logf("kept node dirs under %s", c.Dir())
		} else if b.cfg.baseDir != "" {
			os.RemoveAll(stale)
			for i := 1; i <= 2; i++ {
				os.RemoveAll(c.Node(i).Dir)
			}
		}
	}()
	net, err := c.Partitionable(ctx)
	if err != nil {
		return fmt.Errorf("network namespaces: %w", err)
	}
	b.logf("nodes in network namespaces: node1 at %s, node2 at %s", n1.Addr(), n2.Addr())
	if err := c.Bootstrap(ctx); err != nil {
		return fmt.Errorf("bootstrap node1: %w", err)
	}
	if err := b.load(ctx); err != nil {
		return err
	}
	if err := b.settle(ctx); err != nil {
		return err
	}
	// The first join is not measured, and runs unshaped.
	b.logf("node2 joins once by native-copy, unshaped")
	if err := n2.Start(ctx); err != nil {
		return fmt.Errorf("start node2: %w", err)
	}
	if err := b.waitSynced(ctx, n2); err != nil {
		return fmt.Errorf("node2's first join: %w", err)
	}
	if err := n2.Stop(ctx); err != nil {
		return fmt.Errorf("stop node2: %w", err)
	}
	if err := copyTree(ctx, n2.DataDir, stale); err != nil {
		return err
	}
	if err := b.change(ctx); err != nil {
		return err
	}
	if err := b.settle(ctx); err != nil {
		return err
	}
	for _, q := range probeSchema {
		if err := n1.Exec(ctx, q); err != nil {
			return fmt.Errorf("create probe table on node1: %w", err)
		}
	}
	b.report.PayloadBytes, b.report.DatadirBytes = treeSize(n1.DataDir)
	b.report.Files = fileCount(n1.DataDir)
	if err := b.shape(ctx, net); err != nil {
		return err
	}
	restore := func() error {
		if err := os.RemoveAll(n2.DataDir); err != nil {
			return err
		}
		return copyTree(ctx, stale, n2.DataDir)
	}
	for _, m := range b.specs {
		r := b.join(ctx, m, restore)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if r.OK {
			r.DeltaLine = deltaLine(filepath.Join(b.cfg.out, "logs", b.logName(m.Name)+".joiner.log"))
		}
		b.report.Results = append(b.report.Results, r)
		b.logDelta(r)
	}
	b.report.Targets = EvaluateDelta(b.report.Results, b.report.PayloadBytes)
	fmt.Fprintln(b.stdout)
	WriteDelta(b.stdout, &b.report)
	return b.writeDelta()
}

// shape puts netem with -link on both nodes' interfaces. A kernel built
// without netem (CONFIG_NET_SCH_NETEM unset, as on some VMs) gets the
// rate from tbf instead, without the delay, and the report says so.
func (b *bench) shape(ctx context.Context, net *galeratest.Network) error {
	err := net.Shape(ctx, "netem "+b.cfg.link)
	if err == nil {
		b.report.Link = "netem " + b.cfg.link
		b.logf("link shaped: netem %s on both nodes' interfaces", b.cfg.link)
		return nil
	}
	if !strings.Contains(err.Error(), "qdisc kind is unknown") {
		return fmt.Errorf("shape the link: %w", err)
	}
	rate := linkRate(b.cfg.link)
	if rate == "" {
		return fmt.Errorf("shape the link: this kernel has no netem, and -link %q names no rate for tbf: %w", b.cfg.link, err)
	}
	// The burst covers a 64 KiB GSO packet; the queue about 80 ms at 100 Mbit/s.
	tbf := "tbf rate " + rate + " burst 256kb limit 1mb"
	if err := net.Shape(ctx, tbf); err != nil {
		return fmt.Errorf("shape the link: %w", err)
	}
	b.report.Link = tbf
	note := fmt.Sprintf("this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM): the link is %s, without the rest of -link %q (no added delay)", tbf, b.cfg.link)
	b.report.Notes = append(b.report.Notes, note)
	b.logf("warning: %s", note)
	return nil
}

// linkRate is the value of "rate" in netem parameters ("" if none).
func linkRate(params string) string {
	f := strings.Fields(params)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "rate" {
			return f[i+1]
		}
	}
	return ""
}

func (b *bench) logDelta(r Result) {
	if !r.OK {
		b.logf("%s FAILED: %s", r.Method, r.Err)
		return
	}
	b.logf("%s: %.1f s to Synced, joiner's extra disk peak %s%s", r.Method, r.Seconds, human(r.ExtraDiskBytes), map[bool]string{true: "; " + r.DeltaLine, false: ""}[r.DeltaLine != ""])
}

// change alters about cfg.changedPct % of bench.t's pages on node1, with
// node2 down: half by appending rows (new pages at the end), half by
// updating the rows of 20 key ranges spread over the table, as an
// append-mostly table with hot spots changes. It goes through Galera
// (wsrep on), far more than the 1 MB gcache holds.
func (b *bench) change(ctx context.Context) error {
	n1 := b.cluster.Node(1)
	var rows int64
	s, err := n1.QueryString(ctx, "SELECT COALESCE(MAX(id),0) FROM bench.t")
	if err == nil {
		_, err = fmt.Sscan(s, &rows)
	}
	if err != nil || rows == 0 {
		return fmt.Errorf("node1: count bench.t's rows: %v", err)
	}
	fi, err := os.Stat(filepath.Join(n1.DataDir, "bench", "t.ibd"))
	if err != nil {
		return fmt.Errorf("node1: %w", err)
	}
	const page = 16 << 10
	pages := fi.Size() / page
	perPage := max(float64(rows)/float64(pages), 1)
	changed := int64(math.Ceil(float64(pages) * b.cfg.changedPct / 100))
	appendRows := int64(float64(changed/2) * perPage)
	updateRows := int64(float64(changed-changed/2) * perPage)
	b.logf("changing %d of bench.t's %d pages on node1 (%.0f rows a page): %d rows appended, %d updated in 20 ranges",
		changed, pages, perPage, appendRows, updateRows)
	start := time.Now()
	const ranges = 20
	per := max(updateRows/ranges, 1)
	for i := int64(0); i < ranges; i++ {
		from := 1 + i*(rows/ranges)
		q := fmt.Sprintf("UPDATE bench.t SET a = a + 1, txt = CONCAT('changed ', id, ' ', REPEAT('x', 100)) WHERE id BETWEEN %d AND %d", from, from+per-1)
		if err := n1.Exec(ctx, q); err != nil {
			return fmt.Errorf("node1: change bench.t: %w", err)
		}
	}
	for done := int64(0); done < appendRows; {
		k := min(appendRows-done, 20000)
		next := rows + done
		q := fmt.Sprintf("INSERT INTO bench.t SELECT %d+seq, seq MOD 1000, SHA2(seq+%d,256), MD5(seq+%d*7), "+
			"CONCAT(REPEAT(CHAR(65 + (seq MOD 26)), 100), ' new row ', seq+%d, ' ', REPEAT('lorem ipsum ', 8)) "+
			"FROM bench.seq_1_to_%d", next, next, next, next, k)
		if err := n1.Exec(ctx, q); err != nil {
			return fmt.Errorf("node1: append to bench.t: %w", err)
		}
		done += k
	}
	b.report.ChangedPages = changed
	b.report.Pages = pages
	b.logf("changed in %.1f s", time.Since(start).Seconds())
	return nil
}

// copyTree copies src to dst (which must not exist) with cp -a, by reflink
// where the filesystem has them.
func copyTree(ctx context.Context, src, dst string) error {
	cmd := exec.CommandContext(ctx, "cp", "-a", "--reflink=auto", src, dst)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("cp -a %s %s: %w: %s", src, dst, err, strings.TrimSpace(errb.String()))
	}
	return nil
}

var deltaRE = regexp.MustCompile(`delta: [0-9.]+ [KMGT]?i?B of [0-9.]+ [KMGT]?i?B differ`)

// deltaLine is what the joiner's log says differed ("" if nothing).
func deltaLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return string(deltaRE.Find(b))
}

// diskSampler follows the blocks allocated under a directory and keeps
// the peak above the first sample: what an SST adds to the joiner's disk
// use. Reflinked extents count once per file, so on a filesystem with
// reflinks it overstates.
type diskSampler struct {
	dir  string
	mu   sync.Mutex
	base int64
	peak int64
}

func newDiskSampler(dir string) *diskSampler {
	return &diskSampler{dir: dir, base: allocated(dir)}
}

func (d *diskSampler) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		a := allocated(d.dir)
		d.mu.Lock()
		d.peak = max(d.peak, a)
		d.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (d *diskSampler) peakExtra() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return max(d.peak-d.base, 0)
}

// allocated sums the blocks allocated to the files under dir, as du does:
// a file with several links under dir counts once (a delta's swap links
// the old files into the staged tree just before it renames the trees).
func allocated(dir string) int64 {
	type inode struct{ dev, ino uint64 }
	seen := map[inode]bool{}
	var n int64
	filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if fi, err := e.Info(); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				if st.Nlink > 1 {
					k := inode{uint64(st.Dev), st.Ino}
					if seen[k] {
						return nil
					}
					seen[k] = true
				}
				n += st.Blocks * 512
			}
		}
		return nil
	})
	return n
}

// writeDelta saves delta.json, delta.tsv and delta.md.
func (b *bench) writeDelta() error {
	files := map[string]func(io.Writer) error{
		"delta.json": func(w io.Writer) error { return writeJSON(w, &b.report) },
		"delta.tsv":  func(w io.Writer) error { return WriteTSV(w, b.report.Results) },
		"delta.md": func(w io.Writer) error {
			fmt.Fprintln(w, "```")
			err := WriteDelta(w, &b.report)
			fmt.Fprintln(w, "```")
			return err
		},
	}
	for name, write := range files {
		path := filepath.Join(b.cfg.out, name)
		var buf bytes.Buffer
		if err := write(&buf); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	fmt.Fprintf(b.stdout, "\nwrote %s/{delta.json,delta.tsv,delta.md,logs/}\n", b.cfg.out)
	return nil
}
