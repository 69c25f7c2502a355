package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/internal/testutil"

	"github.com/galera-supervisor/galera-supervisor/sst/donorlock"
)

var lock = donorlock.Lock{D: 2 * time.Second, Source: "/var/tmp/gs-test/c-1/node1/data/mariadb-backup.backup.log",
	What: "BACKUP STAGE BLOCK_DDL to END", Resolution: time.Second}

// testdata/joiner.log is node3's error log from a real native-backup join.
func TestSummaryFromJoinerLog(t *testing.T) {
	b, err := os.ReadFile("testdata/joiner.log")
	if err != nil {
		t.Fatal(err)
	}
	s := summary{Joiner: "node3", Method: "native-backup", Donor: "node1", Join: 6810 * time.Millisecond, Lock: lock}
	if !s.parseJoinerLog(b) {
		t.Fatal("no received line found")
	}
	if s.Bytes != 46710928 || s.Receive != 2361*time.Millisecond || s.Prepare != 180*time.Millisecond || s.SST != 2600*time.Millisecond {
		t.Errorf("parsed %+v", s)
	}
	testutil.Golden(t, filepath.Join("testdata", "summary-log.golden"), []byte(s.String()+"\n"))
	s.Lock.D = 0
	if !strings.Contains(s.String(), "blocked writes for under 1 s") {
		t.Errorf("a lock below the log's resolution: %s", s.String())
	}
}

func TestSummaryFromStatus(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 15, 0, 0, 0, time.UTC)
	var lines []statusLine
	for _, s := range statusRun {
		lines = append(lines, statusLine{t0.Add(time.Duration(s.at * float64(time.Second))), s.line})
	}
	s := summary{Joiner: "node3", Method: "native-backup", Donor: "node1", Join: 5 * time.Second, LockErr: errors.New("donor lock: no flush in the error log, and no mariadb-backup.backup.log")}
	if s.parseJoinerLog([]byte("2026-12-02 15:07:42 3 [Note] WSREP: SST received\n")) {
		t.Fatal("found a received line in a log without one")
	}
	s.fromStatus(lines)
	// The SST phases ran from "waiting" (1.1 s) to "done" (4.2 s), received
	// from 1.3 s to "preparing" at 3.9 s.
	if !s.FromStatus || s.SST != 3100*time.Millisecond || s.Receive != 2600*time.Millisecond || s.Bytes != 162<<20 {
		t.Errorf("from STATUS: %+v", s)
	}
	testutil.Golden(t, filepath.Join("testdata", "summary-status.golden"), []byte(s.String()+"\n"))
	if !strings.Contains(s.String(), "lock time unknown") {
		t.Error("a missing lock time is not said")
	}
}

func FuzzParseJoinerLog(f *testing.F) {
	if b, err := os.ReadFile("testdata/joiner.log"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("WSREP_SST: [INFO] received the snapshot sst_bytes=9 elapsed=-5s (20261202 15:07:42.262)\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := summary{Method: "native-backup"}
		s.parseJoinerLog(b)
		if s.Bytes < 0 || s.Receive < 0 || s.Prepare < 0 || s.SST < 0 {
			t.Errorf("negative numbers from %q: %+v", b, s)
		}
		_ = s.String()
	})
}
