package nativebackup

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/notify/logging/logtest"
	"github.com/galera-supervisor/galera-supervisor/supervisor/galeratest"
)

func countTempUsers(t *testing.T, ctx context.Context, n *galeratest.Node) int {
	t.Helper()
	s, err := n.QueryString(ctx, "SELECT COUNT(*) FROM mysql.global_priv WHERE User LIKE 'gs\\_sst\\_%'")
	if err != nil {
		t.Fatal(err)
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("count temporary users: %q: %v", s, err)
	}
	return v
}

// TestRealTempUser checks that a temporary user with only
// TempUserPrivileges is enough for mariadb-backup --backup --galera-info,
// and that drop and the sweep remove it.
func TestRealTempUser(t *testing.T) {
	galeratest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := galeratest.NewTest(t, galeratest.Config{Nodes: 1})
	n := c.Node(1)
	if err := c.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.CreateSampleTables(ctx); err != nil {
		t.Fatal(err)
	}
	db, admin, err := connectAdmin(ctx, n.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	t.Logf("admin account: %s", admin)
	u, err := createTempUser(ctx, db, logtest.New(t))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(u.Name, TempUserPrefix) || len(u.Password) < 32 {
		t.Fatalf("user %q password %d chars", u.Name, len(u.Password))
	}
	grants, err := n.QueryString(ctx, "SHOW GRANTS FOR '"+u.Name+"'@'localhost'")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("grants: %s", grants)

	bin, err := findBackup(nil)
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(c.Dir(), "tu-target")
	spec := backupSpec{DefaultsFile: n.ConfigFile, Datadir: n.DataDir, TargetDir: target, User: u.Name, Socket: n.Socket}
	cmd := exec.CommandContext(ctx, bin, spec.args()...)
	cmd.Env = append(os.Environ(), "MYSQL_PWD="+u.Password)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("mariadb-backup as %s: %v\n%s", u.Name, err, stderr.String())
	}
	for _, l := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(strings.ToLower(l), "privilege") || strings.Contains(l, "denied") {
			t.Errorf("mariadb-backup complained: %s", l)
		}
	}
	// The wrong password is refused with a clear error.
	cmd = exec.CommandContext(ctx, bin, spec.args()...)
	cmd.Env = append(os.Environ(), "MYSQL_PWD=wrong")
	stderr.Reset()
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Run(); err == nil || !strings.Contains(stderr.String(), "Access denied") {
		t.Errorf("wrong password: %v\n%s", err, stderr.String())
	}

	if got := countTempUsers(t, ctx, n); got != 1 {
		t.Fatalf("%d temporary users before drop", got)
	}
	if err := u.drop(ctx); err != nil {
		t.Fatal(err)
	}
	if got := countTempUsers(t, ctx, n); got != 0 {
		t.Fatalf("%d temporary users after drop", got)
	}
	// A user left by a killed donor is swept.
	if _, err := createTempUser(ctx, db, logtest.New(t)); err != nil {
		t.Fatal(err)
	}
	if err := sweepTempUsers(ctx, db, logtest.New(t)); err != nil {
		t.Fatal(err)
	}
	if got := countTempUsers(t, ctx, n); got != 0 {
		t.Fatalf("%d temporary users after sweep", got)
	}
}
