// Package db opens crmsync's database, migrates it and hands out the River
// driver that matches it.
//
// crmsync runs on two databases through one API: PostgreSQL (production, and
// the shared store of several replicas) and SQLite (the embedded default, a
// file in the data directory). Both are reached through bun over
// database/sql; River runs on the same *sql.DB through riverdatabasesql or
// riversqlite, so a job can be inserted in the transaction that writes the
// rows it concerns.
//
// SQLite is opened with one connection (SetMaxOpenConns(1)): SQLite allows
// one writer, and one connection turns "database is locked" errors into a
// wait. The consequence for callers: never query the *bun.DB while holding
// one of its transactions open in the same goroutine chain; use the
// transaction, or the call deadlocks on SQLite.
package db

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Dialect names the database crmsync runs on.
type Dialect string

// The two supported dialects.
const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

// SQLiteFile is the name of the SQLite database file in the data directory.
const SQLiteFile = "crmsync.db"

// DialectOf reports which database db is connected to.
func DialectOf(db *bun.DB) Dialect {
	if db.Dialect().Name() == dialect.PG {
		return Postgres
	}
	return SQLite
}

// Open connects to the database named by databaseURL, or, when it is empty,
// to the SQLite file crmsync.db in dataDir (both created if missing). It
// pings the database before returning and logs which database it uses. It
// does not migrate: see Migrate.
func Open(ctx context.Context, databaseURL, dataDir string, logger *slog.Logger) (*bun.DB, error) {
	switch {
	case databaseURL == "":
		return openSQLite(ctx, dataDir, logger)
	case strings.HasPrefix(databaseURL, "postgres://"), strings.HasPrefix(databaseURL, "postgresql://"):
		return openPostgres(ctx, databaseURL, logger)
	default:
		return nil, fmt.Errorf("unsupported DATABASE_URL scheme %q: want postgres:// or postgresql://, or leave it empty for SQLite in the data directory", scheme(databaseURL))
	}
}

func scheme(databaseURL string) string {
	if i := strings.Index(databaseURL, "://"); i >= 0 {
		return databaseURL[:i]
	}
	return "(none)"
}

func openSQLite(ctx context.Context, dataDir string, logger *slog.Logger) (*bun.DB, error) {
	if dataDir == "" {
		return nil, errors.New("open sqlite: no data directory given")
	}
	if err := ensureWritableDir(dataDir); err != nil {
		return nil, err
	}
	path, err := filepath.Abs(filepath.Join(dataDir, SQLiteFile))
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	if err := privateFiles(path); err != nil {
		return nil, err
	}
	sqldb, err := sql.Open("sqlite", SQLiteDSN(path))
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	sqldb.SetMaxOpenConns(1)
	sqldb.SetMaxIdleConns(1)
	sqldb.SetConnMaxLifetime(0)
	sqldb.SetConnMaxIdleTime(0)
	if err := sqldb.PingContext(ctx); err != nil {
		_ = sqldb.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	logger.Info("database: sqlite", slog.String("path", path))
	return bun.NewDB(sqldb, sqlitedialect.New()), nil
}

// SQLiteDSN is the modernc.org/sqlite data source name crmsync uses for the
// database file at path: WAL journal, a busy timeout, foreign keys on, and
// IMMEDIATE transactions (so two processes on one file wait for each other
// instead of failing when a read transaction turns into a write).
func SQLiteDSN(path string) string {
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(on)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// privateFiles creates the database file at path readable by its owner
// only (0600), and narrows an existing one and its -wal and -shm files to
// 0600. SQLite creates the -wal and -shm files with the database file's
// mode, so they follow.
func privateFiles(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open sqlite %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("open sqlite %s: %w", path, err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		info, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("open sqlite %s: %w", p, err)
		}
		if info.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(p, 0o600); err != nil {
				return fmt.Errorf("open sqlite %s: make it private (0600): %w", p, err)
			}
		}
	}
	return nil
}

// ensureWritableDir creates dir if needed and checks a file can be created in it.
func ensureWritableDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data directory %s: cannot create it: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return fmt.Errorf("data directory %s is not writable: %w", dir, err)
	}
	name := f.Name()
	_ = f.Close()
	return os.Remove(name)
}

func openPostgres(ctx context.Context, databaseURL string, logger *slog.Logger) (*bun.DB, error) {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		// pgx's message can quote the URL; keep the password out of it.
		return nil, fmt.Errorf("parse DATABASE_URL: %s", redact(err.Error(), databaseURL))
	}
	where := fmt.Sprintf("%s:%d/%s", cfg.Host, cfg.Port, cfg.Database)
	sqldb := sql.OpenDB(oneTripConnector{stdlib.GetConnector(*cfg)})
	// As many idle connections as open ones: with fewer, a burst of
	// concurrent requests closes connections it opened a moment ago and
	// opens them again (a PostgreSQL backend each, and pgx prepares every
	// statement anew on a new connection); that churn dominated ingest
	// with 32 clients (docs/benchmarks.md, ingest).
	sqldb.SetMaxOpenConns(20)
	sqldb.SetMaxIdleConns(20)
	sqldb.SetConnMaxIdleTime(5 * time.Minute)
	pingCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := sqldb.PingContext(pingCtx); err != nil {
		_ = sqldb.Close()
		return nil, fmt.Errorf("connect to postgres %s: %w", where, err)
	}
	logger.Info("database: postgres", slog.String("host", cfg.Host), slog.Int("port", int(cfg.Port)),
		slog.String("database", cfg.Database), slog.String("user", cfg.User))
	return bun.NewDB(sqldb, pgdialect.New()), nil
}

// oneTripConnector opens pgx connections that run a query without
// arguments in one round trip. bun writes every value into the SQL text,
// so nearly every statement crmsync sends is new to pgx's statement cache,
// and pgx's default mode then spends a round trip preparing it (Parse and
// Describe) before the one that runs it, and evicts the cached statements
// of River's parameterised queries to make room for ones never run again.
// A statement without arguments has no parameter types to learn, so it
// runs in pgx.QueryExecModeExec: Parse, Bind and Execute sent together,
// results in text. Statements with arguments (River's) are unchanged.
// pgx already runs an Exec without arguments by the simple protocol.
// docs/benchmarks.md, "Ingest at Conversion's rate", has the measurement.
type oneTripConnector struct{ driver.Connector }

func (c oneTripConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return oneTripConn{conn.(*stdlib.Conn)}, nil
}

// oneTripConn is a pgx connection whose queries without arguments run in
// one round trip; every other method is pgx's own.
type oneTripConn struct{ *stdlib.Conn }

var execMode = []driver.NamedValue{{Ordinal: 1, Value: pgx.QueryExecModeExec}}

func (c oneTripConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if len(args) == 0 {
		args = execMode
	}
	return c.Conn.QueryContext(ctx, query, args)
}

// redact removes the password of databaseURL from msg.
func redact(msg, databaseURL string) string {
	u, err := url.Parse(databaseURL)
	if err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "*****")
		}
	}
	return msg
}

// String returns "postgres" or "sqlite".
func (d Dialect) String() string { return string(d) }

// RiverDriver returns the River driver for db's dialect. Both share db's
// *sql.DB, so River jobs can be inserted in a bun transaction with
// client.InsertTx(ctx, tx.Tx, ...).
func RiverDriver(db *bun.DB) riverdriver.Driver[*sql.Tx] {
	if DialectOf(db) == Postgres {
		return riverdatabasesql.New(db.DB)
	}
	return riversqlite.New(db.DB)
}
