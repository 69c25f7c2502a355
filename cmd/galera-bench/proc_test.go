package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fakeProc writes /proc/PID/stat files: pid -> (comm, ppid, rss pages, cpu ticks each of 4 fields).
func fakeProc(t *testing.T, procs map[int]struct {
	comm string
	ppid int
	rss  int64
}) string {
	return fakeProcTasks(t, procs, false)
}

// fakeProcTasks also writes task/PID/children lists when tasks is set, as
// a kernel with CONFIG_PROC_CHILDREN does.
func fakeProcTasks(t *testing.T, procs map[int]struct {
	comm string
	ppid int
	rss  int64
}, tasks bool) string {
	t.Helper()
	root := t.TempDir()
	if tasks {
		kids := map[int][]string{}
		for pid, p := range procs {
			kids[p.ppid] = append(kids[p.ppid], fmt.Sprint(pid))
		}
		for pid := range procs {
			dir := filepath.Join(root, fmt.Sprint(pid), "task", fmt.Sprint(pid))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, "children"), []byte(strings.Join(kids[pid], " ")+" "), 0o644)
		}
	}
	for pid, p := range procs {
		dir := filepath.Join(root, fmt.Sprint(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		// Fields 3..24 and a few more, as the kernel writes them.
		line := fmt.Sprintf("%d (%s) S %d %d %d 0 -1 4194560 100 0 0 0 7 3 2 1 20 0 1 0 12345 1000000 %d 18446744073709551615\n",
			pid, p.comm, p.ppid, pid, pid, p.rss)
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(root, "self"), 0o755)
	os.WriteFile(filepath.Join(root, "uptime"), []byte("1 1\n"), 0o644)
	return root
}

type fp = struct {
	comm string
	ppid int
	rss  int64
}

func TestParseStat(t *testing.T) {
	line := "4242 (odd) (name) ) R 17 4242 4242 0 -1 4194560 100 0 0 0 11 22 33 44 20 0 1 0 12345 1000000 256 18446744073709551615\n"
	s, err := parseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if s.PID != 4242 || s.PPID != 17 || s.Comm != "odd) (name) " || s.RSSPages != 256 || s.CPUTicks != 110 {
		t.Errorf("parseStat = %+v", s)
	}
	for _, bad := range []string{"", "-3 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22", "12 noparen S 1", "12 (x) S", "x (y) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q): no error", bad)
		}
	}
}

func TestRSSSampler(t *testing.T) {
	for _, tasks := range []bool{false, true} {
		t.Run(fmt.Sprintf("children-lists=%t", tasks), func(t *testing.T) { testRSSSampler(t, tasks) })
	}
}

func testRSSSampler(t *testing.T, tasks bool) {
	page := int64(os.Getpagesize())
	pages := func(mibs int64) int64 { return mibs * mib / page }
	procs := map[int]fp{
		1:   {"init", 0, pages(5)},
		100: {"mariadbd", 1, pages(900)},         // donor server: not counted
		101: {"wsrep_sst_rsyn", 100, pages(4)},   // donor script
		102: {"rsync", 101, pages(10)},           // donor's tool
		103: {"mariadb-backup", 101, pages(300)}, // counted apart
		104: {"socat", 103, pages(2)},            // child of mariadb-backup still counts
		105: {"mariadbd", 101, pages(700)},       // a --wsrep-recover run: a server, not counted
		200: {"mariadbd", 1, pages(800)},         // joiner server
		201: {"wsrep_sst_nativ", 200, pages(30)}, // joiner
		300: {"unrelated", 1, pages(500)},        // not ours
		301: {"rsync", 300, pages(50)},           // not ours either
	}
	root := fakeProcTasks(t, procs, tasks)
	s := newRSSSampler(root, map[string]int{"donor": 100, "joiner": 0})
	if err := s.sample(); err != nil {
		t.Fatal(err)
	}
	s.setSide("joiner", 200)
	if err := s.sample(); err != nil {
		t.Fatal(err)
	}
	// A later sample with less memory must not lower the peaks.
	procs[102] = fp{"rsync", 101, pages(1)}
	s.root = fakeProcTasks(t, procs, tasks)
	s.sample()

	var r Result
	s.fill(&r)
	if r.RSSDonorMiB != 16 || r.RSSJoinerMiB != 30 || r.RSSPeakMiB != 30 || r.BackupRSSMiB != 300 {
		t.Errorf("donor %.1f joiner %.1f peak %.1f backup %.1f MiB; want 16, 30, 30, 300", r.RSSDonorMiB, r.RSSJoinerMiB, r.RSSPeakMiB, r.BackupRSSMiB)
	}
	if r.RSSMaxProcMiB != 30 || !strings.HasPrefix(r.RSSMaxProc, "wsrep_sst_nativ") {
		t.Errorf("largest process %q %.1f MiB; want wsrep_sst_nativ 30", r.RSSMaxProc, r.RSSMaxProcMiB)
	}
	if r.RSSSamples != 3 {
		t.Errorf("samples = %d, want 3", r.RSSSamples)
	}
}

func TestRSSSamplerRun(t *testing.T) {
	root := fakeProc(t, map[int]fp{10: {"mariadbd", 1, 1}, 11: {"sh", 10, 256}})
	s := newRSSSampler(root, map[string]int{"donor": 10})
	ctx, cancel := contextWithTimeout(120 * time.Millisecond)
	defer cancel()
	s.run(ctx, 10*time.Millisecond)
	var r Result
	s.fill(&r)
	if r.RSSSamples < 2 || r.RSSDonorMiB <= 0 {
		t.Errorf("after run: %d samples, donor %.2f MiB", r.RSSSamples, r.RSSDonorMiB)
	}
}

func TestLoRxBytes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dev")
	os.WriteFile(path, []byte(`Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
  eth0: 999 1 0 0 0 0 0 0 999 1 0 0 0 0 0 0
    lo: 123456789  4000    0    0    0     0          0         0 123456789  4000    0    0    0     0       0          0
`), 0o644)
	n, err := loRxBytes(path)
	if err != nil || n != 123456789 {
		t.Errorf("loRxBytes = %d, %v", n, err)
	}
	os.WriteFile(path, []byte("eth0: 1 2 3\n"), 0o644)
	if _, err := loRxBytes(path); err == nil {
		t.Error("no error without a lo line")
	}
}

func TestTreeSize(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "bench"), 0o755)
	os.WriteFile(filepath.Join(dir, "bench", "t.ibd"), make([]byte, 1000), 0o644)
	os.WriteFile(filepath.Join(dir, "ibdata1"), make([]byte, 24), 0o644)
	os.WriteFile(filepath.Join(dir, "galera.cache"), make([]byte, 500), 0o644)
	payload, all := treeSize(dir)
	if payload != 1024 || all != 1524 {
		t.Errorf("treeSize = %d, %d; want 1024, 1524", payload, all)
	}
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

func TestLockProbeFill(t *testing.T) {
	p := &lockProbe{}
	t0 := time.Unix(1000, 0)
	for i, ms := range []int{5, 900, 7, 3000, 2, 40, 41, 42, 6} {
		p.record(time.Duration(ms)*time.Millisecond, t0.Add(time.Duration(i)*time.Second), nil)
	}
	p.record(time.Millisecond, t0, errors.New("deadlock"))
	var r Result
	p.fill(&r, t0, time.Time{}, time.Time{})
	if r.LockProbeS != 3 || r.LockProbeAtS != 3 || r.ProbeMaxAnyS != 3 || r.ProbeWrites != 9 || r.ProbeErrors != 1 {
		t.Errorf("no window: lock %v at %v, any %v, %d writes, %d errors", r.LockProbeS, r.LockProbeAtS, r.ProbeMaxAnyS, r.ProbeWrites, r.ProbeErrors)
	}
	want := [][2]float64{{3, 3}, {1, 0.9}, {7, 0.042}, {6, 0.041}, {5, 0.04}}
	if !reflect.DeepEqual(r.ProbeStalls, want) {
		t.Errorf("stalls = %v, want %v", r.ProbeStalls, want)
	}
	// Donor state from +4 s to +7 s: the 3 s write at +3 s is outside.
	r = Result{}
	p.fill(&r, t0, t0.Add(4*time.Second), t0.Add(7*time.Second))
	if r.LockProbeS != 0.042 || r.LockProbeAtS != 7 || r.ProbeMaxAnyS != 3 || r.ProbeMaxAnyAtS != 3 || r.DonorFromS != 4 || r.DonorToS != 7 {
		t.Errorf("window: %+v", r)
	}
}

func TestDonorWatch(t *testing.T) {
	w := &donorWatch{}
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	if f, _ := w.window(); !f.IsZero() {
		t.Fatal("window before any poll")
	}
	w.observe("Synced", at(0), at(0.05))
	w.observe("Donor/Desynced", at(0.05), at(0.10))
	w.observe("Donor/Desynced", at(0.10), at(0.15))
	f, to := w.window()
	if f != at(0.05) || to != at(0.15) {
		t.Errorf("open window = %v..%v", f.Sub(t0), to.Sub(t0))
	}
	w.observe("Joined", at(0.15), at(0.20))
	w.observe("Donor/Desynced", at(0.20), at(0.25)) // a later SST does not move it
	w.observe("Synced", at(0.25), at(0.30))
	f, to = w.window()
	if f != at(0.05) || to != at(0.20) {
		t.Errorf("closed window = %v..%v", f.Sub(t0), to.Sub(t0))
	}
}

// The real /proc: the sampler finds this test's own child process.
func TestRSSSamplerRealProc(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skip("cannot start sleep:", err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	s := newRSSSampler("/proc", map[string]int{"donor": os.Getpid()})
	var r Result
	for i := 0; i < 50 && r.RSSDonorMiB == 0; i++ {
		if err := s.sample(); err != nil {
			t.Fatal(err)
		}
		s.fill(&r)
		time.Sleep(10 * time.Millisecond)
	}
	if r.RSSDonorMiB <= 0 || !strings.HasPrefix(r.RSSMaxProc, "sleep") {
		t.Errorf("child sleep not seen: %+v", r)
	}
	if ps, _ := readProcs("/proc"); len(ps) < 2 {
		t.Errorf("readProcs(/proc) found %d processes", len(ps))
	}
}

// FuzzParseStat: /proc/PID/stat lines hold a free-form comm; the parser must
// never panic, and what it accepts must survive a round trip of its fields.
func FuzzParseStat(f *testing.F) {
	f.Add([]byte("4242 (odd) (name) ) R 17 4242 4242 0 -1 4194560 100 0 0 0 11 22 33 44 20 0 1 0 12345 1000000 256 18446744073709551615\n"))
	f.Add([]byte("1 (init) S 0 1 1 0 -1 4194560 1 0 0 0 1 2 3 4 20 0 1 0 5 6 7 8"))
	f.Add([]byte("12 ()) Z 1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseStat(b)
		if err != nil {
			return
		}
		if s.PID <= 0 {
			t.Errorf("pid %d accepted from %q", s.PID, b)
		}
		if !bytes.Contains(b, []byte("("+s.Comm+")")) {
			t.Errorf("comm %q not in %q", s.Comm, b)
		}
	})
}
