package sst

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A stock method's incomplete SST may have left the datadir half written;
// a native one's left it whole; a marker that names no method counts as
// half written.
func TestIncompleteBefore(t *testing.T) {
	at := time.Date(2026, 12, 7, 20, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, marker string
		half         bool
	}{
		{"rsync", IncompleteWhy("rsync", at), true},
		{"mariabackup", IncompleteWhy("mariabackup", at), true},
		{"native-copy", IncompleteWhy("native-copy", at), false},
		{"native-backup", IncompleteWhy("native-backup", at) + "\n", false},
		{"an older supervisor's", "an SST into this node began at 2026-12-07T20:00:00Z and the node was not Synced since", true},
		{"leftovers found", "sst_in_progress left in /var/lib/mysql", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := HalfWritten(tc.marker); got != tc.half {
				t.Errorf("HalfWritten(%q) = %v, want %v", tc.marker, got, tc.half)
			}
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, IncompleteFile), []byte(tc.marker), 0o640); err != nil {
				t.Fatal(err)
			}
			got := incompleteBefore(dir)
			if (got != "") != tc.half || (tc.half && !strings.Contains(got, IncompleteFile+" says "+strings.TrimSpace(tc.marker))) {
				t.Errorf("incompleteBefore = %q", got)
			}
		})
	}
	dir := t.TempDir()
	if got := incompleteBefore(dir); got != "" {
		t.Errorf("no marker: %q", got)
	}
	os.WriteFile(filepath.Join(dir, InProgressFile), nil, 0o640)
	if got := incompleteBefore(dir); !strings.Contains(got, InProgressFile) {
		t.Errorf("sst_in_progress: %q", got)
	}
}
