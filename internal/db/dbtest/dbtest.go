// Package dbtest gives tests isolated, fully migrated databases, on SQLite
// and on PostgreSQL.
//
// SQLite databases are fresh files in t.TempDir(). PostgreSQL databases are
// created on the server named by the environment variable TEST_DATABASE_URL
// (`make test` starts a throwaway server and sets it): each test gets its own
// database, copied from a template database that is migrated once (per set of
// migrations, shared by concurrent test processes), and dropped when the test
// ends.
//
// Without TEST_DATABASE_URL a PostgreSQL test skips with one line saying how
// to enable it, so `go test ./...` on a fresh clone passes on SQLite alone.
// With CRMSYNC_REQUIRE_POSTGRES=1 (set by `make test`, hence CI) it fails
// instead: there PostgreSQL is never optional.
//
//	func TestThing(t *testing.T) {
//		t.Parallel()
//		dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
//			t.Parallel()
//			...
//		})
//	}
package dbtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/internal/db"
	"github.com/crmsync/crmsync/migrations"
)

// EnvURL is the environment variable naming the PostgreSQL server tests use.
// The role must be allowed to create databases.
const EnvURL = "TEST_DATABASE_URL"

// EnvRequire is the environment variable that turns a missing EnvURL from a
// skip into a failure (`make test` sets it to 1).
const EnvRequire = "CRMSYNC_REQUIRE_POSTGRES"

// SkipMessage is the one line a PostgreSQL test skips with when EnvURL is
// not set.
const SkipMessage = "postgres: skipped, " + EnvURL + " is not set (run `make test`, or set " + EnvURL +
	" to a PostgreSQL URL whose role may create databases)"

// Dialects are the databases Each runs on, in order.
var Dialects = []db.Dialect{db.SQLite, db.Postgres}

// Each runs fn as one subtest per database, named "sqlite" and "postgres",
// each with its own isolated, migrated database. fn may call t.Parallel().
func Each(t *testing.T, fn func(t *testing.T, bdb *bun.DB)) {
	t.Helper()
	for _, d := range Dialects {
		t.Run(string(d), func(t *testing.T) {
			fn(t, Open(t, d))
		})
	}
}

// Open returns an isolated, fully migrated database of dialect d. It is
// closed (and on PostgreSQL dropped) when the test ends.
func Open(t testing.TB, d db.Dialect) *bun.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	switch d {
	case db.SQLite:
		return openSQLite(ctx, t)
	case db.Postgres:
		return openPostgres(ctx, t)
	default:
		t.Fatalf("dbtest: unknown dialect %q", d)
		return nil
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func openSQLite(ctx context.Context, t testing.TB) *bun.DB {
	t.Helper()
	bdb, err := db.Open(ctx, "", t.TempDir(), quietLogger())
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	t.Cleanup(func() { _ = bdb.Close() })
	if _, err := db.Migrate(ctx, bdb); err != nil {
		t.Fatalf("dbtest: migrate sqlite: %v", err)
	}
	return bdb
}

func openPostgres(ctx context.Context, t testing.TB) *bun.DB {
	t.Helper()
	bdb, err := db.Open(ctx, postgresURL(ctx, t), "", quietLogger())
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	t.Cleanup(func() { _ = bdb.Close() }) // runs before the drop (LIFO)
	return bdb
}

// PostgresURL returns the URL of a fresh, fully migrated PostgreSQL
// database, dropped when the test ends; for tests of code that opens the
// database itself (the crmsync command).
func PostgresURL(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return postgresURL(ctx, t)
}

func postgresURL(ctx context.Context, t testing.TB) string {
	t.Helper()
	base := BaseURL(t)
	tmpl, err := template()
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	name := "crmsync_test_" + randomHex(8)
	if err := adminExec(ctx, base, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, tmpl)); err != nil {
		t.Fatalf("dbtest: create database %s from %s: %v", name, tmpl, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := adminExec(ctx, base, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("dbtest: drop database %s: %v", name, err)
		}
	})
	return withDatabase(base, name)
}

// BaseURL returns the PostgreSQL server URL from EnvURL. Without it, the
// test skips with SkipMessage, or fails when EnvRequire is set.
func BaseURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvURL)
	if base != "" {
		return base
	}
	if required() {
		t.Fatalf("dbtest: %s is not set but %s is: PostgreSQL tests must run here (`make test` starts a throwaway PostgreSQL and sets it)", EnvURL, EnvRequire)
	}
	t.Skip(SkipMessage)
	return ""
}

func required() bool {
	v := os.Getenv(EnvRequire)
	return v != "" && v != "0" && v != "false"
}

// template returns the name of the migrated template database, building it
// once per process (and once per set of migrations across processes).
var template = sync.OnceValues(func() (string, error) {
	return buildTemplate(os.Getenv(EnvURL))
})

func buildTemplate(base string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sum, err := migrationsSum()
	if err != nil {
		return "", err
	}
	name := "crmsync_tmpl_" + sum[:16]

	admin, err := sql.Open("pgx", base)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", EnvURL, err)
	}
	defer admin.Close()
	conn, err := admin.Conn(ctx)
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", EnvURL, err)
	}
	defer conn.Close()
	// Concurrent test processes build the template one at a time.
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(7262736374)"); err != nil {
		return "", fmt.Errorf("lock template: %w", err)
	}
	defer func() { _, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(7262736374)") }()

	var exists bool
	if err := conn.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", fmt.Errorf("look up template %s: %w", name, err)
	}
	if exists {
		return name, nil
	}
	// Build under another name and rename at the end, so a crash never
	// leaves a half-migrated template behind under the real name.
	building := name + "_building"
	for _, q := range []string{"DROP DATABASE IF EXISTS " + building + " WITH (FORCE)", "CREATE DATABASE " + building} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return "", fmt.Errorf("build template: %s: %w", q, err)
		}
	}
	bdb, err := db.Open(ctx, withDatabase(base, building), "", quietLogger())
	if err != nil {
		return "", fmt.Errorf("build template: %w", err)
	}
	_, err = db.Migrate(ctx, bdb)
	if cerr := bdb.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("build template: migrate: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "ALTER DATABASE "+building+" RENAME TO "+name); err != nil {
		return "", fmt.Errorf("build template: rename: %w", err)
	}
	return name, nil
}

// migrationsSum hashes everything that shapes the schema: crmsync's
// PostgreSQL migrations and River's.
func migrationsSum() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(migrations.Postgres(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(migrations.Postgres(), path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%s\x00", path, b)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash migrations: %w", err)
	}
	rm, err := rivermigrate.New(riverdatabasesql.New(nil), &rivermigrate.Config{Logger: quietLogger()})
	if err != nil {
		return "", fmt.Errorf("hash river migrations: %w", err)
	}
	for _, m := range rm.AllVersions() {
		fmt.Fprintf(h, "%d\x00%s\x00", m.Version, m.SQLUp)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func adminExec(ctx context.Context, base, query string) error {
	admin, err := sql.Open("pgx", base)
	if err != nil {
		return err
	}
	defer admin.Close()
	_, err = admin.ExecContext(ctx, query)
	return err
}

// withDatabase returns base with its database name replaced. A base that
// is not a URL makes db.Open report the problem.
func withDatabase(base, name string) string {
	u, err := url.Parse(base)
	if err != nil {
		return base
	}
	u.Path = "/" + name
	return u.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
