package prefs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/record"
)

// Routing says which record types the workspace's connection takes, and
// where they go: a record type is supported when the connector's data
// contract maps it (Objects) and the connector described one of those
// objects when the connection was made. Every type is supported while not
// connected (changes wait for the next connection) and for connections
// made before crmsync recorded the objects.
type Routing struct {
	Connector string
	// Contract is the connection's data contract (Salesforce's shape while
	// not connected).
	Contract *connector.DataContract
	objects  []string
	known    bool
}

// LoadRouting reads the workspace's routing.
func LoadRouting(ctx context.Context, db bun.IDB, workspaceID int64) (Routing, error) {
	var c connection.Connection
	err := db.NewSelect().Model(&c).Column("connector", "crm_objects", "crm_contract").Where("workspace_id = ?", workspaceID).Limit(1).Scan(ctx)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Routing{}, fmt.Errorf("read routing of workspace %d: %w", workspaceID, err)
	}
	return RoutingOf(&c), nil
}

// RoutingOf returns the routing of connection c.
func RoutingOf(c *connection.Connection) Routing {
	r := Routing{Connector: c.Connector, Contract: c.Contract()}
	r.objects, r.known = c.Objects()
	return r
}

// Why says, for the sync log, why a change of unsupported type t is not
// sent.
func (r Routing) Why(t record.Type) string {
	return fmt.Sprintf("not supported by connector %s: %s", r.Connector, r.lacks(t))
}

// Supported reports whether changes of type t go to the connection.
func (r Routing) Supported(t record.Type) bool {
	return slices.ContainsFunc(r.Objects(t), r.Describes)
}

// Describes reports whether the connector described CRM object name (true
// when the objects are not known).
func (r Routing) Describes(name string) bool {
	return !r.known || slices.Contains(r.objects, name)
}

// Unsupported lists the record types the connection does not take, in
// record.Types order (tasks last).
func (r Routing) Unsupported() []record.Type {
	var out []record.Type
	for _, t := range append(slices.Clone(record.Types), record.TypeTask) {
		if !r.Supported(t) {
			out = append(out, t)
		}
	}
	return out
}

// refusal is the error for a preference of an unsupported record type.
func (r Routing) refusal(t record.Type) error {
	return &InputError{fmt.Sprintf("the connector %s does not support %s records (%s): their changes stay in Conversion and are not sent",
		r.Connector, t, r.lacks(t))}
}

// lacks says why type t is not supported.
func (r Routing) lacks(t record.Type) string {
	objects := r.Objects(t)
	if len(objects) == 0 {
		return "its data contract maps no object to them"
	}
	return fmt.Sprintf("it describes no %s object", strings.Join(objects, " or "))
}

// Objects lists the CRM objects records of type t are written to, per the
// data contract (for contacts the prospect object, if any, then the person
// object); none when the contract does not map t.
func (r Routing) Objects(t record.Type) []string {
	c := r.Contract
	switch t {
	case record.TypeContact:
		if c.Contact != nil {
			return c.Contact.Objects()
		}
	case record.TypeCompany:
		if c.Company != nil {
			return []string{c.Company.Object}
		}
	case record.TypeCampaign:
		if c.Campaign != nil {
			return []string{c.Campaign.Object}
		}
	case record.TypeCampaignMember:
		if c.CampaignMember != nil {
			return []string{c.CampaignMember.Object}
		}
	case record.TypeTask:
		if c.Task != nil {
			return []string{c.Task.Object}
		}
	}
	return nil
}

// unsupportedRow counts the changes of one record type kept local because
// the connection does not take it.
type unsupportedRow struct {
	bun.BaseModel `bun:"table:unsupported_changes"`

	WorkspaceID int64       `bun:"workspace_id,pk"`
	RecordType  record.Type `bun:"record_type,pk"`
	Changes     int64       `bun:"changes,notnull"`
	LastAt      time.Time   `bun:"last_at,notnull"`
}

// CountUnsupported adds changes kept local because their record type is
// not supported, in the ingest's transaction.
func CountUnsupported(ctx context.Context, db bun.IDB, workspaceID int64, counts map[record.Type]int64, now time.Time) error {
	for _, t := range slices.Sorted(maps.Keys(counts)) {
		_, err := db.NewRaw(`INSERT INTO unsupported_changes (workspace_id, record_type, changes, last_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (workspace_id, record_type) DO UPDATE
			SET changes = unsupported_changes.changes + EXCLUDED.changes, last_at = EXCLUDED.last_at`,
			workspaceID, t, counts[t], now.UTC()).Exec(ctx)
		if err != nil {
			return fmt.Errorf("count unsupported %s changes of workspace %d: %w", t, workspaceID, err)
		}
	}
	return nil
}

// UnsupportedCount is how many changes of a record type were kept local
// because the connection does not support the type.
type UnsupportedCount struct {
	RecordType record.Type
	Changes    int64
	// LastAt is the last such change (zero when none).
	LastAt time.Time
}

// UnsupportedCounts lists every record type the workspace's connection
// does not support, with the changes kept local for it (0 when none).
func UnsupportedCounts(ctx context.Context, db bun.IDB, workspaceID int64) ([]UnsupportedCount, error) {
	r, err := LoadRouting(ctx, db, workspaceID)
	if err != nil {
		return nil, err
	}
	types := r.Unsupported()
	if len(types) == 0 {
		return nil, nil
	}
	var rows []unsupportedRow
	if err := db.NewSelect().Model(&rows).Where("workspace_id = ?", workspaceID).Scan(ctx); err != nil {
		return nil, fmt.Errorf("read unsupported changes of workspace %d: %w", workspaceID, err)
	}
	out := make([]UnsupportedCount, len(types))
	for i, t := range types {
		out[i] = UnsupportedCount{RecordType: t}
		for _, row := range rows {
			if row.RecordType == t {
				out[i].Changes, out[i].LastAt = row.Changes, row.LastAt
			}
		}
	}
	return out, nil
}
