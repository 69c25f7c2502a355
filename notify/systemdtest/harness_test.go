package systemdtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/notify/unit"
)

// The test binary doubles as a Type=notify service inside the container
// (the helper-process pattern): with GS_SYSTEMDTEST_HELPER=notify it sends
// STATUS= and READY=1 after GS_READY_AFTER, then waits for SIGTERM.
func TestMain(m *testing.M) {
	if os.Getenv("GS_SYSTEMDTEST_HELPER") == "notify" {
		os.Exit(notifyHelper())
	}
	if os.Getenv("GS_SYSTEMDTEST_HELPER") == "journal" {
		os.Exit(journalHelper())
	}
	code := m.Run()
	removeBinaries()
	os.Exit(code)
}

func sdNotify(msg string) error {
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: os.Getenv("NOTIFY_SOCKET"), Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(msg))
	return err
}

// helperPath is where installHelper puts the test binary in a machine.
const helperPath = "/opt/gs-test/helper"

// installHelper copies the test binary into m, to run there as a helper.
func installHelper(t testing.TB, m *Machine) {
	t.Helper()
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.WriteFile(helperPath, self, 0o755); err != nil {
		t.Fatal(err)
	}
}

func notifyHelper() int {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	after, _ := time.ParseDuration(os.Getenv("GS_READY_AFTER"))
	sdNotify("STATUS=helper starting")
	select {
	case <-sig:
		return 0 // stopped before READY, e.g. by the start timeout
	case <-time.After(after):
	}
	if err := sdNotify("READY=1\nSTATUS=helper ready after " + after.String()); err != nil {
		fmt.Fprintln(os.Stderr, "sd_notify:", err)
		return 1
	}
	<-sig
	sdNotify("STOPPING=1")
	return 0
}

func TestParseSources(t *testing.T) {
	deb822 := `Types: deb
# http://snapshot.example/archive/debian/2025
URIs: http://mirror.example/debian/
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://other.example/debian
Suites: bookworm
Enabled: no

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
`
	list := `# comment
deb [arch=amd64 signed-by=/x.gpg] https://apt.example/cloud cloud-sdk-bookworm main
deb http://list.example/debian bookworm main contrib
`
	got := pickSources(append(parseDeb822(deb822), parseOneLine(list)...))
	want := Sources{Mirror: "http://mirror.example/debian", Security: "http://mirror.example/debian-security"}
	if got != want {
		t.Errorf("pickSources = %+v, want %+v", got, want)
	}
	got = pickSources(parseOneLine(list))
	if got.Mirror != "http://list.example/debian" || got.Security != "" {
		t.Errorf("one-line sources: got %+v", got)
	}
	if s := stamp(want); s == stamp(Sources{Mirror: "http://other.example/debian"}) {
		t.Errorf("stamp %s does not depend on the mirror", s)
	}
}

// TestSystemdHarness proves the harness: a Type=notify unit becomes active
// only at READY=1 and shows its STATUS=, a unit that never says READY is
// killed at its start timeout, the host reaches the container's manager
// over D-Bus, and stop leaves no process in the unit's cgroup.
func TestSystemdHarness(t *testing.T) {
	m := Boot(t, Config{Name: "gs-harness"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	installHelper(t, m)
	unitText := func(readyAfter, timeout string) string {
		return fmt.Sprintf(`[Service]
Type=notify
Environment=GS_SYSTEMDTEST_HELPER=notify GS_READY_AFTER=%s
ExecStart=/opt/gs-test/helper
TimeoutStartSec=%s
`, readyAfter, timeout)
	}
	if err := m.WriteFile("/etc/systemd/system/gs-ready.service", []byte(unitText("2s", "20")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.WriteFile("/etc/systemd/system/gs-late.service", []byte(unitText("30s", "2")), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Systemctl(ctx, "daemon-reload"); err != nil {
		t.Fatal(err)
	}

	conn, err := unit.Dial(ctx, m.BusAddress())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	start := time.Now()
	if err := conn.Start(ctx, "gs-ready.service"); err != nil {
		t.Fatalf("start gs-ready: %v\n%s", err, m.Journal(ctx, "gs-ready.service"))
	}
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("gs-ready.service started after %s, before its READY=1 at 2s", d)
	}
	st, err := conn.State(ctx, "gs-ready.service")
	if err != nil {
		t.Fatal(err)
	}
	if st.ActiveState != "active" || st.SubState != "running" || st.StatusText != "helper ready after 2s" || st.MainPID == 0 ||
		st.TimeoutStart != 20*time.Second {
		t.Errorf("gs-ready.service state = %+v, want active/running with the helper's STATUS, TimeoutStart 20s", st)
	}
	if name, err := conn.UnitOf(ctx, st.MainPID); err != nil || name != "gs-ready.service" {
		t.Errorf("UnitOf(main pid %d) = %q, %v", st.MainPID, name, err)
	}

	err = conn.Start(ctx, "gs-late.service")
	if !unit.IsJobError(err) {
		t.Errorf("start gs-late.service (READY after 30s, TimeoutStartSec=2): err = %v, want a failed job", err)
	}
	if r, _ := m.Show(ctx, "gs-late.service", "Result"); r != "timeout" {
		t.Errorf("gs-late.service Result = %q, want timeout", r)
	}

	cg, err := m.Show(ctx, "gs-ready.service", "ControlGroup")
	if err != nil || cg == "" {
		t.Fatalf("ControlGroup of gs-ready.service: %q, %v", cg, err)
	}
	if err := conn.Stop(ctx, "gs-ready.service"); err != nil {
		t.Fatal(err)
	}
	if st, _ := conn.State(ctx, "gs-ready.service"); st.ActiveState != "inactive" {
		t.Errorf("after stop: %s/%s", st.ActiveState, st.SubState)
	}
	if out, _ := m.Exec(ctx, "cat", "/sys/fs/cgroup/unified"+cg+"/cgroup.procs"); strings.TrimSpace(out) != "" &&
		!strings.Contains(out, "No such file") {
		t.Errorf("processes left in %s after stop: %s", cg, out)
	}
	if j := m.Journal(ctx, "gs-late.service"); !strings.Contains(j, "start operation timed out") {
		t.Errorf("journal of gs-late.service lacks the timeout:\n%s", j)
	}
}

// TestSystemdStockGalera boots Debian's own mariadb.service as a one-node
// Galera cluster with galera_new_cluster, proving that the rootfs carries a
// working server, galera-4 and journald for the supervisor's tests.
func TestSystemdStockGalera(t *testing.T) {
	m := Boot(t, Config{Name: "gs-stock"})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cnf := `[galera]
wsrep_on = ON
wsrep_provider = /usr/lib/galera/libgalera_smm.so
wsrep_cluster_address = gcomm://127.0.0.1
wsrep_node_address = 127.0.0.1
wsrep_sst_method = rsync
binlog_format = row
innodb_autoinc_lock_mode = 2
innodb_buffer_pool_size = 64M
`
	if err := m.WriteFile("/etc/mysql/mariadb.conf.d/60-galera.cnf", []byte(cnf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := m.Exec(ctx, "galera_new_cluster"); err != nil {
		t.Fatalf("galera_new_cluster: %v\n%s\n%s", err, out, m.Journal(ctx, "mariadb.service"))
	}
	out, err := m.Exec(ctx, "mariadb", "-NBe",
		"select variable_value from information_schema.global_status where variable_name in ('wsrep_local_state_comment','wsrep_cluster_size') order by variable_name")
	if err != nil {
		t.Fatal(err)
	}
	if f := strings.Fields(out); len(f) != 2 || f[0] != "1" || f[1] != "Synced" {
		t.Errorf("wsrep cluster size and state = %q, want 1 Synced", out)
	}
	if out, err := m.Systemctl(ctx, "stop", "mariadb.service"); err != nil {
		t.Fatalf("stop mariadb: %v %s", err, out)
	}
	g, err := os.ReadFile(m.Path("/var/lib/mysql/grastate.dat"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(g), "safe_to_bootstrap: 1") {
		t.Errorf("grastate.dat after a clean stop of the last node:\n%s", g)
	}
}
