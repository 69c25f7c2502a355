package systemdtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// StateDir holds each machine's console log while it runs.
const StateDir = "/var/tmp/gs-nspawn"

// Config describes one machine.
type Config struct {
	// Name prefixes the machine name; a random suffix keeps machines of
	// concurrent tests apart.
	Name string
	// BindRO and Bind map host paths to container paths ("HOST:CONTAINER").
	BindRO []string
	Bind   []string
	// HostNetwork shares the host's network namespace. The default is a
	// private namespace with loopback only, so ports never collide with the
	// host's or another machine's.
	HostNetwork bool
	// BootTimeout bounds the wait for "systemctl is-system-running"; default 90 s.
	BootTimeout time.Duration
	Logf        func(format string, args ...any)
}

// Machine is one booted container: its own systemd as PID 1, journald and
// the system bus.
type Machine struct {
	Name   string
	Rootfs string
	dir    string
	logf   func(string, ...any)
	cg     *cgroup
	nspawn *exec.Cmd
	done   chan struct{} // closed when nspawn has exited
	leader int

	closeOnce sync.Once
	closeErr  error
}

// Require skips the test under -short or when the host lacks what the tier
// needs; with GS_TEST_REAL=1 a missing prerequisite fails the test instead.
func Require(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("systemd-nspawn tier: skipped under -short")
	}
	if msg := missing(); msg != "" {
		if os.Getenv("GS_TEST_REAL") == "1" {
			t.Fatalf("systemd-nspawn tier: %s (GS_TEST_REAL=1)", msg)
		}
		t.Skipf("systemd-nspawn tier: %s", msg)
	}
}

func missing() string {
	if os.Geteuid() != 0 {
		return "needs root"
	}
	for _, tool := range []string{"systemd-nspawn", "debootstrap", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			return tool + " not found (apt-get install systemd-container debootstrap util-linux)"
		}
	}
	if _, err := os.Stat("/usr/share/keyrings/debian-archive-keyring.gpg"); err != nil {
		return "debian-archive-keyring not installed"
	}
	return ""
}

// Boot calls Require, builds or reuses the rootfs, boots a machine and
// registers its teardown with t.Cleanup. On failure the machine's journal
// and console are logged before it is stopped.
func Boot(t testing.TB, cfg Config) *Machine {
	t.Helper()
	Require(t)
	if cfg.Logf == nil {
		cfg.Logf = t.Logf
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	root, err := Rootfs(ctx, cfg.Logf)
	if err != nil {
		t.Fatalf("systemdtest: %v", err)
	}
	m, err := Start(ctx, root, cfg)
	if m != nil {
		t.Cleanup(func() {
			if t.Failed() {
				m.dump(t)
			}
			if err := m.Close(); err != nil {
				t.Errorf("systemdtest: %v", err)
			}
		})
	}
	if err != nil {
		t.Fatalf("systemdtest: %v", err)
	}
	return m
}

// Start boots a machine on rootfs. The caller must Close it, also when Start
// returns an error together with a non-nil Machine.
func Start(ctx context.Context, rootfs string, cfg Config) (*Machine, error) {
	if cfg.Name == "" {
		cfg.Name = "gs"
	}
	if cfg.BootTimeout == 0 {
		cfg.BootTimeout = 90 * time.Second
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	var rnd [4]byte
	rand.Read(rnd[:])
	name := cfg.Name + "-" + hex.EncodeToString(rnd[:])
	m := &Machine{Name: name, Rootfs: rootfs, dir: filepath.Join(StateDir, name), logf: cfg.Logf, done: make(chan struct{})}
	if err := os.MkdirAll(m.dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", m.dir, err)
	}
	sweepCgroups()
	cg, err := newCgroup("gs-nspawn-" + name)
	if err != nil {
		return nil, err
	}
	m.cg = cg

	args := append(nspawnCommon(), "-D", rootfs, "--boot", "--machine="+name,
		"--console=read-only", "--volatile=overlay")
	if !cfg.HostNetwork {
		args = append(args, "--private-network")
	}
	for _, b := range cfg.BindRO {
		args = append(args, "--bind-ro="+b)
	}
	for _, b := range cfg.Bind {
		args = append(args, "--bind="+b)
	}
	console, err := os.Create(filepath.Join(m.dir, "console.log"))
	if err != nil {
		cg.remove()
		return nil, fmt.Errorf("create console log: %w", err)
	}
	defer console.Close()
	// Not CommandContext: the machine outlives ctx, which only bounds the boot.
	cmd := cg.command(context.Background(), args...)
	cmd.Stdout, cmd.Stderr = console, console
	// If the test binary dies (a go test timeout skips t.Cleanup), nspawn
	// gets SIGTERM, which powers the machine off.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGTERM}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		cg.remove()
		return nil, fmt.Errorf("start systemd-nspawn: %w", err)
	}
	m.nspawn = cmd
	go func() { cmd.Wait(); close(m.done) }()
	m.logf("systemdtest: booting %s (nspawn pid %d)", name, cmd.Process.Pid)

	if err := m.waitBooted(ctx, cfg.BootTimeout); err != nil {
		return m, err
	}
	m.logf("systemdtest: %s is up in %s, leader pid %d", name, time.Since(start).Round(10*time.Millisecond), m.leader)
	return m, nil
}

func (m *Machine) waitBooted(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	state := ""
	for time.Now().Before(deadline) {
		select {
		case <-m.done:
			return fmt.Errorf("systemd-nspawn for %s exited during boot: %v\n%s", m.Name, m.nspawn.ProcessState, tail(filepath.Join(m.dir, "console.log"), 30))
		case <-ctx.Done():
			return fmt.Errorf("boot %s: %w", m.Name, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
		if m.leader == 0 {
			m.leader = findLeader(m.nspawn.Process.Pid)
			if m.leader == 0 {
				continue
			}
		}
		out, _ := m.Exec(ctx, "systemctl", "is-system-running")
		state = strings.TrimSpace(out)
		switch state {
		case "running":
			return nil
		case "degraded":
			failed, _ := m.Exec(ctx, "systemctl", "--failed", "--no-legend")
			m.logf("systemdtest: %s booted degraded:\n%s", m.Name, failed)
			return nil
		}
	}
	return fmt.Errorf("%s not running after %s (state %q)\n%s", m.Name, timeout, state, tail(filepath.Join(m.dir, "console.log"), 30))
}

// findLeader returns the host PID of the container's PID 1: the child of
// nspawn that runs systemd.
func findLeader(nspawn int) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces, so cut at the last ')'.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		j := strings.IndexByte(s, '(')
		if i < 0 || j < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 || f[1] != strconv.Itoa(nspawn) {
			continue
		}
		if s[j+1:i] == "systemd" {
			return pid
		}
	}
	return 0
}

// Leader is the host PID of the container's systemd.
func (m *Machine) Leader() int { return m.leader }

// Root is the container's root directory as seen from the host. Files
// written below it land in the container's overlay.
func (m *Machine) Root() string { return fmt.Sprintf("/proc/%d/root", m.leader) }

// Path maps a container path to the host path that reaches it.
func (m *Machine) Path(p string) string { return filepath.Join(m.Root(), p) }

// WriteFile writes a file inside the container, creating parent directories.
func (m *Machine) WriteFile(p string, data []byte, perm os.FileMode) error {
	hp := m.Path(p)
	if err := os.MkdirAll(filepath.Dir(hp), 0o755); err != nil {
		return fmt.Errorf("create %s in %s: %w", filepath.Dir(p), m.Name, err)
	}
	if err := os.WriteFile(hp, data, perm); err != nil {
		return fmt.Errorf("write %s in %s: %w", p, m.Name, err)
	}
	return nil
}

// Command returns a command that runs inside every namespace of the
// container, with a clean environment. Its processes stay in the host
// cgroup of the caller, not in a unit; use systemd-run for that.
func (m *Machine) Command(ctx context.Context, args ...string) *exec.Cmd {
	a := []string{"-t", strconv.Itoa(m.leader), "-a", "--", "/usr/bin/env", "-i",
		"PATH=" + containerPath, "LANG=C.UTF-8", "TERM=dumb", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0"}
	return exec.CommandContext(ctx, "nsenter", append(a, args...)...)
}

// Exec runs a command inside the container and returns its combined output;
// the error carries the output too.
func (m *Machine) Exec(ctx context.Context, args ...string) (string, error) {
	var buf bytes.Buffer
	cmd := m.Command(ctx, args...)
	cmd.Stdout, cmd.Stderr = &buf, &buf
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if err != nil {
		return buf.String(), fmt.Errorf("%s in %s: %w: %s", strings.Join(args, " "), m.Name, err, strings.TrimSpace(buf.String()))
	}
	return buf.String(), nil
}

// Systemctl runs systemctl inside the container.
func (m *Machine) Systemctl(ctx context.Context, args ...string) (string, error) {
	return m.Exec(ctx, append([]string{"systemctl"}, args...)...)
}

// Show returns one property of a unit, as "systemctl show -P" prints it.
func (m *Machine) Show(ctx context.Context, unit, prop string) (string, error) {
	out, err := m.Systemctl(ctx, "show", "-P", prop, unit)
	return strings.TrimSpace(out), err
}

// Journal returns the unit's journal in short-precise form.
func (m *Machine) Journal(ctx context.Context, unit string) string {
	out, _ := m.Exec(ctx, "journalctl", "--no-pager", "-o", "short-precise", "-u", unit)
	return out
}

// BusAddress is the container's system bus, reachable from the host.
func (m *Machine) BusAddress() string {
	return "unix:path=" + m.Path("/run/dbus/system_bus_socket")
}

// Systemd connects to the container's service manager from the host over
// its system bus.
func (m *Machine) Systemd(ctx context.Context) (*sddbus.Conn, error) {
	c, err := sddbus.NewConnection(func() (*dbus.Conn, error) {
		conn, err := dbus.Dial(m.BusAddress(), dbus.WithContext(ctx))
		if err != nil {
			return nil, err
		}
		if err := conn.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
			conn.Close()
			return nil, err
		}
		if err := conn.Hello(); err != nil {
			conn.Close()
			return nil, err
		}
		return conn, nil
	})
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", m.BusAddress(), err)
	}
	return c, nil
}

func (m *Machine) dump(t testing.TB) {
	if m.leader == 0 || !m.alive() {
		t.Logf("systemdtest: %s console:\n%s", m.Name, tail(filepath.Join(m.dir, "console.log"), 40))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, _ := m.Exec(ctx, "journalctl", "--no-pager", "-o", "short-precise", "-n", "300")
	t.Logf("systemdtest: last journal lines of %s:\n%s", m.Name, out)
}

func (m *Machine) alive() bool {
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

// Close powers the machine off (nspawn turns SIGTERM into an orderly
// shutdown), kills it when that takes more than 30 s, and removes its
// cgroup, so nothing it started survives. It is idempotent.
func (m *Machine) Close() error {
	m.closeOnce.Do(func() { m.closeErr = m.close() })
	return m.closeErr
}

func (m *Machine) close() error {
	var errs []error
	if m.nspawn != nil && m.alive() {
		t0 := time.Now()
		m.nspawn.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.done:
			m.logf("systemdtest: %s powered off in %s", m.Name, time.Since(t0).Round(10*time.Millisecond))
		case <-time.After(30 * time.Second):
			m.logf("systemdtest: %s did not power off in 30s; killing it", m.Name)
			if m.leader != 0 {
				syscall.Kill(m.leader, syscall.SIGKILL) // ends the whole PID namespace
			}
			m.nspawn.Process.Kill()
			select {
			case <-m.done:
			case <-time.After(10 * time.Second):
				errs = append(errs, fmt.Errorf("systemd-nspawn %d of %s did not exit", m.nspawn.Process.Pid, m.Name))
			}
		}
	}
	if err := m.cg.remove(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", m.Name, err))
	}
	os.RemoveAll("/run/systemd/nspawn/propagate/" + m.Name)
	os.RemoveAll("/run/systemd/nspawn/unix-export/" + m.Name)
	if len(errs) == 0 {
		os.RemoveAll(m.dir)
	}
	return errors.Join(errs...)
}
