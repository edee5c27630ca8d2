// Package migrations holds crmsync's SQL schema migrations, embedded in the
// binary, one directory per database: postgres/ and sqlite/. internal/db runs
// them with bun's migrator (and River's own with rivermigrate).
//
// # Adding a migration
//
// Every schema change is one migration written twice, once per database, with
// the same file name in both directories:
//
//	migrations/postgres/YYYYMMDDHHMMSS_name.tx.up.sql
//	migrations/sqlite/YYYYMMDDHHMMSS_name.tx.up.sql
//
// The prefix is the UTC time the migration was written; migrations run in
// prefix order and each runs once. name is lower case [a-z0-9_-]. The ".tx"
// part runs the whole file in one transaction, so a failing migration leaves
// nothing behind and is not recorded as applied (use plain
// "_name.up.sql" only for statements that cannot run in a transaction, such
// as PostgreSQL's CREATE INDEX CONCURRENTLY). Down migrations are not used:
// a change is undone by a new migration.
//
// A file may hold several statements separated by semicolons; both drivers
// execute them all (PostgreSQL through pgx's simple protocol, SQLite through
// modernc's multi-statement exec). A line that is exactly "--bun:split" also
// separates statements, and is never needed. Do not use "?" in migration SQL:
// bun treats it as a placeholder.
//
// Dialect notes: PostgreSQL ids are BIGINT GENERATED ALWAYS AS IDENTITY,
// SQLite ids INTEGER PRIMARY KEY AUTOINCREMENT; times are TIMESTAMPTZ in
// PostgreSQL and TIMESTAMP in SQLite (write them from Go in UTC); booleans are
// BOOLEAN in both; JSON is JSONB in PostgreSQL and TEXT in SQLite. Foreign keys
// are enforced in both.
//
// The test in internal/db checks that both directories hold the same names.
package migrations

import (
	"embed"
	"io/fs"
)

//go:embed postgres/*.sql sqlite/*.sql
var files embed.FS

// Postgres returns the PostgreSQL migrations.
func Postgres() fs.FS { return sub("postgres") }

// SQLite returns the SQLite migrations.
func SQLite() fs.FS { return sub("sqlite") }

func sub(dir string) fs.FS {
	f, err := fs.Sub(files, dir)
	if err != nil {
		panic(err) // dir is a constant embedded above
	}
	return f
}
