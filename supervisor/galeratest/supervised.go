package galeratest

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// SupervisorConfig describes how Supervise runs galera-supervisor on every
// node of a cluster.
type SupervisorConfig struct {
	Binary        string            // galera-supervisor (Binaries(t) + "/galera-supervisor")
	BootstrapWait time.Duration     // bootstrap-wait; default 10s
	Options       map[string]string // more [galera-supervisor] options; "" deletes a default
	Args          []string          // more "run" flags, after the harness's
	// HTTP reserves a port per node for the health endpoint and sets
	// http-address (HTTPAddress).
	HTTP bool
}

// Supervised runs each node of a cluster under galera-supervisor run, as
// the ExecStart of its unit would, with the peer options that let the
// supervisors find each other: peer-address (a port reserved like the
// others), peers, a shared peer-secret-file, bootstrap-wait and
// auto-bootstrap = on.
type Supervised struct {
	c        *Cluster
	cfg      SupervisorConfig
	peerPort []int // by node index
	httpPort []int // by node index, with HTTP
	secret   string
}

// Supervise reserves a peer port per node and writes the
// [galera-supervisor] group into every node's config. It starts nothing.
func (c *Cluster) Supervise(cfg SupervisorConfig) (*Supervised, error) {
	if cfg.Binary == "" {
		return nil, errors.New("supervise: no galera-supervisor binary")
	}
	if cfg.BootstrapWait == 0 {
		cfg.BootstrapWait = 10 * time.Second
	}
	locks, err := reservePorts(filepath.Join(Root, "ports"), len(c.nodes))
	if err != nil {
		return nil, err
	}
	c.ports = append(c.ports, locks...)
	s := &Supervised{c: c, cfg: cfg, secret: filepath.Join(c.dir, "peer-secret")}
	key := make([]byte, 32)
	if _, err := crand.Read(key); err != nil {
		return nil, fmt.Errorf("peer secret: %w", err)
	}
	if err := os.WriteFile(s.secret, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write peer secret: %w", err)
	}
	uid, gid, err := runUser()
	if err != nil {
		return nil, err
	}
	if err := os.Chown(s.secret, uid, gid); err != nil {
		return nil, fmt.Errorf("chown %s: %w", s.secret, err)
	}
	for _, l := range locks {
		s.peerPort = append(s.peerPort, l.port)
	}
	if cfg.HTTP {
		locks, err := reservePorts(filepath.Join(Root, "ports"), len(c.nodes))
		if err != nil {
			return nil, err
		}
		c.ports = append(c.ports, locks...)
		for _, l := range locks {
			s.httpPort = append(s.httpPort, l.port)
		}
	}
	for _, n := range c.nodes {
		if err := s.writeOptions(n); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// PeerAddress is node n's peer-address.
func (s *Supervised) PeerAddress(n *Node) string {
	return fmt.Sprintf("%s:%d", n.Addr(), s.peerPort[n.N-1])
}

// HTTPAddress is node n's http-address, "" without SupervisorConfig.HTTP.
func (s *Supervised) HTTPAddress(n *Node) string {
	if len(s.httpPort) == 0 {
		return ""
	}
	return fmt.Sprintf("%s:%d", n.Addr(), s.httpPort[n.N-1])
}

func (s *Supervised) writeOptions(n *Node) error {
	var peers []string
	for _, o := range s.c.nodes {
		if o != n {
			peers = append(peers, s.PeerAddress(o))
		}
	}
	opts := map[string]string{
		"peer-address":     s.PeerAddress(n),
		"peers":            strings.Join(peers, ","),
		"peer-secret-file": s.secret,
		"bootstrap-wait":   strconv.Itoa(int(s.cfg.BootstrapWait.Round(time.Second) / time.Second)),
		"auto-bootstrap":   "on",
		"user":             User, // the health check's; root has no password here
	}
	if a := s.HTTPAddress(n); a != "" {
		opts["http-address"] = a
	}
	mergeOpts(opts, s.cfg.Options)
	if err := n.SetGroup("galera-supervisor", opts); err != nil {
		return fmt.Errorf("node%d: %w", n.N, err)
	}
	return nil
}

// SupervisorLog is where a supervised node's galera-supervisor writes.
func (n *Node) SupervisorLog() string { return filepath.Join(n.Dir, "stdout.log") }

// Start starts galera-supervisor run on n, as the mysql user (User=mysql
// in the unit); extra flags follow the harness's.
func (s *Supervised) Start(ctx context.Context, n *Node, extra ...string) error {
	argv := []string{s.cfg.Binary, "run",
		"--defaults-file=" + n.ConfigFile,
		"--runtime-dir=" + filepath.Join(n.Dir, "run"),
		"--stop-timeout=60s",
		"--health-interval=200ms",
	}
	argv = append(argv, s.cfg.Args...)
	argv = append(argv, extra...)
	return n.StartProgram(ctx, false, argv...)
}

// StartAll starts the supervisors of nodes all at once, as units started by
// the same boot would be, and returns when every one is running.
func (s *Supervised) StartAll(ctx context.Context, nodes ...*Node) error {
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	gate := make(chan struct{})
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			errs[i] = s.Start(ctx, n)
		}()
	}
	close(gate)
	wg.Wait()
	return errors.Join(errs...)
}

// Mariadbd is the PID of the mariadbd that n's supervisor runs, or 0.
func (n *Node) Mariadbd() int {
	sup := n.PID()
	if sup == 0 {
		return 0
	}
	for _, pid := range children(sup) {
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); err == nil && strings.HasPrefix(string(b), "mariadbd") {
			return pid
		}
	}
	return 0
}

// children lists the live children of pid: those of each of its threads,
// since a Go program forks from any of them.
func children(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// KillMariadbd SIGKILLs the mariadbd (and only it) of every node given, in
// a random order with up to 50 ms between two, as a power loss that reaches
// the nodes one after the other; each supervisor must then exit by itself.
// It returns when every supervisor has exited, with their exit codes.
func (s *Supervised) KillMariadbd(ctx context.Context, rng *rand.Rand, nodes ...*Node) ([]int, error) {
	pids := make([]int, len(nodes))
	for i, n := range nodes {
		if pids[i] = n.Mariadbd(); pids[i] == 0 {
			return nil, fmt.Errorf("kill: node%d has no mariadbd under its supervisor (pid %d)", n.N, n.PID())
		}
	}
	order := rng.Perm(len(nodes))
	for k, i := range order {
		if k > 0 {
			time.Sleep(time.Duration(rng.IntN(50)) * time.Millisecond)
		}
		nodes[i].closeDB()
		if err := syscall.Kill(pids[i], syscall.SIGKILL); err != nil {
			return nil, fmt.Errorf("kill node%d mariadbd %d: %w", nodes[i].N, pids[i], err)
		}
	}
	codes := make([]int, len(nodes))
	for i, n := range nodes {
		code, err := s.WaitExit(ctx, n, time.Minute)
		if err != nil {
			return nil, err
		}
		codes[i] = code
	}
	return codes, nil
}

// WaitExit waits up to d for n's supervisor to exit by itself and returns
// its exit code (-1 for a signal); when it does not, it is killed and that is
// an error.
func (s *Supervised) WaitExit(ctx context.Context, n *Node, d time.Duration) (int, error) {
	done := n.Exited()
	if done == nil {
		return 0, fmt.Errorf("node%d: never started", n.N)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		n.Kill()
		return 0, fmt.Errorf("node%d: supervisor pid %d still running %v after its mariadbd died; killed", n.N, n.current().pid, d)
	case <-ctx.Done():
		n.Kill()
		return 0, ctx.Err()
	}
	return ExitCode(n.current().err), nil
}

// ExitCode is the exit code in a Wait error: 0 for nil, -1 when killed by
// a signal or not an exit at all.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// StopAll stops the supervisors one after the other, in the order given,
// each by SIGTERM and a clean shutdown of its mariadbd, and returns their
// exit codes.
func (s *Supervised) StopAll(ctx context.Context, nodes ...*Node) ([]int, error) {
	codes := make([]int, len(nodes))
	for i, n := range nodes {
		if err := n.Stop(ctx); err != nil {
			return nil, err
		}
		codes[i] = ExitCode(n.current().err)
	}
	return codes, nil
}

// PowerLoss kills every process of nodes at once, as a power loss would:
// all of them (supervisors, mariadbd, SST processes) are SIGSTOPped first,
// so that none can react to another's death (a supervisor's mariadbd gets
// SIGTERM when it dies, and would leave the group cleanly), then
// SIGKILLed. It returns when every node's processes are gone.
func (s *Supervised) PowerLoss(nodes ...*Node) error {
	stopped := map[int]bool{}
	for range 3 { // again for whatever forked meanwhile
		for _, n := range nodes {
			for _, pid := range markedPIDs(markerEnv + "=" + n.Dir) {
				if !stopped[pid] {
					syscall.Kill(pid, syscall.SIGSTOP)
					stopped[pid] = true
				}
			}
		}
	}
	for pid := range stopped {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	var errs []error
	for _, n := range nodes {
		errs = append(errs, n.Kill())
	}
	return errors.Join(errs...)
}
