package overview_test

import (
	"database/sql"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/overview"
	"github.com/crmsync/crmsync/internal/push"
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
		want push.PauseReason
	}{
		"running":     {conn(func(*connection.Connection) {}), 10, push.PauseNone},
		"expired":     {conn(func(c *connection.Connection) { c.Status = connection.StatusExpired; c.PausedByUser = true }), 0, push.PauseConnectionExpired},
		"by the user": {conn(func(c *connection.Connection) { c.PausedByUser = true }), 0, push.PauseByUser},
		"cap reached": {conn(func(c *connection.Connection) { c.DailyLimit = sql.NullInt64{Int64: 5, Valid: true} }), 5, push.PauseConversionLimit},
		"allowance": {conn(func(c *connection.Connection) {
			c.APIUsed, c.APIMax = sql.NullInt64{Int64: 9, Valid: true}, sql.NullInt64{Int64: 9, Valid: true}
		}), 0, push.PauseSalesforceLimit},
		"recorded":   {conn(func(c *connection.Connection) { c.PauseReason = string(push.PauseSalesforceLimit) }), 0, push.PauseSalesforceLimit},
		"cap lifted": {conn(func(c *connection.Connection) { c.PauseReason = string(push.PauseConversionLimit) }), 100, push.PauseNone},
		// Setting a cap clears a stored CONVERSION_LIMIT (Store.SetDailyLimit).
		"cap raised": {conn(func(c *connection.Connection) {
			c.DailyLimit = sql.NullInt64{Int64: 50, Valid: true}
		}), 10, push.PauseNone},
		"batch bigger than what is left": {conn(func(c *connection.Connection) {
			c.PauseReason = string(push.PauseConversionLimit)
			c.DailyLimit = sql.NullInt64{Int64: 14, Valid: true}
		}), 12, push.PauseConversionLimit},
		"cap still on": {conn(func(c *connection.Connection) {
			c.PauseReason = string(push.PauseConversionLimit)
			c.DailyLimit = sql.NullInt64{Int64: 5, Valid: true}
		}), 10, push.PauseConversionLimit},
	} {
		require.Equal(t, tc.want, overview.PauseReason(tc.c, tc.used), name)
	}
}
