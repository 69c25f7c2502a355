package galeratest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Node is one node slot: its paths and ports are fixed in New; its mariadbd
// may be started and stopped many times.
type Node struct {
	N          int // 1-based
	Dir        string
	DataDir    string
	Socket     string
	ConfigFile string
	ErrorLog   string
	Port       int // client port
	GmcastPort int // group communication, also base_port
	ISTPort    int // ist.recv_addr
	SSTPort    int // wsrep_sst_receive_address

	c *Cluster

	mu        sync.Mutex
	sstMethod string
	sst       map[string]string
	mysqld    map[string]string
	groups    map[string]map[string]string // further option groups, e.g. [galera-supervisor]
	addr      string                       // IP its peers reach it at, "" for 127.0.0.1; set before the first start
	netns     string                       // network namespace it runs in, "" for ours; set before the first start
	p         *proc
	db        *sql.DB
}

// Addr is the IP address the node's peers reach it at: 127.0.0.1, or its
// address in the network namespace Partitionable gave it.
// It is set before the node first starts and never changes after, so it
// needs no lock (config, holding n.mu, reads every node's).
func (n *Node) Addr() string {
	if n.addr == "" {
		return "127.0.0.1"
	}
	return n.addr
}

// Name is the node's wsrep_node_name.
func (n *Node) Name() string { return fmt.Sprintf("node%d", n.N) }

// SetSSTMethod rewrites the node's wsrep_sst_method; it applies at the next
// Start.
func (n *Node) SetSSTMethod(m string) error {
	n.mu.Lock()
	n.sstMethod = m
	n.mu.Unlock()
	return n.writeConfig()
}

// SetSST merges opts into the node's [sst] group; an empty value deletes the
// key. It applies to the next SST script this node runs.
func (n *Node) SetSST(opts map[string]string) error {
	n.mu.Lock()
	mergeOpts(n.sst, opts)
	n.mu.Unlock()
	return n.writeConfig()
}

// SetGroup merges opts into the option group name (e.g. "galera-supervisor"),
// written after [sst]; an empty value deletes the key.
func (n *Node) SetGroup(name string, opts map[string]string) error {
	n.mu.Lock()
	if n.groups == nil {
		n.groups = map[string]map[string]string{}
	}
	if n.groups[name] == nil {
		n.groups[name] = map[string]string{}
	}
	mergeOpts(n.groups[name], opts)
	n.mu.Unlock()
	return n.writeConfig()
}

// SetMysqld merges opts into the node's [mysqld] group, as Config.Mysqld
// ("" writes a bare key); the value "-" deletes the key.
func (n *Node) SetMysqld(opts map[string]string) error {
	n.mu.Lock()
	for k, v := range opts {
		if v == "-" {
			delete(n.mysqld, k)
		} else {
			n.mysqld[k] = v
		}
	}
	n.mu.Unlock()
	return n.writeConfig()
}

func mergeOpts(dst, src map[string]string) {
	for k, v := range src {
		if v == "" {
			delete(dst, k)
		} else {
			dst[k] = v
		}
	}
}

// optName is an option's canonical name: MariaDB treats - and _ alike.
func optName(k string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(k)), "-", "_")
}

// config renders the node's option file.
func (n *Node) config() []byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := n.c
	prov := []string{
		fmt.Sprintf("base_port=%d", n.GmcastPort),
		fmt.Sprintf("gmcast.listen_addr=tcp://%s:%d", n.Addr(), n.GmcastPort),
		fmt.Sprintf("ist.recv_addr=%s:%d", n.Addr(), n.ISTPort),
		"gcache.size=64M",
	}
	prov = append(prov, c.cfg.ProviderOptions...)
	type kv struct{ k, v string }
	opts := []kv{
		{"user", RunUser},
		{"datadir", n.DataDir},
		{"socket", n.Socket},
		{"port", fmt.Sprint(n.Port)},
		{"bind-address", "127.0.0.1"},
		{"pid-file", filepath.Join(n.Dir, "mariadbd.pid")},
		{"log-error", n.ErrorLog},
		{"lc-messages-dir", "/usr/share/mysql"},
		{"skip-log-bin", ""},
		{"binlog_format", "ROW"},
		{"default_storage_engine", "InnoDB"},
		{"innodb_autoinc_lock_mode", "2"},
		{"innodb_buffer_pool_size", c.cfg.BufferPool},
		{"innodb_log_file_size", "48M"},
		{"innodb_flush_log_at_trx_commit", "2"},
		{"max_connections", "50"},
		{"performance_schema", "OFF"},
		{"wsrep_on", "ON"},
		{"wsrep_provider", Provider},
		{"wsrep_cluster_name", c.name},
		{"wsrep_cluster_address", c.Address()},
		{"wsrep_node_name", n.Name()},
		{"wsrep_node_address", n.Addr()},
		{"wsrep_node_incoming_address", fmt.Sprintf("127.0.0.1:%d", n.Port)},
		{"wsrep_provider_options", "'" + strings.Join(prov, ";") + "'"},
		{"wsrep_sst_receive_address", fmt.Sprintf("%s:%d", n.Addr(), n.SSTPort)},
		{"wsrep_sst_method", n.sstMethod},
		{"wsrep_slave_threads", "2"},
	}
	// Overrides replace a default in place; the rest follow, sorted.
	over := map[string]string{}
	for k, v := range n.mysqld {
		over[optName(k)] = v
	}
	binlogSet := false
	for _, k := range []string{"log_bin", "skip_log_bin", "disable_log_bin"} {
		if _, ok := over[k]; ok {
			binlogSet = true
		}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# written by galeratest for %s\n[mysqld]\n", n.Name())
	done := map[string]bool{}
	for _, o := range opts {
		name := optName(o.k)
		if name == "skip_log_bin" && binlogSet {
			if v, ok := over[name]; ok {
				writeOpt(&b, o.k, v)
				done[name] = true
			}
			continue
		}
		v := o.v
		if ov, ok := over[name]; ok {
			v = ov
			done[name] = true
		}
		writeOpt(&b, o.k, v)
	}
	var extra []string
	for k := range n.mysqld {
		if !done[optName(k)] {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		writeOpt(&b, k, n.mysqld[k])
	}
	b.WriteString("\n[sst]\n")
	var sk []string
	for k := range n.sst {
		sk = append(sk, k)
	}
	sort.Strings(sk)
	for _, k := range sk {
		writeOpt(&b, k, n.sst[k])
	}
	var gs []string
	for g := range n.groups {
		gs = append(gs, g)
	}
	sort.Strings(gs)
	for _, g := range gs {
		fmt.Fprintf(&b, "\n[%s]\n", g)
		var ks []string
		for k := range n.groups[g] {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		for _, k := range ks {
			writeOpt(&b, k, n.groups[g][k])
		}
	}
	return b.Bytes()
}

func writeOpt(b *bytes.Buffer, k, v string) {
	if v == "" {
		fmt.Fprintf(b, "%s\n", k)
		return
	}
	fmt.Fprintf(b, "%s=%s\n", k, v)
}

func (n *Node) writeConfig() error {
	if err := os.WriteFile(n.ConfigFile, n.config(), 0o644); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

// initDataDir runs mariadb-install-db into an empty datadir. It tries twice:
// the first failure is logged with its [ERROR] lines, since an unexplained
// one was seen once while other teammates' clusters ran.
func (n *Node) initDataDir(ctx context.Context) error {
	err := n.installDB(ctx)
	if err == nil || ctx.Err() != nil {
		return err
	}
	n.c.logf("galeratest: %v; retrying once", err)
	os.Rename(filepath.Join(n.Dir, "install.log"), filepath.Join(n.Dir, "install.log.1"))
	if err := n.Wipe(); err != nil {
		return err
	}
	return n.installDB(ctx)
}

func (n *Node) installDB(ctx context.Context) error {
	logPath := filepath.Join(n.Dir, "install.log")
	out, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("create install log: %w", err)
	}
	defer out.Close()
	t0 := time.Now()
	cmd := exec.CommandContext(ctx, InstallDB,
		"--no-defaults",
		"--datadir="+n.DataDir,
		"--user="+RunUser,
		"--skip-test-db",
		"--auth-root-authentication-method=normal",
		"--innodb-log-file-size=48M",
		"--innodb-buffer-pool-size="+n.c.cfg.BufferPool,
	)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(n.environ(), markerEnv+"="+n.Dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if err := spawn(cmd); err != nil {
		return fmt.Errorf("start %s: %w", InstallDB, err)
	}
	err = cmd.Wait()
	killMarked(markerEnv+"="+n.Dir, 0)
	if err != nil {
		b, _ := os.ReadFile(logPath)
		return fmt.Errorf("mariadb-install-db --datadir=%s: %w; %s says:\n%s", n.DataDir, err, logPath, errorLines(b, 20))
	}
	n.c.logf("galeratest: initialised %s in %v", n.DataDir, time.Since(t0).Round(time.Millisecond))
	return nil
}

var safeToBootstrap0 = regexp.MustCompile(`(?m)^safe_to_bootstrap:\s*0\s*$`)

// markSafeToBootstrap lets a node that was stopped with others still running
// bootstrap again; the harness decides, not grastate.
func (n *Node) markSafeToBootstrap() error {
	p := filepath.Join(n.DataDir, "grastate.dat")
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read grastate: %w", err)
	}
	nb := safeToBootstrap0.ReplaceAll(b, []byte("safe_to_bootstrap: 1"))
	if bytes.Equal(nb, b) {
		return nil
	}
	if err := os.WriteFile(p, nb, 0o644); err != nil {
		return fmt.Errorf("write grastate: %w", err)
	}
	return nil
}

// Start starts mariadbd for this node and returns without waiting; extraArgs
// follow --defaults-file on its command line. mariadbd runs as the mysql user
// from the start rather than dropping root itself: the kernel clears
// Pdeathsig when a process changes its credentials.
func (n *Node) Start(ctx context.Context, extraArgs ...string) error {
	args := append([]string{Mariadbd, "--defaults-file=" + n.ConfigFile}, extraArgs...)
	return n.start(args, false)
}

// StartProgram starts argv in place of mariadbd, for a program that runs the
// node itself, such as galera-supervisor reading ConfigFile. It gets what
// mariadbd gets: the node's environment, process group, Pdeathsig, and Stop,
// Kill, WaitSynced and Close work the same. Stop signals the program only;
// whatever it leaves running when it exits is SIGKILLed. asRoot runs it as root (it must then drop to mysql for mariadbd,
// e.g. with user=mysql in the config); otherwise it runs as mysql.
func (n *Node) StartProgram(ctx context.Context, asRoot bool, argv ...string) error {
	if len(argv) == 0 {
		return fmt.Errorf("start node%d: empty command", n.N)
	}
	return n.start(argv, asRoot)
}

func (n *Node) start(argv []string, asRoot bool) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.p != nil {
		select {
		case <-n.p.done:
		default:
			return fmt.Errorf("start node%d: already running as pid %d", n.N, n.p.pid)
		}
	}
	uid, gid, err := runUser()
	if err != nil {
		return err
	}
	// The datadir may have been wiped or replaced.
	if err := os.MkdirAll(n.DataDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", n.DataDir, err)
	}
	for _, d := range []string{n.Dir, n.DataDir} {
		if err := os.Chown(d, uid, gid); err != nil {
			return fmt.Errorf("chown %s: %w", d, err)
		}
	}
	out, err := os.OpenFile(filepath.Join(n.Dir, "stdout.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open stdout log: %w", err)
	}
	defer out.Close()
	if n.netns != "" {
		argv, asRoot = n.inNetns(argv, asRoot), true
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = n.Dir
	cmd.Stdout, cmd.Stderr = out, out
	marker := markerEnv + "=" + n.Dir
	cmd.Env = append(n.environ(), marker)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if !asRoot {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{uint32(gid)}}
	}
	if err := spawn(cmd); err != nil {
		return fmt.Errorf("start %s for node%d: %w", argv[0], n.N, err)
	}
	p := &proc{cmd: cmd, pid: cmd.Process.Pid, marker: marker, done: make(chan struct{})}
	n.p = p
	go p.watch()
	n.c.logf("galeratest: node%d started, pid %d: %s", n.N, p.pid, strings.Join(argv, " "))
	return nil
}

// environ is mariadbd's environment: ours, with PathPrepend first on PATH
// (the server finds wsrep_sst_<method> there) and Config.Env last.
func (n *Node) environ() []string {
	var env []string
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, kv := range os.Environ() {
		switch {
		case strings.HasPrefix(kv, "PATH="):
			path = kv[len("PATH="):]
		case strings.HasPrefix(kv, markerEnv+"="):
		default:
			env = append(env, kv)
		}
	}
	// The SST scripts need /usr/sbin and /usr/bin whatever the test's PATH.
	for _, d := range []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
		if !strings.Contains(":"+path+":", ":"+d+":") {
			path += ":" + d
		}
	}
	if len(n.c.cfg.PathPrepend) > 0 {
		path = strings.Join(n.c.cfg.PathPrepend, ":") + ":" + path
	}
	env = append(env, "PATH="+path)
	return append(env, n.c.cfg.Env...)
}

// PID is the running mariadbd's PID, or 0.
func (n *Node) PID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.p == nil {
		return 0
	}
	select {
	case <-n.p.done:
		return 0
	default:
		return n.p.pid
	}
}

// Running reports whether mariadbd runs.
func (n *Node) Running() bool { return n.PID() != 0 }

// Exited returns a channel closed when the current mariadbd has exited and
// everything it left is killed (Wait then returns its exit error); nil when
// never started.
func (n *Node) Exited() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.p == nil {
		return nil
	}
	return n.p.done
}

func (n *Node) current() *proc {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.p
}

// Stop sends SIGTERM and waits for a clean shutdown, then SIGKILLs the node's
// process group when it takes longer than Config.StopTimeout or ctx ends.
// Stopping a stopped node is not an error.
func (n *Node) Stop(ctx context.Context) error {
	p := n.current()
	if p == nil {
		return nil
	}
	n.closeDB()
	select {
	case <-p.done:
		return nil
	default:
	}
	t0 := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(n.c.cfg.StopTimeout)
	defer timer.Stop()
	var why string
	select {
	case <-p.done:
		n.c.logf("galeratest: node%d (pid %d) stopped in %v", n.N, p.pid, time.Since(t0).Round(time.Millisecond))
		return nil
	case <-timer.C:
		why = fmt.Sprintf("did not stop within %v of SIGTERM", n.c.cfg.StopTimeout)
	case <-ctx.Done():
		why = "stop interrupted: " + ctx.Err().Error()
	}
	n.kill(p)
	return fmt.Errorf("node%d pid %d %s; killed", n.N, p.pid, why)
}

// Restart stops the node and starts it again with extraArgs; it does not
// wait for Synced.
func (n *Node) Restart(ctx context.Context, extraArgs ...string) error {
	if err := n.Stop(ctx); err != nil {
		return err
	}
	return n.Start(ctx, extraArgs...)
}

// WaitAbort waits for a joiner whose SST failed to give up. 10.11 logs
// "Will never receive state. Need to abort" and aborts, but at times hangs
// there with every thread waiting; a node still alive grace after that
// line is killed, and hung says so. Log lines from before logOffset (a
// size of ErrorLog) are not looked at.
func (n *Node) WaitAbort(ctx context.Context, logOffset int64, grace time.Duration) (hung bool, err error) {
	p := n.current()
	if p == nil {
		return false, nil
	}
	var since time.Time
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-p.done:
			return false, nil
		case <-ctx.Done():
			return false, fmt.Errorf("node%d did not give up: %w", n.N, ctx.Err())
		case <-tick.C:
		}
		if since.IsZero() {
			if b, err := os.ReadFile(n.ErrorLog); err == nil && int64(len(b)) > logOffset && bytes.Contains(b[logOffset:], []byte("Need to abort")) {
				since = time.Now()
			}
			continue
		}
		if time.Since(since) >= grace {
			n.c.logf("galeratest: node%d (pid %d) hung %v after \"Need to abort\": killed", n.N, p.pid, grace)
			return true, n.kill(p)
		}
	}
}

// Kill SIGKILLs the node's process group and waits until it is gone.
func (n *Node) Kill() error {
	p := n.current()
	if p == nil {
		return nil
	}
	n.closeDB()
	return n.kill(p)
}

func (n *Node) kill(p *proc) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.killGroup()
	select {
	case <-p.done:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("node%d pid %d survived SIGKILL for 30s", n.N, p.pid)
	}
}

// Wait waits until the current mariadbd exits and returns its exit error.
func (n *Node) Wait(ctx context.Context) error {
	p := n.current()
	if p == nil {
		return nil
	}
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Wipe removes the datadir's content; the node must be stopped.
func (n *Node) Wipe() error {
	if pid := n.PID(); pid != 0 {
		return fmt.Errorf("wipe node%d: running as pid %d", n.N, pid)
	}
	n.closeDB()
	if err := os.RemoveAll(n.DataDir); err != nil {
		return fmt.Errorf("wipe node%d: %w", n.N, err)
	}
	uid, gid, err := runUser()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(n.DataDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", n.DataDir, err)
	}
	if err := os.Chown(n.DataDir, uid, gid); err != nil {
		return fmt.Errorf("chown %s: %w", n.DataDir, err)
	}
	return nil
}

// WaitSynced polls wsrep_local_state_comment until it says Synced. It fails
// at once, with the tail of the error log, when mariadbd exits.
func (n *Node) WaitSynced(ctx context.Context) error {
	return n.WaitState(ctx, "Synced")
}

// WaitState is WaitSynced for any wsrep_local_state_comment (Donor/Desynced, Joined...).
func (n *Node) WaitState(ctx context.Context, want string) error {
	return n.WaitStatus(ctx, "wsrep_local_state_comment", want)
}

// WaitStatus polls the status variable name until it reads want, failing at
// once when mariadbd exits.
func (n *Node) WaitStatus(ctx context.Context, name, want string) error {
	p := n.current()
	if p == nil {
		return fmt.Errorf("node%d: wait for %s=%s: not started", n.N, name, want)
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last string
	var lastErr error
	for {
		select {
		case <-p.done:
			return fmt.Errorf("node%d: mariadbd pid %d exited (%v) before %s=%s; %s:\n%s",
				n.N, p.pid, p.err, name, want, n.ErrorLog, n.LogTail(30))
		default:
		}
		qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		s, err := n.Status(qctx, name)
		cancel()
		if err == nil && s == want {
			return nil
		}
		last, lastErr = s, err
		select {
		case <-ctx.Done():
			return fmt.Errorf("node%d: wait for %s=%s: %w (last %q, error: %v); %s:\n%s",
				n.N, name, want, ctx.Err(), last, lastErr, n.ErrorLog, n.LogTail(30))
		case <-p.done:
		case <-tick.C:
		}
	}
}

// LogTail returns the last n lines of the node's error log.
func (n *Node) LogTail(lines int) string {
	b, err := readTail(n.ErrorLog, 64<<10)
	if err != nil {
		return ""
	}
	return tailLines(b, lines)
}

// errorLines picks the [ERROR] and [Warning] lines of a server log, which
// mariadb-install-db buries under its own advice.
func errorLines(b []byte, n int) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "[ERROR]") || strings.Contains(l, "[Warning]") {
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		return tailLines(b, n)
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return strings.Join(out, "\n")
}

func tailLines(b []byte, n int) string {
	s := strings.TrimRight(string(b), "\n")
	ls := strings.Split(s, "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}
