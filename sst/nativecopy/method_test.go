package nativecopy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/notify/logging/logtest"
	"github.com/galera-supervisor/galera-supervisor/sst"
	"github.com/galera-supervisor/galera-supervisor/supervisor/galeratest"
)

const testUUID = "e1060d8c-a7e1-11ef-9a39-0e5cc7e5c2b4"

func init() { sst.Register(Name, Method{}) }

// TestMain lets a test re-run this binary as an SST process that can be
// killed (GS_NATIVECOPY_HELPER=1; the argv after "--" is the SST's).
func TestMain(m *testing.M) {
	if os.Getenv("GS_NATIVECOPY_HELPER") == "1" {
		args := os.Args
		for i, a := range args {
			if a == "--" {
				args = args[i+1:]
				break
			}
		}
		// Archiving is sst's TestArchive*: none into the machine's /tmp here.
		opts := sst.MapOptions{"sst": {"sst-log-archive": "0"}}
		for _, kv := range strings.Split(os.Getenv("GS_NATIVECOPY_SST"), ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				opts["sst"][k] = v
			}
		}
		err := sst.Run(context.Background(), Name, args, sst.Config{
			Stdout: os.Stdout, Stderr: os.Stderr,
			Options: func(*sst.Args) sst.Options { return opts },
		})
		os.Exit(sst.ExitCode(err))
	}
	code := m.Run()
	galeratest.RemoveBinaries() // built by the real tests
	os.Exit(code)
}

// files of a small datadir; sizes in bytes.
var donorFiles = map[string]int{
	"ibdata1":                      3 << 20,
	"ib_logfile0":                  2 << 20,
	"undo001":                      1 << 20,
	"undo002":                      1 << 20,
	"aria_log_control":             52,
	"aria_log.00000001":            16 << 10,
	"mysql/user.MAI":               8 << 10,
	"mysql/user.MAD":               4 << 10,
	"mysql/db.frm":                 1000,
	"mysql/innodb_index_stats.ibd": 96 << 10,
	"bench/t.ibd":                  6<<20 + 12345,
	"bench/t.frm":                  900,
	"bench/db.opt":                 0,
	"sys/sys_config.ibd":           64 << 10,
	"deep/a/b/c.ibd":               10,
	// Never sent: kept or recreated by the joiner's server.
	"grastate.dat":      100,
	"gvwstate.dat":      100,
	"galera.cache":      1 << 20,
	"server-key.pem":    100,
	"node1.err":         100,
	"ibtmp1":            1 << 20,
	"ib_buffer_pool":    100,
	"multi-master.info": 10,
	"lost+found/x":      10,
}

var notSent = map[string]bool{"grastate.dat": true, "gvwstate.dat": true, "galera.cache": true, "server-key.pem": true,
	"node1.err": true, "ibtmp1": true, "ib_buffer_pool": true, "multi-master.info": true, "lost+found/x": true}

func mkfiles(t testing.TB, dir string, files map[string]int) {
	t.Helper()
	for name, size := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, size)
		rand.Read(b)
		if err := os.WriteFile(p, b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
}

// snapshot maps each regular file under dir (but the joiner's work dirs)
// to a hash of its content.
func snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() && strings.HasPrefix(d.Name(), ".sst-native") {
			return fs.SkipDir
		}
		if !d.Type().IsRegular() || rel == sst.ResumeName {
			return nil // the marker of a staging kept for resume: the joiner's work
		}
		if b := filepath.Base(rel); b == sst.LogName(Name, sst.Joiner) || b == sst.LogName(Name, sst.Donor) {
			return nil // the SST's own log, not data
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		h := sha256.Sum256(b)
		out[filepath.ToSlash(rel)] = hex.EncodeToString(h[:8])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffSnap(a, b map[string]string) string {
	var d []string
	for k, v := range a {
		if b[k] != v {
			d = append(d, fmt.Sprintf("%s: %q → %q", k, v, b[k]))
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d = append(d, k+": new")
		}
	}
	sort.Strings(d)
	return strings.Join(d, "\n")
}

// side is one SST process, run in-process or as a helper process.
type side struct {
	lines  chan string
	done   chan error
	stderr *syncBuffer
	cmd    *exec.Cmd
	cancel context.CancelFunc
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startSide(t *testing.T, ctx context.Context, argv []string, sstOpts map[string]string, external bool) *side {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	s := &side{lines: make(chan string, 100), done: make(chan error, 1), stderr: &syncBuffer{}, cancel: cancel}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	if external {
		var kv []string
		for k, v := range sstOpts {
			kv = append(kv, k+"="+v)
		}
		cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$", "--"}, argv...)...)
		cmd.Env = append(os.Environ(), "GS_NATIVECOPY_HELPER=1", "GS_NATIVECOPY_SST="+strings.Join(kv, ","))
		cmd.Stdout, cmd.Stderr = pw, s.stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		s.cmd = cmd
		go func() {
			err := cmd.Wait()
			pw.Close()
			s.done <- err
		}()
		t.Cleanup(func() { cmd.Process.Kill() })
		return s
	}
	opts := sst.MapOptions{"sst": map[string]string{"sst-log-archive": "0"}}
	maps.Copy(opts["sst"], sstOpts)
	go func() {
		err := sst.Run(ctx, Name, argv, sst.Config{
			Stdout: pw, Stderr: s.stderr,
			Options:         func(*sst.Args) sst.Options { return opts },
			PreviousSSTWait: time.Second,
		})
		pw.Close()
		s.done <- err
	}()
	t.Cleanup(cancel)
	return s
}

func (s *side) next(t *testing.T, timeout time.Duration) (string, bool) {
	t.Helper()
	select {
	case l, ok := <-s.lines:
		return l, ok
	case <-time.After(timeout):
		t.Fatalf("no protocol line in %s; stderr:\n%s", timeout, s.stderr)
	}
	return "", false
}

func (s *side) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-s.done:
		return err
	case <-time.After(timeout):
		t.Fatalf("SST process did not end in %s; stderr:\n%s", timeout, s.stderr)
	}
	return nil
}

// sstRun is one SST between two datadirs with a fake server on each side.
type sstRun struct {
	joinerDir, donorDir string
	joinerOpts          map[string]string
	donorOpts           map[string]string
	bypass              bool
	externalJoiner      bool
	externalDonor       bool
	// addr rewrites the address the donor dials (a proxy in between).
	addr func(string) string
	// onLine sees every donor line before the fake server acts.
	onDonorLine  func(string)
	withProgress bool // --progress 1
	noFlush      bool // the fake server never answers "flush tables"
	// onStart sees each side as it starts ("joiner", "donor").
	onStart func(role string, s *side)

	joiner, donor           *side
	joinerLines, donorLines []string
	joinerErr, donorErr     error
}

func (r *sstRun) run(t *testing.T, ctx context.Context) {
	t.Helper()
	r.joiner = startSide(t, ctx, []string{"--role", "joiner", "--address", "127.0.0.1:0", "--datadir", r.joinerDir + "/",
		"--parent", fmt.Sprint(os.Getpid()), "--progress", r.progress(), "--mysqld-args", "--wsrep-new-cluster"}, r.joinerOpts, r.externalJoiner)
	if r.onStart != nil {
		r.onStart("joiner", r.joiner)
	}
	ready, ok := r.joiner.next(t, 10*time.Second)
	if !ok || !strings.HasPrefix(ready, "ready ") {
		r.joinerErr = r.joiner.wait(t, 10*time.Second)
		r.joinerLines = append(r.joinerLines, ready)
		return
	}
	r.joinerLines = append(r.joinerLines, ready)
	addr := strings.TrimPrefix(ready, "ready ")
	if r.addr != nil {
		addr = r.addr(addr)
	}
	dargs := []string{"--role", "donor", "--address", addr, "--local-port", "3306", "--socket", "/nonexistent.sock",
		"--progress", r.progress(), "--datadir", r.donorDir + "/", "--gtid", testUUID + ":5", "--gtid-domain-id", "0"}
	if r.bypass {
		dargs = append(dargs, "--bypass")
	}
	r.donor = startSide(t, ctx, dargs, r.donorOpts, r.externalDonor)
	if r.onStart != nil {
		r.onStart("donor", r.donor)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for l := range r.joiner.lines {
			r.joinerLines = append(r.joinerLines, l)
		}
	}()
	for {
		l, ok := r.donor.next(t, 60*time.Second)
		if !ok {
			break
		}
		r.donorLines = append(r.donorLines, l)
		if r.onDonorLine != nil {
			r.onDonorLine(l)
		}
		if l == "flush tables" && !r.noFlush {
			// The server: FTWRL, then tables_flushed via a rename.
			tmp := filepath.Join(r.donorDir, "tables_flushed.tmp")
			os.WriteFile(tmp, []byte(testUUID+":7 0\n"), 0o640)
			os.Rename(tmp, filepath.Join(r.donorDir, sst.TablesFlushedFile))
		}
	}
	r.donorErr = r.donor.wait(t, 60*time.Second)
	r.joinerErr = r.joiner.wait(t, 60*time.Second)
	wg.Wait()
}

func (r *sstRun) progress() string {
	if r.withProgress {
		return "1"
	}
	return "0"
}

func newPair(t *testing.T) (joinerDir, donorDir string) {
	base := t.TempDir()
	joinerDir, donorDir = filepath.Join(base, "joiner"), filepath.Join(base, "donor")
	os.MkdirAll(joinerDir, 0o750)
	os.MkdirAll(donorDir, 0o750)
	mkfiles(t, donorDir, donorFiles)
	// A fresh joiner: the server already wrote its grastate and gcache.
	mkfiles(t, joinerDir, map[string]int{"grastate.dat": 10, "galera.cache": 1000, "node2.err": 10})
	return joinerDir, donorDir
}

func wantAfterCopy(donor, joinerBefore map[string]string) map[string]string {
	want := map[string]string{}
	for k, v := range donor {
		if !notSent[k] && !sst.Excluded(k) {
			want[k] = v
		}
	}
	for _, k := range []string{"grastate.dat", "galera.cache", "node2.err", "gvwstate.dat", "server-key.pem"} {
		if v, ok := joinerBefore[k]; ok {
			want[k] = v
		}
	}
	return want
}

func TestCopyToEmptyJoiner(t *testing.T) {
	ctx := context.Background()
	jd, dd := newPair(t)
	donorBefore, joinerBefore := snapshot(t, dd), snapshot(t, jd)
	r := &sstRun{joinerDir: jd, donorDir: dd}
	r.run(t, ctx)
	if r.joinerErr != nil || r.donorErr != nil {
		t.Fatalf("joiner: %v\ndonor: %v\njoiner stderr:\n%s\ndonor stderr:\n%s", r.joinerErr, r.donorErr, r.joiner.stderr, r.donor.stderr)
	}
	if got, want := r.donorLines, []string{"flush tables", "continue", "done " + testUUID + ":7 0"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("donor stdout %q, want %q", got, want)
	}
	if len(r.joinerLines) != 2 || !strings.HasPrefix(r.joinerLines[0], "ready 127.0.0.1:") || r.joinerLines[1] != testUUID+":7 0" {
		t.Errorf("joiner stdout %q", r.joinerLines)
	}
	if d := diffSnap(wantAfterCopy(donorBefore, joinerBefore), snapshot(t, jd)); d != "" {
		t.Errorf("joiner datadir differs from the donor's:\n%s", d)
	}
	// Each side's log is in its datadir, the joiner's kept through the swap.
	for dir, role := range map[string]sst.Role{jd: sst.Joiner, dd: sst.Donor} {
		b, err := os.ReadFile(filepath.Join(dir, sst.LogName(Name, role)))
		if want := "SST finished sst_method=native-copy sst_role=" + string(role) + " "; err != nil || !strings.Contains(string(b), want) {
			t.Errorf("%s log: %v; want %q in:\n%s", role, err, want, b)
		}
	}
	if d := diffSnap(donorBefore, snapshot(t, dd)); d != "" {
		t.Errorf("donor datadir changed:\n%s", d)
	}
	for _, n := range []string{sst.StagingDirName, sst.OldDirName, sst.TrashDirName, sst.JournalName, sst.PIDFile, sst.InProgressFile} {
		if _, err := os.Lstat(filepath.Join(jd, n)); err == nil {
			t.Errorf("%s left in the joiner datadir", n)
		}
	}
	for _, n := range []string{sst.TablesFlushedFile, sst.PIDFile} {
		if _, err := os.Lstat(filepath.Join(dd, n)); err == nil {
			t.Errorf("%s left in the donor datadir", n)
		}
	}
	if !strings.Contains(r.donor.stderr.String(), "donor write lock held") {
		t.Errorf("lock duration not logged:\n%s", r.donor.stderr)
	}
	t.Logf("donor log:\n%s", r.donor.stderr)
}

func TestBypass(t *testing.T) {
	jd, dd := newPair(t)
	mkfiles(t, jd, map[string]int{"ibdata1": 1000, "bench/t.ibd": 5000})
	joinerBefore, donorBefore := snapshot(t, jd), snapshot(t, dd)
	// Leftovers of an earlier joiner killed while receiving.
	mkfiles(t, jd, map[string]int{sst.StagingDirName + "/bench/t.ibd": 100})
	r := &sstRun{joinerDir: jd, donorDir: dd, bypass: true}
	r.run(t, context.Background())
	if r.joinerErr != nil || r.donorErr != nil {
		t.Fatalf("joiner: %v\ndonor: %v\n%s\n%s", r.joinerErr, r.donorErr, r.joiner.stderr, r.donor.stderr)
	}
	if got := strings.Join(r.donorLines, "|"); got != "done "+testUUID+":5 0" {
		t.Errorf("donor stdout %q", got)
	}
	if len(r.joinerLines) != 2 || r.joinerLines[1] != testUUID+":5 0" {
		t.Errorf("joiner stdout %q", r.joinerLines)
	}
	if d := diffSnap(joinerBefore, snapshot(t, jd)); d != "" {
		t.Errorf("bypass touched the joiner datadir:\n%s", d)
	}
	if d := diffSnap(donorBefore, snapshot(t, dd)); d != "" {
		t.Errorf("donor datadir changed:\n%s", d)
	}
	if _, err := os.Lstat(filepath.Join(jd, sst.StagingDirName)); err == nil {
		t.Error("stale staging not removed on bypass")
	}
	if !strings.Contains(r.joiner.stderr.String(), "bypass") {
		t.Errorf("joiner did not log the bypass:\n%s", r.joiner.stderr)
	}
}

// copyDonorFiles gives joiner dir jd a copy of donor dir dd's files, as
// an earlier SST left them.
func copyDonorFiles(jd, dd string) {
	for name := range donorFiles {
		if notSent[name] {
			continue
		}
		b, _ := os.ReadFile(filepath.Join(dd, name))
		os.MkdirAll(filepath.Dir(filepath.Join(jd, name)), 0o750)
		os.WriteFile(filepath.Join(jd, name), b, 0o640)
	}
}

func TestDeltaOverOldDatadir(t *testing.T) {
	jd, dd := newPair(t)
	// The joiner holds an older copy: same files, a few blocks changed since,
	// one file gone from the donor, one new on the donor.
	copyDonorFiles(jd, dd)
	mkfiles(t, jd, map[string]int{"olddb/gone.ibd": 3000})
	f, _ := os.OpenFile(filepath.Join(dd, "bench/t.ibd"), os.O_WRONLY, 0)
	f.WriteAt(bytes.Repeat([]byte{0xAB}, 5000), 3<<20+17)
	f.WriteAt([]byte("tail grows"), 6<<20+12345)
	f.Close()
	mkfiles(t, dd, map[string]int{"newdb/t.ibd": 7000})
	joinerBefore := snapshot(t, jd)

	r := &sstRun{joinerDir: jd, donorDir: dd, joinerOpts: map[string]string{"delta": "1"}}
	// A page written during the first pass: under the lock the donor asks
	// for the hashes of the joiner's copy, its old file with the patch so
	// far, and patches it again.
	var donorAtLock map[string]string
	r.onDonorLine = func(l string) {
		if l == "flush tables" {
			f, _ := os.OpenFile(filepath.Join(dd, "bench/t.ibd"), os.O_WRONLY, 0)
			f.WriteAt([]byte("changed before the lock"), 1<<20+100)
			f.Close()
			donorAtLock = snapshot(t, dd)
		}
	}
	r.run(t, context.Background())
	if r.joinerErr != nil || r.donorErr != nil {
		t.Fatalf("joiner: %v\ndonor: %v\n%s\n%s", r.joinerErr, r.donorErr, r.joiner.stderr, r.donor.stderr)
	}
	if d := diffSnap(wantAfterCopy(donorAtLock, joinerBefore), snapshot(t, jd)); d != "" {
		t.Errorf("joiner datadir differs from the donor's:\n%s", d)
	}
	if !strings.Contains(r.donor.stderr.String(), "delta mode:") {
		t.Errorf("delta mode not used:\n%s", r.donor.stderr)
	}
	// Only the pages that differ were staged, and went into bench/t.ibd in
	// place: 5000 bytes over two 4 KiB units, the tail, the page written
	// under the lock.
	m := regexp.MustCompile(`patching files in place .*bytes=(\d+) undo_bytes`).FindStringSubmatch(r.joiner.stderr.String())
	if m == nil {
		t.Fatalf("the joiner patched no file in place:\n%s", r.joiner.stderr)
	}
	if n, _ := strconv.ParseInt(m[1], 10, 64); n > 64<<10 {
		t.Errorf("%s bytes staged for bench/t.ibd, want a few 4 KiB units", m[1])
	}
	t.Logf("joiner log:\n%s\ndonor log:\n%s", r.joiner.stderr, r.donor.stderr)
}

// Files that change during the first pass are sent again under the lock.
func TestChangedDuringFirstPass(t *testing.T) {
	jd, dd := newPair(t)
	r := &sstRun{joinerDir: jd, donorDir: dd}
	var donorAtLock map[string]string
	r.onDonorLine = func(l string) {
		if l == "flush tables" {
			// Writes that happened while the first pass ran, before the lock.
			f, _ := os.OpenFile(filepath.Join(dd, "bench/t.ibd"), os.O_WRONLY, 0)
			f.WriteAt([]byte("changed before the lock"), 100)
			f.Close()
			os.WriteFile(filepath.Join(dd, "bench/new.ibd"), []byte("created"), 0o640)
			os.Remove(filepath.Join(dd, "deep/a/b/c.ibd"))
			donorAtLock = snapshot(t, dd)
		}
	}
	joinerBefore := snapshot(t, jd)
	r.run(t, context.Background())
	if r.joinerErr != nil || r.donorErr != nil {
		t.Fatalf("joiner: %v\ndonor: %v\n%s\n%s", r.joinerErr, r.donorErr, r.joiner.stderr, r.donor.stderr)
	}
	if d := diffSnap(wantAfterCopy(donorAtLock, joinerBefore), snapshot(t, jd)); d != "" {
		t.Errorf("joiner datadir differs from the donor's at lock time:\n%s", d)
	}
}

func TestSecondJoinerRefused(t *testing.T) {
	jd, _ := newPair(t)
	pid := filepath.Join(jd, sst.PIDFile)
	os.WriteFile(pid, []byte(fmt.Sprint(os.Getpid())), 0o640)
	s := startSide(t, context.Background(), []string{"--role", "joiner", "--address", "127.0.0.1:0", "--datadir", jd}, nil, false)
	err := s.wait(t, 10*time.Second)
	if sst.ExitCode(err) != int(syscall.EALREADY) {
		t.Fatalf("exit %d (%v), want EALREADY", sst.ExitCode(err), err)
	}
	if _, ok := <-s.lines; ok {
		t.Fatal("joiner printed something although it did not run")
	}
}

// With --progress 1 both sides print total/complete lines, in their place
// in the protocol, and every donor line fits the server's 128-byte buffer.
func TestProgressLines(t *testing.T) {
	jd, dd := newPair(t)
	r := &sstRun{joinerDir: jd, donorDir: dd, withProgress: true, donorOpts: map[string]string{"rlimit": "20M"}}
	r.run(t, context.Background())
	if r.joinerErr != nil || r.donorErr != nil {
		t.Fatalf("joiner: %v\ndonor: %v\n%s\n%s", r.joinerErr, r.donorErr, r.joiner.stderr, r.donor.stderr)
	}
	check := func(role string, lines []string, first, last func(string) bool) {
		t.Helper()
		var totals, completes int
		for i, l := range lines {
			switch {
			case i == 0 && first != nil:
				if !first(l) {
					t.Errorf("%s: first line %q", role, l)
				}
			case i == len(lines)-1:
				if !last(l) {
					t.Errorf("%s: last line %q", role, l)
				}
			case strings.HasPrefix(l, "total "):
				totals++
			case strings.HasPrefix(l, "complete "):
				completes++
			case role == "donor" && (l == "flush tables" || l == "continue"):
			default:
				t.Errorf("%s: unexpected line %q", role, l)
			}
			if role == "donor" && len(l)+1 >= 128 {
				t.Errorf("donor line %q too long", l)
			}
		}
		if totals == 0 || completes == 0 {
			t.Errorf("%s: %d total and %d complete lines:\n%s", role, totals, completes, strings.Join(lines, "\n"))
		}
	}
	check("joiner", r.joinerLines, func(l string) bool { return strings.HasPrefix(l, "ready ") }, func(l string) bool { return l == testUUID+":7 0" })
	check("donor", r.donorLines, nil, func(l string) bool { return l == "done "+testUUID+":7 0" })
}

func TestChunkDefault(t *testing.T) {
	for _, tc := range []struct {
		opts map[string]string
		want int
	}{
		{nil, 4 << 20},
		{map[string]string{"compressor": "lz4 -z"}, 2 << 20},
		{map[string]string{"transfer-chunk-size": "1M"}, 1 << 20},
		{map[string]string{"transfer-chunk-size": "512k", "compressor": "lz4 -z"}, 512 << 10},
	} {
		s := &sst.Session{Method: Name, Log: logtest.New(t),
			Options: sst.OptionsFunc(func(_ []string, name string) (string, bool) { v, ok := tc.opts[name]; return v, ok })}
		o, err := transferOptions(s, "donor")
		if err != nil || o.ChunkSize != tc.want {
			t.Errorf("%v: chunk %d, %v; want %d", tc.opts, o.ChunkSize, err, tc.want)
		}
	}
}
