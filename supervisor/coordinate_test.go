package supervisor

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

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

// TestWaitForPeersExtendsStart: while the node waits for its peers, the
// start timeout is extended (a restart would begin bootstrap-wait anew),
// but only through bootstrap-wait: a node that still cannot decide (here
// one of two members, no majority) lets the start time out.
func TestWaitForPeersExtendsStart(t *testing.T) {
	free := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	self, peer := free(), free() // peer: nobody listens there
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte(strings.Repeat("ab", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	const bootstrapWait = 2 * time.Second
	n := startFake(t, "normal", func(c *Config, datadir string) {
		writeGrastate(t, datadir, 5, 0)
		c.LoadOptions = func(context.Context) (Options, error) {
			return Options{
				Server: map[string]string{"datadir": datadir, "wsrep-on": "ON", "user": "root"},
				Supervisor: map[string]string{"peer-address": self, "peers": peer, "peer-secret-file": secret,
					"bootstrap-wait": strconv.Itoa(int(bootstrapWait / time.Second))},
			}, nil
		}
	})
	time.Sleep(bootstrapWait + 1500*time.Millisecond)
	if pid := n.sup.PID(); pid != 0 {
		t.Fatalf("mariadbd started (pid %d) without a majority", pid)
	}
	// STATUS= names the node needed and why.
	var why string
	for _, st := range n.rec.statuses() {
		if strings.HasPrefix(st, "waiting for peers: ") {
			why = st
		}
	}
	if !strings.Contains(why, "waiting for "+peer+", however long") || !strings.Contains(why, "safe_to_bootstrap: 0") {
		t.Errorf("STATUS=%q: want the peer needed and why", why)
	}
	ext := n.rec.with("EXTEND_TIMEOUT_USEC=400000")
	if len(ext) < 3 {
		t.Fatalf("%d extensions while waiting for the peers, want several", len(ext))
	}
	// The first comes with the waiting phase; the last by bootstrap-wait
	// (plus a poll and the Window/4 spacing).
	if span := ext[len(ext)-1].at.Sub(ext[0].at); span > bootstrapWait+500*time.Millisecond {
		t.Errorf("extensions went on for %v, past bootstrap-wait %v", span, bootstrapWait)
	}
	if since := time.Since(ext[len(ext)-1].at); since < 700*time.Millisecond {
		t.Errorf("an extension %v ago, %v after the wait ran out", since, bootstrapWait)
	}
}
