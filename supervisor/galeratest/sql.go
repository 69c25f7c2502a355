package galeratest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// DSN is the go-sql-driver/mysql data source name for this node's socket.
func (n *Node) DSN() string {
	cfg := mysql.NewConfig()
	cfg.User = User
	cfg.Passwd = Password
	cfg.Net = "unix"
	cfg.Addr = n.Socket
	cfg.Timeout = 5 * time.Second
	return cfg.FormatDSN()
}

// DB opens a new pool on the node's socket, with root's privileges, and
// checks that the server answers. The caller closes it.
func (n *Node) DB(ctx context.Context) (*sql.DB, error) {
	db, err := sql.Open("mysql", n.DSN())
	if err != nil {
		return nil, fmt.Errorf("node%d: open %s: %w", n.N, n.Socket, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("node%d: connect %s: %w", n.N, n.Socket, err)
	}
	return db, nil
}

// session is a connection of its own, for statements that change session
// state (wsrep_on, wsrep_sync_wait, USE), which must never leak into the
// shared pool. done closes it.
func (n *Node) session(ctx context.Context) (conn *sql.Conn, done func(), err error) {
	db, err := n.DB(ctx)
	if err != nil {
		return nil, nil, err
	}
	conn, err = db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("node%d: connect %s: %w", n.N, n.Socket, err)
	}
	return conn, func() { conn.Close(); db.Close() }, nil
}

// pool is the node's own pool for Exec, Status and friends, closed on Stop.
func (n *Node) pool() (*sql.DB, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.db != nil {
		return n.db, nil
	}
	db, err := sql.Open("mysql", n.DSN())
	if err != nil {
		return nil, fmt.Errorf("node%d: open %s: %w", n.N, n.Socket, err)
	}
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(2)
	db.SetConnMaxIdleTime(30 * time.Second)
	n.db = db
	return db, nil
}

func (n *Node) closeDB() {
	n.mu.Lock()
	db := n.db
	n.db = nil
	n.mu.Unlock()
	if db != nil {
		db.Close()
	}
}

// Exec runs one statement on the node.
func (n *Node) Exec(ctx context.Context, query string, args ...any) error {
	db, err := n.pool()
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, query, args...); err != nil {
		return fmt.Errorf("node%d: %s: %w", n.N, abbrev(query), err)
	}
	return nil
}

// QueryString runs a query returning one value; NULL reads as "NULL".
func (n *Node) QueryString(ctx context.Context, query string, args ...any) (string, error) {
	db, err := n.pool()
	if err != nil {
		return "", err
	}
	var v sql.NullString
	if err := db.QueryRowContext(ctx, query, args...).Scan(&v); err != nil {
		return "", fmt.Errorf("node%d: %s: %w", n.N, abbrev(query), err)
	}
	if !v.Valid {
		return "NULL", nil
	}
	return v.String, nil
}

var statusName = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// Status returns one GLOBAL STATUS variable, such as
// wsrep_local_state_comment. SHOW STATUS works while the node is not yet
// ready for queries, unlike information_schema.
func (n *Node) Status(ctx context.Context, name string) (string, error) {
	if !statusName.MatchString(name) {
		return "", fmt.Errorf("status variable %q: bad name", name)
	}
	db, err := n.pool()
	if err != nil {
		return "", err
	}
	var k, v string
	err = db.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE '"+name+"'").Scan(&k, &v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("node%d: status %s: no such variable", n.N, name)
	}
	if err != nil {
		return "", fmt.Errorf("node%d: status %s: %w", n.N, name, err)
	}
	return v, nil
}

// WsrepState is a node's view of the cluster, as the demo prints it.
type WsrepState struct {
	State         string // wsrep_local_state_comment
	ClusterSize   string // wsrep_cluster_size
	ClusterStatus string // wsrep_cluster_status: Primary, non-Primary, Disconnected
	Ready         string // wsrep_ready
}

// Wsrep reads the node's wsrep state in one query.
func (n *Node) Wsrep(ctx context.Context) (WsrepState, error) {
	db, err := n.pool()
	if err != nil {
		return WsrepState{}, err
	}
	rows, err := db.QueryContext(ctx, "SHOW GLOBAL STATUS WHERE Variable_name IN "+
		"('wsrep_local_state_comment','wsrep_cluster_size','wsrep_cluster_status','wsrep_ready')")
	if err != nil {
		return WsrepState{}, fmt.Errorf("node%d: wsrep status: %w", n.N, err)
	}
	defer rows.Close()
	var s WsrepState
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return WsrepState{}, fmt.Errorf("node%d: wsrep status: %w", n.N, err)
		}
		switch strings.ToLower(k) {
		case "wsrep_local_state_comment":
			s.State = v
		case "wsrep_cluster_size":
			s.ClusterSize = v
		case "wsrep_cluster_status":
			s.ClusterStatus = v
		case "wsrep_ready":
			s.Ready = v
		}
	}
	if err := rows.Err(); err != nil {
		return WsrepState{}, fmt.Errorf("node%d: wsrep status: %w", n.N, err)
	}
	return s, nil
}

// LoadData fills bench.t until its tablespace holds about bytes, in chunks
// made by the sequence engine. On a lone node it writes with wsrep_on=OFF
// (no write-sets to build; joiners get it by SST, but not by IST). With
// peers it replicates, in smaller transactions.
func (n *Node) LoadData(ctx context.Context, bytes int64) error {
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS bench",
		"CREATE TABLE IF NOT EXISTS bench.t (id BIGINT PRIMARY KEY, a INT NOT NULL, " +
			"h1 CHAR(64) NOT NULL, h2 CHAR(64) NOT NULL, txt VARCHAR(255) NOT NULL) ENGINE=InnoDB",
	} {
		if err := n.Exec(ctx, q); err != nil {
			return err
		}
	}
	size, err := n.Status(ctx, "wsrep_cluster_size")
	if err != nil {
		return err
	}
	conn, done, err := n.session(ctx)
	if err != nil {
		return err
	}
	defer done()
	chunk := 100000
	if size != "1" {
		chunk = 20000
	} else if _, err := conn.ExecContext(ctx, "SET SESSION wsrep_on=OFF"); err != nil {
		return fmt.Errorf("node%d: load: %w", n.N, err)
	}
	for _, q := range []string{"SET SESSION unique_checks=0", "USE bench"} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("node%d: load: %s: %w", n.N, q, err)
		}
	}
	ibd := filepath.Join(n.DataDir, "bench", "t.ibd")
	// About 330 bytes a row on disk; the first chunk is sized from that so a
	// small load takes one statement.
	const rowBytes = 330
	t0 := time.Now()
	for {
		fi, err := os.Stat(ibd)
		if err != nil {
			return fmt.Errorf("node%d: load: %w", n.N, err)
		}
		have := fi.Size()
		if have >= bytes {
			n.c.logf("galeratest: node%d: bench.t holds %d bytes after %v", n.N, have, time.Since(t0).Round(time.Millisecond))
			return nil
		}
		rows := int((bytes-have)/rowBytes) + 1
		rows = min(max(rows, 1000), chunk)
		var next int64
		if err := conn.QueryRowContext(ctx, "SELECT COALESCE(MAX(id),0) FROM bench.t").Scan(&next); err != nil {
			return fmt.Errorf("node%d: load: %w", n.N, err)
		}
		q := fmt.Sprintf("INSERT INTO bench.t SELECT %d+seq, seq MOD 1000, SHA2(seq+%d,256), MD5(seq+%d*7), "+
			"CONCAT(REPEAT(CHAR(65 + (seq MOD 26)), 100), ' row ', seq+%d, ' ', REPEAT('lorem ipsum ', 8)) "+
			"FROM seq_1_to_%d", next, next, next, next, rows)
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("node%d: load: %w", n.N, err)
		}
	}
}

// CreateSampleTables creates database gstest with one table of each kind of
// engine and column the SST must carry: InnoDB with varied types, Aria and
// MyISAM. Galera replicates only InnoDB, so create them before the joiners
// take their SST, or expect Aria and MyISAM to differ.
func (n *Node) CreateSampleTables(ctx context.Context) error {
	qs := []string{
		"CREATE DATABASE IF NOT EXISTS gstest",
		`CREATE TABLE IF NOT EXISTS gstest.kinds (
			id INT AUTO_INCREMENT PRIMARY KEY,
			i BIGINT, d DECIMAL(20,6), f DOUBLE,
			s VARCHAR(200) CHARACTER SET utf8mb4, b BLOB, t TEXT,
			dt DATETIME(6), ts TIMESTAMP NULL, j JSON,
			e ENUM('a','b','c'), bits BIT(12), u CHAR(36),
			KEY (s(20))) ENGINE=InnoDB`,
		`INSERT INTO gstest.kinds (i,d,f,s,b,t,dt,ts,j,e,bits,u)
			SELECT seq*1000003, seq/7, seq*3.14159, CONCAT('ünïcødé ', seq, ' 😀'),
			UNHEX(SHA2(seq,256)), REPEAT('text ', seq MOD 50), '2024-02-29 12:34:56.789' + INTERVAL seq SECOND,
			FROM_UNIXTIME(1700000000+seq), JSON_OBJECT('n', seq, 'sq', seq*seq),
			ELT(1+seq MOD 3,'a','b','c'), seq MOD 4096, UUID()
			FROM seq_1_to_500`,
		`CREATE TABLE IF NOT EXISTS gstest.aria (id INT PRIMARY KEY, v VARCHAR(100)) ENGINE=Aria`,
		`INSERT INTO gstest.aria SELECT seq, MD5(seq) FROM seq_1_to_300`,
		`CREATE TABLE IF NOT EXISTS gstest.myisam (id INT PRIMARY KEY, v VARCHAR(100)) ENGINE=MyISAM`,
		`INSERT INTO gstest.myisam SELECT seq, SHA1(seq) FROM seq_1_to_300`,
		`CREATE TABLE IF NOT EXISTS gstest.part (id INT, v INT, PRIMARY KEY (id)) ENGINE=InnoDB
			PARTITION BY HASH(id) PARTITIONS 4`,
		`INSERT INTO gstest.part SELECT seq, seq*2 FROM seq_1_to_1000`,
	}
	conn, done, err := n.session(ctx)
	if err != nil {
		return err
	}
	defer done()
	// The sequence engine's tables live in every database; use one.
	if _, err := conn.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS gstest"); err != nil {
		return fmt.Errorf("node%d: sample tables: %w", n.N, err)
	}
	if _, err := conn.ExecContext(ctx, "USE gstest"); err != nil {
		return fmt.Errorf("node%d: sample tables: %w", n.N, err)
	}
	for _, q := range qs {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("node%d: sample tables: %s: %w", n.N, abbrev(q), err)
		}
	}
	return nil
}

// systemSchemas are never compared: they differ per node by design.
var systemSchemas = []string{"mysql", "sys", "information_schema", "performance_schema"}

// Checksums returns CHECKSUM TABLE of every base table outside the system
// schemas, keyed "db.table"; a NULL checksum (table missing or unreadable)
// reads "NULL". It first waits for the node to catch up with the cluster
// (wsrep_sync_wait), so it needs a node that is ready for queries.
func (n *Node) Checksums(ctx context.Context) (map[string]string, error) {
	conn, done, err := n.session(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	// Wait until every write-set the cluster committed before this point is
	// applied here, so nodes compare at the same position.
	// A read of a real table is what waits; information_schema alone may not.
	for _, q := range []string{"SET SESSION wsrep_sync_wait=1", "SELECT COUNT(*) FROM mysql.gtid_slave_pos"} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return nil, fmt.Errorf("node%d: checksums: %s: %w", n.N, q, err)
		}
	}
	rows, err := conn.QueryContext(ctx, "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES "+
		"WHERE TABLE_TYPE='BASE TABLE' AND TABLE_SCHEMA NOT IN ('"+strings.Join(systemSchemas, "','")+"') "+
		"ORDER BY 1, 2")
	if err != nil {
		return nil, fmt.Errorf("node%d: list tables: %w", n.N, err)
	}
	var names []string
	for rows.Next() {
		var s, t string
		if err := rows.Scan(&s, &t); err != nil {
			rows.Close()
			return nil, fmt.Errorf("node%d: list tables: %w", n.N, err)
		}
		names = append(names, quoteIdent(s)+"."+quoteIdent(t))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("node%d: list tables: %w", n.N, err)
	}
	out := make(map[string]string, len(names))
	for _, name := range names {
		var table string
		var sum sql.NullString
		if err := conn.QueryRowContext(ctx, "CHECKSUM TABLE "+name).Scan(&table, &sum); err != nil {
			return nil, fmt.Errorf("node%d: checksum table %s: %w", n.N, name, err)
		}
		if sum.Valid {
			out[table] = sum.String
		} else {
			out[table] = "NULL"
		}
	}
	return out, nil
}

// CompareChecksums returns nil when a and b hold the same tables with the same
// checksums, else an error listing every difference.
func CompareChecksums(a, b map[string]string) error {
	var diffs []string
	for t, sa := range a {
		sb, ok := b[t]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("%s: only in first (%s)", t, sa))
		case sa != sb:
			diffs = append(diffs, fmt.Sprintf("%s: %s != %s", t, sa, sb))
		}
	}
	for t, sb := range b {
		if _, ok := a[t]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: only in second (%s)", t, sb))
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	sort.Strings(diffs)
	return fmt.Errorf("%d table(s) differ:\n  %s", len(diffs), strings.Join(diffs, "\n  "))
}

func quoteIdent(s string) string {
	return "`" + strings.ReplaceAll(s, "`", "``") + "`"
}

func abbrev(q string) string {
	q = strings.Join(strings.Fields(q), " ")
	if len(q) > 80 {
		q = q[:77] + "..."
	}
	return q
}
