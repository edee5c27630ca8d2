package inbound

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/record"
)

// cursorRow is where one object's change feed stands for a workspace.
type cursorRow struct {
	bun.BaseModel `bun:"table:inbound_cursors"`

	WorkspaceID int64     `bun:"workspace_id,pk"`
	CRMObject   string    `bun:"crm_object,pk"`
	Source      string    `bun:"source,notnull"`
	Cursor      string    `bun:"next_cursor,notnull"`
	UpdatedAt   time.Time `bun:"updated_at,notnull"`
}

// pullRow stamps a workspace's last pull.
type pullRow struct {
	bun.BaseModel `bun:"table:inbound_pulls"`

	WorkspaceID int64     `bun:"workspace_id,pk"`
	LastPullAt  time.Time `bun:"last_pull_at,notnull"`
}

// cursorSource names the connector and org a cursor belongs to: a cursor
// handed out by another org (the workspace reconnected elsewhere) is
// meaningless and the feed starts over.
func cursorSource(c *connection.Connection) string {
	return c.Connector + "/" + c.IdentityOrgID
}

func loadCursor(ctx context.Context, db bun.IDB, c *connection.Connection, object string) (string, error) {
	var row cursorRow
	err := db.NewSelect().Model(&row).Where("workspace_id = ? AND crm_object = ?", c.WorkspaceID, object).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("load %s cursor of workspace %d: %w", object, c.WorkspaceID, err)
	}
	if row.Source != cursorSource(c) {
		return "", nil
	}
	return row.Cursor, nil
}

func saveCursor(ctx context.Context, db bun.IDB, c *connection.Connection, object, cursor string, now time.Time) error {
	row := cursorRow{WorkspaceID: c.WorkspaceID, CRMObject: object, Source: cursorSource(c), Cursor: cursor, UpdatedAt: now}
	_, err := db.NewInsert().Model(&row).
		On("CONFLICT (workspace_id, crm_object) DO UPDATE").
		Set("source = EXCLUDED.source, next_cursor = EXCLUDED.next_cursor, updated_at = EXCLUDED.updated_at").
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("store %s cursor of workspace %d: %w", object, c.WorkspaceID, err)
	}
	return nil
}

func markPulled(ctx context.Context, db bun.IDB, workspaceID int64, now time.Time) error {
	row := pullRow{WorkspaceID: workspaceID, LastPullAt: now}
	_, err := db.NewInsert().Model(&row).
		On("CONFLICT (workspace_id) DO UPDATE").Set("last_pull_at = EXCLUDED.last_pull_at").Exec(ctx)
	if err != nil {
		return fmt.Errorf("stamp pull of workspace %d: %w", workspaceID, err)
	}
	return nil
}

// Due returns the connected workspaces whose last pull started before
// before (or that were never pulled), for the periodic pull sweep. It reads
// the database only.
func Due(ctx context.Context, db bun.IDB, before time.Time) ([]int64, error) {
	var ids []int64
	err := db.NewSelect().Model((*connection.Connection)(nil)).Column("workspace_id").
		Where("workspace_id NOT IN (?)", db.NewSelect().Model((*pullRow)(nil)).Column("workspace_id").
			Where("last_pull_at >= ?", before.UTC())).
		OrderExpr("workspace_id").Scan(ctx, &ids)
	if err != nil {
		return nil, fmt.Errorf("list workspaces due for a pull: %w", err)
	}
	return ids, nil
}

// LastPull returns when the workspace's last pull started (zero if never).
func LastPull(ctx context.Context, db bun.IDB, workspaceID int64) (time.Time, error) {
	var row pullRow
	err := db.NewSelect().Model(&row).Where("workspace_id = ?", workspaceID).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("last pull of workspace %d: %w", workspaceID, err)
	}
	return row.LastPullAt, nil
}

// jsonField is the SQL expression of a Conversion field's value, lower
// case, exactly as the indexes of migration 20261128000200 spell it.
func jsonField(db bun.IDB, field string) string {
	if db.Dialect().Name() == dialect.PG {
		return "lower(((fields::jsonb) -> '" + field + "') ->> 'v')"
	}
	return "lower(json_extract(fields, '$." + field + ".v'))"
}

// byFieldValues loads the records of type t whose field (lower case) is one
// of values, in id order.
func byFieldValues(ctx context.Context, db bun.IDB, workspaceID int64, t record.Type, field string, values []string) ([]*record.Record, error) {
	var out []*record.Record
	for i := 0; i < len(values); i += 500 {
		chunk := values[i:min(i+500, len(values))]
		var rs []*record.Record
		err := db.NewSelect().Model(&rs).Where("workspace_id = ? AND type = ?", workspaceID, t).
			Where(jsonField(db, field)+" IN (?)", bun.List(chunk)).OrderExpr("id").Scan(ctx)
		if err != nil {
			return nil, fmt.Errorf("find %s records by %s: %w", t, field, err)
		}
		out = append(out, rs...)
	}
	slices.SortFunc(out, func(a, b *record.Record) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// unconfirmedCompanies loads unlinked companies whose create in the CRM was
// sent but never confirmed: the Account a pull reads may be theirs.
func unconfirmedCompanies(ctx context.Context, db bun.IDB, workspaceID int64) ([]*record.Record, error) {
	var rs []*record.Record
	err := db.NewSelect().Model(&rs).Where("workspace_id = ? AND type = ? AND crm_id = ''", workspaceID, record.TypeCompany).
		Where("create_attempted_at IS NOT NULL").OrderExpr("id").Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("load unconfirmed companies of workspace %d: %w", workspaceID, err)
	}
	return rs, nil
}

// websiteVariants are the spellings of a domain's website looked up in
// Conversion records (the lookup is by index, so it cannot normalize).
func websiteVariants(d string) []string {
	var out []string
	for _, p := range []string{"", "www.", "http://", "https://", "http://www.", "https://www."} {
		out = append(out, p+d, p+d+"/")
	}
	return out
}

// skipRow remembers the version of a CRM record a pull skipped.
type skipRow struct {
	bun.BaseModel `bun:"table:inbound_skips"`

	WorkspaceID int64     `bun:"workspace_id,pk"`
	CRMID       string    `bun:"crm_id,pk"`
	CRMModstamp time.Time `bun:"crm_modstamp,notnull"`
}

// skipped returns the SystemModstamp each of the CRM records was last
// skipped at.
func skipped(ctx context.Context, db bun.IDB, workspaceID int64, crmIDs []string) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	for i := 0; i < len(crmIDs); i += 500 {
		chunk := crmIDs[i:min(i+500, len(crmIDs))]
		var rows []skipRow
		err := db.NewSelect().Model(&rows).Where("workspace_id = ? AND crm_id IN (?)", workspaceID, bun.List(chunk)).Scan(ctx)
		if err != nil {
			return nil, fmt.Errorf("load skipped CRM records: %w", err)
		}
		for _, r := range rows {
			out[r.CRMID] = r.CRMModstamp
		}
	}
	return out, nil
}

func rememberSkips(ctx context.Context, db bun.IDB, rows []skipRow) error {
	for i := 0; i < len(rows); i += 500 {
		chunk := rows[i:min(i+500, len(rows))]
		_, err := db.NewInsert().Model(&chunk).On("CONFLICT (workspace_id, crm_id) DO UPDATE").
			Set("crm_modstamp = EXCLUDED.crm_modstamp").Exec(ctx)
		if err != nil {
			return fmt.Errorf("remember %d skipped CRM records: %w", len(chunk), err)
		}
	}
	return nil
}
