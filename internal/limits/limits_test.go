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

func TestHourly(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		var ws int64
		require.NoError(t, bdb.NewRaw("INSERT INTO workspaces (name, created_at) VALUES (?, ?) RETURNING id", "t", time.Now().UTC()).Scan(ctx, &ws))
		now := time.Date(2026, 11, 28, 12, 30, 0, 0, time.UTC)
		require.NoError(t, limits.Record(ctx, bdb, ws, now.Add(-25*time.Hour), 100)) // outside the window
		require.NoError(t, limits.Record(ctx, bdb, ws, now.Add(-23*time.Hour), 7))
		require.NoError(t, limits.Record(ctx, bdb, ws, now.Add(-2*time.Hour), 4))
		require.NoError(t, limits.Record(ctx, bdb, ws, now, 3))
		hours, err := limits.Hourly(ctx, bdb, ws, now)
		require.NoError(t, err)
		require.Len(t, hours, 24)
		require.Equal(t, time.Date(2026, 11, 27, 13, 0, 0, 0, time.UTC), hours[0].Hour)
		require.Equal(t, time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC), hours[23].Hour)
		want := make([]int64, 24)
		want[0], want[21], want[23] = 7, 4, 3
		var got []int64
		var sum int64
		for _, h := range hours {
			got = append(got, h.Calls)
			sum += h.Calls
		}
		require.Equal(t, want, got)
		used, err := limits.Used(ctx, bdb, ws, now)
		require.NoError(t, err)
		require.Equal(t, used, sum, "the hours add up to the rolling count")
	})
}
