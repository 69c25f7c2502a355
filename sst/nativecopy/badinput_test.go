package nativecopy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/internal/testutil"
	"github.com/galera-supervisor/galera-supervisor/notify/logging/logtest"
	"github.com/galera-supervisor/galera-supervisor/sst"
	"github.com/galera-supervisor/galera-supervisor/sst/transfer"
)

// oldJoiner makes a joiner that holds an older datadir of its own.
func oldJoiner(t *testing.T) (jd, dd string) {
	jd, dd = newPair(t)
	mkfiles(t, jd, map[string]int{"ibdata1": 3 << 20, "ib_logfile0": 1 << 20, "bench/t.ibd": 2 << 20, "mysql/user.MAI": 4096, "gvwstate.dat": 100})
	return jd, dd
}

// checkUntouched asserts the joiner's old datadir and the donor's are as
// before, and no staging was left behind in the joiner (or, when a process
// was killed, that the next SST's staging clears it).
func checkUntouched(t *testing.T, jd, dd string, joinerBefore, donorBefore map[string]string) {
	t.Helper()
	if d := diffSnap(joinerBefore, snapshot(t, jd)); d != "" {
		t.Errorf("joiner's old datadir changed:\n%s", d)
	}
	if d := diffSnap(donorBefore, snapshot(t, dd)); d != "" {
		t.Errorf("donor's datadir changed:\n%s", d)
	}
	for _, n := range []string{sst.OldDirName, sst.TrashDirName, sst.JournalName} {
		if _, err := os.Lstat(filepath.Join(jd, n)); err == nil {
			t.Errorf("%s left in the joiner datadir", n)
		}
	}
}

func noStaging(t *testing.T, jd string) {
	t.Helper()
	if _, err := os.Lstat(filepath.Join(jd, sst.StagingDirName)); err == nil {
		t.Errorf("staging %s left behind", filepath.Join(jd, sst.StagingDirName))
	}
}

// keptForResume asserts that the joiner kept its staging, marked with the
// donor's cluster, for the next SST to resume from.
func keptForResume(t *testing.T, jd string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(jd, sst.ResumeName))
	if err != nil || !strings.Contains(string(b), testUUID) {
		t.Errorf("no resume marker naming %s: %q, %v", testUUID, b, err)
	}
	if _, err := os.Lstat(filepath.Join(jd, sst.StagingDirName)); err != nil {
		t.Errorf("staging not kept: %v", err)
	}
}

// via returns an address rewriter sending the donor through p.
func via(p *testutil.Proxy) func(addr string) string {
	return func(addr string) string {
		hostport, path, _ := strings.Cut(addr, "/")
		p.SetTarget(hostport)
		return p.Addr() + "/" + path
	}
}

func runBad(t *testing.T, r *sstRun) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	r.run(t, ctx)
	t.Logf("joiner: %v\n%s", r.joinerErr, r.joiner.stderr)
	if r.donor != nil {
		t.Logf("donor: %v\n%s", r.donorErr, r.donor.stderr)
	}
	if r.joinerErr == nil {
		t.Error("joiner succeeded")
	}
	for _, l := range r.joinerLines[1:] {
		if !strings.HasPrefix(l, "total") && !strings.HasPrefix(l, "complete") {
			t.Errorf("joiner printed %q after a failed transfer", l)
		}
	}
	for _, l := range r.donorLines {
		if strings.HasPrefix(l, "done") {
			t.Errorf("donor printed %q after a failed transfer", l)
		}
	}
}

func TestCorruptedStream(t *testing.T) {
	jd, dd := oldJoiner(t)
	jb, db := snapshot(t, jd), snapshot(t, dd)
	var once sync.Once
	p := testutil.NewProxy(t, "", func(conn int, off int64, b []byte) testutil.Verdict {
		if off > 512<<10 {
			once.Do(func() { b[len(b)/2] ^= 0x40 })
		}
		return testutil.Forward
	})
	r := &sstRun{joinerDir: jd, donorDir: dd, addr: via(p)}
	runBad(t, r)
	if r.donorErr == nil {
		t.Error("donor succeeded")
	}
	if !strings.Contains(strings.ToLower(r.joiner.stderr.String()), "checksum") && !strings.Contains(strings.ToLower(r.joiner.stderr.String()), "crc") {
		t.Errorf("joiner's error does not name the checksum")
	}
	checkUntouched(t, jd, dd, jb, db)
	keptForResume(t, jd)
}

func TestTruncatedStream(t *testing.T) {
	jd, dd := oldJoiner(t)
	jb, db := snapshot(t, jd), snapshot(t, dd)
	var cut atomic.Bool
	p := testutil.NewProxy(t, "", func(conn int, off int64, b []byte) testutil.Verdict {
		if off > 1<<20 && cut.CompareAndSwap(false, true) {
			return testutil.Cut
		}
		return testutil.Forward
	})
	r := &sstRun{joinerDir: jd, donorDir: dd, addr: via(p), donorOpts: map[string]string{"transfer-idle-timeout": "5"}, joinerOpts: map[string]string{"transfer-idle-timeout": "5"}}
	runBad(t, r)
	if r.donorErr == nil {
		t.Error("donor succeeded")
	}
	checkUntouched(t, jd, dd, jb, db)
	keptForResume(t, jd)
}

// A donor that sends a path leading out of the datadir.
func TestPathEscape(t *testing.T) {
	for _, tc := range []struct {
		name        string
		viaManifest bool
	}{{"../escape.ibd", false}, {"/tmp/escape.ibd", false}, {"bench/../../escape.ibd", false}, {"../escape.ibd", true}, {"/tmp/escape.ibd", true}} {
		name, viaManifest := tc.name, tc.viaManifest
		t.Run(fmt.Sprintf("%s,manifest=%v", strings.ReplaceAll(name, "/", "_"), viaManifest), func(t *testing.T) {
			jd, _ := oldJoiner(t)
			jb := snapshot(t, jd)
			j := startSide(t, context.Background(), []string{"--role", "joiner", "--address", "127.0.0.1:0", "--datadir", jd}, nil, false)
			ready, _ := j.next(t, 10*time.Second)
			a, err := transfer.ParseAddress(strings.TrimPrefix(ready, "ready "))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			sess, err := transfer.Dial(ctx, a, a.Segments()[1], transfer.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer sess.Close()
			sess.Send("hello", hello{Version: protocolVersion, Total: 100, Files: 1})
			sess.Expect(ctx, "plan", nil)
			src := filepath.Join(t.TempDir(), "evil")
			os.WriteFile(src, []byte("evil"), 0o644)
			f, _ := os.Open(src)
			var sendErr error
			if viaManifest {
				// A clean file, then a manifest naming the escape.
				sendErr = sess.SendFile(ctx, "ok.ibd", f)
				sess.Send("manifest", manifest{State: testUUID + ":1 0", Files: []manifestF{{Name: "ok.ibd", Size: 4}, {Name: name, Size: 4}}})
				if sendErr == nil {
					_, sendErr = sess.Finish(ctx)
				}
			} else {
				sendErr = sess.SendFile(ctx, name, f)
				if sendErr == nil {
					sess.Send("manifest", manifest{State: testUUID + ":1 0", Files: []manifestF{{Name: name, Size: 4}}})
					_, sendErr = sess.Finish(ctx)
				}
			}
			if sendErr != nil {
				// The engine refused to send it; the joiner hears why.
				sess.Abort(sendErr)
			}
			jerr := j.wait(t, 30*time.Second)
			t.Logf("donor side: %v\njoiner: %v\n%s", sendErr, jerr, j.stderr)
			if jerr == nil {
				t.Fatal("joiner accepted a path escaping the datadir")
			}
			for _, p := range []string{filepath.Join(filepath.Dir(jd), "escape.ibd"), "/tmp/escape.ibd", filepath.Join(jd, "escape.ibd")} {
				if _, err := os.Lstat(p); err == nil {
					os.Remove(p)
					t.Errorf("%s was written", p)
				}
			}
			if d := diffSnap(jb, snapshot(t, jd)); d != "" {
				t.Errorf("joiner datadir changed:\n%s", d)
			}
			noStaging(t, jd)
		})
	}
}

// The donor process dies mid-transfer (SIGKILL).
func TestDonorKilled(t *testing.T) {
	jd, dd := oldJoiner(t)
	jb, db := snapshot(t, jd), snapshot(t, dd)
	r := &sstRun{joinerDir: jd, donorDir: dd, externalDonor: true,
		donorOpts:  map[string]string{"rlimit": "4M"},
		joinerOpts: map[string]string{"transfer-idle-timeout": "5"}}
	r.onStart = killAfter("donor", 1500*time.Millisecond)
	runBad(t, r)
	if r.joinerErr != nil && !strings.Contains(r.joiner.stderr.String(), "donor") {
		t.Errorf("joiner's error does not name the donor")
	}
	// The killed donor left its pid file; the donor's data is untouched.
	os.Remove(filepath.Join(dd, sst.PIDFile))
	checkUntouched(t, jd, dd, jb, db)
	keptForResume(t, jd)
}

// The joiner process dies mid-transfer (SIGKILL): the donor fails clearly
// and releases the lock; the joiner's next start finds its old datadir.
func TestJoinerKilled(t *testing.T) {
	jd, dd := oldJoiner(t)
	jb, db := snapshot(t, jd), snapshot(t, dd)
	r := &sstRun{joinerDir: jd, donorDir: dd, externalJoiner: true,
		donorOpts: map[string]string{"rlimit": "4M", "transfer-idle-timeout": "5"}}
	r.onStart = killAfter("joiner", 1500*time.Millisecond)
	runBad(t, r)
	if r.donorErr == nil {
		t.Fatal("donor succeeded although the joiner died")
	}
	if !strings.Contains(r.donor.stderr.String(), "joiner") {
		t.Errorf("donor's error does not name the joiner")
	}
	os.Remove(filepath.Join(jd, sst.PIDFile))
	os.Remove(filepath.Join(jd, sst.InProgressFile))
	checkUntouched(t, jd, dd, jb, db)
	// The next SST clears the half-received staging.
	st, err := sst.NewStaging(jd, nil, logtest.New(t))
	if err != nil {
		t.Fatal(err)
	}
	st.Abort()
	noStaging(t, jd)
	if d := diffSnap(jb, snapshot(t, jd)); d != "" {
		t.Errorf("joiner datadir changed by the cleanup:\n%s", d)
	}
}

// A donor whose certificate is not signed by the joiner's CA is refused.
func TestWrongCertificate(t *testing.T) {
	dir := t.TempDir()
	writePKI(t, dir, []string{"joiner", "donor-good"}, "donor-bad")
	opts := func(who string) map[string]string {
		return map[string]string{"encrypt": "4", "tca": filepath.Join(dir, "ca1.crt"), "tcert": filepath.Join(dir, who+".crt"), "tkey": filepath.Join(dir, who+".key"),
			"sst-initial-timeout": "4"}
	}

	t.Run("good", func(t *testing.T) {
		jd, dd := newPair(t)
		r := &sstRun{joinerDir: jd, donorDir: dd, joinerOpts: opts("joiner"), donorOpts: opts("donor-good")}
		r.run(t, context.Background())
		if r.joinerErr != nil || r.donorErr != nil {
			t.Fatalf("joiner: %v\ndonor: %v\n%s\n%s", r.joinerErr, r.donorErr, r.joiner.stderr, r.donor.stderr)
		}
	})
	t.Run("bad", func(t *testing.T) {
		jd, dd := oldJoiner(t)
		jb, db := snapshot(t, jd), snapshot(t, dd)
		r := &sstRun{joinerDir: jd, donorDir: dd, joinerOpts: opts("joiner"), donorOpts: opts("donor-bad")}
		runBad(t, r)
		if r.donorErr == nil {
			t.Error("donor with a foreign certificate succeeded")
		}
		checkUntouched(t, jd, dd, jb, db)
		noStaging(t, jd)
	})
}

// writePKI writes into dir a CA (ca1.crt), a certificate and key signed by
// it for each of trusted, and one for foreign signed by another CA. The
// files are readable by all: a real node's SST reads them as mysql.
func writePKI(t *testing.T, dir string, trusted []string, foreign string) {
	t.Helper()
	ca1, ca2 := testutil.MustCA(t, dir, "ca1"), testutil.MustCA(t, dir, "ca2")
	testutil.Must(t, os.Rename(ca1.File, filepath.Join(dir, "ca1.crt")))
	issue := func(ca *testutil.CA, name string) {
		cert, key := ca.MustIssue(t, dir, name, "127.0.0.1", "::1")
		testutil.Must(t, os.Rename(cert, filepath.Join(dir, name+".crt")))
		testutil.Must(t, os.Rename(key, filepath.Join(dir, name+".key")))
		testutil.Must(t, os.Chmod(filepath.Join(dir, name+".key"), 0o644))
	}
	for _, name := range trusted {
		issue(ca1, name)
	}
	issue(ca2, foreign)
}

// killAfter SIGKILLs the side playing role d after it started.
func killAfter(role string, d time.Duration) func(string, *side) {
	return func(r string, s *side) {
		if r != role {
			return
		}
		p := s.cmd.Process
		time.AfterFunc(d, func() { p.Signal(syscall.SIGKILL) })
	}
}

// The joiner dies while the donor waits for the server's lock, which may
// never come: the donor must not wait forever.
func TestJoinerDiesDuringLockWait(t *testing.T) {
	jd, dd := oldJoiner(t)
	r := &sstRun{joinerDir: jd, donorDir: dd, externalJoiner: true, noFlush: true}
	r.onDonorLine = func(l string) {
		if l == "flush tables" {
			r.joiner.cmd.Process.Kill()
		}
	}
	t0 := time.Now()
	runBad(t, r)
	if r.donorErr == nil {
		t.Fatal("donor succeeded")
	}
	if el := time.Since(t0); el > 20*time.Second {
		t.Errorf("donor took %s to notice", el)
	}
	if !strings.Contains(r.donor.stderr.String(), "waited for the server's lock") {
		t.Errorf("donor's error does not say what it was waiting for:\n%s", r.donor.stderr)
	}
	if got := strings.Join(r.donorLines, "|"); got != "flush tables|continue" {
		t.Errorf("donor stdout %q: the lock must be released", got)
	}
}
