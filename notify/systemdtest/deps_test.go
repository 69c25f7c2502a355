package systemdtest

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestSystemdDeps runs scripts/deps.sh, what "make deps" (and so make test,
// demo and bench) runs, against the stock mariadb.service: one started on
// its empty initial datadir (a fresh CI machine's) is stopped and disabled;
// one with a database is left running and make stops, unless
// GS_STOP_MARIADB=1.
func TestSystemdDeps(t *testing.T) {
	m := Boot(t, Config{Name: "gs-deps", BindRO: []string{"../../scripts:/opt/gs-scripts"}})
	r := &rig{t: t, m: m}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	deps := func(env ...string) (string, error) {
		return m.Exec(ctx, append(append([]string{"env"}, env...), "/opt/gs-scripts/deps.sh", "/tmp/deps.log", "mariadb-server", "galera-4")...)
	}
	start := func() string {
		if out, err := m.Systemctl(ctx, "enable", "--now", "mariadb.service"); err != nil {
			t.Fatalf("start mariadb.service: %v\n%s", err, out)
		}
		return r.show(ctx, "mariadb.service", "MainPID")
	}

	start()
	out, err := deps()
	if err != nil || !strings.Contains(out, "stopped and disabled mariadb.service") {
		t.Errorf("deps.sh with mariadb.service on its initial datadir: %v\n%s", err, out)
	}
	if st, en := r.show(ctx, "mariadb.service", "ActiveState"), r.show(ctx, "mariadb.service", "UnitFileState"); st != "inactive" || en != "disabled" {
		t.Errorf("after deps.sh: mariadb.service is %s, %s; want inactive, disabled", st, en)
	}

	pid := start()
	r.exec(ctx, "mariadb", "-e", "CREATE DATABASE shop")
	out, err = deps()
	if err == nil || !strings.Contains(out, "running with data in /var/lib/mysql: shop") || !strings.Contains(out, "GS_STOP_MARIADB=1") {
		t.Errorf("deps.sh with a database in mariadb.service: %v\n%s", err, out)
	}
	if st, p := r.show(ctx, "mariadb.service", "ActiveState"), r.show(ctx, "mariadb.service", "MainPID"); st != "active" || p != pid {
		t.Errorf("deps.sh touched mariadb.service with data: %s, main PID %s (was %s)", st, p, pid)
	}

	out, err = deps("GS_STOP_MARIADB=1")
	if err != nil || r.show(ctx, "mariadb.service", "ActiveState") != "inactive" {
		t.Errorf("deps.sh GS_STOP_MARIADB=1: %v, mariadb.service %s\n%s", err, r.show(ctx, "mariadb.service", "ActiveState"), out)
	}
}
