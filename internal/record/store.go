package record

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// Record is Conversion's state of one synced record (a row of records).
type Record struct {
	bun.BaseModel `bun:"table:records"`

	ID           int64  `bun:"id,pk,autoincrement"`
	WorkspaceID  int64  `bun:"workspace_id,notnull"`
	Type         Type   `bun:"type,notnull"`
	ConversionID string `bun:"conversion_id,notnull"`
	// CRMObject and CRMID link the record to its CRM record once known.
	CRMObject string `bun:"crm_object,notnull"`
	CRMID     string `bun:"crm_id,notnull"`
	Fields    Fields `bun:"fields,type:text,notnull"`
	// CRMFields holds, per CRM field, the value crmsync last wrote to or
	// read from the CRM: a CRM value that still equals it was not edited
	// there since.
	CRMFields map[string]any `bun:"crm_fields,type:text,notnull"`
	// CRMPending holds, per CRM field, values crmsync is writing or wrote
	// without learning the outcome (it died mid-write): a CRM value equal
	// to one of them is crmsync's own, not an edit made in the CRM.
	CRMPending map[string]any `bun:"crm_pending,type:text,notnull"`
	// CRMStamps holds, per CRM field of CRMFields, when that value became
	// true as crmsync knows it (see Stamp).
	CRMStamps map[string]Stamp `bun:"crm_stamps,type:text,notnull"`
	// CRMPendingStamps holds, per CRM field of CRMPending, the time of the
	// Conversion change the pending value carries.
	CRMPendingStamps map[string]Stamp `bun:"crm_pending_stamps,type:text,notnull"`
	// CRMModstamp is the CRM's SystemModstamp last seen for the record.
	CRMModstamp bun.NullTime `bun:"crm_modstamp"`
	// CreateAttemptedAt is set before a create is sent and cleared once its
	// outcome is known: a set value means "re-match before creating again".
	CreateAttemptedAt bun.NullTime `bun:"create_attempted_at"`
	CreatedAt         time.Time    `bun:"created_at,notnull"`
	UpdatedAt         time.Time    `bun:"updated_at,notnull"`
}

// Key names a record within a workspace.
type Key struct {
	Type Type
	ID   string
}

// ByIDs loads records of a workspace by row id.
func ByIDs(ctx context.Context, db bun.IDB, workspaceID int64, ids []int64) (map[int64]*Record, error) {
	out := make(map[int64]*Record, len(ids))
	for chunk := range chunks(ids, 500) {
		var rs []*Record
		err := db.NewSelect().Model(&rs).Where("workspace_id = ?", workspaceID).Where("id IN (?)", bun.List(chunk)).Scan(ctx)
		if err != nil {
			return nil, fmt.Errorf("load records of workspace %d: %w", workspaceID, err)
		}
		for _, r := range rs {
			out[r.ID] = r
		}
	}
	return out, nil
}

// ByKeys loads records of a workspace by type and Conversion id.
func ByKeys(ctx context.Context, db bun.IDB, workspaceID int64, keys []Key) (map[Key]*Record, error) {
	out := make(map[Key]*Record, len(keys))
	for t, ids := range idsByType(keys) {
		for chunk := range chunks(ids, 500) {
			var rs []*Record
			err := db.NewSelect().Model(&rs).
				Where("workspace_id = ? AND type = ?", workspaceID, t).
				Where("conversion_id IN (?)", bun.List(chunk)).Scan(ctx)
			if err != nil {
				return nil, fmt.Errorf("load %s records of workspace %d: %w", t, workspaceID, err)
			}
			for _, r := range rs {
				out[Key{r.Type, r.ConversionID}] = r
			}
		}
	}
	return out, nil
}

// Get loads one record by type and Conversion id.
func Get(ctx context.Context, db bun.IDB, workspaceID int64, key Key) (*Record, error) {
	r := new(Record)
	err := db.NewSelect().Model(r).
		Where("workspace_id = ? AND type = ? AND conversion_id = ?", workspaceID, key.Type, key.ID).Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("get %s record %q: %w", key.Type, key.ID, err)
	}
	return r, nil
}

// ByCRMIDs loads records of a workspace linked to the given CRM ids.
func ByCRMIDs(ctx context.Context, db bun.IDB, workspaceID int64, crmIDs []string) (map[string]*Record, error) {
	out := make(map[string]*Record, len(crmIDs))
	for chunk := range chunks(crmIDs, 500) {
		var rs []*Record
		err := db.NewSelect().Model(&rs).Where("workspace_id = ?", workspaceID).
			Where("crm_id IN (?)", bun.List(chunk)).Scan(ctx)
		if err != nil {
			return nil, fmt.Errorf("load records by CRM id: %w", err)
		}
		for _, r := range rs {
			out[r.CRMID] = r
		}
	}
	return out, nil
}

func chunks[T any](s []T, n int) func(func([]T) bool) {
	return func(yield func([]T) bool) {
		for len(s) > 0 {
			k := min(n, len(s))
			if !yield(s[:k]) {
				return
			}
			s = s[k:]
		}
	}
}

// Writers of records take their PostgreSQL row locks in one global order,
// ascending row id, through Lock and LockIDs: an ingest, a flush's commit and
// a pull touching the same records then wait for each other instead of
// deadlocking (PostgreSQL finds a deadlock only after deadlock_timeout, a
// second by default, and then aborts one of the transactions). SQLite
// serializes writers anyway, so both only load there.

// Lock reloads records of a workspace by row id, locking them on PostgreSQL
// until tx ends. Ids that no longer exist are absent from the result.
func Lock(ctx context.Context, tx bun.Tx, workspaceID int64, ids []int64) (map[int64]*Record, error) {
	ids = sortedUnique(ids)
	out := make(map[int64]*Record, len(ids))
	for chunk := range chunks(ids, 500) {
		var rs []*Record
		q := tx.NewSelect().Model(&rs).Where("workspace_id = ? AND id IN (?)", workspaceID, bun.List(chunk)).OrderExpr("id")
		if tx.Dialect().Name() == dialect.PG {
			q = q.For("UPDATE")
		}
		if err := q.Scan(ctx); err != nil {
			return nil, fmt.Errorf("lock %d records of workspace %d: %w", len(chunk), workspaceID, err)
		}
		for _, r := range rs {
			out[r.ID] = r
		}
	}
	return out, nil
}

// LockIDs locks records by row id on PostgreSQL without loading them, before
// statements that update many rows in an order of the planner's choosing
// (UPDATE ... WHERE id IN, UPDATE ... FROM VALUES).
func LockIDs(ctx context.Context, tx bun.Tx, ids []int64) error {
	if tx.Dialect().Name() != dialect.PG {
		return nil
	}
	ids = sortedUnique(ids)
	for chunk := range chunks(ids, 1000) {
		var locked []int64
		err := tx.NewSelect().Model((*Record)(nil)).Column("id").Where("id IN (?)", bun.List(chunk)).
			OrderExpr("id").For("UPDATE").Scan(ctx, &locked)
		if err != nil {
			return fmt.Errorf("lock %d records: %w", len(chunk), err)
		}
	}
	return nil
}

// IDsByKeys finds the row ids of records by type and Conversion id, without
// locking; keys without a record are absent from the result.
func IDsByKeys(ctx context.Context, db bun.IDB, workspaceID int64, keys []Key) (map[Key]int64, error) {
	out := make(map[Key]int64, len(keys))
	for t, ids := range idsByType(keys) {
		for chunk := range chunks(ids, 500) {
			var rows []struct {
				ID           int64  `bun:"id"`
				ConversionID string `bun:"conversion_id"`
			}
			err := db.NewSelect().Model((*Record)(nil)).Column("id", "conversion_id").
				Where("workspace_id = ? AND type = ?", workspaceID, t).
				Where("conversion_id IN (?)", bun.List(chunk)).Scan(ctx, &rows)
			if err != nil {
				return nil, fmt.Errorf("find %s records of workspace %d: %w", t, workspaceID, err)
			}
			for _, r := range rows {
				out[Key{t, r.ConversionID}] = r.ID
			}
		}
	}
	return out, nil
}

// idsByType groups keys' Conversion ids by record type.
func idsByType(keys []Key) map[Type][]string {
	out := map[Type][]string{}
	for _, k := range keys {
		out[k.Type] = append(out[k.Type], k.ID)
	}
	return out
}

func sortedUnique(ids []int64) []int64 {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return slices.Compact(ids)
}

// Update writes the given columns of records in one UPDATE ... FROM VALUES
// per 500 records, sending only those columns (bun's Bulk sends every
// column). Lock the rows first (LockIDs) where others may hold them.
func Update(ctx context.Context, db bun.IDB, recs []*Record, columns ...string) error {
	for chunk := range chunks(recs, 500) {
		q := db.NewUpdate().With("_data", db.NewValues(&chunk).Column(append([]string{"id"}, columns...)...)).
			Model((*Record)(nil)).TableExpr("_data").Where("record.id = _data.id")
		for _, c := range columns {
			q = q.Set("? = _data.?", bun.Ident(c), bun.Ident(c))
		}
		if _, err := q.Exec(ctx); err != nil {
			return fmt.Errorf("update %s of %d records: %w", strings.Join(columns, ", "), len(chunk), err)
		}
	}
	return nil
}
