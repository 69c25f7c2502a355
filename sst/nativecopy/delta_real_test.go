package nativecopy

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/internal/testutil"
	"github.com/galera-supervisor/galera-supervisor/sst"
	"github.com/galera-supervisor/galera-supervisor/sst/progress"
	"github.com/galera-supervisor/galera-supervisor/supervisor/galeratest"
)

// TestRealDeltaStaleNode: node2 was down longer than the donor's gcache
// holds (1 MB here, in pages of 1 MB, which go once released), so its restart takes an SST although its datadir is
// whole and of the same cluster. With [sst] delta unset, that SST is a
// delta: the joiner says so and why, and how much of the datadir differed,
// and ends Synced with every table equal.
func TestRealDeltaStaleNode(t *testing.T) {
	galeratest.Require(t)
	ctx := ctxFor(t, 8*time.Minute)
	// The SSTs' progress, as the supervisor would get it.
	events := listenProgress(t)
	c := galeratest.NewTest(t, galeratest.Config{
		Nodes:           2,
		SSTMethod:       Name,
		PathPrepend:     []string{galeratest.Binaries(t)},
		ProviderOptions: []string{"gcache.size=1M", "gcache.page_size=1M"},
		Env:             []string{progress.EnvSocket + "=" + events.Path()},
	})
	n1, n2 := c.Node(1), c.Node(2)
	testutil.Must(t, c.Bootstrap(ctx))
	testutil.Must(t, n1.CreateSampleTables(ctx))
	testutil.Must(t, n1.LoadData(ctx, 48<<20))
	join(t, ctx, n2) // empty: a full SST

	testutil.Must(t, n2.Stop(ctx))
	// More write-sets than the gcache holds, so no IST; appended to one
	// table, as most of a stale node's difference is.
	testutil.Must(t, n1.Exec(ctx, "CREATE TABLE bench.stale (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(100)) ENGINE=InnoDB"))
	for range 8 {
		testutil.Must(t, n1.Exec(ctx, "INSERT INTO bench.stale (v) SELECT CONCAT('row ', seq) FROM bench.seq_1_to_50000"))
	}
	o1, o2 := logSize(n1), logSize(n2)
	datadir := allocated(n2.DataDir, false)
	events.reset()
	peak := watchExtraDisk(n2.DataDir)
	t0 := time.Now()
	join(t, ctx, n2)
	staged := peak()
	t.Logf("node2 rejoined in %.1fs", time.Since(t0).Seconds())
	if err := galeratest.CompareChecksums(checksums(t, ctx, n1), checksums(t, ctx, n2)); err != nil {
		t.Fatal(err)
	}
	dl, jl := logSince(t, n1, o1), logSince(t, n2, o2)
	t.Logf("joiner:\n%s\ndonor:\n%s", grepLines(jl, "delta", "received"), grepLines(dl, "delta", "verified", "first pass", "ib_logfile0", "catch-up", "lock held"))
	if strings.Contains(jl, "donor sent bypass") {
		t.Fatalf("node2 rejoined by IST; the test needs an SST:\n%s", grepLines(jl, "WSREP_SST"))
	}
	if !strings.Contains(jl, "delta: comparing blocks with the old datadir ") || !strings.Contains(jl, `delta_reason="an old datadir of cluster `) {
		t.Fatalf("the stale node's SST was not a delta:\n%s", grepLines(jl, "WSREP_SST"))
	}
	m := regexp.MustCompile(`delta: bytes that differ .*delta_differ_bytes=(\d+) delta_total_bytes=(\d+)`).FindStringSubmatch(jl)
	if m == nil {
		t.Fatalf("the joiner's log does not say how much differed:\n%s", grepLines(jl, "WSREP_SST"))
	}
	differ, total := mib(t, m[1]), mib(t, m[2])
	t.Logf("delta: %.1f of %.1f MiB differ (%.0f%%)", differ, total, 100*differ/total)
	// The joiner's extra disk: staging's own blocks at their peak, plus the
	// undo journal of the in-place patches, which stage together at the
	// swap. Nothing of the old datadir is copied: staging holds no more
	// than what the donor sent (new files, the redo log's live part, the
	// pages that differ), and the undo journal as much as the pages
	// patched. (A full copy of the old files took some 90 MiB here.)
	um := regexp.MustCompile(`patching files in place .*bytes=(\d+) undo_bytes=(\d+)`).FindStringSubmatch(jl)
	if um == nil {
		t.Fatalf("the joiner did not say what it patched in place:\n%s", grepLines(jl, "WSREP_SST"))
	}
	extra := float64(staged)/(1<<20) + mib(t, um[2])
	t.Logf("extra disk during the SST: %.1f MiB peak (staging %.1f MiB, undo journal %.1f MiB) of a %.1f MiB datadir (%.1f%%); %.1f MiB differ",
		extra, float64(staged)/(1<<20), mib(t, um[2]), float64(datadir)/(1<<20), 100*extra*(1<<20)/float64(datadir), differ)
	if staging := float64(staged) / (1 << 20); staging > differ+4 || mib(t, um[2]) > mib(t, um[1])+1 {
		t.Errorf("the joiner took %.1f MiB of staging and a %s-byte undo journal for %.1f MiB that differ (%s bytes patched in place)", staging, um[2], differ, um[1])
	}
	// The progress the supervisor gets says so too: STATUS= shows the
	// joiner's last figures until the swap is done.
	var last progress.Event
	for _, e := range events.all() {
		if e.Role == "joiner" && e.Phase == progress.PhaseMoving {
			last = e
		}
	}
	var meter progress.Meter
	meter.Observe(last, time.Now())
	logged := fmt.Sprintf("delta_differ_bytes=%d delta_total_bytes=%d", last.Done, last.Total)
	if want := progress.DeltaText(last.Done, last.Total); !last.Delta || !strings.Contains(meter.String(), want) || !strings.Contains(jl, logged) {
		t.Errorf("the joiner's progress %+v renders %q, its log does not say %q", last, meter.String(), logged)
	}
	t.Logf("STATUS= during the swap: %q", meter.String())
	// bench.t did not change while node2 was down: it is not sent again.
	fi, err := os.Stat(filepath.Join(n1.DataDir, "bench", "t.ibd"))
	testutil.Must(t, err)
	if unchanged := float64(fi.Size()) / (1 << 20); differ > total-0.9*unchanged {
		t.Errorf("the delta sent %.1f of %.1f MiB, so bench.t's %.1f MiB, unchanged, went again", differ, total, unchanged)
	}
}

// mib reads a count of bytes as MiB.
func mib(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseInt(s, 10, 64)
	testutil.Must(t, err)
	return float64(v) / (1 << 20)
}

// allocated is the disk the files under dir take (du); with linkedOut,
// files with other links (a delta's bases, hard-linked from the old
// datadir) do not count.
func allocated(dir string, linkedOut bool) int64 {
	var n int64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil // gone meanwhile, or a directory
		}
		var st syscall.Stat_t
		if syscall.Lstat(p, &st) == nil && (!linkedOut || st.Nlink == 1) {
			n += st.Blocks * 512
		}
		return nil
	})
	return n
}

// watchExtraDisk samples the disk the joiner's staging takes in datadir
// (its own blocks, allocated) until the returned func is called, which
// returns the peak.
func watchExtraDisk(datadir string) func() int64 {
	var mu sync.Mutex
	var peak int64
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			n := allocated(filepath.Join(datadir, sst.StagingDirName), true)
			mu.Lock()
			peak = max(peak, n)
			mu.Unlock()
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() int64 {
		close(done)
		<-stopped
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}

// progressLog collects the progress events of the nodes' SSTs.
type progressLog struct {
	l      *progress.Listener
	mu     sync.Mutex
	events []progress.Event
}

// listenProgress opens a progress socket that the nodes' SST processes
// (mariadbd's user) can reach.
func listenProgress(t *testing.T) *progressLog {
	dir, err := os.MkdirTemp("", "gs-progress-")
	testutil.Must(t, err)
	testutil.Must(t, os.Chmod(dir, 0o755))
	l, err := progress.Listen(filepath.Join(dir, "p.sock"))
	testutil.Must(t, err)
	p := &progressLog{l: l}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range l.Events() {
			p.mu.Lock()
			p.events = append(p.events, e)
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		os.RemoveAll(dir)
	})
	return p
}

func (p *progressLog) Path() string { return p.l.Path() }

func (p *progressLog) reset() {
	p.mu.Lock()
	p.events = nil
	p.mu.Unlock()
}

func (p *progressLog) all() []progress.Event {
	p.l.Sync(5 * time.Second)
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]progress.Event(nil), p.events...)
}
