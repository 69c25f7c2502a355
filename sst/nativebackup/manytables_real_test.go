package nativebackup

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/supervisor/galeratest"
)

// manyTables is above the 1024 soft RLIMIT_NOFILE a login shell gives and
// below the hard limit the test sets, so that the stock limit fails and the
// raised one passes: the path a 30,000-table cluster takes under a 20,000
// limit, at a size that creates in seconds.
const manyTables = 1200

// TestRealNativeBackupManyTables: the nodes run with a soft RLIMIT_NOFILE of
// 1024 and mariadbd wants no more (a small table cache), so that is what
// the SST inherits. mariadb-backup --backup as the stock script runs it
// fails on the donor's 1,200 tables with "Too many open files";
// native-backup gives it --open-files-limit for the tables, within the
// hard limit, and node2 joins with every table equal.
func TestRealNativeBackupManyTables(t *testing.T) {
	galeratest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	setSoftNofile(t, 1024)

	c := newCluster(t, ctx, galeratest.Config{Mysqld: map[string]string{
		"innodb_flush_log_at_trx_commit": "0", // table creation speed, not durability, matters here
		// mariadbd raises its limit (and lowers its hard one) to what its
		// caches want, tens of thousands by default; these want less than
		// 1024, so that mariadbd, and the SST after it, keep 1024.
		"table_open_cache":           "400",
		"table_open_cache_instances": "1",
		"max_connections":            "100",
	}}, 1<<20)
	n1 := c.Node(1)
	if lim, err := n1.QueryString(ctx, "SELECT @@open_files_limit"); err != nil {
		t.Fatal(err)
	} else if k, _ := strconv.Atoi(lim); k > 1024 || k == 0 {
		t.Fatalf("node1's open_files_limit is %s: mariadbd raised its limit; the SST is to inherit 1024", lim)
	}
	t0 := time.Now()
	if err := createTables(ctx, n1, manyTables); err != nil {
		t.Fatal(err)
	}
	t.Logf("created %d tables in %v", manyTables, time.Since(t0).Round(time.Millisecond))

	out, err := stockBackup(ctx, t, n1)
	if err == nil {
		t.Fatalf("mariadb-backup --backup under the inherited limit succeeded; the test does not reach the open-files limit")
	}
	if !strings.Contains(out, "Too many open files") && !strings.Contains(out, "Error number 24") {
		t.Fatalf("mariadb-backup --backup failed, but not for open files (%v): %s", err, lastLines(out, 8))
	}
	t.Logf("stock limit: mariadb-backup --backup fails: %s", lastLines(out, 2))

	n2 := c.Node(2)
	t0 = time.Now()
	if err := n2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n2.WaitSynced(ctx); err != nil {
		t.Fatalf("node2 did not join: %v", err)
	}
	t.Logf("node2 Synced %v after start", time.Since(t0).Round(time.Millisecond))
	a, err := n1.Checksums(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := n2.Checksums(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := galeratest.CompareChecksums(a, b); err != nil {
		t.Fatalf("tables differ after the SST: %v", err)
	}
	if len(a) < manyTables {
		t.Fatalf("node1 has %d tables, want at least %d", len(a), manyTables)
	}
	log, _ := os.ReadFile(n1.ErrorLog)
	m := regexp.MustCompile(`--open-files-limit=(\d+)`).FindSubmatch(log)
	if m == nil {
		t.Fatalf("the donor's log does not show mariadb-backup run with --open-files-limit")
	}
	if k, _ := strconv.Atoi(string(m[1])); k < manyTables+openFilesSlack {
		t.Errorf("mariadb-backup ran with %s, want at least %d", m[0], manyTables+openFilesSlack)
	}
}

// setSoftNofile sets this process's soft RLIMIT_NOFILE, which the nodes it
// starts inherit (an explicit setrlimit also stops os/exec restoring the
// limit Go found at start), and restores it when the test ends. The hard
// limit stays: without CAP_SYS_RESOURCE it could not be raised back.
func setSoftNofile(t *testing.T, soft uint64) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	if old.Max < manyTables+openFilesSlack {
		t.Skipf("hard RLIMIT_NOFILE %d is below the %d the test needs", old.Max, manyTables+openFilesSlack)
	}
	lim := syscall.Rlimit{Cur: soft, Max: old.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("setrlimit RLIMIT_NOFILE %+v: %v", lim, err)
	}
	t.Cleanup(func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
			t.Errorf("restore RLIMIT_NOFILE %+v: %v", old, err)
		}
	})
}

// createTables creates k small InnoDB tables of three rows in gsmany.
func createTables(ctx context.Context, n *galeratest.Node, k int) error {
	db, err := n.DB(ctx)
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, "CREATE DATABASE gsmany"); err != nil {
		return fmt.Errorf("create database gsmany: %w", err)
	}
	for i := range k {
		q := fmt.Sprintf("CREATE TABLE gsmany.t%d (id INT PRIMARY KEY, v VARCHAR(32)) ENGINE=InnoDB", i)
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
		q = fmt.Sprintf("INSERT INTO gsmany.t%d VALUES (1, 'a'), (2, 'b'), (3, 'c')", i)
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// stockBackup runs mariadb-backup --backup on n's datadir as the stock
// wsrep_sst_mariabackup does, as the mysql user under this process's
// limits, and returns its stderr.
func stockBackup(ctx context.Context, t *testing.T, n *galeratest.Node) (string, error) {
	t.Helper()
	bin, err := findBackup(nil)
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(filepath.Dir(n.DataDir), "stock-backup")
	if err := os.Mkdir(target, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(target, 0o777); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bin, "--defaults-file="+n.ConfigFile, "--backup", "--no-version-check", "--galera-info", "--stream=mbstream",
		"--user=root", "--socket="+n.Socket, "--target-dir="+target, "--tmpdir="+target, "--datadir="+n.DataDir)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	cmd.Dir = target
	uid, gid := mysqlIDs(t)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}, Pdeathsig: syscall.SIGKILL}
	err = cmd.Run()
	return stderr.String(), err
}

func mysqlIDs(t *testing.T) (uid, gid uint32) {
	t.Helper()
	u, err := user.Lookup(galeratest.RunUser)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := strconv.Atoi(u.Uid)
	b, _ := strconv.Atoi(u.Gid)
	return uint32(a), uint32(b)
}
