package record

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
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
	byType := map[Type][]string{}
	for _, k := range keys {
		byType[k.Type] = append(byType[k.Type], k.ID)
	}
	out := make(map[Key]*Record, len(keys))
	for t, ids := range byType {
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
