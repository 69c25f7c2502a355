package main

import (
	"bytes"
	"encoding/json"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/internal/testutil"
)

// sample is a plausible 4 GB run: native-copy meets its targets except RSS,
// native-backup misses its time target.
func sample() []Result {
	return []Result{
		{Method: cpMethod, OK: true, Seconds: 7, PayloadBytes: 5_370_000_000, MBps: 767, LockLogS: -1},
		{Method: "rsync", OK: true, Seconds: 20, PayloadBytes: 5_106_000_000, MBps: 255.3, LockProbeS: 17.2, LockLogS: 17, RSSPeakMiB: 12.5, RSSSamples: 400},
		{Method: "native-copy", OK: true, Seconds: 7.8, PayloadBytes: 5_106_000_000, MBps: 600, LockProbeS: 0.4, LockLogS: 0.5, RSSPeakMiB: 70, RSSSamples: 150},
		{Method: "mariabackup", OK: true, Seconds: 34, PayloadBytes: 5_106_000_000, MBps: 150.2, LockProbeS: 0.2, LockLogS: -1, RSSPeakMiB: 20, BackupRSSMiB: 300, RSSSamples: 700},
		{Method: "native-backup", OK: true, Seconds: 20, PayloadBytes: 5_106_000_000, MBps: 255.3, LockProbeS: 0.1, LockLogS: -1, RSSPeakMiB: 30, BackupRSSMiB: 310, RSSSamples: 400},
		{Method: "native-backup+lz4", OK: false, Err: "join node2: boom", LockLogS: -1},
	}
}

func TestEvaluate(t *testing.T) {
	ts := Evaluate(sample())
	want := []struct {
		status string
		value  float64
	}{
		{"PASS", 7.8 / 20},
		{"MISS", 600.0 / 767},
		{"PASS", 0.4 / 17.2},
		{"MISS", 70},
		{"MISS", 20.0 / 34},
		{"PASS", 30},
	}
	if len(ts) != len(want) {
		t.Fatalf("got %d targets, want %d", len(ts), len(want))
	}
	for i, w := range want {
		if ts[i].Status != w.status || math.Abs(ts[i].Value-w.value) > 1e-9 {
			t.Errorf("target %d %q: got %s %.4f, want %s %.4f", i, ts[i].Name, ts[i].Status, ts[i].Value, w.status, w.value)
		}
	}
}

func TestEvaluateBoundaries(t *testing.T) {
	rs := []Result{
		{Method: "rsync", OK: true, Seconds: 10, LockProbeS: 4},
		{Method: "native-copy", OK: true, Seconds: 4, LockProbeS: 1, RSSPeakMiB: 64, RSSSamples: 1},
	}
	ts := Evaluate(rs)
	for i, want := range []string{"PASS", "N/A", "PASS", "PASS", "N/A", "N/A"} {
		if ts[i].Status != want {
			t.Errorf("target %d %q: %s, want %s (value %v)", i, ts[i].Name, ts[i].Status, want, ts[i].Value)
		}
	}
	if !strings.Contains(ts[1].Why, cpMethod) {
		t.Errorf("N/A reason %q does not name the missing %s run", ts[1].Why, cpMethod)
	}
}

func TestEvaluateIgnoresFailedAndZero(t *testing.T) {
	rs := []Result{
		{Method: "rsync", OK: true, Seconds: 10, LockProbeS: 0},
		{Method: "native-copy", OK: false, Seconds: 1},
		{Method: "mariabackup", OK: true, Seconds: 30},
		{Method: "native-backup", OK: true, Seconds: 10}, // no RSS samples
	}
	ts := Evaluate(rs)
	for i, want := range []string{"N/A", "N/A", "N/A", "N/A", "PASS", "N/A"} {
		if ts[i].Status != want {
			t.Errorf("target %d %q: %s, want %s", i, ts[i].Name, ts[i].Status, want)
		}
	}
}

func TestTargetJSONNaN(t *testing.T) {
	b, err := json.Marshal(Target{Name: "x", Value: math.NaN(), Status: "N/A"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"value":null`) {
		t.Errorf("NaN not written as null: %s", b)
	}
}

func TestTables(t *testing.T) {
	rs := sample()
	var buf bytes.Buffer
	if err := WriteTable(&buf, rs); err != nil {
		t.Fatal(err)
	}
	buf.WriteString("\n")
	if err := WriteTargets(&buf, Evaluate(rs)); err != nil {
		t.Fatal(err)
	}
	testutil.Golden(t, filepath.Join("testdata", "table.golden"), buf.Bytes())

	buf.Reset()
	if err := WriteMarkdown(&buf, rs); err != nil {
		t.Fatal(err)
	}
	testutil.Golden(t, filepath.Join("testdata", "table.md.golden"), buf.Bytes())

	buf.Reset()
	if err := WriteTSV(&buf, rs); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != len(rs)+1 {
		t.Fatalf("TSV has %d lines, want %d", len(lines), len(rs)+1)
	}
	for i, l := range lines {
		if n := len(strings.Split(l, "\t")); n != len(tsvHeader) {
			t.Errorf("TSV line %d has %d fields, want %d: %q", i, n, len(tsvHeader), l)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"300M": 300 << 20, "4G": 4 << 30, "1.5g": 3 << 29, "4096": 4096, "2GiB": 2 << 30, "10k": 10240} {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "G", "-1G", "lots"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q): no error", in)
		}
	}
}

func TestBar(t *testing.T) {
	got := bar("rsync", 512<<20, 1<<30, 12300*time.Millisecond, 10)
	want := "rsync            [#####.....]  50%  512.0 MiB / 1.0 GiB   12.3s"
	if got != want {
		t.Errorf("bar =\n%q, want\n%q", got, want)
	}
	// Growth past the total (preallocated files) stays at 100%.
	if got := bar("x", 3, 2, 0, 4); !strings.Contains(got, "[####] 100%") {
		t.Errorf("overfull bar = %q", got)
	}
	if got := bar("x", 0, 0, 0, 4); !strings.Contains(got, "[....]   0%") {
		t.Errorf("bar without a total = %q", got)
	}
}

func TestMedian(t *testing.T) {
	rs := []Result{
		{Method: "rsync", OK: true, Seconds: 30},
		{Method: "rsync", OK: false, Err: "boom"},
		{Method: "rsync", OK: true, Seconds: 10},
		{Method: "rsync", OK: true, Seconds: 20, MBps: 5},
	}
	m := median(rs)
	if m.Seconds != 20 || m.MBps != 5 || m.Failed != 1 || !reflect.DeepEqual(m.Runs, []float64{30, 10, 20}) {
		t.Errorf("median = %+v", m)
	}
	if m := median(rs[:1]); m.Runs != nil || m.Seconds != 30 {
		t.Errorf("single run = %+v", m)
	}
	if m := median([]Result{{Method: "x", Err: "a"}, {Method: "x", Err: "b"}}); m.OK || m.Err != "b" {
		t.Errorf("all failed = %+v", m)
	}
	// Even count: the slower middle run.
	if m := median([]Result{{OK: true, Seconds: 1}, {OK: true, Seconds: 2}}); m.Seconds != 2 {
		t.Errorf("even = %v", m.Seconds)
	}
}

func TestRotate(t *testing.T) {
	jobs := []string{"cp -r", "rsync", "native-copy"}
	seen := map[string]map[int]bool{}
	for round := 0; round < len(jobs); round++ {
		for pos, j := range rotate(jobs, round) {
			if seen[j] == nil {
				seen[j] = map[int]bool{}
			}
			seen[j][pos] = true
		}
	}
	for _, j := range jobs {
		if len(seen[j]) != len(jobs) {
			t.Errorf("%s ran in positions %v, want each of %d once", j, seen[j], len(jobs))
		}
	}
	if got := rotate(jobs, 4); got[0] != "rsync" {
		t.Errorf("rotate(jobs, 4) starts with %s, want rsync", got[0])
	}
	if jobs[0] != "cp -r" {
		t.Errorf("rotate changed its input: %v", jobs)
	}
}

func TestBaselineReport(t *testing.T) {
	rs := []Result{
		{Method: "rsync", OK: true, Seconds: 20, MBps: 255.3, LockProbeS: 17.2, LockLogS: 17, RSSPeakMiB: 12.5, RSSSamples: 400},
		{Method: "native-copy", OK: true, Seconds: 7.8, MBps: 600, LockProbeS: 0.4, LockLogS: 0.5, RSSPeakMiB: 20, RSSSamples: 150},
		{Method: "native-copy@baseline", OK: true, Seconds: 7.5, MBps: 624, LockProbeS: 0.4, LockLogS: 0.5, RSSPeakMiB: 20, RSSSamples: 150},
		{Method: "native-backup", OK: true, Seconds: 20, MBps: 255.3, LockProbeS: 0.1, LockLogS: -1, RSSPeakMiB: 30, RSSSamples: 400},
		{Method: "native-backup@baseline", OK: true, Seconds: 18, MBps: 283.7, LockProbeS: 0.1, LockLogS: -1, RSSPeakMiB: 30, RSSSamples: 400},
		{Method: "native-backup+lz4", OK: true, Seconds: 25, MBps: 204, LockLogS: -1},
		{Method: "native-backup+lz4@baseline", OK: false, Err: "boom", LockLogS: -1},
	}
	ts := EvaluateBaseline(rs)
	want := []struct {
		name, status string
		value        float64
	}{
		{"native-copy vs baseline", "PASS", 7.8 / 7.5},
		{"native-backup vs baseline", "MISS", 20.0 / 18},
		{"native-backup+lz4 vs baseline", "N/A", math.NaN()},
	}
	if len(ts) != len(want) {
		t.Fatalf("got %d targets, want %d: %+v", len(ts), len(want), ts)
	}
	for i, w := range want {
		if ts[i].Name != w.name || ts[i].Status != w.status || !(math.Abs(ts[i].Value-w.value) < 1e-9 || math.IsNaN(w.value) && math.IsNaN(ts[i].Value)) {
			t.Errorf("target %d: got %s %s %.4f, want %s %s %.4f", i, ts[i].Name, ts[i].Status, ts[i].Value, w.name, w.status, w.value)
		}
	}
	// At the limit it passes; just above it misses.
	edge := []Result{{Method: "native-copy", OK: true, Seconds: 10.5}, {Method: "native-copy@baseline", OK: true, Seconds: 10}}
	if ts := EvaluateBaseline(edge); len(ts) != 1 || ts[0].Status != "PASS" {
		t.Errorf("1.05x = %+v, want PASS", ts)
	}
	edge[0].Seconds = 10.6
	if ts := EvaluateBaseline(edge); ts[0].Status != "MISS" {
		t.Errorf("1.06x = %+v, want MISS", ts)
	}
	if ts := EvaluateBaseline(sample()); len(ts) != 0 {
		t.Errorf("no baseline runs, yet %+v", ts)
	}

	var buf bytes.Buffer
	if err := WriteTable(&buf, rs); err != nil {
		t.Fatal(err)
	}
	buf.WriteString("\n")
	if err := WriteTargets(&buf, ts); err != nil {
		t.Fatal(err)
	}
	buf.WriteString("\n")
	if err := WriteMarkdown(&buf, rs); err != nil {
		t.Fatal(err)
	}
	testutil.Golden(t, filepath.Join("testdata", "baseline.golden"), buf.Bytes())
}
