package donorlock

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestErrorLogSpan(t *testing.T) {
	log := `2026-11-21 11:10:00 0 [Note] WSREP: Running: 'wsrep_sst_rsync --role 'donor' ...'
2026-11-21 11:10:01 3 [Note] WSREP: Flushing tables for SST...
2026-11-21 11:10:01 3 [Note] WSREP: Tables flushed.
WSREP_SST: [INFO] Transfer of normal directories done (20261121 11:10:18.250)
2026-11-21 11:10:18 3 [Note] WSREP: Tables unlocked.
2026-11-21 11:10:19 0 [Note] WSREP: Donor state reached
`
	if d, ok := ErrorLogSpan(strings.NewReader(log)); !ok || d != 17*time.Second {
		t.Errorf("span = %v, %v; want 17s", d, ok)
	}
	if d, ok := ErrorLogSpan(strings.NewReader("2026-11-21 11:10:00 0 [Note] WSREP: Running: 'wsrep_sst_mariabackup'\n")); ok {
		t.Errorf("span without a lock = %v, want none", d)
	}
}

func TestLineTime(t *testing.T) {
	for _, c := range []struct {
		line string
		want string
	}{
		{"2026-11-21 11:10:01 3 [Note] WSREP: Tables flushed.", "2026-11-21 11:10:01.000"},
		{"2026-11-21  9:10:01 3 [Note] x", "2026-11-21 09:10:01.000"},
		{"[00] 2026-11-21 11:10:02 Executing BACKUP STAGE END", "2026-11-21 11:10:02.000"},
		{"WSREP_SST: [INFO] done (20261121 11:10:18.250)", "2026-11-21 11:10:18.250"},
	} {
		got, ok := LineTime(c.line)
		if !ok || got.Format("2006-01-02 15:04:05.000") != c.want {
			t.Errorf("LineTime(%q) = %v, %v; want %s", c.line, got, ok, c.want)
		}
	}
	if _, ok := LineTime("no time here"); ok {
		t.Error("LineTime found a time in a line without one")
	}
}

// testdata/mariadb-backup.backup.log is a donor's log from a real
// native-backup SST (galera-demo -keep).
func TestFindBackupLog(t *testing.T) {
	sample, err := os.ReadFile("testdata/mariadb-backup.backup.log")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	since := time.Now().Add(-time.Minute)
	if _, err := Find(nil, dir, since); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Find in an empty datadir = %v, want ErrNotExist", err)
	}
	path := filepath.Join(dir, BackupLogNames[0])
	if err := os.WriteFile(path, sample, 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := Find([]byte("2026-11-21 11:10:00 0 [Note] WSREP: Running: 'wsrep_sst_native-backup'\n"), dir, since)
	if err != nil {
		t.Fatal(err)
	}
	want, ok := BackupLogSpan(strings.NewReader(string(sample)))
	if !ok || l.D != want || l.Source != path || l.D < 0 || l.D > 10*time.Second {
		t.Errorf("Find = %+v; BackupLogSpan = %v, %v", l, want, ok)
	}
	// A log older than the SST is someone else's.
	old := since.Add(-time.Hour)
	os.Chtimes(path, old, old)
	if _, err := Find(nil, dir, since); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Find with a stale log = %v, want ErrNotExist", err)
	}
	// A log without the stages says so, naming it.
	os.WriteFile(path, []byte("[00] 2026-11-21 11:10:02 Connecting to server host: localhost\n"), 0o644)
	if _, err := Find(nil, dir, since); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Find with no stages = %v, want an error naming %s", err, path)
	}
}

func FuzzSpan(f *testing.F) {
	f.Add("2026-11-21 11:10:01 3 [Note] WSREP: Flushing tables for SST...\n2026-11-21 11:10:18 3 [Note] WSREP: Tables unlocked.\n")
	f.Add("[00] 2026-11-21 11:10:01 Started BACKUP STAGE BLOCK_DDL\n[00] 2026-11-21 11:10:02 Executing BACKUP STAGE END\n")
	f.Fuzz(func(t *testing.T, s string) {
		if d, ok := ErrorLogSpan(strings.NewReader(s)); !ok && d != 0 {
			t.Errorf("no span but d = %v", d)
		}
		if d, ok := BackupLogSpan(strings.NewReader(s)); !ok && d != 0 {
			t.Errorf("no span but d = %v", d)
		}
	})
}
