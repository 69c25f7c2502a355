package nativecopy

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Binlogs (the last sst-max-binlogs of the index) and InnoDB/Aria
// directories outside the datadir reach the joiner's own directories;
// things in those directories that are not the method's stay.
func TestLayoutBinlogsAndExternalDirs(t *testing.T) {
	base := t.TempDir()
	dd, jd := filepath.Join(base, "donor/data"), filepath.Join(base, "joiner/data")
	dlog, jlog := filepath.Join(base, "donor/redo"), filepath.Join(base, "joiner/redo")
	dbin, jbin := filepath.Join(base, "donor/binlog"), filepath.Join(base, "joiner/binlog")
	for _, d := range []string{dd, jd, dlog, jlog, dbin, jbin} {
		os.MkdirAll(d, 0o750)
	}
	mkfiles(t, dd, map[string]int{"ibdata1": 1 << 20, "undo001": 1000, "aria_log_control": 52, "mysql/user.MAI": 100, "bench/t.ibd": 3 << 20})
	mkfiles(t, dlog, map[string]int{"ib_logfile0": 2 << 20, "unrelated.txt": 5})
	mkfiles(t, dbin, map[string]int{"mysql-bin.000001": 100, "mysql-bin.000002": 200, "mysql-bin.000003": 300})
	os.WriteFile(filepath.Join(dbin, "mysql-bin.index"), []byte(dbin+"/mysql-bin.000001\n"+dbin+"/mysql-bin.000002\n"+dbin+"/mysql-bin.000003\n"), 0o640)
	// The joiner's old state in its external dirs.
	mkfiles(t, jlog, map[string]int{"ib_logfile0": 1000, "keep-me.txt": 7})
	mkfiles(t, jbin, map[string]int{"mysql-bin.000007": 10, "other.log": 3})
	os.WriteFile(filepath.Join(jbin, "mysql-bin.index"), []byte(jbin+"/mysql-bin.000007\n"), 0o640)
	donorBefore := snapshot(t, filepath.Join(base, "donor"))
	keepLog, keepBin := snapshot(t, jlog)["keep-me.txt"], snapshot(t, jbin)["other.log"]

	j := startSide(t, context.Background(), []string{"--role", "joiner", "--address", "127.0.0.1:0", "--datadir", jd,
		"--binlog", filepath.Join(jbin, "mysql-bin"), "--binlog-index", filepath.Join(jbin, "mysql-bin.index"),
		"--mysqld-args", "--innodb-log-group-home-dir=" + jlog}, nil, false)
	ready, _ := j.next(t, 10*time.Second)
	d := startSide(t, context.Background(), []string{"--role", "donor", "--address", strings.TrimPrefix(ready, "ready "), "--datadir", dd,
		"--gtid", testUUID + ":3", "--gtid-domain-id", "0", "--binlog", filepath.Join(dbin, "mysql-bin"),
		"--innodb-log-group-home-dir", dlog}, map[string]string{"sst-max-binlogs": "2"}, false)
	for l := range d.lines {
		if l == "flush tables" {
			os.WriteFile(filepath.Join(dd, "tables_flushed"), []byte(testUUID+":3 0\n"), 0o640)
		}
	}
	if err := d.wait(t, 30*time.Second); err != nil {
		t.Fatalf("donor: %v\n%s", err, d.stderr)
	}
	if err := j.wait(t, 30*time.Second); err != nil {
		t.Fatalf("joiner: %v\n%s", err, j.stderr)
	}
	same := func(a, b string) {
		t.Helper()
		x, _ := os.ReadFile(a)
		y, err := os.ReadFile(b)
		if err != nil || !bytes.Equal(x, y) {
			t.Errorf("%s differs from %s (%v)", b, a, err)
		}
	}
	same(filepath.Join(dlog, "ib_logfile0"), filepath.Join(jlog, "ib_logfile0"))
	same(filepath.Join(dd, "bench/t.ibd"), filepath.Join(jd, "bench/t.ibd"))
	same(filepath.Join(dbin, "mysql-bin.000002"), filepath.Join(jbin, "mysql-bin.000002"))
	same(filepath.Join(dbin, "mysql-bin.000003"), filepath.Join(jbin, "mysql-bin.000003"))
	for _, gone := range []string{filepath.Join(jbin, "mysql-bin.000001"), filepath.Join(jbin, "mysql-bin.000007"), filepath.Join(jd, "ib_logfile0"), filepath.Join(jlog, "unrelated.txt")} {
		if _, err := os.Stat(gone); err == nil {
			t.Errorf("%s should not be there", gone)
		}
	}
	if idx, _ := os.ReadFile(filepath.Join(jbin, "mysql-bin.index")); string(idx) != jbin+"/mysql-bin.000002\n"+jbin+"/mysql-bin.000003\n" {
		t.Errorf("joiner's binlog index:\n%s", idx)
	}
	if snapshot(t, jlog)["keep-me.txt"] != keepLog || snapshot(t, jbin)["other.log"] != keepBin {
		t.Error("files of others in the external directories were not kept")
	}
	if diff := diffSnap(donorBefore, snapshot(t, filepath.Join(base, "donor"))); diff != "" {
		t.Errorf("donor changed:\n%s", diff)
	}
	t.Logf("joiner:\n%s", j.stderr)
}

func TestChangedIsConservative(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, []byte("x"), 0o600)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(p, old, old)
	fi, _ := os.Stat(p)
	f := &file{Path: p, Size: fi.Size(), MTime: fi.ModTime(), Read: time.Now()}
	if ch, _ := f.changed(); ch {
		t.Fatal("old, untouched file reported changed")
	}
	// Modified within the timestamp granularity before the read: racy.
	f.Read = fi.ModTime().Add(time.Second)
	if ch, _ := f.changed(); !ch {
		t.Fatal("racy mtime not treated as changed")
	}
	f.Read = time.Now()
	os.WriteFile(p, []byte("y"), 0o600)
	os.Chtimes(p, old, old.Add(time.Nanosecond))
	if ch, _ := f.changed(); !ch {
		t.Fatal("new mtime not seen")
	}
	os.Chtimes(p, old, old)
	os.WriteFile(p, []byte("yy"), 0o600)
	os.Chtimes(p, old, old)
	if ch, _ := f.changed(); !ch {
		t.Fatal("new size not seen")
	}
}

// A DATA DIRECTORY file at a path where the joiner already holds a file
// that no table of its own points to is refused before any byte moves,
// naming the table and the path; the file and the joiner's datadir stay.
// (Donor and joiner share one filesystem here, so the joiner sees the
// donor's own file: exactly such a stranger.)
func TestExtNotTheNodesRefused(t *testing.T) {
	base := t.TempDir()
	dd, jd, ext := filepath.Join(base, "donor"), filepath.Join(base, "joiner"), filepath.Join(base, "ext")
	mkfiles(t, dd, map[string]int{"ibdata1": 1 << 20, "db/t.frm": 100})
	mkfiles(t, ext, map[string]int{"db/t.ibd": 64 << 10})
	os.WriteFile(filepath.Join(dd, "db/t.isl"), []byte(filepath.Join(ext, "db/t.ibd")), 0o640)
	mkfiles(t, jd, map[string]int{"ibdata1": 1 << 20, "old/x.ibd": 100})
	jBefore, extBefore := snapshot(t, jd), snapshot(t, ext)

	j := startSide(t, context.Background(), []string{"--role", "joiner", "--address", "127.0.0.1:0", "--datadir", jd}, nil, false)
	ready, _ := j.next(t, 10*time.Second)
	d := startSide(t, context.Background(), []string{"--role", "donor", "--address", strings.TrimPrefix(ready, "ready "), "--datadir", dd,
		"--gtid", testUUID + ":3", "--gtid-domain-id", "0"}, nil, false)
	for l := range d.lines {
		if l == "flush tables" {
			t.Error("the donor got as far as the lock")
			os.WriteFile(filepath.Join(dd, "tables_flushed"), []byte(testUUID+":3 0\n"), 0o640)
		}
	}
	derr, jerr := d.wait(t, 30*time.Second), j.wait(t, 30*time.Second)
	if jerr == nil || derr == nil {
		t.Fatalf("joiner: %v, donor: %v: want both to fail", jerr, derr)
	}
	for _, want := range []string{"table db/t", filepath.Join(ext, "db/t.ibd"), "not this node's"} {
		if !strings.Contains(jerr.Error(), want) {
			t.Errorf("joiner's error %q does not say %q", jerr, want)
		}
	}
	if strings.Contains(d.stderr.String(), "first pass") {
		t.Errorf("the donor sent data:\n%s", d.stderr)
	}
	if diff := diffSnap(jBefore, snapshot(t, jd)); diff != "" {
		t.Errorf("joiner's datadir changed:\n%s", diff)
	}
	if diff := diffSnap(extBefore, snapshot(t, ext)); diff != "" {
		t.Errorf("the file at the DATA DIRECTORY path changed:\n%s", diff)
	}
}
