package supervisor

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/galera-supervisor/galera-supervisor/notify/logging"
	"github.com/galera-supervisor/galera-supervisor/sst"
)

func TestSetSafeToBootstrap(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "grastate.dat")
	const galera = "# GALERA saved state\nversion: 2.1\nuuid:    5f2e1a3c-0000-4000-8000-00000000000a\nseqno:   -1\nsafe_to_bootstrap: 0\n"
	os.WriteFile(path, []byte(galera), 0o660)
	pos := Position{UUID: "5f2e1a3c-0000-4000-8000-00000000000a", Seqno: 42}
	if err := setSafeToBootstrap(dir, pos, -1, -1); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if want := strings.Replace(galera, "safe_to_bootstrap: 0", "safe_to_bootstrap: 1", 1); string(b) != want {
		t.Errorf("grastate.dat:\n%s\nwant only safe_to_bootstrap changed:\n%s", b, want)
	}
	// Empty (cut short by a crash): written anew from the recovered position.
	os.WriteFile(path, nil, 0o660)
	if err := setSafeToBootstrap(dir, pos, -1, -1); err != nil {
		t.Fatal(err)
	}
	g, err := ReadGrastate(path)
	if err != nil || g.UUID != pos.UUID || g.Seqno != 42 || !g.SafeToBootstrap {
		t.Errorf("rewritten grastate.dat: %+v, %v", g, err)
	}
}

func TestIncompleteSST(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Server: map[string]string{"datadir": dir}}
	if why := findIncompleteSST(opts); why != "" {
		t.Fatalf("clean datadir: %q", why)
	}
	os.WriteFile(filepath.Join(dir, sst.InProgressFile), nil, 0o640)
	// A stale pid file (no such process) and a live one (ours).
	os.WriteFile(filepath.Join(dir, sst.PIDFile), []byte("999999999\n"), 0o640)
	os.WriteFile(filepath.Join(dir, "rsync_sst.pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o640)
	why := findIncompleteSST(opts)
	if !strings.Contains(why, sst.InProgressFile) {
		t.Fatalf("sst_in_progress not seen: %q", why)
	}
	if err := markSSTIncomplete(dir, why); err != nil {
		t.Fatal(err)
	}
	cleanSSTMarkers(dir, logging.Discard())
	for name, gone := range map[string]bool{sst.InProgressFile: true, sst.PIDFile: true, "rsync_sst.pid": false} {
		if _, err := os.Stat(filepath.Join(dir, name)); (err != nil) != gone {
			t.Errorf("%s: removed %v, want %v", name, err != nil, gone)
		}
	}
	// The marker outlives the evidence, until the node is Synced.
	if got := findIncompleteSST(opts); got != why {
		t.Errorf("after cleanup: %q, want %q", got, why)
	}
	os.Remove(filepath.Join(dir, SSTIncompleteFile))
	os.Mkdir(filepath.Join(dir, sst.StagingDirName), 0o750)
	if why := findIncompleteSST(opts); !strings.Contains(why, sst.StagingDirName) {
		t.Errorf("staging not seen: %q", why)
	}
}
