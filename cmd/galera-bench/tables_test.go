package main

import (
	"bytes"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTableBatch(t *testing.T) {
	q := tableBatch("tenant007", 3, 5)
	for _, want := range []string{
		"CREATE TABLE tenant007.t00003 (", "INSERT INTO tenant007.t00003 VALUES (1,'alpha 3',3),(2,'beta 3',6),(3,'gamma 3',9);",
		"CREATE TABLE tenant007.t00004 (", "INSERT INTO tenant007.t00004 VALUES",
	} {
		if !strings.Contains(q, want) {
			t.Errorf("batch lacks %q:\n%s", want, q)
		}
	}
	if strings.Contains(q, "t00005") || strings.Count(q, "CREATE TABLE") != 2 {
		t.Errorf("batch 3..5 should create t00003 and t00004 only:\n%s", q)
	}
}

func TestEvaluateFiles(t *testing.T) {
	rs := []Result{
		{Method: "rsync", OK: true, Seconds: 30},
		{Method: "native-copy", OK: true, Seconds: 11},
		{Method: "mariabackup", OK: false, Err: "Too many open files"},
		{Method: "native-backup", OK: true, Seconds: 20},
	}
	ts := EvaluateFiles(rs, 30000)
	if ts[0].Status != "PASS" || ts[0].Limit != 0.40 || math.Abs(ts[0].Value-11.0/30) > 1e-9 {
		t.Errorf("many tables, native-copy: %+v", ts[0])
	}
	if ts[1].Status != "PASS" || !strings.Contains(ts[1].Why, "mariabackup failed") {
		t.Errorf("native-backup completing where mariabackup failed: %+v", ts[1])
	}
	// One table: 11/30 misses 0.35; both backups complete, 0.5 misses 0.3.
	rs[2] = Result{Method: "mariabackup", OK: true, Seconds: 40}
	ts = EvaluateFiles(rs, 0)
	if ts[0].Status != "MISS" || ts[0].Limit != 0.35 {
		t.Errorf("one table, native-copy: %+v", ts[0])
	}
	if ts[1].Status != "MISS" || ts[1].Value != 0.5 {
		t.Errorf("native-backup against mariabackup: %+v", ts[1])
	}
	// Both fail: a MISS, not a PASS.
	rs[2].OK, rs[3].OK = false, false
	if ts = EvaluateFiles(rs, 30000); ts[1].Status != "MISS" {
		t.Errorf("both backups failed: %+v", ts[1])
	}
	// native-backup not run: N/A.
	if ts = EvaluateFiles(rs[:2], 30000); ts[1].Status != "N/A" {
		t.Errorf("no backup runs: %+v", ts[1])
	}
}

func TestEvaluateDelta(t *testing.T) {
	rs := []Result{
		{Method: "native-copy delta", OK: true, Seconds: 30, ExtraDiskBytes: 400 << 20},
		{Method: "native-copy full", OK: true, Seconds: 400, ExtraDiskBytes: 4 << 30},
		{Method: "rsync", OK: true, Seconds: 420},
	}
	ts := EvaluateDelta(rs, 4<<30)
	if ts[0].Status != "PASS" || math.Abs(ts[0].Value-0.075) > 1e-9 {
		t.Errorf("delta time: %+v", ts[0])
	}
	if ts[1].Status != "PASS" || math.Abs(ts[1].Value-400.0/4096) > 1e-9 {
		t.Errorf("delta disk: %+v", ts[1])
	}
	// Exactly 10 % is a MISS: the target is "under".
	rs[0].ExtraDiskBytes = 4 << 30 / 10
	if ts = EvaluateDelta(rs, 4<<30/10*10); ts[1].Status != "MISS" {
		t.Errorf("delta disk at 10 %%: %+v", ts[1])
	}
	rs[0].OK = false
	if ts = EvaluateDelta(rs, 4<<30); ts[0].Status != "N/A" || ts[1].Status != "N/A" {
		t.Errorf("failed delta run: %+v", ts)
	}
	var buf bytes.Buffer
	rep := &Report{Results: rs, Targets: ts, Link: "netem rate 100mbit delay 20ms", PayloadBytes: 4 << 30, ChangedPages: 2, Pages: 100}
	if err := WriteDelta(&buf, rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"netem rate 100mbit delay 20ms", "2 of 100 pages (2.0 %)", "native-copy full", "N/A  issue 21"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("WriteDelta lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestParseFlagsModes(t *testing.T) {
	for _, args := range [][]string{{"-delta", "-tables", "10"}, {"-endpoint", "-delta"}, {"-tables", "-1"}, {"-changed", "0"}, {"-delta", "-baseline", "/x"}, {"-endpoint", "-baseline", "/x"}} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) accepted", args)
		}
	}
	if linkRate("delay 20ms rate 100mbit") != "100mbit" || linkRate("delay 20ms") != "" {
		t.Error("linkRate")
	}
	c, err := parseFlags([]string{"-delta", "-size", "200M", "-link", "rate 10mbit"}, io.Discard)
	if err != nil || !c.delta || c.size != 200<<20 || c.link != "rate 10mbit" || c.changedPct != 2 {
		t.Errorf("parseFlags -delta: %+v, %v", c, err)
	}
	t.Chdir(t.TempDir())
	wd, _ := os.Getwd()
	if c, err := parseFlags([]string{"-baseline", "old-bin"}, io.Discard); err != nil || c.baseline != filepath.Join(wd, "old-bin") {
		t.Errorf("-baseline old-bin: %q, %v; want it made absolute", c.baseline, err)
	}
}

func TestMeasureFloor(t *testing.T) {
	f, err := measureFloor(t.TempDir(), 200)
	if err != nil {
		t.Fatal(err)
	}
	if f.Files != 200 || f.CreateMs <= 0 || f.CreateSyncMs < f.CreateMs {
		t.Errorf("floor: %+v", f)
	}
}

func TestAllocatedAndDiskSampler(t *testing.T) {
	dir := t.TempDir()
	d := newDiskSampler(dir)
	if err := os.WriteFile(filepath.Join(dir, "f"), make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	// A hole allocates nothing.
	f, err := os.Create(filepath.Join(dir, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(1 << 30)
	f.Close()
	a := allocated(dir)
	if a < 1<<20 || a > 1<<20+1<<16 {
		t.Errorf("allocated %d bytes, want about 1 MiB", a)
	}
	d.peak = a
	if got := d.peakExtra(); got < 1<<20 || got > 1<<20+1<<16 {
		t.Errorf("peak extra %d, want about 1 MiB", got)
	}
}

func TestWritePerFile(t *testing.T) {
	var buf bytes.Buffer
	rep := &Report{Floor: &Floor{Files: 100, FileBytes: 16 << 10, CreateMs: 0.05, CreateSyncMs: 0.08},
		Results: []Result{{Method: cpMethod, OK: true, Seconds: 6, Files: 60000}, {Method: "rsync", OK: false, Files: 60000}}}
	WritePerFile(&buf, rep)
	want := "creating a file on this disk (100 files of 16 KiB): 0.050 ms/file, 0.080 ms/file with one syncfs at the end\n" +
		"cp -r                0.100 ms/file (6.0 s / 60000 files)\n"
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
}
