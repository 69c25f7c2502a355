package nativecopy

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/internal/testutil"
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
	c := galeratest.NewTest(t, galeratest.Config{
		Nodes:           2,
		SSTMethod:       Name,
		PathPrepend:     []string{galeratest.Binaries(t)},
		ProviderOptions: []string{"gcache.size=1M", "gcache.page_size=1M"},
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
	join(t, ctx, n2)
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
