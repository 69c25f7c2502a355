package nativecopy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/internal/testutil"
	"github.com/galera-supervisor/galera-supervisor/sst"
	"github.com/galera-supervisor/galera-supervisor/supervisor/galeratest"
)

// TestResumeAfterCut: the link is cut once half the datadir went through;
// the joiner keeps its staging, marked with the donor's cluster, and the
// next SST resumes from it: the donor sends at most 60 % of the datadir
// and the joiner ends with the donor's files, as after a fresh SST.
func TestResumeAfterCut(t *testing.T) {
	jd, dd := newPair(t)
	mkfiles(t, dd, map[string]int{"bench/big.ibd": 56 << 20})
	var total int64
	for name, size := range donorFiles {
		if !notSent[name] {
			total += int64(size)
		}
	}
	total += 56 << 20
	donorBefore, joinerBefore := snapshot(t, dd), snapshot(t, jd)
	// A rate limit, as on a real link: unlimited on loopback, the
	// donor would fill megabytes of socket buffers that the cut drops.
	opts := map[string]string{"transfer-chunk-size": "256k", "transfer-idle-timeout": "5", "rlimit": "32M"}

	var seen atomic.Int64
	p := testutil.NewProxy(t, "", func(conn int, off int64, b []byte) testutil.Verdict {
		if seen.Add(int64(len(b))) > total/2 {
			return testutil.Cut
		}
		return testutil.Forward
	})
	r := &sstRun{joinerDir: jd, donorDir: dd, addr: via(p), donorOpts: opts, joinerOpts: opts}
	runBad(t, r)
	checkUntouched(t, jd, dd, joinerBefore, donorBefore)
	if _, err := os.Stat(filepath.Join(jd, sst.ResumeName)); err != nil {
		t.Fatalf("no resume marker after the cut: %v", err)
	}
	if !strings.Contains(r.joiner.stderr.String(), "for the next SST to resume from") {
		t.Errorf("the joiner did not say it kept its staging:\n%s", r.joiner.stderr)
	}

	r = &sstRun{joinerDir: jd, donorDir: dd, donorOpts: opts, joinerOpts: opts}
	r.run(t, t.Context())
	if r.joinerErr != nil || r.donorErr != nil {
		t.Fatalf("joiner: %v\ndonor: %v\n%s\n%s", r.joinerErr, r.donorErr, r.joiner.stderr, r.donor.stderr)
	}
	jl, dl := r.joiner.stderr.String(), r.donor.stderr.String()
	t.Logf("joiner:\n%s\ndonor:\n%s", grepLines(jl, "resume", "delta"), grepLines(dl, "delta", "verified"))
	if !regexp.MustCompile(`resume: bytes already in staging .*resume_staged_bytes=[0-9]+ sst_bytes=[0-9]+`).MatchString(jl) {
		t.Errorf("the joiner does not say how much it resumed from:\n%s", jl)
	}
	m := regexp.MustCompile(`delta: bytes that differ .*delta_differ_bytes=([0-9]+) delta_total_bytes=([0-9]+)`).FindStringSubmatch(dl)
	if m == nil {
		t.Fatalf("the donor does not say how much it sent:\n%s", dl)
	}
	sent, all := mib(t, m[1]), mib(t, m[2])
	t.Logf("resumed SST sent %.1f of %.1f MiB (%.0f%%)", sent, all, 100*sent/all)
	if sent > 0.6*all {
		t.Errorf("the resumed SST sent %.1f of %.1f MiB, more than 60%%", sent, all)
	}
	if d := diffSnap(wantAfterCopy(snapshot(t, dd), joinerBefore), snapshot(t, jd)); d != "" {
		t.Errorf("joiner datadir differs from the donor's:\n%s", d)
	}
	for _, n := range []string{sst.StagingDirName, sst.ResumeName} {
		if _, err := os.Lstat(filepath.Join(jd, n)); err == nil {
			t.Errorf("%s left after the resumed SST", n)
		}
	}
}

// TestRealResumeAfterLinkCut: node2 joins by a full SST (rate-limited, a
// few hundred MB); once the donor has written half of a full SST (its
// datadir but the redo log: wchar of its SST process), node2's SST port
// is cut off (each node in a network namespace of its own; what node2
// sends from that port starves, so neither side hears the other, while
// Galera's traffic flows and the cluster stays whole). Both sides give up
// by their idle timeout, node2's mariadbd aborts, and the joiner keeps its
// staging. With the link back, node2's next start resumes: the donor
// sends at most 60 % of a full SST and node2 ends Synced with every table
// equal to the donor's.
func TestRealResumeAfterLinkCut(t *testing.T) {
	galeratest.Require(t)
	ctx := ctxFor(t, 10*time.Minute)
	t0 := time.Now()
	// A datadir of data more than redo log, and chunks of 1 MiB: a cut
	// loses the chunks in flight, one per stream.
	opts := map[string]string{"rlimit": "24M", "transfer-idle-timeout": "5", "transfer-chunk-size": "1M"}
	c := galeratest.NewTest(t, galeratest.Config{Nodes: 2, SSTMethod: Name, SST: opts, PathPrepend: []string{galeratest.Binaries(t)}})
	w, err := c.Partitionable(ctx)
	testutil.Must(t, err)
	n1, n2 := c.Node(1), c.Node(2)
	for _, n := range []*galeratest.Node{n1, n2} {
		testutil.Must(t, n.SetMysqld(map[string]string{"innodb_log_file_size": "16M"}))
	}
	testutil.Must(t, c.Bootstrap(ctx))
	testutil.Must(t, n1.CreateSampleTables(ctx))
	testutil.Must(t, n1.LoadData(ctx, 160<<20))
	t.Logf("cluster loaded in %s", time.Since(t0).Round(time.Second))

	// The donor's redo log goes as its live part only: half of a full
	// SST is at least half of the datadir without it.
	fi, err := os.Stat(filepath.Join(n1.DataDir, "ib_logfile0"))
	testutil.Must(t, err)
	redo := fi.Size()
	t1 := time.Now()
	o2 := logSize(n2)
	testutil.Must(t, n2.Start(ctx))
	half := (announced(t, ctx, n2, o2) - redo) / 2
	donor, err := waitSSTProcess(ctx, "donor", n1.DataDir, time.Minute)
	testutil.Must(t, err)
	var sent int64
	for sent < half {
		if !n2.Running() {
			t.Fatalf("node2 ended before half of the SST:\n%s", grepLines(logSince(t, n2, o2), "WSREP_SST"))
		}
		time.Sleep(20 * time.Millisecond)
		sent = written(t, donor)
	}
	testutil.Must(t, w.ChokePort(ctx, n2, n2.SSTPort))
	t.Logf("cut node2's link once the donor had sent %.1f MiB (the datadir less its redo log: %.1f MiB), %s into the SST", float64(sent)/(1<<20), float64(2*half)/(1<<20), time.Since(t1).Round(100*time.Millisecond))
	waitFailed(t, ctx, n2, o2)
	testutil.Must(t, w.Unchoke(ctx, n2))
	// The joiner keeps it, or dies with its mariadbd, which aborts once
	// the donor gave up ("Will never receive state"): either way it stays.
	for _, n := range []string{sst.StagingDirName, sst.ResumeName} {
		if _, err := os.Lstat(filepath.Join(n2.DataDir, n)); err != nil {
			t.Fatalf("node2's joiner did not keep its staging: %v\n%s", err, grepLines(logSince(t, n2, o2), "WSREP_SST"))
		}
	}
	t.Logf("first SST broken after %s", time.Since(t1).Round(100*time.Millisecond))

	t2 := time.Now()
	o1 := logSize(n1)
	o2 = logSize(n2)
	join(t, ctx, n2)
	t.Logf("resumed SST: node2 Synced after %s", time.Since(t2).Round(100*time.Millisecond))
	if err := galeratest.CompareChecksums(checksums(t, ctx, n1), checksums(t, ctx, n2)); err != nil {
		t.Fatal(err)
	}
	dl, jl := logSince(t, n1, o1), logSince(t, n2, o2)
	t.Logf("joiner:\n%s\ndonor:\n%s", grepLines(jl, "resume", "delta", "received"), grepLines(dl, "delta", "verified"))
	if !regexp.MustCompile(`resume: bytes already in staging .*resume_staged_bytes=[0-9]+ sst_bytes=[0-9]+`).MatchString(jl) {
		t.Errorf("the joiner does not say how much it resumed from:\n%s", grepLines(jl, "WSREP_SST"))
	}
	m := regexp.MustCompile(`delta: bytes that differ .*delta_differ_bytes=([0-9]+) delta_total_bytes=([0-9]+)`).FindStringSubmatch(dl)
	if m == nil {
		t.Fatalf("the donor does not say how much it sent:\n%s", grepLines(dl, "WSREP_SST"))
	}
	// What a full SST would send now: the datadir less the dead part of
	// the redo log.
	again, all := mib(t, m[1]), mib(t, m[2])-float64(redoHoles(t, ctx, n1, o1))/(1<<20)
	t.Logf("resumed SST sent %.1f MiB of a full SST's %.1f MiB (%.0f%%)", again, all, 100*again/all)
	if again > 0.6*all {
		t.Errorf("the resumed SST sent %.1f of %.1f MiB, more than 60%%", again, all)
	}
	for _, n := range []string{sst.StagingDirName, sst.ResumeName} {
		if _, err := os.Lstat(filepath.Join(n2.DataDir, n)); err == nil {
			t.Errorf("%s left after the resumed SST", n)
		}
	}
}

// written is what process pid wrote so far (its sockets, for an SST
// donor): /proc/PID/io's wchar.
func written(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		t.Fatalf("the donor's SST process is gone: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "wchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			testutil.Must(t, err)
			return n
		}
	}
	return 0
}

// announced waits for the joiner's "receiving files ... sst_bytes=N" and
// returns N.
func announced(t *testing.T, ctx context.Context, n *galeratest.Node, off int64) int64 {
	t.Helper()
	re := regexp.MustCompile(`receiving files .*\ssst_bytes=([0-9]+)`)
	for {
		if m := re.FindStringSubmatch(logSince(t, n, off)); m != nil {
			v, err := strconv.ParseInt(m[1], 10, 64)
			testutil.Must(t, err)
			return v
		}
		if !n.Running() || ctx.Err() != nil {
			t.Fatalf("node%d announced no SST:\n%s", n.N, grepLines(logSince(t, n, off), "WSREP_SST"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// redoHoles is what the donor leaves out of the redo log it sends (all
// but its live part), which the joiner's announced total includes.
func redoHoles(t *testing.T, ctx context.Context, n *galeratest.Node, off int64) int64 {
	t.Helper()
	re := regexp.MustCompile(`redo log: sending its live part only .*\sfile=\S*ib_logfile0\s.*\sbytes=([0-9]+) file_bytes=([0-9]+)`)
	for {
		l := logSince(t, n, off)
		if m := re.FindStringSubmatch(l); m != nil {
			live, err := strconv.ParseInt(m[1], 10, 64)
			testutil.Must(t, err)
			size, err := strconv.ParseInt(m[2], 10, 64)
			testutil.Must(t, err)
			return size - live
		}
		if strings.Contains(l, "ib_logfile0: sending or comparing it whole") || strings.Contains(l, "verified") {
			return 0
		}
		if ctx.Err() != nil {
			t.Fatalf("node%d said nothing of its redo log:\n%s", n.N, grepLines(l, "WSREP_SST"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
