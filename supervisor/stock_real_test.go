package supervisor

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/supervisor/galeratest"
	"github.com/galera-supervisor/galera-supervisor/supervisor/maintenance"
	"github.com/galera-supervisor/galera-supervisor/supervisor/quorum"
)

// TestRealStockSSTMonitorFloor joins a node by the stock mariabackup
// script, rate-limited by its [sst] rlimit, under the supervisor with a
// 10 s window, and freezes the donor's SST processes once bytes land: the
// supervisor's extensions follow the bytes and stop with them, and
// mariadbd's own SST monitor, which goes on asking for a minute more every
// 30 s through the stall, extends nothing: the start would time out one
// window after the last byte.
func TestRealStockSSTMonitorFloor(t *testing.T) {
	galeratest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	c := galeratest.NewTest(t, galeratest.Config{Nodes: 2, SSTMethod: "mariabackup", SST: map[string]string{"rlimit": "2m"},
		// mariadb-backup runs as OS user mysql, which has no account.
		Mysqld: map[string]string{"wsrep_sst_auth": galeratest.User + ":" + galeratest.Password}})
	if err := c.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Node(1).LoadData(ctx, 96<<20); err != nil {
		t.Fatal(err)
	}
	sd := newSystemdSocket(t)
	const window = 10 * time.Second
	sup := startSupervisor(t, c.Node(2), sd, "--sst-stall-timeout=10s")
	deadline := time.Now().Add(3 * time.Minute)
	landing := regexp.MustCompile(`^receiving SST by mariabackup [1-9]\d* MiB`)
	for !slices.ContainsFunc(sd.statuses(), landing.MatchString) {
		select {
		case <-sup.exited:
			t.Fatalf("the supervisor exited (%v) before SST bytes landed: %q", sup.err, sd.statuses())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no SST bytes landing: %q", sd.statuses())
		}
	}
	var donor []int
	for _, p := range descendants(c.Node(1).PID()) {
		donor = append(donor, p.PID)
	}
	for _, p := range donor {
		syscall.Kill(p, syscall.SIGSTOP)
	}
	frozen := time.Now()
	defer func() {
		for _, p := range donor {
			syscall.Kill(p, syscall.SIGCONT)
		}
	}()
	// mariadbd's joiner monitor speaks every 30 s from the SST's start:
	// at least once in 35 s of stall.
	time.Sleep(time.Until(frozen.Add(35 * time.Second)))
	waitLog(t, sup.log, 0, "while SST bytes land monitor_extend=1m0s", time.Second)
	var last time.Time
	for _, m := range sd.all() {
		for _, l := range strings.Split(m.s, "\n") {
			if l == "EXTEND_TIMEOUT_USEC=60000000" {
				t.Errorf("the SST monitor's extension was relayed at +%s into the stall", m.at.Sub(frozen).Round(time.Millisecond))
			}
			if l == "EXTEND_TIMEOUT_USEC=10000000" {
				last = m.at
			}
		}
	}
	if last.IsZero() {
		t.Fatal("no extension while bytes landed")
	}
	// A scan a second, and a loaded machine: the last extension comes at
	// most a little after the last byte.
	t.Logf("last extension %s after the freeze; the start would time out %s after it",
		last.Sub(frozen).Round(time.Millisecond), (last.Add(window).Sub(frozen)).Round(time.Millisecond))
	if late := last.Sub(frozen); late > 2500*time.Millisecond {
		t.Errorf("extension %s into the stall: the start would not time out one window after the last byte", late)
	}
	if st := sd.statuses(); !slicesContainsPrefix(st, "receiving SST by mariabackup") {
		t.Errorf("STATUS lines: %q", st)
	}
	for _, p := range donor {
		syscall.Kill(p, syscall.SIGCONT)
	}
	sup.stop(t, 2*time.Minute)
	noneLeft(t, c.Node(2).Dir)
}

// TestRealStockDonorPeers joins node2 by the stock mariabackup script from
// node1, both under the supervisor and peers: the donor's STATUS tells the
// method, the joiner and the bytes its SST processes read, and the
// joiner's, told the donor's datadir size over the peer channel, a %.
func TestRealStockDonorPeers(t *testing.T) {
	galeratest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	c := galeratest.NewTest(t, galeratest.Config{Nodes: 2, SSTMethod: "mariabackup", SST: map[string]string{"rlimit": "4m"},
		Mysqld: map[string]string{"wsrep_sst_auth": galeratest.User + ":" + galeratest.Password}})
	if _, err := c.Supervise(galeratest.SupervisorConfig{Binary: builtSupervisor(t), BootstrapWait: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	sd1, sd2 := newSystemdSocket(t), newSystemdSocket(t)
	sup1 := startSupervisor(t, c.Node(1), sd1, "--wsrep-new-cluster")
	if _, err := sd1.waitFor(ctx, "READY=1", sup1.exited); err != nil {
		t.Fatal(err)
	}
	if err := c.Node(1).LoadData(ctx, 48<<20); err != nil {
		t.Fatal(err)
	}
	sup2 := startSupervisor(t, c.Node(2), sd2)
	if _, err := sd2.waitFor(ctx, "READY=1", sup2.exited); err != nil {
		t.Fatal(err)
	}
	donor := regexp.MustCompile(`^donor: sending SST by mariabackup to 127\.0\.0\.1:\d+/xtrabackup_sst\S* (\d+% )?([\d.]+/)?[1-9][\d.]* (MiB|GiB) [\d.]+ MB/s`)
	joiner := regexp.MustCompile(`^receiving SST by mariabackup [1-9]\d?% [\d.]+/[\d.]+ (MiB|GiB) [\d.]+ MB/s`)
	t.Logf("donor STATUS: %q", sd1.statuses())
	t.Logf("joiner STATUS: %q", sd2.statuses())
	if !slices.ContainsFunc(sd1.statuses(), donor.MatchString) {
		t.Errorf("no donor STATUS with the method, the joiner, bytes and a rate")
	}
	if !slices.ContainsFunc(sd2.statuses(), joiner.MatchString) {
		t.Errorf("no joiner STATUS with a %% of the donor's total")
	}
	for _, s := range []*supervised{sup2, sup1} {
		if code := s.stop(t, 2*time.Minute); code != ExitOK {
			t.Errorf("exit %d after SIGTERM", code)
		}
	}
}

// TestRealStockSSTOwnFiles joins a node in maintenance by each stock
// method from a donor in maintenance with a last decision: the joiner ends
// Synced in its own mode (the mariabackup joiner's script removes the
// file; the supervisor puts it back), without the donor's decision, and
// without the incomplete-SST marker.
func TestRealStockSSTOwnFiles(t *testing.T) {
	galeratest.Require(t)
	for _, method := range []string{"rsync", "mariabackup"} {
		t.Run(method, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			cfg := galeratest.Config{Nodes: 2, SSTMethod: method}
			if method == "mariabackup" {
				// mariadb-backup runs as OS user mysql, which has no account.
				cfg.Mysqld = map[string]string{"wsrep_sst_auth": galeratest.User + ":" + galeratest.Password}
			}
			c := galeratest.NewTest(t, cfg)
			if err := c.Bootstrap(ctx); err != nil {
				t.Fatal(err)
			}
			donorDir, joinerDir := c.Node(1).DataDir, c.Node(2).DataDir
			if err := maintenance.Write(donorDir, maintenance.State{Reason: "donor's"}); err != nil {
				t.Fatal(err)
			}
			const donorDecision = `{"action":"donor's"}` + "\n"
			if err := os.WriteFile(filepath.Join(donorDir, quorum.DecisionFile), []byte(donorDecision), 0o640); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(joinerDir, 0o750); err != nil {
				t.Fatal(err)
			}
			if err := maintenance.Write(joinerDir, maintenance.State{Reason: "joiner's"}); err != nil {
				t.Fatal(err)
			}
			sd := newSystemdSocket(t)
			sup := startSupervisor(t, c.Node(2), sd)
			if _, err := sd.waitFor(ctx, "READY=1", sup.exited); err != nil {
				t.Fatalf("no READY=1: %v; STATUS lines %q", err, sd.statuses())
			}
			if !anyContains(sd.statuses(), "by "+method) {
				t.Errorf("no SST by %s seen: %q", method, sd.statuses())
			}
			st, err := maintenance.Read(joinerDir)
			if err != nil || st == nil || st.Reason != "joiner's" {
				t.Errorf("joiner's maintenance mode after the SST = %+v, %v; want its own (reason joiner's)", st, err)
			}
			if b, err := os.ReadFile(filepath.Join(joinerDir, quorum.DecisionFile)); err == nil && string(b) == donorDecision {
				t.Errorf("the donor's decision came to the joiner")
			}
			// The marker goes just after READY=1.
			marker := filepath.Join(joinerDir, SSTIncompleteFile)
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				if _, err := os.Lstat(marker); err != nil {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("incomplete-SST marker left on a Synced joiner")
					break
				}
			}
			sup.stop(t, 2*time.Minute)
		})
	}
}
