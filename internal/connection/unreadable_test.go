package connection_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/db/dbtest"
)

// TestCheckCredentialsAfterKeyChange saves a connection under one key and
// reads it under another: the credentials are unreadable (a user-facing
// error, not a decrypt failure), the status says so once, and it is
// CONNECTED again as soon as the original key reads it.
func TestCheckCredentialsAfterKeyChange(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		original := connection.NewStore(bdb, newBox(t))
		rotated := connection.NewStore(bdb, newBox(t))
		ws := newWorkspace(t, bdb)
		_, err := original.Save(ctx, ws, "memcrm", json.RawMessage(`{"org":"a"}`), json.RawMessage(`{"token":"t"}`), connector.Identity{UserID: "005A"}, nil)
		require.NoError(t, err)

		c := get(t, rotated, ws)
		_, err = rotated.Session(c)
		require.ErrorIs(t, err, connection.ErrCredentialsUnreadable)
		require.EqualError(t, err, connection.UnreadableReason)

		readable, changed, err := rotated.CheckCredentials(ctx, c)
		require.NoError(t, err)
		require.False(t, readable)
		require.True(t, changed)
		c = get(t, rotated, ws)
		require.Equal(t, connection.StatusCredentialsUnreadable, c.Status)
		require.Equal(t, connection.UnreadableReason, c.StatusReason)

		readable, changed, err = rotated.CheckCredentials(ctx, c)
		require.NoError(t, err)
		require.False(t, readable)
		require.False(t, changed, "already marked")

		readable, changed, err = original.CheckCredentials(ctx, c)
		require.NoError(t, err)
		require.True(t, readable)
		require.True(t, changed)
		c = get(t, original, ws)
		require.Equal(t, connection.StatusConnected, c.Status)
		require.Empty(t, c.StatusReason)
	})
}

func get(t *testing.T, s *connection.Store, ws int64) *connection.Connection {
	t.Helper()
	c, err := s.Get(context.Background(), ws)
	require.NoError(t, err)
	return c
}
