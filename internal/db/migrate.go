package db

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"log/slog"
	"strconv"

	"github.com/riverqueue/river/rivermigrate"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"

	"github.com/crmsync/crmsync/migrations"
)

// Migration is one schema migration and whether it is applied.
type Migration struct {
	// Source is "app" for crmsync's own migrations (package migrations) or
	// "river" for River's tables.
	Source string
	// Name is the migration's id: the timestamp and name of an app migration
	// ("20261128000001_workspaces"), the version and name of River's
	// ("006_bulk_unique").
	Name    string
	Applied bool
}

// Sources of migrations.
const (
	SourceApp   = "app"
	SourceRiver = "river"
)

// Pending returns the migrations of ms that are not applied.
func Pending(ms []Migration) []Migration {
	var pending []Migration
	for _, m := range ms {
		if !m.Applied {
			pending = append(pending, m)
		}
	}
	return pending
}

// migrateLockKey is the PostgreSQL advisory lock key that serializes
// migrations of replicas starting together ("crmsync" in ASCII).
const migrateLockKey = 0x63726d73796e63

// Migrate applies all pending migrations, River's then crmsync's, and
// returns the ones it applied. On PostgreSQL it holds an advisory lock, so
// replicas starting at once migrate one after the other.
func Migrate(ctx context.Context, db *bun.DB) ([]Migration, error) {
	unlock, err := lockMigrations(ctx, db)
	if err != nil {
		return nil, err
	}
	defer unlock()

	applied, err := migrateRiver(ctx, db)
	if err != nil {
		return applied, err
	}
	app, err := migrateApp(ctx, db)
	return append(applied, app...), err
}

func lockMigrations(ctx context.Context, db *bun.DB) (func(), error) {
	if DialectOf(db) != Postgres {
		return func() {}, nil
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: lock: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock("+strconv.Itoa(migrateLockKey)+")"); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("migrate: lock: %w", err)
	}
	return func() {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock("+strconv.Itoa(migrateLockKey)+")")
		_ = conn.Close()
	}, nil
}

func riverMigrator(db *bun.DB) (*rivermigrate.Migrator[*sql.Tx], error) {
	m, err := rivermigrate.New(RiverDriver(db), &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("river migrator: %w", err)
	}
	return m, nil
}

func migrateRiver(ctx context.Context, db *bun.DB) ([]Migration, error) {
	m, err := riverMigrator(db)
	if err != nil {
		return nil, err
	}
	res, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return nil, fmt.Errorf("migrate river: %w", err)
	}
	applied := make([]Migration, 0, len(res.Versions))
	for _, v := range res.Versions {
		applied = append(applied, Migration{Source: SourceRiver, Name: riverName(v.Version, v.Name), Applied: true})
	}
	return applied, nil
}

func riverName(version int, name string) string {
	return fmt.Sprintf("%03d_%s", version, name)
}

func appMigrations(db *bun.DB) (*migrate.Migrations, error) {
	var src fs.FS
	if DialectOf(db) == Postgres {
		src = migrations.Postgres()
	} else {
		src = migrations.SQLite()
	}
	ms := migrate.NewMigrations()
	if err := ms.Discover(src); err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	return ms, nil
}

func appMigrator(db *bun.DB) (*migrate.Migrator, error) {
	ms, err := appMigrations(db)
	if err != nil {
		return nil, err
	}
	return migrate.NewMigrator(db, ms, migrate.WithMarkAppliedOnSuccess(true)), nil
}

func migrateApp(ctx context.Context, db *bun.DB) ([]Migration, error) {
	m, err := appMigrator(db)
	if err != nil {
		return nil, err
	}
	if err := m.Init(ctx); err != nil {
		return nil, fmt.Errorf("migrate: create migration tables: %w", err)
	}
	group, err := m.Migrate(ctx)
	var applied []Migration
	for _, mig := range group.Migrations {
		applied = append(applied, Migration{Source: SourceApp, Name: mig.String(), Applied: true})
	}
	if err != nil {
		// group holds the migrations attempted, the last one failed.
		return applied[:max(len(applied)-1, 0)], fmt.Errorf("migrate: %w", err)
	}
	return applied, nil
}

// MigrationStatus lists every known migration, River's then crmsync's, with
// whether it is applied. It works on an empty database (all pending).
func MigrationStatus(ctx context.Context, db *bun.DB) ([]Migration, error) {
	river, err := riverStatus(ctx, db)
	if err != nil {
		return nil, err
	}
	app, err := appStatus(ctx, db)
	if err != nil {
		return nil, err
	}
	return append(river, app...), nil
}

func riverStatus(ctx context.Context, db *bun.DB) ([]Migration, error) {
	m, err := riverMigrator(db)
	if err != nil {
		return nil, err
	}
	existing, err := m.ExistingVersions(ctx)
	if err != nil {
		return nil, fmt.Errorf("river migration status: %w", err)
	}
	done := make(map[int]bool, len(existing))
	for _, e := range existing {
		done[e.Version] = true
	}
	var out []Migration
	for _, v := range m.AllVersions() {
		out = append(out, Migration{Source: SourceRiver, Name: riverName(v.Version, v.Name), Applied: done[v.Version]})
	}
	return out, nil
}

func appStatus(ctx context.Context, db *bun.DB) ([]Migration, error) {
	known, err := appMigrations(db)
	if err != nil {
		return nil, err
	}
	exists, err := tableExists(ctx, db, "bun_migrations")
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	ms := known.Sorted() // nothing applied yet unless the table exists
	if exists {
		ms, err = migrate.NewMigrator(db, known).MigrationsWithStatus(ctx)
		if err != nil {
			return nil, fmt.Errorf("migration status: %w", err)
		}
	}
	out := make([]Migration, 0, len(ms))
	for _, mig := range ms {
		out = append(out, Migration{Source: SourceApp, Name: mig.String(), Applied: mig.IsApplied()})
	}
	return out, nil
}

func tableExists(ctx context.Context, db *bun.DB, table string) (bool, error) {
	var n int
	var err error
	if DialectOf(db) == Postgres {
		err = db.QueryRowContext(ctx, "SELECT count(*) FROM pg_catalog.pg_tables WHERE tablename = ? AND schemaname = current_schema()", table).Scan(&n)
	} else {
		err = db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", table).Scan(&n)
	}
	if err != nil {
		return false, fmt.Errorf("check table %s: %w", table, err)
	}
	return n > 0, nil
}
