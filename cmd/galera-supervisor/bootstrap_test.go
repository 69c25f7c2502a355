package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/galera-supervisor/galera-supervisor/notify/logging"
	"github.com/galera-supervisor/galera-supervisor/supervisor/quorum"
)

const unsafeGrastate = `# GALERA saved state
version: 2.1
uuid:    1d1b1b1b-0000-11f1-8000-000000000001
seqno:   41
safe_to_bootstrap: 0
`

func TestCheckGrastate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "grastate.dat")
	nolog := logging.Discard()

	if err := checkGrastate(path, false, nolog); err != nil {
		t.Errorf("missing grastate.dat: %v, want nil (a new node)", err)
	}
	if err := os.WriteFile(path, []byte(unsafeGrastate), 0o640); err != nil {
		t.Fatal(err)
	}
	err := checkGrastate(path, false, nolog)
	if exitCode(err) != exitBootstrapUnsafe || !strings.Contains(err.Error(), path) ||
		!strings.Contains(err.Error(), "highest seqno") || !strings.Contains(err.Error(), "left the Primary Component cleanly") ||
		!strings.Contains(err.Error(), "every commit after seqno 41") {
		t.Errorf("safe_to_bootstrap: 0 without --force: exit %d, %v", exitCode(err), err)
	}
	// A member of a crashed view, whose supervisor waits for a peer.
	os.WriteFile(filepath.Join(dir, "gvwstate.dat"), []byte("my_uuid: 11111111-0000-4000-8000-000000000001\n#vwbeg\nview_id: 3 aaaaaaaa-0000-4000-8000-00000000000a 7\nbootstrap: 0\nmember: 11111111-0000-4000-8000-000000000001 0\nmember: 22222222-0000-4000-8000-000000000002 0\nmember: 33333333-0000-4000-8000-000000000003 0\n#vwend\n"), 0o640)
	quorum.WriteRecord(dir, quorum.Record{Decision: quorum.Decision{Action: quorum.ActionWait, Reason: "waiting for 10.0.0.3:4569, however long"}})
	err = checkGrastate(path, false, nolog)
	if msg := err.Error(); !strings.Contains(msg, "view seq 7 (3 members") || !strings.Contains(msg, "writesets in flight") ||
		!strings.Contains(msg, "waiting for 10.0.0.3:4569, however long") {
		t.Errorf("a member of a crashed view: %v", err)
	}
	os.Remove(filepath.Join(dir, "gvwstate.dat"))
	if b, _ := os.ReadFile(path); string(b) != unsafeGrastate {
		t.Errorf("refusal changed grastate.dat:\n%s", b)
	}

	if err := checkGrastate(path, true, nolog); err != nil {
		t.Fatalf("--force: %v", err)
	}
	b, _ := os.ReadFile(path)
	if want := strings.Replace(unsafeGrastate, "safe_to_bootstrap: 0", "safe_to_bootstrap: 1", 1); string(b) != want {
		t.Errorf("--force wrote:\n%s\nwant:\n%s", b, want)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("--force changed the mode to %v", fi.Mode().Perm())
	}
	if err := checkGrastate(path, false, nolog); err != nil {
		t.Errorf("after --force: %v", err)
	}
}

func TestCheckGrastateLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "grastate.dat")
	os.WriteFile(path, []byte(strings.Replace(unsafeGrastate, ": 0", ": 1", 1)), 0o644)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// flock locks belong to the open file description, so a second open
	// in this process conflicts as another process's would.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	err = checkGrastate(path, true, logging.Discard())
	var r *refusal
	if !errors.As(err, &r) || r.code != exitBootstrapBusy {
		t.Errorf("locked grastate.dat: %v, want a refusal with exit %d", err, exitBootstrapBusy)
	}
}

func TestSetSafeToBootstrapNoLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "grastate.dat")
	os.WriteFile(path, []byte("uuid: x\nseqno: 1\n"), 0o644)
	if err := setSafeToBootstrap(path); err == nil {
		t.Error("no safe_to_bootstrap line: want an error")
	}
}
