package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/supervisor/galeratest"
)

// demoBinary is the built demo, beside galera-supervisor (make build).
func demoBinary(t *testing.T) string {
	t.Helper()
	bin, err := filepath.Abs("../../bin/galera-demo")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("run make build first: %v", err)
	}
	return bin
}

// demoRun is one run of the built demo, its stdout collected as it comes.
type demoRun struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	line chan string
	done chan struct{}
	err  error
}

func startDemo(t *testing.T, args ...string) *demoRun {
	t.Helper()
	r := &demoRun{line: make(chan string, 1024), done: make(chan struct{})}
	r.cmd = exec.Command(demoBinary(t), args...)
	stdout, err := r.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	r.cmd.Stderr = &stderr
	// Should the test die, the demo goes too, and its Pdeathsig takes the nodes.
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			r.mu.Lock()
			r.out.WriteString(sc.Text() + "\n")
			r.mu.Unlock()
			select {
			case r.line <- sc.Text():
			default:
			}
		}
		r.err = r.cmd.Wait()
		if stderr.Len() > 0 {
			r.mu.Lock()
			r.out.WriteString("stderr: " + stderr.String())
			r.mu.Unlock()
		}
		close(r.done)
	}()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			r.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-r.done:
			case <-time.After(3 * time.Minute):
				r.cmd.Process.Kill()
			}
		}
	})
	return r
}

func (r *demoRun) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.String()
}

// wait waits for the demo to exit and returns its output.
func (r *demoRun) wait(t *testing.T, d time.Duration) string {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(d):
		t.Fatalf("the demo did not end within %v; output so far:\n%s", d, r.output())
	}
	out := r.output()
	t.Logf("output:\n%s", out)
	if r.err != nil {
		t.Fatalf("galera-demo: %v", r.err)
	}
	return out
}

var (
	reClusterDir = regexp.MustCompile(`(?m)^Cluster \S+ in (/\S+)$`)
	rePID        = regexp.MustCompile(`\bpid[ =](\d+)`) // prose ("pid 12") and attributes ("pid=12")
)

// checkNothingLeft checks that the cluster dir is gone and that no process
// the output names, and none naming the dir, is left.
func checkNothingLeft(t *testing.T, out string) {
	t.Helper()
	m := reClusterDir.FindStringSubmatch(out)
	if m == nil {
		t.Fatal("no cluster dir in the output")
	}
	dir := m[1]
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is still there (%v)", dir, err)
	}
	pids := map[int]bool{}
	for _, m := range rePID.FindAllStringSubmatch(out, -1) {
		pid, _ := strconv.Atoi(m[1])
		pids[pid] = true
	}
	if len(pids) < 6 {
		t.Errorf("the output names %d PIDs, want at least the 3 supervisors and 3 mariadbd", len(pids))
	}
	for pid := range pids {
		// A PID reused since by a stranger is not ours: look at what it runs.
		if p, err := readProc(pid); err == nil && (p.Comm == "mariadbd" || strings.HasPrefix(p.name(), "galera-supervisor") || strings.Contains(strings.Join(p.Args, " "), dir)) {
			t.Errorf("pid %d (%s) is still running", pid, describe(p))
		}
	}
	if left := mentioning(allProcs(), dir); len(left) > 0 {
		t.Errorf("processes naming %s still run: %s", dir, procList(left))
	}
}

// TestRealDemo runs the built demo as make demo does, with less data and
// time, and checks what it shows: three supervisors each with its mariadbd,
// node3's native-backup join with its bar, the summary, and that nothing is
// left afterwards.
func TestRealDemo(t *testing.T) {
	galeratest.Require(t)
	r := startDemo(t, "-data", "32MB", "-seconds", "2", "-interval", "1s")
	out := r.wait(t, 8*time.Minute)

	// Each node's supervisor, and mariadbd right below it.
	for _, n := range []string{"node1", "node2", "node3"} {
		re := regexp.MustCompile(`(?m)^  ` + n + ` +galera-supervisor run.* pid (\d+)\n +└─ mariadbd.* pid (\d+)\n(?: .*\n)*? +STATUS=synced$`)
		if !re.MatchString(out) {
			t.Errorf("no process tree galera-supervisor -> mariadbd with STATUS=synced for %s", n)
		}
		if !regexp.MustCompile(`(?m)^\[ *[0-9.]+s\] ` + n + `: READY=1 after `).MatchString(out) {
			t.Errorf("no READY=1 for %s", n)
		}
	}
	if !strings.Contains(out, "node1: galera-supervisor run --wsrep-new-cluster") {
		t.Error("node1 did not bootstrap with --wsrep-new-cluster")
	}
	// The bar: more than one update, with a percent, as lines (stdout is a pipe).
	var bars, percents int
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "node3 SST [") {
			bars++
			if regexp.MustCompile(` \d+% \d+/\d+ MiB`).MatchString(l) {
				percents++
			}
		}
	}
	if bars < 2 || percents < 1 {
		t.Errorf("%d bar lines, %d with a percent; want 2 and 1 at least", bars, percents)
	}
	if strings.Contains(out, "\r") {
		t.Error("\\r in output to a pipe")
	}
	if !regexp.MustCompile(`(?m)^SUMMARY: node3 joined by native-backup in [0-9.]+ s \(start to READY=1\); SST [0-9.]+ s, \d+ MB received in [0-9.]+ s at \d+ MB/s, prepare [0-9.]+ s; donor node1 blocked writes for (?:under 1 s|\d+ s) \(BACKUP STAGE BLOCK_DDL to END in mariadb-backup.backup.log, to the second\)$`).MatchString(out) {
		t.Error("no SUMMARY line with the SST's time, MB/s and the donor's lock")
	}
	for _, want := range []string{"CHECKSUM TABLE: all 5 user tables are identical on all 3 nodes", "2s are up", "nothing left running"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	for _, n := range []string{"node1", "node2", "node3"} {
		if !regexp.MustCompile(n + `: galera-supervisor exited \(exit 0\)`).MatchString(out) {
			t.Errorf("%s's supervisor did not exit 0", n)
		}
	}
	checkNothingLeft(t, out)
}

// TestRealDemoInterrupted stops the demo by Ctrl-C's SIGINT while node3
// joins, and by SIGTERM once the cluster is up: either way it stops every
// supervisor and leaves nothing.
func TestRealDemoInterrupted(t *testing.T) {
	galeratest.Require(t)
	for _, c := range []struct {
		name string
		sig  syscall.Signal
		at   string // the output line that triggers the signal
	}{
		{"SIGINT-during-SST", syscall.SIGINT, "node3 SST ["},
		{"SIGTERM-when-up", syscall.SIGTERM, "cluster is up"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
			defer cancel()
			r := startDemo(t, "-data", "32MB", "-interval", "1s")
			for sent := false; !sent; {
				select {
				case l := <-r.line:
					if strings.Contains(l, c.at) {
						r.cmd.Process.Signal(c.sig)
						sent = true
					}
				case <-r.done:
					t.Fatalf("the demo ended before %q:\n%s", c.at, r.output())
				case <-ctx.Done():
					t.Fatalf("no %q:\n%s", c.at, r.output())
				}
			}
			out := r.wait(t, 5*time.Minute)
			for _, want := range []string{"interrupted", "node3: SIGTERM to galera-supervisor", "node1: galera-supervisor exited", "nothing left running"} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q", want)
				}
			}
			if c.sig == syscall.SIGINT && strings.Contains(out, "SUMMARY:") {
				t.Error("a summary for an SST that was interrupted")
			}
			checkNothingLeft(t, out)
		})
	}
}

// TestRealDemoError kills node3's mariadbd during its SST: the demo fails,
// says which node and where its logs are, and still stops everything.
func TestRealDemoError(t *testing.T) {
	galeratest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	r := startDemo(t, "-data", "32MB", "-interval", "1s")
	var dir string
	for killed := false; !killed; {
		select {
		case l := <-r.line:
			if m := reClusterDir.FindStringSubmatch(l); m != nil {
				dir = m[1]
			}
			if !strings.HasPrefix(l, "node3 SST [") || dir == "" {
				continue
			}
			cnf := "--defaults-file=" + filepath.Join(dir, "node3", "my.cnf")
			for _, p := range allProcs() {
				if p.Comm == "mariadbd" && len(p.Args) > 1 && p.Args[1] == cnf {
					syscall.Kill(p.PID, syscall.SIGKILL)
					killed = true
				}
			}
			if !killed {
				t.Fatalf("no mariadbd with %s", cnf)
			}
		case <-r.done:
			t.Fatalf("the demo ended before node3's SST:\n%s", r.output())
		case <-ctx.Done():
			t.Fatalf("no SST bar for node3:\n%s", r.output())
		}
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		t.Fatalf("the demo did not end:\n%s", r.output())
	}
	out := r.output()
	t.Logf("output:\n%s", out)
	var ee *exec.ExitError
	if !errors.As(r.err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("exit %v, want 1", r.err)
	}
	// Which failure code the supervisor gives is its own tests' business.
	if !regexp.MustCompile(`(?m)^stderr: galera-demo: node3: galera-supervisor exited before READY=1 \(exit [1-9][0-9]*\)`).MatchString(out) {
		t.Error("the error does not say that node3's supervisor exited, and how")
	}
	for _, want := range []string{filepath.Join(dir, "node3", "stdout.log"),
		"node1: galera-supervisor exited (exit 0)", "nothing left running"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	checkNothingLeft(t, out)
}
