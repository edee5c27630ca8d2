package connection

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/uptrace/bun"
)

// Objects returns the CRM objects the connection's connector described when
// it connected; known is false for a connection made before crmsync
// recorded them, or whose connector refused the describe as invalid.
func (c *Connection) Objects() (names []string, known bool) {
	if !c.CRMObjects.Valid {
		return nil, false
	}
	if err := json.Unmarshal([]byte(c.CRMObjects.String), &names); err != nil {
		return nil, false
	}
	return names, true
}

// SetObjects records the objects the connection's connector describes (nil:
// unknown, every record type is routed), and starts the workspace's counts
// of unsupported changes over.
func (s *Store) SetObjects(ctx context.Context, c *Connection, names []string) error {
	c.CRMObjects = sql.NullString{}
	if names != nil {
		raw, err := json.Marshal(names)
		if err != nil {
			return fmt.Errorf("encode CRM objects: %w", err)
		}
		c.CRMObjects = sql.NullString{String: string(raw), Valid: true}
	}
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewUpdate().Model(c).WherePK().Set("crm_objects = ?", c.CRMObjects).Exec(ctx); err != nil {
			return fmt.Errorf("record CRM objects of connection %d: %w", c.ID, err)
		}
		// A new connection starts new counts of the changes it did not
		// take (internal/prefs, routing).
		if _, err := tx.NewDelete().Table("unsupported_changes").Where("workspace_id = ?", c.WorkspaceID).Exec(ctx); err != nil {
			return fmt.Errorf("reset unsupported counts of workspace %d: %w", c.WorkspaceID, err)
		}
		return nil
	})
}
