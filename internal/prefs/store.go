package prefs

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/internal/record"
)

type objectRow struct {
	bun.BaseModel `bun:"table:object_sync_preferences"`

	WorkspaceID  int64       `bun:"workspace_id,pk"`
	RecordType   record.Type `bun:"record_type,pk"`
	WriteEnabled bool        `bun:"write_enabled,notnull"`
	ReadEnabled  bool        `bun:"read_enabled,notnull"`
	CreateAs     CreateAs    `bun:"create_as,notnull"`
	UpdatedAt    time.Time   `bun:"updated_at,notnull"`
}

type fieldRow struct {
	bun.BaseModel `bun:"table:field_mappings"`

	WorkspaceID int64       `bun:"workspace_id,pk"`
	RecordType  record.Type `bun:"record_type,pk"`
	Field       string      `bun:"field,pk"`
	CRMField    string      `bun:"crm_field,notnull"`
	Mode        Mode        `bun:"mode,notnull"`
	UpdatedAt   time.Time   `bun:"updated_at,notnull"`
}

// Objects returns the workspace's object preferences for every record type,
// defaults filled in.
func Objects(ctx context.Context, db bun.IDB, workspaceID int64) (map[record.Type]ObjectPreference, error) {
	var rows []objectRow
	if err := db.NewSelect().Model(&rows).Where("workspace_id = ?", workspaceID).Scan(ctx); err != nil {
		return nil, fmt.Errorf("load object preferences of workspace %d: %w", workspaceID, err)
	}
	out := make(map[record.Type]ObjectPreference, len(record.Types)+1)
	for _, t := range append(record.Types, record.TypeTask) {
		out[t] = DefaultObjectPreference(t)
	}
	for _, r := range rows {
		out[r.RecordType] = ObjectPreference{RecordType: r.RecordType, WriteEnabled: r.WriteEnabled, ReadEnabled: r.ReadEnabled, CreateAs: r.CreateAs}
	}
	// Tasks are workflow actions on contacts: they follow the contact's writing.
	task := out[record.TypeTask]
	task.WriteEnabled = out[record.TypeContact].WriteEnabled
	out[record.TypeTask] = task
	return out, nil
}

// SetObject stores an object preference.
func SetObject(ctx context.Context, db bun.IDB, workspaceID int64, p ObjectPreference) error {
	if p.CreateAs != CreateAsLead && p.CreateAs != CreateAsContact {
		return fmt.Errorf("createAs must be LEAD or CONTACT, got %q", p.CreateAs)
	}
	row := objectRow{WorkspaceID: workspaceID, RecordType: p.RecordType, WriteEnabled: p.WriteEnabled,
		ReadEnabled: p.ReadEnabled, CreateAs: p.CreateAs, UpdatedAt: time.Now().UTC()}
	_, err := db.NewInsert().Model(&row).
		On("CONFLICT (workspace_id, record_type) DO UPDATE").
		Set("write_enabled = EXCLUDED.write_enabled, read_enabled = EXCLUDED.read_enabled").
		Set("create_as = EXCLUDED.create_as, updated_at = EXCLUDED.updated_at").
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("store %s preference of workspace %d: %w", p.RecordType, workspaceID, err)
	}
	return nil
}

// Fields returns the field mappings of a record type: the contract's
// defaults (DefaultFieldMappings), with the workspace's own mappings
// replacing or adding to them, sorted by field.
func Fields(ctx context.Context, db bun.IDB, contract *connector.DataContract, workspaceID int64, t record.Type) ([]FieldMapping, error) {
	var rows []fieldRow
	err := db.NewSelect().Model(&rows).Where("workspace_id = ? AND record_type = ?", workspaceID, t).Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("load %s field mappings of workspace %d: %w", t, workspaceID, err)
	}
	byField := map[string]FieldMapping{}
	for _, m := range DefaultFieldMappings(contract, t) {
		byField[m.Field] = m
	}
	for _, r := range rows {
		byField[r.Field] = FieldMapping{RecordType: t, Field: r.Field, CRMField: r.CRMField, Mode: r.Mode}
	}
	out := make([]FieldMapping, 0, len(byField))
	for _, m := range byField {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Field < out[j].Field })
	return out, nil
}

// SetField stores a field mapping. Validating the CRM field against the
// connector's describe is the caller's job.
func SetField(ctx context.Context, db bun.IDB, workspaceID int64, m FieldMapping) error {
	if !m.Mode.Valid() {
		return fmt.Errorf("unknown sync mode %q", m.Mode)
	}
	row := fieldRow{WorkspaceID: workspaceID, RecordType: m.RecordType, Field: m.Field, CRMField: m.CRMField,
		Mode: m.Mode, UpdatedAt: time.Now().UTC()}
	_, err := db.NewInsert().Model(&row).
		On("CONFLICT (workspace_id, record_type, field) DO UPDATE").
		Set("crm_field = EXCLUDED.crm_field, mode = EXCLUDED.mode, updated_at = EXCLUDED.updated_at").
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("store %s.%s mapping of workspace %d: %w", m.RecordType, m.Field, workspaceID, err)
	}
	return nil
}
