package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"golang.org/x/sys/unix"

	"github.com/galera-supervisor/galera-supervisor/supervisor/galeratest"
)

// tableLoaders is how many connections create the many-tables dataset:
// mariadbd does the work, on two cores.
const tableLoaders = 4

// tablesPerStatement is how many tables one round trip creates and fills.
const tablesPerStatement = 50

// tenantDB names the i-th schema of the many-tables dataset.
func tenantDB(i int) string { return fmt.Sprintf("tenant%03d", i) }

// tableBatch is one round trip: CREATE TABLE and a 3-row INSERT for each
// table of db numbered from..to-1.
func tableBatch(db string, from, to int) string {
	var b strings.Builder
	for t := from; t < to; t++ {
		name := fmt.Sprintf("%s.t%05d", db, t)
		fmt.Fprintf(&b, "CREATE TABLE %s (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL, v BIGINT NOT NULL) ENGINE=InnoDB;", name)
		fmt.Fprintf(&b, "INSERT INTO %s VALUES (1,'alpha %d',%d),(2,'beta %d',%d),(3,'gamma %d',%d);", name, t, t, t, 2*t, t, 3*t)
	}
	return b.String()
}

// loadTables creates n small InnoDB tables on node1, spread evenly over
// dbs schemas (one schema per tenant), three rows each. Like LoadData on
// a lone node it writes with wsrep_on=OFF: joiners get it by SST.
func (b *bench) loadTables(ctx context.Context, n, dbs int) error {
	node := b.cluster.Node(1)
	cfg, err := mysql.ParseDSN(node.DSN())
	if err != nil {
		return fmt.Errorf("node1 DSN: %w", err)
	}
	cfg.MultiStatements = true
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return fmt.Errorf("connect to node1: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(tableLoaders)
	dbs = min(dbs, n)
	b.logf("creating %d tables of 3 rows in %d schemas on node1, %d connections", n, dbs, tableLoaders)
	start := time.Now()
	var done atomic.Int64
	stop := b.ticker(ctx, func() {
		k := done.Load()
		b.logf("tables: %d of %d (%.0f/s)", k, n, float64(k)/time.Since(start).Seconds())
	})
	defer stop()

	work := make(chan int)
	var wg sync.WaitGroup
	errs := make(chan error, tableLoaders)
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range tableLoaders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.loadSchemas(lctx, db, work, n, dbs, &done); err != nil {
				errs <- err
				cancel()
			}
		}()
	}
feed:
	for i := range dbs {
		select {
		case work <- i:
		case <-lctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	b.report.LoadSeconds = time.Since(start).Seconds()
	b.logf("created %d tables in %.0f s", n, b.report.LoadSeconds)
	return nil
}

// loadSchemas creates the schemas it takes from work and their tables,
// over one connection.
func (b *bench) loadSchemas(ctx context.Context, db *sql.DB, work <-chan int, n, dbs int, done *atomic.Int64) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect to node1: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET SESSION wsrep_on=OFF"); err != nil {
		return fmt.Errorf("node1: SET SESSION wsrep_on=OFF: %w", err)
	}
	for i := range work {
		// Schema i holds tables i, i+dbs, i+2*dbs, ...: n in all.
		name := tenantDB(i)
		if _, err := conn.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS "+name); err != nil {
			return fmt.Errorf("node1: create database %s: %w", name, err)
		}
		count := n / dbs
		if i < n%dbs {
			count++
		}
		for from := 0; from < count; from += tablesPerStatement {
			to := min(from+tablesPerStatement, count)
			if _, err := conn.ExecContext(ctx, tableBatch(name, from, to)); err != nil {
				return fmt.Errorf("node1: create tables %s.t%05d..t%05d: %w", name, from, to-1, err)
			}
			done.Add(int64(to - from))
		}
	}
	return nil
}

// ticker calls f every 10 s until stop is called.
func (b *bench) ticker(ctx context.Context, f func()) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				f()
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}

// floorFileSize is the size of each file the creation floor writes: about
// a small table's .frm plus its share of an .ibd's first pages.
const floorFileSize = 16 << 10

// Floor is what creating one file costs on the disk under the nodes: the
// least a transfer that creates the donor's files can spend per file.
type Floor struct {
	Files        int     `json:"files"`
	FileBytes    int     `json:"file_bytes"`
	CreateMs     float64 `json:"create_ms_per_file"`      // create, write, close; no sync
	CreateSyncMs float64 `json:"create_sync_ms_per_file"` // the same plus one syncfs at the end, spread over the files
}

// measureFloor creates n files of floorFileSize in a fresh directory in
// dir (spread over 100 subdirectories, as the tables are), then syncfs,
// and removes them.
func measureFloor(dir string, n int) (Floor, error) {
	f := Floor{Files: n, FileBytes: floorFileSize}
	root, err := os.MkdirTemp(dir, "create-floor-")
	if err != nil {
		return f, fmt.Errorf("create floor dir: %w", err)
	}
	defer os.RemoveAll(root)
	syscallSync()
	data := make([]byte, floorFileSize)
	for i := range data {
		data[i] = byte(i * 7)
	}
	start := time.Now()
	for i := range 100 {
		if err := os.Mkdir(filepath.Join(root, fmt.Sprint(i)), 0o755); err != nil {
			return f, fmt.Errorf("create floor dir: %w", err)
		}
	}
	for i := range n {
		if err := os.WriteFile(filepath.Join(root, fmt.Sprint(i%100), fmt.Sprintf("f%06d", i)), data, 0o640); err != nil {
			return f, fmt.Errorf("create floor file: %w", err)
		}
	}
	created := time.Since(start)
	d, err := os.Open(root)
	if err != nil {
		return f, fmt.Errorf("create floor: %w", err)
	}
	err = unix.Syncfs(int(d.Fd()))
	d.Close()
	if err != nil {
		return f, fmt.Errorf("create floor: syncfs: %w", err)
	}
	synced := time.Since(start)
	f.CreateMs = float64(created.Microseconds()) / 1e3 / float64(n)
	f.CreateSyncMs = float64(synced.Microseconds()) / 1e3 / float64(n)
	return f, nil
}

func syscallSync() { unix.Sync() }

// fileCount counts the regular files under dir.
func fileCount(dir string) int {
	n := 0
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return nil
	})
	return n
}

// countTables counts the tenant tables a node lists: comparing 30,000
// tables' checksums after every join would cost more than the join, so
// the count is the check that the joiner got the dataset.
func countTables(ctx context.Context, n *galeratest.Node) (int, error) {
	s, err := n.QueryString(ctx, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema LIKE 'tenant%'")
	if err != nil {
		return 0, err
	}
	var k int
	_, err = fmt.Sscan(s, &k)
	return k, err
}
