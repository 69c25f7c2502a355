package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/galera-supervisor/galera-supervisor/supervisor"
)

// unitFile is a unit's [Service] (and [Unit]) settings; a later assignment
// of a key replaces an earlier one, an empty one clears it.
type unitFile map[string]string

func readUnit(t *testing.T, path string) unitFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unitFile{}
	sc := bufio.NewScanner(f)
	line, cont := "", false
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		if !cont && (l == "" || l[0] == '#' || l[0] == ';' || l[0] == '[') {
			continue
		}
		if cont {
			line += " " + l
		} else {
			line = l
		}
		if cont = strings.HasSuffix(line, `\`); cont {
			line = strings.TrimSuffix(line, `\`)
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s:%d: not key=value: %q", path, n, line)
		}
		u[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// The stock unit's hardening and limits, which ours keep; LimitNOFILE is
// raised (manyTablesNofile).
var stockHardening = []string{"User", "Group", "AmbientCapabilities", "ProtectSystem", "ProtectHome",
	"ProtectControlGroups", "PrivateTmp", "PrivateNetwork", "UMask", "LimitMEMLOCK", "TasksMax"}

// manyTablesNofile is the open-files limit a native-backup donor of 100,000
// InnoDB tablespaces needs: mariadb-backup holds them all open.
const manyTablesNofile = 100_000 + 256

// TestUnits checks the shipped units against the stock mariadb.service and
// mariadb@.service and against the supervisor's exit codes.
func TestUnits(t *testing.T) {
	stockDir := "/lib/systemd/system"
	if _, err := os.Stat(filepath.Join(stockDir, "mariadb.service")); err != nil {
		if os.Getenv("GS_TEST_REAL") == "1" {
			t.Fatalf("the stock mariadb.service (package mariadb-server) is needed: %v", err)
		}
		t.Skipf("no stock mariadb.service: %v", err)
	}
	stock := readUnit(t, filepath.Join(stockDir, "mariadb.service"))
	stockTemplate := readUnit(t, filepath.Join(stockDir, "mariadb@.service"))
	stockStart, _ := strconv.Atoi(strings.TrimSuffix(stock["TimeoutStartSec"], "s"))

	// The drop-in is read after the stock unit: what it does not set, stock does.
	dropIn := unitFile{}
	for k, v := range stock {
		dropIn[k] = v
	}
	for k, v := range readUnit(t, "../../units/mariadb.service.d/galera-supervisor.conf") {
		dropIn[k] = v
	}
	units := map[string]unitFile{
		"galera-supervisor.service":                readUnit(t, "../../units/galera-supervisor.service"),
		"galera-supervisor@.service":               readUnit(t, "../../units/galera-supervisor@.service"),
		"mariadb.service.d/galera-supervisor.conf": dropIn,
	}
	prevent := strings.Join([]string{strconv.Itoa(supervisor.ExitRecovery), strconv.Itoa(supervisor.ExitSST),
		strconv.Itoa(supervisor.ExitBootstrapRefused), strconv.Itoa(supervisor.ExitConfig)}, " ")
	for name, u := range units {
		for _, k := range stockHardening {
			if u[k] != stock[k] {
				t.Errorf("%s: %s=%s, the stock mariadb.service has %q", name, k, u[k], stock[k])
			}
		}
		if k, err := strconv.Atoi(u["LimitNOFILE"]); err != nil || k < manyTablesNofile {
			t.Errorf("%s: LimitNOFILE=%s, want at least %d (the stock mariadb.service has %s)", name, u["LimitNOFILE"], manyTablesNofile, stock["LimitNOFILE"])
		}
		want := map[string]string{
			"Type": "notify", "NotifyAccess": "main", "KillMode": "mixed", "Restart": "on-failure",
			"RestartPreventExitStatus": prevent, "WatchdogSignal": "SIGKILL",
		}
		for k, v := range want {
			if u[k] != v {
				t.Errorf("%s: %s=%q, want %q", name, k, u[k], v)
			}
		}
		if !strings.HasPrefix(u["ExecStart"], "/usr/bin/galera-supervisor run ") || !strings.Contains(u["ExecStart"], "$_WSREP_NEW_CLUSTER") {
			t.Errorf("%s: ExecStart=%s", name, u["ExecStart"])
		}
		// Modest: the supervisor extends it while an SST moves.
		if s, err := strconv.Atoi(strings.TrimSuffix(u["TimeoutStartSec"], "s")); err != nil || s <= 0 || s >= stockStart {
			t.Errorf("%s: TimeoutStartSec=%s, want under the stock %ds", name, u["TimeoutStartSec"], stockStart)
		}
		if !strings.Contains(u["RuntimeDirectory"], "galera-supervisor") {
			t.Errorf("%s: RuntimeDirectory=%q", name, u["RuntimeDirectory"])
		}
	}
	// Parity with the stock units: each of their settings is the same in
	// ours, or the unit file names it with its reason ("#   Key=  why").
	for _, c := range []struct {
		name, path string
		stock      unitFile
	}{
		{"galera-supervisor.service", "../../units/galera-supervisor.service", stock},
		{"galera-supervisor@.service", "../../units/galera-supervisor@.service", stockTemplate},
		{"mariadb.service.d/galera-supervisor.conf", "../../units/mariadb.service.d/galera-supervisor.conf", stock},
	} {
		text, err := os.ReadFile(c.path)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range c.stock {
			switch k {
			case "Description", "Documentation", "WantedBy":
				continue
			}
			if units[c.name][k] != v && !strings.Contains(string(text), "\n#   "+k+"=") {
				t.Errorf("%s: %s=%q, the stock unit has %q, and no \"#   %s=\" line says why", c.name, k, units[c.name][k], v, k)
			}
		}
	}
	for name, u := range units {
		if u["WatchdogSec"] == "" || u["WatchdogSec"] == "0" {
			t.Errorf("%s: no WatchdogSec=: the watchdog is off", name)
		}
	}
	if u := units["galera-supervisor.service"]; u["SyslogIdentifier"] != "mariadbd" || !strings.HasSuffix(u["ExecStartPost"], "!/etc/mysql/debian-start") {
		t.Errorf("galera-supervisor.service: SyslogIdentifier=%s ExecStartPost=%s, want stock's mariadbd and debian-start", u["SyslogIdentifier"], u["ExecStartPost"])
	}

	// Neither galera-supervisor.service nor mariadb.service starts while the
	// other runs, and no conflict stops one when the other starts: an
	// upgrade of mariadb-server restarts an enabled mariadb.service.
	gs := units["galera-supervisor.service"]
	if strings.Contains(gs["Conflicts"], "mariadb.service") {
		t.Errorf("galera-supervisor.service: Conflicts=%s: a restart of mariadb.service would stop the node", gs["Conflicts"])
	}
	if !strings.Contains(gs["ExecCondition"], "systemctl is-active mariadb.service") || !strings.Contains(gs["After"], "mariadb.service") {
		t.Errorf("galera-supervisor.service: ExecCondition=%s After=%s: want a condition on mariadb.service, ordered after it", gs["ExecCondition"], gs["After"])
	}
	guard := readUnit(t, "../../units/mariadb.service.d/galera-supervisor-guard.conf")
	if !strings.Contains(guard["ExecCondition"], "systemctl is-active galera-supervisor.service") || len(guard) != 1 {
		t.Errorf("mariadb.service.d/galera-supervisor-guard.conf: %v, want an ExecCondition= on galera-supervisor.service alone", guard)
	}

	// The template reads its own groups as the stock template does.
	suffix := ""
	for _, f := range strings.Fields(strings.Trim(stockTemplate["Environment"], `'"`)) {
		if v, ok := strings.CutPrefix(f, "MYSQLD_MULTI_INSTANCE="); ok {
			f = v
		}
		if strings.HasPrefix(f, "--defaults-group-suffix=") {
			suffix = f
		}
	}
	if suffix == "" {
		t.Fatalf("stock mariadb@.service: no --defaults-group-suffix in Environment=%s", stockTemplate["Environment"])
	}
	if tmpl := units["galera-supervisor@.service"]["ExecStart"]; !strings.Contains(tmpl, " "+suffix+" ") {
		t.Errorf("galera-supervisor@.service: ExecStart=%s lacks the stock template's %s", tmpl, suffix)
	}
}
