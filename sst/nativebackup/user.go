package nativebackup

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os/user"
	"strings"
	"time"

	"github.com/galera-supervisor/galera-supervisor/notify/logging"
	"github.com/go-sql-driver/mysql"
)

// TempUserPrefix starts the name of every temporary SST user, so that a
// donor can sweep the ones a killed predecessor left behind.
const TempUserPrefix = "gs_sst_"

// TempUserPrivileges are what mariadb-backup --backup --galera-info needs:
// BACKUP STAGE and FLUSH (RELOAD), the InnoDB status and process list
// (PROCESS), LOCK TABLES for non-transactional tables, binlog and replica
// positions (BINLOG MONITOR, REPLICA MONITOR).
const TempUserPrivileges = "RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, REPLICA MONITOR"

// adminCandidates are the accounts tried, without password, to create the
// temporary user: the OS user the server runs as (a unix_socket account, as
// mariadb-install-db creates for it), then root (unix_socket when we run as
// root, or a root without password as in test clusters).
func adminCandidates() []string {
	var c []string
	if u, err := user.Current(); err == nil && u.Username != "" {
		c = append(c, u.Username)
	}
	if len(c) == 0 || c[0] != "root" {
		c = append(c, "root")
	}
	return c
}

// connectAdmin opens a connection over the server's socket with the first
// account that works, and says which.
func connectAdmin(ctx context.Context, socket string) (*sql.DB, string, error) {
	var errs []error
	for _, name := range adminCandidates() {
		cfg := mysql.NewConfig()
		cfg.User = name
		cfg.Net = "unix"
		cfg.Addr = socket
		cfg.Timeout = 10 * time.Second
		cfg.AllowNativePasswords = true
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			return nil, "", fmt.Errorf("mysql connector for %s: %w", name, err)
		}
		db := sql.OpenDB(conn)
		db.SetMaxOpenConns(2)
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = db.PingContext(pctx)
		cancel()
		if err == nil {
			return db, name, nil
		}
		db.Close()
		errs = append(errs, fmt.Errorf("as %s: %w", name, err))
	}
	return nil, "", fmt.Errorf("connect to %s without password to create the SST user: %w", socket, errors.Join(errs...))
}

// tempUser is a temporary account for one SST.
type tempUser struct {
	Name, Password string
	db             *sql.DB
	log            *slog.Logger
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// createTempUser creates a fresh account with a random password and only
// TempUserPrivileges. The CREATE does not replicate (wsrep_on=OFF): only
// this donor runs mariadb-backup. The snapshot still carries the account
// to the joiner, which is why drop replicates.
func createTempUser(ctx context.Context, db *sql.DB, log *slog.Logger) (*tempUser, error) {
	u := &tempUser{Name: TempUserPrefix + randomHex(6), Password: randomHex(24), db: db, log: logging.OrDiscard(log)}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to create SST user: %w", err)
	}
	defer conn.Close()
	stmts := []string{
		"SET SESSION wsrep_on=OFF",
		fmt.Sprintf("CREATE USER '%s'@'localhost' IDENTIFIED BY '%s'", u.Name, u.Password),
		fmt.Sprintf("GRANT %s ON *.* TO '%s'@'localhost'", TempUserPrivileges, u.Name),
	}
	for i, q := range stmts {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			conn.ExecContext(ctx, "SET SESSION wsrep_on=ON")
			if i > 1 {
				u.drop(context.WithoutCancel(ctx))
			}
			return nil, fmt.Errorf("create SST user %s: %s: %w", u.Name, strings.SplitN(q, " IDENTIFIED", 2)[0], err)
		}
	}
	if _, err := conn.ExecContext(ctx, "SET SESSION wsrep_on=ON"); err != nil {
		conn.Raw(func(any) error { return driver.ErrBadConn }) // never reuse it with wsrep_on=OFF
	}
	return u, nil
}

// drop removes the account. The DROP replicates (IF EXISTS, so nodes that
// never had it do not fail): the joiner received the account in the
// snapshot and applies the drop once it has joined.
func (u *tempUser) drop(ctx context.Context) error {
	return dropUser(ctx, u.db, u.Name)
}

func dropUser(ctx context.Context, db *sql.DB, name string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	q := fmt.Sprintf("DROP USER IF EXISTS '%s'@'localhost'", name)
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("drop SST user %s: %w", name, err)
	}
	defer conn.Close()
	// A pooled connection may still carry wsrep_on=OFF from the CREATE.
	_, err = conn.ExecContext(ctx, "SET SESSION wsrep_on=ON")
	if err == nil {
		if _, err = conn.ExecContext(ctx, q); err == nil {
			return nil
		}
	}
	if _, err2 := conn.ExecContext(ctx, "SET SESSION wsrep_on=OFF"); err2 != nil {
		return fmt.Errorf("drop SST user %s: %w", name, errors.Join(err, err2))
	} else if _, err2 := conn.ExecContext(ctx, q); err2 != nil {
		return fmt.Errorf("drop SST user %s: %w", name, errors.Join(err, err2))
	}
	conn.ExecContext(ctx, "SET SESSION wsrep_on=ON")
	// Gone here, but the joiner keeps the copy its snapshot carried.
	return fmt.Errorf("drop SST user %s: replicated drop failed (%v); dropped on this node only", name, err)
}

// sweepTempUsers drops accounts a killed donor left behind. Only one SST
// runs per datadir (wsrep_sst.pid), so any such account is stale.
func sweepTempUsers(ctx context.Context, db *sql.DB, log *slog.Logger) error {
	log = logging.OrDiscard(log)
	rows, err := db.QueryContext(ctx, "SELECT User FROM mysql.global_priv WHERE User LIKE ? AND Host='localhost'", strings.ReplaceAll(TempUserPrefix, "_", `\_`)+"%")
	if err != nil {
		return fmt.Errorf("list stale SST users: %w", err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return fmt.Errorf("list stale SST users: %w", err)
		}
		names = append(names, n)
	}
	rows.Close()
	var errs []error
	for _, n := range names {
		log.Info("dropping a stale SST user an earlier donor left", slog.String("sst_user", n))
		if err := dropUser(ctx, db, n); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
