package galeratest

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
)

// LoadTable holds the rows a Load writes: one per id, with the node it was
// written on.
const LoadTable = "outage.acked"

// Load is a write load with committed-row accounting: one writer per node
// inserts rows with ids unique across writers, one autocommit INSERT at a
// time, and records an id only when its COMMIT returned OK. Errors (the
// node down, not Primary, a deadlock at a view change) are counted and the
// writer moves on to a fresh id, so a row in doubt is never counted as
// committed. It keeps going while nodes die and come back.
type Load struct {
	next   atomic.Int64
	mu     sync.Mutex
	acked  []int64
	errs   map[int]int // by node
	oks    map[int]int
	cancel context.CancelFunc
	wg     sync.WaitGroup
	dbs    []*sql.DB
}

// CreateLoadTable creates LoadTable through n, which must be Primary.
func CreateLoadTable(ctx context.Context, n *Node) error {
	if err := n.Exec(ctx, "CREATE DATABASE IF NOT EXISTS outage"); err != nil {
		return err
	}
	return n.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+LoadTable+" (id BIGINT PRIMARY KEY, node INT NOT NULL) ENGINE=InnoDB")
}

// StartLoad starts a writer on each node, each pausing pause between two
// inserts. The table must exist (CreateLoadTable).
func StartLoad(nodes []*Node, pause time.Duration) (*Load, error) {
	ctx, cancel := context.WithCancel(context.Background())
	l := &Load{errs: map[int]int{}, oks: map[int]int{}, cancel: cancel}
	for _, n := range nodes {
		cfg := mysql.NewConfig()
		cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = User, Password, "unix", n.Socket
		cfg.Logger = quiet{} // connections broken by a kill are the point
		cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = 2*time.Second, 10*time.Second, 10*time.Second
		db, err := sql.Open("mysql", cfg.FormatDSN())
		if err != nil {
			l.Stop()
			return nil, fmt.Errorf("node%d: open %s: %w", n.N, n.Socket, err)
		}
		db.SetMaxOpenConns(1)
		l.dbs = append(l.dbs, db)
		l.wg.Add(1)
		go l.write(ctx, n.N, db, pause)
	}
	return l, nil
}

func (l *Load) write(ctx context.Context, node int, db *sql.DB, pause time.Duration) {
	defer l.wg.Done()
	for ctx.Err() == nil {
		id := l.next.Add(1)
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := db.ExecContext(qctx, "INSERT INTO "+LoadTable+" (id, node) VALUES (?, ?)", id, node)
		cancel()
		l.mu.Lock()
		if err == nil {
			l.acked = append(l.acked, id)
			l.oks[node]++
		} else {
			l.errs[node]++
		}
		l.mu.Unlock()
		wait := pause
		if err != nil {
			wait = 100 * time.Millisecond
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// Stop stops the writers and waits for the statements in flight.
func (l *Load) Stop() {
	l.cancel()
	l.wg.Wait()
	for _, db := range l.dbs {
		db.Close()
	}
	l.dbs = nil
}

// Acked is the number of committed rows so far.
func (l *Load) Acked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// Counts says how many inserts succeeded and failed on each node.
func (l *Load) Counts() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var nodes []int
	for node := range l.oks {
		nodes = append(nodes, node)
	}
	for node := range l.errs {
		if _, ok := l.oks[node]; !ok {
			nodes = append(nodes, node)
		}
	}
	slices.Sort(nodes)
	var b strings.Builder
	for _, node := range nodes {
		fmt.Fprintf(&b, "node%d %d ok, %d failed; ", node, l.oks[node], l.errs[node])
	}
	return strings.TrimSuffix(b.String(), "; ")
}

// WaitAcked waits until at least k more rows than now are committed, so a
// round's writes are known to flow.
func (l *Load) WaitAcked(ctx context.Context, k int) error {
	want := l.Acked() + k
	for l.Acked() < want {
		select {
		case <-ctx.Done():
			return fmt.Errorf("writes do not flow: %d of %d more rows committed: %w (%s)", l.Acked()-want+k, k, ctx.Err(), l.Counts())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// Verify checks that every row committed so far is on every node given. It
// reads with wsrep_sync_wait, so a node has applied all it received.
func (l *Load) Verify(ctx context.Context, nodes ...*Node) error {
	l.mu.Lock()
	acked := slices.Clone(l.acked)
	l.mu.Unlock()
	slices.Sort(acked)
	for _, n := range nodes {
		ids, err := n.loadIDs(ctx)
		if err != nil {
			return err
		}
		var missing []int64
		for _, id := range acked {
			if _, ok := slices.BinarySearch(ids, id); !ok {
				missing = append(missing, id)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("node%d lost %d of %d committed rows, e.g. ids %v", n.N, len(missing), len(acked), missing[:min(len(missing), 10)])
		}
	}
	return nil
}

// Same checks, once the load is stopped, that the nodes hold the same rows,
// those in doubt included.
func (l *Load) Same(ctx context.Context, nodes ...*Node) error {
	var first []int64
	for i, n := range nodes {
		ids, err := n.loadIDs(ctx)
		if err != nil {
			return err
		}
		if i == 0 {
			first = ids
		} else if !slices.Equal(first, ids) {
			return fmt.Errorf("node%d holds %d rows, node%d %d: the nodes differ", n.N, len(ids), nodes[0].N, len(first))
		}
	}
	return nil
}

// loadIDs reads LoadTable's ids, sorted, after the node has applied every
// write-set it received (wsrep_sync_wait).
func (n *Node) loadIDs(ctx context.Context) ([]int64, error) {
	conn, done, err := n.session(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	if _, err := conn.ExecContext(ctx, "SET SESSION wsrep_sync_wait=1"); err != nil {
		return nil, fmt.Errorf("node%d: set wsrep_sync_wait: %w", n.N, err)
	}
	rows, err := conn.QueryContext(ctx, "SELECT id FROM "+LoadTable+" ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("node%d: read %s: %w", n.N, LoadTable, err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("node%d: read %s: %w", n.N, LoadTable, err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("node%d: read %s: %w", n.N, LoadTable, err)
	}
	return ids, nil
}
