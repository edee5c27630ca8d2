package db_test

import (
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"go.uber.org/goleak"

	"github.com/crmsync/crmsync/internal/db"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/migrations"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestMigrationDirsMatch(t *testing.T) {
	t.Parallel()
	names := func(f fs.FS) []string {
		entries, err := fs.ReadDir(f, ".")
		require.NoError(t, err)
		var out []string
		for _, e := range entries {
			out = append(out, e.Name())
		}
		return out
	}
	pg, lite := names(migrations.Postgres()), names(migrations.SQLite())
	require.NotEmpty(t, pg)
	require.Equal(t, pg, lite, "every migration must exist for both databases, with the same file name")
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()

		status, err := db.MigrationStatus(ctx, bdb)
		require.NoError(t, err)
		require.Empty(t, db.Pending(status))
		var sources = map[string]int{}
		for _, m := range status {
			sources[m.Source]++
		}
		require.Positive(t, sources[db.SourceApp])
		require.Positive(t, sources[db.SourceRiver])

		// Migrating again is a no-op.
		applied, err := db.Migrate(ctx, bdb)
		require.NoError(t, err)
		require.Empty(t, applied)

		// Every statement of the multi-statement first migration ran: the
		// foreign key and the unique index behave.
		var wsID int64
		require.NoError(t, bdb.NewRaw("INSERT INTO workspaces (name) VALUES ('w') RETURNING id").Scan(ctx, &wsID))
		_, err = bdb.NewRaw("INSERT INTO api_tokens (workspace_id, token_hash) VALUES (?, 'h')", wsID).Exec(ctx)
		require.NoError(t, err)
		_, err = bdb.NewRaw("INSERT INTO api_tokens (workspace_id, token_hash) VALUES (?, 'h')", wsID).Exec(ctx)
		require.Error(t, err, "token_hash is unique")
		_, err = bdb.NewRaw("INSERT INTO api_tokens (workspace_id, token_hash) VALUES (?, 'h2')", wsID+1000).Exec(ctx)
		require.Error(t, err, "workspace_id is a foreign key")
	})
}

func TestMigrateFreshSQLite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bdb, err := db.Open(ctx, "", t.TempDir(), quiet())
	require.NoError(t, err)
	t.Cleanup(func() { _ = bdb.Close() })
	require.Equal(t, db.SQLite, db.DialectOf(bdb))

	status, err := db.MigrationStatus(ctx, bdb)
	require.NoError(t, err)
	require.NotEmpty(t, status)
	require.Len(t, db.Pending(status), len(status), "nothing is applied on a fresh database")

	applied, err := db.Migrate(ctx, bdb)
	require.NoError(t, err)
	require.Len(t, applied, len(status))

	status, err = db.MigrationStatus(ctx, bdb)
	require.NoError(t, err)
	require.Empty(t, db.Pending(status))
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	readOnly := filepath.Join(t.TempDir(), "ro")
	require.NoError(t, os.Mkdir(readOnly, 0o500))
	notADir := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(notADir, nil, 0o600))

	tests := map[string]struct {
		url, dataDir string
		want         string
	}{
		"unknown scheme":     {url: "mysql://x", want: `unsupported DATABASE_URL scheme "mysql"`},
		"no scheme":          {url: "just words", want: `unsupported DATABASE_URL scheme "(none)"`},
		"unparseable":        {url: "postgres://u:secretpw@host:notaport/db", want: "parse DATABASE_URL"},
		"data dir is a file": {dataDir: filepath.Join(notADir, "sub"), want: "cannot create it"},
		"unreachable server": {url: "postgres://u@127.0.0.1:1/db?connect_timeout=2", want: "connect to postgres 127.0.0.1:1/db"},
	}
	if os.Geteuid() != 0 { // root writes anywhere
		tests["data dir not writable"] = struct{ url, dataDir, want string }{dataDir: readOnly, want: "is not writable"}
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			bdb, err := db.Open(context.Background(), tc.url, tc.dataDir, quiet())
			require.Nil(t, bdb)
			require.ErrorContains(t, err, tc.want)
			require.NotContains(t, err.Error(), "secretpw")
		})
	}
}

func TestOpenPostgresDialect(t *testing.T) {
	t.Parallel()
	bdb := dbtest.Open(t, db.Postgres)
	require.Equal(t, db.Postgres, db.DialectOf(bdb))
	require.NotNil(t, db.RiverDriver(bdb))
}

// TestQueriesWithoutArgumentsArePreparedNowhere checks that a query bun
// sends (values written into its text, no arguments) runs in one round
// trip and leaves no prepared statement on the connection, while a
// parameterised query (River's kind) is still prepared and cached by pgx.
func TestQueriesWithoutArgumentsArePreparedNowhere(t *testing.T) {
	t.Parallel()
	bdb := dbtest.Open(t, db.Postgres)
	ctx := t.Context()
	conn, err := bdb.Conn(ctx) // one session for every statement below
	require.NoError(t, err)
	defer conn.Close()
	prepared := func() []string {
		var stmts []string
		require.NoError(t, conn.NewRaw("SELECT statement FROM pg_prepared_statements ORDER BY statement").Scan(ctx, &stmts))
		return stmts
	}
	require.Empty(t, prepared())

	var n int
	for i := range 3 {
		require.NoError(t, conn.NewSelect().ColumnExpr("?::int", i).Scan(ctx, &n))
		require.Equal(t, i, n)
	}
	var at time.Time
	require.NoError(t, conn.NewRaw("SELECT TIMESTAMPTZ '2026-12-06 10:00:00+00'").Scan(ctx, &at))
	require.True(t, at.Equal(time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)), "text results decode: %v", at)
	require.Empty(t, prepared(), "bun's queries carry no arguments and must not be prepared")

	require.NoError(t, conn.Conn.QueryRowContext(ctx, "SELECT $1::int + 1", 41).Scan(&n)) // database/sql, not bun: bun writes arguments into the text
	require.Equal(t, 42, n)
	require.Equal(t, []string{"SELECT $1::int + 1"}, prepared(), "parameterised queries keep pgx's statement cache")
}
