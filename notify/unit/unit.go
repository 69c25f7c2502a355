// Package unit controls and inspects a systemd unit over D-Bus, through
// go-systemd's dbus package: what "galera-supervisor status" shows and how
// "galera-supervisor bootstrap" starts a node.
package unit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// Conn is a connection to a service manager.
type Conn struct {
	c *sddbus.Conn
}

// Dial connects to the service manager on the system bus, or on the bus at
// address (a D-Bus address such as "unix:path=/run/dbus/system_bus_socket")
// when it is not empty.
func Dial(ctx context.Context, address string) (*Conn, error) {
	if address == "" {
		c, err := sddbus.NewSystemConnectionContext(ctx)
		if err != nil {
			return nil, fmt.Errorf("connect to the system bus: %w", err)
		}
		return &Conn{c: c}, nil
	}
	c, err := sddbus.NewConnection(func() (*dbus.Conn, error) {
		conn, err := dbus.Dial(address, dbus.WithContext(ctx))
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
		return nil, fmt.Errorf("connect to bus %s: %w", address, err)
	}
	return &Conn{c: c}, nil
}

// Close closes the connection.
func (c *Conn) Close() { c.c.Close() }

// State is what the manager knows about a service unit.
type State struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	LoadState   string `json:"load_state"` // loaded, not-found, masked, ...
	// UnitFileState is enabled, disabled, static, masked, ...
	UnitFileState string    `json:"unit_file_state,omitempty"`
	ActiveState   string    `json:"active_state"` // active, activating, deactivating, failed, inactive
	SubState      string    `json:"sub_state"`    // running, start, auto-restart, ...
	Result        string    `json:"result,omitempty"`
	StatusText    string    `json:"status_text,omitempty"` // the main process's last STATUS=
	MainPID       uint32    `json:"main_pid,omitempty"`
	Since         time.Time `json:"since,omitzero"` // last change of ActiveState
	ActiveEnter   time.Time `json:"active_enter,omitzero"`
	NRestarts     uint32    `json:"n_restarts"`
	// ExecMainStatus is the main process's exit status or signal number.
	ExecMainStatus int32 `json:"exec_main_status"`
	// EnvironmentFiles are the unit's EnvironmentFile= paths, with
	// instance specifiers resolved.
	EnvironmentFiles []string `json:"environment_files,omitempty"`
	// ExecStart holds the argv of each ExecStart= command, unexpanded.
	ExecStart    [][]string `json:"exec_start,omitempty"`
	FragmentPath string     `json:"fragment_path,omitempty"`
	// ControlGroup is the unit's cgroup path, relative to the hierarchy root.
	ControlGroup string `json:"control_group,omitempty"`
	// TimeoutStart and Watchdog are TimeoutStartSec= and WatchdogSec=
	// (0: none). A start timeout of "infinity" is reported as 0.
	TimeoutStart time.Duration `json:"timeout_start,omitempty"`
	Watchdog     time.Duration `json:"watchdog,omitempty"`
}

// State reads the unit's state. A unit that is not loaded is loaded on
// demand by the manager; a unit without a unit file reports
// LoadState "not-found" rather than an error.
func (c *Conn) State(ctx context.Context, name string) (State, error) {
	s := State{Name: name}
	up, err := c.c.GetUnitPropertiesContext(ctx, name)
	if err != nil {
		return s, fmt.Errorf("get properties of %s: %w", name, err)
	}
	s.Description, _ = up["Description"].(string)
	s.LoadState, _ = up["LoadState"].(string)
	s.UnitFileState, _ = up["UnitFileState"].(string)
	s.ActiveState, _ = up["ActiveState"].(string)
	s.SubState, _ = up["SubState"].(string)
	s.FragmentPath, _ = up["FragmentPath"].(string)
	s.Since = usecTime(up["StateChangeTimestamp"])
	s.ActiveEnter = usecTime(up["ActiveEnterTimestamp"])
	if s.LoadState == "not-found" {
		return s, nil
	}
	sp, err := c.c.GetUnitTypePropertiesContext(ctx, name, "Service")
	if err != nil {
		return s, fmt.Errorf("get service properties of %s: %w", name, err)
	}
	s.Result, _ = sp["Result"].(string)
	s.StatusText, _ = sp["StatusText"].(string)
	s.MainPID, _ = sp["MainPID"].(uint32)
	s.NRestarts, _ = sp["NRestarts"].(uint32)
	s.ExecMainStatus, _ = sp["ExecMainStatus"].(int32)
	s.EnvironmentFiles = envFiles(sp["EnvironmentFiles"])
	s.ExecStart = execArgv(sp["ExecStart"])
	s.ControlGroup, _ = sp["ControlGroup"].(string)
	s.TimeoutStart = usecDuration(sp["TimeoutStartUSec"])
	s.Watchdog = usecDuration(sp["WatchdogUSec"])
	return s, nil
}

// envFiles decodes the a(sb) EnvironmentFiles property: path, and whether a
// missing file is ignored ("-" prefix).
func envFiles(v any) []string {
	var out []string
	switch l := v.(type) {
	case [][]any:
		for _, e := range l {
			if len(e) > 0 {
				if p, ok := e[0].(string); ok {
					out = append(out, p)
				}
			}
		}
	case []struct {
		Path     string
		Optional bool
	}:
		for _, e := range l {
			out = append(out, e.Path)
		}
	}
	return out
}

// execArgv decodes the a(sasbttttuii) ExecStart property: path, argv, ...
func execArgv(v any) [][]string {
	var out [][]string
	l, _ := v.([][]any)
	for _, e := range l {
		if len(e) > 1 {
			if argv, ok := e[1].([]string); ok {
				out = append(out, argv)
			}
		}
	}
	return out
}

func usecDuration(v any) time.Duration {
	us, ok := v.(uint64)
	if !ok || us == 0 || us == math.MaxUint64 {
		return 0
	}
	return time.Duration(us) * time.Microsecond
}

// UnitOf returns the name of the unit whose cgroup holds pid; a supervisor
// finds its own unit with UnitOf(ctx, uint32(os.Getpid())).
func (c *Conn) UnitOf(ctx context.Context, pid uint32) (string, error) {
	name, err := c.c.GetUnitNameByPID(ctx, pid)
	if err != nil {
		return "", fmt.Errorf("unit of pid %d: %w", pid, err)
	}
	return name, nil
}

// StartTimeout returns the service unit whose main process is pid and its
// TimeoutStartSec, 0 when that is infinity. A process that is not a
// service's main process (a test's fake child, a shell in a session) has no
// start timeout of its own: that is an error.
func (c *Conn) StartTimeout(ctx context.Context, pid uint32) (string, time.Duration, error) {
	name, err := c.UnitOf(ctx, pid)
	if err != nil {
		return "", 0, err
	}
	if !strings.HasSuffix(name, ".service") {
		return name, 0, fmt.Errorf("pid %d is in %s, not in a service", pid, name)
	}
	sp, err := c.c.GetUnitTypePropertiesContext(ctx, name, "Service")
	if err != nil {
		return name, 0, fmt.Errorf("get service properties of %s: %w", name, err)
	}
	if main, _ := sp["MainPID"].(uint32); main != pid {
		return name, 0, fmt.Errorf("pid %d is not the main process of %s (MainPID %d)", pid, name, main)
	}
	us, ok := sp["TimeoutStartUSec"].(uint64)
	if !ok {
		return name, 0, fmt.Errorf("%s: TimeoutStartUSec is %T, want uint64", name, sp["TimeoutStartUSec"])
	}
	return name, usecDuration(us), nil
}

// OwnStartTimeout is StartTimeout for this process over the system bus
// (for root, systemd's private socket when the bus does not answer); it is
// a notify.StartTimeoutFunc.
func OwnStartTimeout(ctx context.Context) (string, time.Duration, error) {
	c, err := Dial(ctx, "")
	if err != nil && os.Geteuid() == 0 {
		p, perr := sddbus.NewSystemdConnectionContext(ctx)
		if perr != nil {
			return "", 0, fmt.Errorf("%w; systemd's private socket: %w", err, perr)
		}
		c, err = &Conn{c: p}, nil
	}
	if err != nil {
		return "", 0, err
	}
	defer c.Close()
	return c.StartTimeout(ctx, uint32(os.Getpid()))
}

func usecTime(v any) time.Time {
	us, ok := v.(uint64)
	if !ok || us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(int64(us))
}

// JobError is a start or stop job that did not end in "done".
type JobError struct {
	Op, Unit, Result string
}

func (e *JobError) Error() string {
	return fmt.Sprintf("%s %s: job ended %q", e.Op, e.Unit, e.Result)
}

// Start queues a start job for the unit and waits until the job ends; for a
// Type=notify unit that is when the main process sent READY=1, or the start
// failed or timed out.
func (c *Conn) Start(ctx context.Context, name string) error {
	return c.job(ctx, "start", name, c.c.StartUnitContext)
}

// Stop queues a stop job and waits for it.
func (c *Conn) Stop(ctx context.Context, name string) error {
	return c.job(ctx, "stop", name, c.c.StopUnitContext)
}

func (c *Conn) job(ctx context.Context, op, name string, f func(context.Context, string, string, chan<- string) (int, error)) error {
	ch := make(chan string, 1)
	if _, err := f(ctx, name, "replace", ch); err != nil {
		return fmt.Errorf("%s %s: %w", op, name, err)
	}
	select {
	case r := <-ch:
		if r != "done" {
			return &JobError{Op: op, Unit: name, Result: r}
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s %s: %w", op, name, ctx.Err())
	}
}

// IsJobError reports whether err is a job that ended without success.
func IsJobError(err error) bool {
	var j *JobError
	return errors.As(err, &j)
}

// SignalMain sends sig to the unit's main process (systemd's KillUnit,
// who=main): "galera-supervisor maintenance" tells a unit's supervisor
// to read its maintenance mode again.
func (c *Conn) SignalMain(ctx context.Context, name string, sig syscall.Signal) error {
	if err := c.c.KillUnitWithTarget(ctx, name, sddbus.Main, int32(sig)); err != nil {
		return fmt.Errorf("signal the main process of %s: %w", name, err)
	}
	return nil
}
