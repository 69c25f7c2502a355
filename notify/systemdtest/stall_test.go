package systemdtest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestSystemdStallWindow starts "galera-supervisor run" in units of the
// container's real systemd and reads, from each unit's journal, the
// SST stall window the supervisor chose over the bus: each run exits 78 at
// its missing option file, right after choosing it.
func TestSystemdStallWindow(t *testing.T) {
	r := newRig(t, "gs-window")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run := "/usr/bin/galera-supervisor run --defaults-file=/nonexistent/my.cnf"
	for i, c := range []struct {
		name  string
		props []string
		cmd   string
		want  string // in the journal; {unit} is the unit's name
	}{
		{"from the unit, as mysql", []string{"Type=notify", "TimeoutStartSec=20", "User=mysql"}, run,
			"SST stall window from the unit's TimeoutStartSec stall_window=20s stall_window_source=unit unit={unit} timeout_start=20s"},
		{"infinity", []string{"Type=notify", "TimeoutStartSec=infinity"}, run,
			"no SST stall window: the unit has TimeoutStartSec=infinity, its start needs no extension unit={unit} timeout_start=infinity"},
		{"at least 10 s", []string{"Type=notify", "TimeoutStartSec=3"}, run,
			"at least min_stall_window stall_window=10s stall_window_source=unit unit={unit} timeout_start=3s min_stall_window=10s"},
		{"flag", []string{"Type=notify", "TimeoutStartSec=20"}, run + " --sst-stall-timeout=45s",
			"SST stall window set by --sst-stall-timeout stall_window=45s stall_window_source=flag"},
		{"no notify socket", []string{"Type=simple", "TimeoutStartSec=20"}, run,
			"SST stall window: the default, not under systemd stall_window=1m0s stall_window_source=default reason=\"$NOTIFY_SOCKET is unset\""},
		// sh stays the main process: the unit's start timeout is not the
		// supervisor's to extend.
		{"not the main process", []string{"Type=notify", "NotifyAccess=all", "TimeoutStartSec=20"}, "/bin/sh -c '" + run + "; exit 78'",
			"SST stall window: the default, cannot read the unit's TimeoutStartSec stall_window=1m0s stall_window_source=default error=\"pid"},
		// Last: without dbus-daemon, root reads systemd's private socket.
		{"no bus, as root", []string{"Type=notify", "TimeoutStartSec=20"}, run,
			"SST stall window from the unit's TimeoutStartSec stall_window=20s stall_window_source=unit unit={unit} timeout_start=20s"},
	} {
		r.run(t, strings.ReplaceAll(c.name, " ", "-"), func(t *testing.T) {
			u := fmt.Sprintf("gs-window-%d.service", i)
			var b strings.Builder
			fmt.Fprintf(&b, "[Service]\nExecStart=%s\n", c.cmd)
			for _, p := range c.props {
				b.WriteString(p + "\n")
			}
			r.write("/etc/systemd/system/"+u, b.String())
			r.exec(ctx, "systemctl", "daemon-reload")
			if strings.HasPrefix(c.name, "no bus") {
				r.exec(ctx, "systemctl", "stop", "dbus.socket", "dbus.service")
				defer r.exec(ctx, "systemctl", "start", "dbus.socket", "dbus.service")
			}
			out, _ := r.m.Systemctl(ctx, "start", u) // fails, but for Type=simple
			for end := time.Now().Add(30 * time.Second); r.show(ctx, u, "ActiveState") != "failed"; time.Sleep(100 * time.Millisecond) {
				if time.Now().After(end) {
					t.Fatalf("%s is %s, want failed\n%s", u, r.show(ctx, u, "ActiveState"), out)
				}
			}
			if code := r.show(ctx, u, "ExecMainStatus"); code != "78" {
				t.Errorf("%s exited %s, want 78 (missing option file)", u, code)
			}
			j := r.m.Journal(ctx, u)
			if want := strings.ReplaceAll(c.want, "{unit}", u); !strings.Contains(j, want) {
				t.Errorf("journal of %s lacks %q:\n%s\nsystemctl start: %s", u, want, j, out)
			}
			if !strings.Contains(j, "/nonexistent/my.cnf") {
				t.Errorf("journal of %s lacks the option file error:\n%s", u, j)
			}
		})
	}
}
