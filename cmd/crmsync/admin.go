package main

import (
	"errors"
	"fmt"
	"log/slog"
	"text/tabwriter"

	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/internal/db"
	"github.com/crmsync/crmsync/internal/workspace"
)

// openDB opens the configured database for a command.
func (e *env) openDB() (*bun.DB, *slog.Logger, error) {
	logger := e.global.Logger(e.stderr)
	bdb, err := db.Open(e.ctx, e.global.DatabaseURL, e.global.DataDir, logger)
	return bdb, logger, err
}

// openMigratedDB opens the database and checks it is fully migrated.
func (e *env) openMigratedDB() (*bun.DB, error) {
	bdb, _, err := e.openDB()
	if err != nil {
		return nil, err
	}
	status, err := db.MigrationStatus(e.ctx, bdb)
	if err == nil && len(db.Pending(status)) > 0 {
		err = fmt.Errorf("the database has %d pending migrations: run `crmsync migrate up` (or start `crmsync serve`) first", len(db.Pending(status)))
	}
	if err != nil {
		_ = bdb.Close()
		return nil, err
	}
	return bdb, nil
}

type migrateCmd struct {
	Up     migrateUpCmd     `cmd:"" help:"Apply all pending migrations."`
	Status migrateStatusCmd `cmd:"" help:"List migrations and whether each is applied."`
}

type migrateUpCmd struct{}

func (migrateUpCmd) Run(e *env) error {
	bdb, logger, err := e.openDB()
	if err != nil {
		return err
	}
	defer bdb.Close()
	applied, err := db.Migrate(e.ctx, bdb)
	for _, m := range applied {
		fmt.Fprintf(e.stdout, "applied %s %s\n", m.Source, m.Name)
	}
	if err != nil {
		return err
	}
	logger.Info("migrate: done", slog.Int("applied", len(applied)))
	if len(applied) == 0 {
		fmt.Fprintln(e.stdout, "database is up to date")
	}
	return nil
}

type migrateStatusCmd struct{}

func (migrateStatusCmd) Run(e *env) error {
	bdb, _, err := e.openDB()
	if err != nil {
		return err
	}
	defer bdb.Close()
	status, err := db.MigrationStatus(e.ctx, bdb)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SOURCE\tMIGRATION\tSTATE")
	for _, m := range status {
		state := "pending"
		if m.Applied {
			state = "applied"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", m.Source, m.Name, state)
	}
	fmt.Fprintf(w, "\n%d pending\n", len(db.Pending(status)))
	return w.Flush()
}

type workspaceCmd struct {
	Create workspaceCreateCmd `cmd:"" help:"Create a workspace and print its id and first API token (shown once)."`
}

type workspaceCreateCmd struct {
	Name string `arg:"" help:"Name of the workspace."`
}

func (c workspaceCreateCmd) Run(e *env) error {
	bdb, err := e.openMigratedDB()
	if err != nil {
		return err
	}
	defer bdb.Close()
	ws, issued, err := workspace.NewService(bdb).Create(e.ctx, c.Name)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "workspace_id: %d\ntoken_id: %d\ntoken: %s\n", ws.ID, issued.TokenID, issued.Token)
	fmt.Fprintln(e.stderr, "The token is shown only once: store it now. Use it as: Authorization: Bearer <token>")
	return nil
}

type tokenCmd struct {
	Create tokenCreateCmd `cmd:"" help:"Create an API token for a workspace (shown once)."`
	Revoke tokenRevokeCmd `cmd:"" help:"Revoke an API token by its id."`
}

type tokenCreateCmd struct {
	WorkspaceID int64 `arg:"" name:"workspace-id" help:"Id of the workspace."`
}

func (c tokenCreateCmd) Run(e *env) error {
	bdb, err := e.openMigratedDB()
	if err != nil {
		return err
	}
	defer bdb.Close()
	issued, err := workspace.NewService(bdb).CreateToken(e.ctx, c.WorkspaceID)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "token_id: %d\ntoken: %s\n", issued.TokenID, issued.Token)
	fmt.Fprintln(e.stderr, "The token is shown only once: store it now.")
	return nil
}

type tokenRevokeCmd struct {
	TokenID int64 `arg:"" name:"token-id" help:"Id of the token (printed by token create)."`
}

func (c tokenRevokeCmd) Run(e *env) error {
	bdb, err := e.openMigratedDB()
	if err != nil {
		return err
	}
	defer bdb.Close()
	if err := workspace.NewService(bdb).RevokeToken(e.ctx, c.TokenID); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "token %d revoked\n", c.TokenID)
	return nil
}

// errNotMigrated is returned by serve --no-migrate on a database with
// pending migrations.
var errNotMigrated = errors.New("the database has pending migrations and --no-migrate is set: run `crmsync migrate up` first")
