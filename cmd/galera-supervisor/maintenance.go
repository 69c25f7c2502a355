package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/galera-supervisor/galera-supervisor/notify/unit"
	"github.com/galera-supervisor/galera-supervisor/supervisor"
	"github.com/galera-supervisor/galera-supervisor/supervisor/maintenance"
)

const maintenanceLong = `
Puts the node in maintenance, or takes it out, as Patroni's pause does:

  on    the health endpoint answers 503 at / and at the role paths but
        /primary-component ([galera-supervisor] http-address, see "help
        run"), so that HAProxy and other load balancers drain the node; the
        supervisor no longer bootstraps by itself (a bootstrap its peers'
        positions call for waits, and says why) nor gives a start up; its
        STATUS= line ends with "; maintenance: drained, auto-bootstrap and
        give-ups paused", and its peers see it ("status --cluster").
  off   back to what the node's state says.
  (none) print the mode.

The node is addressed like the other commands: --unit (default
galera-supervisor.service, else mariadb.service, when one runs
galera-supervisor), or the option files that name it (--defaults-file=F...)
for a supervisor that is not a unit's (a container, a test). The mode is
<datadir>/galera-supervisor.maintenance, so it survives a restart of the
supervisor and a reboot. The running supervisor is told over D-Bus for a
unit (SIGUSR2 to its main process, then its STATUS= is read back), and
through its runtime directory otherwise (<runtime-dir>/control.sock, which
answers with the mode applied). A node that is not running gets the mode at
its next start.

With "on", wait for the load balancer to see it (HAProxy: fall x inter,
e.g. 2 x 2 s) before stopping the node.

Exit codes:
  0  done (or printed)
  1  the option files, the datadir or the unit could not be read or written,
     or the running supervisor did not confirm within --timeout
  2  bad command line
`

func cmdMaintenance() *command {
	return &command{
		name:  "maintenance",
		usage: "on|off [--unit U] [--defaults-file=F ...] [--reason TEXT] [--runtime-dir D] [--json]",
		short: "drain the node from load balancers and pause auto-bootstrap, or resume",
		long:  maintenanceLong + "\nOptions:\n" + flagUsage(maintenanceFlags(new(maintenanceOptions))),
		run:   runMaintenance,
	}
}

type maintenanceOptions struct {
	unit       string
	bus        string
	defaults   supervisor.Defaults
	datadir    string
	runtimeDir string
	reason     string
	json       bool
	timeout    time.Duration
}

func maintenanceFlags(o *maintenanceOptions) *flag.FlagSet {
	fs := newFlagSet("maintenance")
	fs.StringVar(&o.unit, "unit", "", "the node's unit (default galera-supervisor.service, else mariadb.service)")
	fs.StringVar(&o.bus, "bus", "", "D-Bus address of the service manager (default the system bus)")
	defaultsFlags(fs, &o.defaults)
	fs.StringVar(&o.datadir, "datadir", "", "the node's datadir (default from the option files)")
	fs.StringVar(&o.runtimeDir, "runtime-dir", "", "the supervisor's --runtime-dir, when it is not a unit's (default $RUNTIME_DIRECTORY, else /run/galera-supervisor)")
	fs.StringVar(&o.reason, "reason", "", "why, kept with the mode and shown by status")
	fs.BoolVar(&o.json, "json", false, "print the mode as JSON")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "how long to wait for the running supervisor to confirm")
	return fs
}

// maintenanceTarget is the node a maintenance command acts on.
type maintenanceTarget struct {
	conn    *unit.Conn // nil: not a unit
	unit    unit.State
	datadir string
}

func runMaintenance(ctx context.Context, c *cli, args []string) error {
	var o maintenanceOptions
	mode := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		mode, args = args[0], args[1:]
	}
	if mode != "" && mode != "on" && mode != "off" {
		return usageError(fmt.Sprintf("maintenance: want on or off, not %q", mode))
	}
	if _, err := parseFlags(maintenanceFlags(&o), args); err != nil {
		return err
	}
	if o.reason != "" && mode != "on" {
		return usageError("maintenance: --reason goes with on")
	}
	tg, err := maintenanceNode(ctx, &o)
	if tg.conn != nil {
		defer tg.conn.Close()
	}
	if err != nil {
		return &exitError{1, "maintenance: " + err.Error()}
	}
	switch mode {
	case "on":
		st := maintenance.State{Since: time.Now().UTC(), By: whoAmI(), Reason: o.reason}
		if old, err := maintenance.Read(tg.datadir); err == nil && old != nil {
			st = *old // on already: keep since when and why
		}
		err = maintenance.Write(tg.datadir, st)
	case "off":
		err = maintenance.Clear(tg.datadir)
	}
	if err != nil {
		return &exitError{1, "maintenance: " + err.Error()}
	}
	st, err := maintenance.Read(tg.datadir)
	if err != nil {
		return &exitError{1, "maintenance: " + err.Error()}
	}
	told := ""
	if mode != "" {
		told, err = tellSupervisor(ctx, &o, tg, st != nil)
		if err != nil {
			return &exitError{1, "maintenance: " + err.Error()}
		}
	}
	if o.json {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Datadir     string             `json:"datadir"`
			Maintenance *maintenance.State `json:"maintenance"`
			Supervisor  string             `json:"supervisor,omitempty"`
		}{tg.datadir, st, told})
	}
	fmt.Fprintln(c.stdout, describeMaintenance(st, tg.datadir, time.Now()))
	if told != "" {
		fmt.Fprintln(c.stdout, "  "+told)
	}
	return nil
}

func describeMaintenance(st *maintenance.State, datadir string, now time.Time) string {
	if st == nil {
		return "maintenance: off (" + datadir + ")"
	}
	s := fmt.Sprintf("maintenance: on since %s (%s ago)", st.Since.Local().Format("2006-01-02 15:04:05 MST"), now.Sub(st.Since).Round(time.Second))
	if st.By != "" {
		s += ", by " + st.By
	}
	if st.Reason != "" {
		s += ": " + st.Reason
	}
	return s + "; drained, auto-bootstrap and give-ups paused (" + datadir + ")"
}

// maintenanceNode finds the node: a unit when --unit is given, or when no
// option file is and a default unit runs galera-supervisor; the option
// files otherwise.
func maintenanceNode(ctx context.Context, o *maintenanceOptions) (maintenanceTarget, error) {
	var tg maintenanceTarget
	byFiles := o.defaults != (supervisor.Defaults{}) || o.datadir != "" || o.runtimeDir != ""
	if o.unit != "" || !byFiles {
		conn, err := unit.Dial(ctx, o.bus)
		if err != nil && o.unit != "" {
			return tg, err
		}
		if err == nil {
			name, err := pickUnit(ctx, conn, o.unit)
			if err == nil {
				us, err := conn.State(ctx, name)
				if err != nil {
					conn.Close()
					return tg, err
				}
				if runsSupervisor(us) {
					tg.conn, tg.unit = conn, us
					if o.defaults == (supervisor.Defaults{}) {
						o.defaults = unitDefaults(us)
					}
				} else if o.unit != "" {
					conn.Close()
					return tg, fmt.Errorf("%s does not run galera-supervisor (ExecStart %v): it has no maintenance mode", name, us.ExecStart)
				}
			}
			if tg.conn == nil {
				conn.Close()
			}
		}
	}
	tg.datadir = o.datadir
	if tg.datadir == "" {
		opts, err := supervisor.LoadOptionFiles(o.defaults, nil)(ctx)
		if err != nil {
			return tg, fmt.Errorf("read the option files: %w", err)
		}
		tg.datadir = opts.Datadir()
	}
	if fi, err := os.Stat(tg.datadir); err != nil || !fi.IsDir() {
		return tg, fmt.Errorf("datadir %s: not a directory (%v)", tg.datadir, err)
	}
	return tg, nil
}

// tellSupervisor has the running supervisor read the mode again and says
// what it did; a supervisor that is not running gets it at its start.
func tellSupervisor(ctx context.Context, o *maintenanceOptions, tg maintenanceTarget, on bool) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if tg.conn == nil {
		dir := o.runtimeDir
		if dir == "" {
			dir = supervisor.DefaultRuntimeDir()
		}
		st, err := maintenance.Tell(ctx, dir, tg.datadir)
		if errors.Is(err, maintenance.ErrNotRunning) {
			return "no supervisor runs (" + err.Error() + "): the mode applies at its start", nil
		}
		if err != nil {
			return "", err
		}
		if (st != nil) != on {
			return "", fmt.Errorf("the supervisor on %s applied maintenance %v", dir, st != nil)
		}
		return "the running supervisor applied it (" + filepath.Join(dir, maintenance.SocketName) + ")", nil
	}
	name := tg.unit.Name
	switch tg.unit.ActiveState {
	case "active", "activating", "reloading":
	default:
		return name + " is " + tg.unit.ActiveState + ": the mode applies at its start", nil
	}
	if err := tg.conn.SignalMain(ctx, name, syscall.SIGUSR2); err != nil {
		return "", err
	}
	for {
		us, err := tg.conn.State(ctx, name)
		if err != nil {
			return "", err
		}
		if strings.Contains(us.StatusText, supervisor.MaintenanceStatus) == on {
			return name + " applied it: " + us.StatusText, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%s did not confirm within %v (its STATUS= is %q)", name, o.timeout, us.StatusText)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// whoAmI is user@host, for the mode's By.
func whoAmI() string {
	name := "uid " + fmt.Sprint(os.Getuid())
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	if s := os.Getenv("SUDO_USER"); s != "" {
		name = s + " (sudo)"
	}
	h, _ := os.Hostname()
	return name + "@" + h
}
