package supervisor

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// RecoverConfig says how to run mariadbd --wsrep-recover.
type RecoverConfig struct {
	Mariadbd  string
	Defaults  Defaults
	ExtraArgs []string // filtered: start-up-only options are dropped
	User      string   // passed as --user when running as root without Credential
	// Credential runs the recovery as mariadbd's user from the start.
	Credential *syscall.Credential
	Env        []string // mariadbd's environment (with our NOTIFY_SOCKET)
	// Started is called with the recovery process's PID (for the reaper).
	Started func(pid int)
}

// startOnlyArgs are options of the real start that must not reach a
// recovery run.
var startOnlyArgs = []string{"--wsrep-new-cluster", "--wsrep_new_cluster", "--wsrep-start-position", "--wsrep_start_position"}

func recoverArgs(cfg RecoverConfig) []string {
	args := cfg.Defaults.Args()
	for _, a := range cfg.ExtraArgs {
		if isStartOnly(a) {
			continue
		}
		args = append(args, a)
	}
	// As galera_recovery does: the log goes to stderr, where we read it.
	args = append(args, "--wsrep-recover", "--disable-log-error")
	if os.Geteuid() == 0 && cfg.Credential == nil && cfg.User != "" {
		args = append(args, "--user="+cfg.User)
	}
	return args
}

func isStartOnly(a string) bool {
	for _, s := range startOnlyArgs {
		if a == s || strings.HasPrefix(a, s+"=") {
			return true
		}
	}
	return false
}

// Recover runs mariadbd --wsrep-recover and returns the recovered position,
// replacing galera_recovery. On failure the error carries the log's tail.
func Recover(ctx context.Context, cfg RecoverConfig) (Position, error) {
	args := recoverArgs(cfg)
	cmd := exec.CommandContext(ctx, cfg.Mariadbd, args...)
	cmd.Env = cfg.Env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cfg.Credential}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	var out bytes.Buffer
	w := &limitWriter{w: &out, n: 16 << 20}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		return Position{}, fmt.Errorf("start %s --wsrep-recover: %w", cfg.Mariadbd, err)
	}
	if cfg.Started != nil {
		cfg.Started(cmd.Process.Pid)
	}
	err := cmd.Wait()
	// Nothing the recovery run started may outlive it.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if ctx.Err() != nil {
		return Position{}, ctx.Err()
	}
	if err != nil {
		return Position{}, fmt.Errorf("%s %s: %w; output ends:\n%s", cfg.Mariadbd, strings.Join(args, " "), err, tail(out.Bytes(), 10))
	}
	pos, err := ParseRecovered(bytes.NewReader(out.Bytes()))
	if err != nil {
		return Position{}, fmt.Errorf("%s --wsrep-recover: %w; output ends:\n%s", cfg.Mariadbd, err, tail(out.Bytes(), 10))
	}
	return pos, nil
}

// limitWriter keeps the first n bytes and discards the rest.
type limitWriter struct {
	w io.Writer
	n int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n <= 0 {
		return len(p), nil
	}
	q := p
	if int64(len(q)) > l.n {
		q = q[:l.n]
	}
	n, err := l.w.Write(q)
	l.n -= int64(n)
	if err != nil {
		return n, err
	}
	return len(p), nil
}

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	s := strings.TrimRight(string(b), "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
