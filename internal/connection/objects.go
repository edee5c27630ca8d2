package connection

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/connector"
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

// Contract returns the data contract of the connection's connector: the
// one it declared when it connected, or Salesforce's shape for a connector
// that declared none and a connection made before crmsync recorded it.
func (c *Connection) Contract() *connector.DataContract {
	if !c.CRMContract.Valid {
		return connector.SalesforceContract()
	}
	var dc connector.DataContract
	if err := json.Unmarshal([]byte(c.CRMContract.String), &dc); err != nil {
		// Written by SetDescription from a valid contract: unreachable
		// unless the row was edited by hand.
		return connector.SalesforceContract()
	}
	return &dc
}

// SetDescription records what the connection's connector describes: its
// objects (nil: unknown, every record type is routed) and its data
// contract (nil: Salesforce's shape). It starts the workspace's counts of
// unsupported changes over.
func (s *Store) SetDescription(ctx context.Context, c *Connection, names []string, contract *connector.DataContract) error {
	c.CRMObjects, c.CRMContract = sql.NullString{}, sql.NullString{}
	if names != nil {
		raw, err := json.Marshal(names)
		if err != nil {
			return fmt.Errorf("encode CRM objects: %w", err)
		}
		c.CRMObjects = sql.NullString{String: string(raw), Valid: true}
	}
	if contract != nil {
		raw, err := json.Marshal(contract)
		if err != nil {
			return fmt.Errorf("encode data contract: %w", err)
		}
		c.CRMContract = sql.NullString{String: string(raw), Valid: true}
	}
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewUpdate().Model(c).WherePK().Set("crm_objects = ?", c.CRMObjects).Set("crm_contract = ?", c.CRMContract).Exec(ctx); err != nil {
			return fmt.Errorf("record CRM description of connection %d: %w", c.ID, err)
		}
		// A new connection starts new counts of the changes it did not
		// take (internal/prefs, routing).
		if _, err := tx.NewDelete().Table("unsupported_changes").Where("workspace_id = ?", c.WorkspaceID).Exec(ctx); err != nil {
			return fmt.Errorf("reset unsupported counts of workspace %d: %w", c.WorkspaceID, err)
		}
		return nil
	})
}
