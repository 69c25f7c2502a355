package supervisor

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
)

// NodeState is what the health check learned from the node.
type NodeState struct {
	// Comment is wsrep_local_state_comment: Joining, Joined, Synced,
	// Donor/Desynced, Initialized... Empty when wsrep is off.
	Comment string
	// Ready is wsrep_ready: the node accepts queries.
	Ready bool
	// ClusterStatus is wsrep_cluster_status: Primary, non-Primary, Disconnected.
	ClusterStatus string
	// Desync is @@wsrep_desync: a DBA desynced the node on purpose.
	Desync bool
	// ClusterUUID is wsrep_cluster_state_uuid and LastCommitted
	// wsrep_last_committed: the position its peers are told.
	ClusterUUID   string
	LastCommitted int64
	// LocalState is wsrep_local_state (4 Synced, 2 Donor/Desynced...),
	// ClusterSize wsrep_cluster_size, ReadOnly @@read_only: what a load
	// balancer's check reads.
	LocalState  int
	ClusterSize int
	ReadOnly    bool
}

// Synced reports whether the node is a Synced member of the Primary Component.
func (s NodeState) Synced() bool {
	return s.Ready && s.Comment == "Synced" && s.ClusterStatus == "Primary"
}

// Health checks the node over its socket. Check returns an error when the
// server does not answer; the state otherwise.
type Health interface {
	Check(ctx context.Context) (NodeState, error)
	Close() error
}

// ErrAccessDenied is returned by the SQL health check when the server
// refused its credentials.
var ErrAccessDenied = errors.New("access denied")

// SQLHealth checks the node with go-sql-driver/mysql over its unix socket.
//
// Credentials: user and password from [galera-supervisor], else from
// [client] (the client groups of the option files); without a user it
// connects as the OS user it runs as (root or mysql), which MariaDB's
// default unix_socket authentication admits.
type SQLHealth struct {
	Socket   string
	User     string
	Password string

	once sync.Once
	db   *sql.DB
	err  error
}

// NewSQLHealth builds the health check from the option files.
func NewSQLHealth(o Options) *SQLHealth {
	h := &SQLHealth{Socket: o.Server["socket"]}
	if h.Socket == "" {
		h.Socket = "/run/mysqld/mysqld.sock"
	}
	if u, ok := o.Client["user"]; ok && u != "" {
		h.User = u
		h.Password = o.Client["password"]
	} else if u, err := user.Current(); err == nil {
		h.User = u.Username
	}
	return h
}

func (h *SQLHealth) open() (*sql.DB, error) {
	h.once.Do(func() {
		cfg := mysql.NewConfig()
		cfg.Net = "unix"
		cfg.Addr = h.Socket
		cfg.User = h.User
		cfg.Passwd = h.Password
		cfg.Timeout = 2 * time.Second
		cfg.ReadTimeout = 5 * time.Second
		cfg.WriteTimeout = 5 * time.Second
		c, err := mysql.NewConnector(cfg)
		if err != nil {
			h.err = fmt.Errorf("health: %w", err)
			return
		}
		h.db = sql.OpenDB(c)
		h.db.SetMaxOpenConns(1)
		h.db.SetMaxIdleConns(1)
		h.db.SetConnMaxLifetime(time.Minute)
	})
	return h.db, h.err
}

// Check queries the wsrep status variables.
func (h *SQLHealth) Check(ctx context.Context) (NodeState, error) {
	db, err := h.open()
	if err != nil {
		return NodeState{}, err
	}
	rows, err := db.QueryContext(ctx, "SHOW GLOBAL STATUS WHERE Variable_name IN "+
		"('wsrep_local_state_comment','wsrep_ready','wsrep_cluster_status','wsrep_cluster_state_uuid','wsrep_last_committed',"+
		"'wsrep_local_state','wsrep_cluster_size')")
	if err != nil {
		var me *mysql.MySQLError
		if errors.As(err, &me) && (me.Number == 1045 || me.Number == 1698) {
			return NodeState{}, fmt.Errorf("health: connect to %s as %q: %w: %s (grant the OS user unix_socket access, or set user and password in [galera-supervisor] or [client])",
				h.Socket, h.User, ErrAccessDenied, me.Message)
		}
		return NodeState{}, fmt.Errorf("health: query over %s: %w", h.Socket, err)
	}
	defer rows.Close()
	var s NodeState
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return NodeState{}, fmt.Errorf("health: scan: %w", err)
		}
		switch strings.ToLower(k) {
		case "wsrep_local_state_comment":
			s.Comment = v
		case "wsrep_ready":
			s.Ready = strings.EqualFold(v, "ON")
		case "wsrep_cluster_status":
			s.ClusterStatus = v
		case "wsrep_cluster_state_uuid":
			s.ClusterUUID = strings.ToLower(v)
		case "wsrep_last_committed":
			s.LastCommitted, _ = strconv.ParseInt(v, 10, 64)
		case "wsrep_local_state":
			s.LocalState, _ = strconv.Atoi(v)
		case "wsrep_cluster_size":
			s.ClusterSize, _ = strconv.Atoi(v)
		}
	}
	if err := rows.Err(); err != nil {
		return NodeState{}, fmt.Errorf("health: rows: %w", err)
	}
	var desync, readOnly sql.NullString
	if err := db.QueryRowContext(ctx, "SELECT @@read_only, @@wsrep_desync").Scan(&readOnly, &desync); err == nil {
		s.Desync = desync.String == "1" || strings.EqualFold(desync.String, "ON")
		s.ReadOnly = readOnly.String == "1" || strings.EqualFold(readOnly.String, "ON")
	}
	return s, nil
}

// Close closes the connection pool.
func (h *SQLHealth) Close() error {
	if h.db != nil {
		return h.db.Close()
	}
	return nil
}
