package overview_test

import (
	"database/sql"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/engine"
	"github.com/crmsync/crmsync/internal/overview"
)

func TestPauseReason(t *testing.T) {
	t.Parallel()
	conn := func(f func(*connection.Connection)) *connection.Connection {
		c := &connection.Connection{Status: connection.StatusConnected}
		f(c)
		return c
	}
	for name, tc := range map[string]struct {
		c    *connection.Connection
		used int64
		want engine.PauseReason
	}{
		"running":     {conn(func(*connection.Connection) {}), 10, engine.PauseNone},
		"expired":     {conn(func(c *connection.Connection) { c.Status = connection.StatusExpired; c.PausedByUser = true }), 0, engine.PauseConnectionExpired},
		"by the user": {conn(func(c *connection.Connection) { c.PausedByUser = true }), 0, engine.PauseByUser},
		"cap reached": {conn(func(c *connection.Connection) { c.DailyLimit = sql.NullInt64{Int64: 5, Valid: true} }), 5, engine.PauseConversionLimit},
		"allowance": {conn(func(c *connection.Connection) {
			c.APIUsed, c.APIMax = sql.NullInt64{Int64: 9, Valid: true}, sql.NullInt64{Int64: 9, Valid: true}
		}), 0, engine.PauseSalesforceLimit},
		"recorded":   {conn(func(c *connection.Connection) { c.PauseReason = string(engine.PauseSalesforceLimit) }), 0, engine.PauseSalesforceLimit},
		"cap lifted": {conn(func(c *connection.Connection) { c.PauseReason = string(engine.PauseConversionLimit) }), 100, engine.PauseNone},
		// Setting a cap clears a stored CONVERSION_LIMIT (Store.SetDailyLimit).
		"cap raised": {conn(func(c *connection.Connection) {
			c.DailyLimit = sql.NullInt64{Int64: 50, Valid: true}
		}), 10, engine.PauseNone},
		"batch bigger than what is left": {conn(func(c *connection.Connection) {
			c.PauseReason = string(engine.PauseConversionLimit)
			c.DailyLimit = sql.NullInt64{Int64: 14, Valid: true}
		}), 12, engine.PauseConversionLimit},
		"cap still on": {conn(func(c *connection.Connection) {
			c.PauseReason = string(engine.PauseConversionLimit)
			c.DailyLimit = sql.NullInt64{Int64: 5, Valid: true}
		}), 10, engine.PauseConversionLimit},
	} {
		require.Equal(t, tc.want, overview.PauseReason(tc.c, tc.used), name)
	}
}
