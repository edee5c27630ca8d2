package limits_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/limits"
)

func TestRollingWindow(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		var ws int64
		require.NoError(t, bdb.NewRaw("INSERT INTO workspaces (name, created_at) VALUES (?, ?) RETURNING id", "t", time.Now().UTC()).Scan(ctx, &ws))
		now := time.Date(2026, 11, 28, 12, 30, 0, 0, time.UTC)
		require.NoError(t, limits.Record(ctx, bdb, ws, now.Add(-25*time.Hour), 100)) // outside the window
		require.NoError(t, limits.Record(ctx, bdb, ws, now.Add(-23*time.Hour), 7))
		require.NoError(t, limits.Record(ctx, bdb, ws, now, 3))
		require.NoError(t, limits.Record(ctx, bdb, ws, now.Add(time.Minute), 2)) // same bucket
		require.NoError(t, limits.Record(ctx, bdb, ws, now, 0))
		used, err := limits.Used(ctx, bdb, ws, now.Add(time.Minute))
		require.NoError(t, err)
		require.Equal(t, int64(12), used)
		require.NoError(t, limits.Prune(ctx, bdb, now))
		used, err = limits.Used(ctx, bdb, ws, now.Add(23*time.Hour))
		require.NoError(t, err)
		require.Equal(t, int64(5), used)
	})
}
