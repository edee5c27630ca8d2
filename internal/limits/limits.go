// Package limits counts the CRM API calls crmsync itself makes, for the
// optional crmsync daily limit (docs/limits.md; docs/architecture.md#the-flush, the gate).
//
// The window is a rolling 24 hours, like Salesforce's own allowance,
// counted in hourly buckets: the count at any moment covers the current
// hour and the 23 before it.
package limits

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// Window is the span the crmsync daily limit covers.
const Window = 24 * time.Hour

type bucket struct {
	bun.BaseModel `bun:"table:api_calls,alias:api_calls"`

	WorkspaceID int64     `bun:"workspace_id,pk"`
	Hour        time.Time `bun:"hour,pk"`
	Calls       int64     `bun:"calls,notnull"`
}

// Record adds calls made at time at to the workspace's count.
func Record(ctx context.Context, db bun.IDB, workspaceID int64, at time.Time, calls int) error {
	if calls <= 0 {
		return nil
	}
	b := bucket{WorkspaceID: workspaceID, Hour: at.UTC().Truncate(time.Hour), Calls: int64(calls)}
	_, err := db.NewInsert().Model(&b).
		On("CONFLICT (workspace_id, hour) DO UPDATE").
		Set("calls = api_calls.calls + EXCLUDED.calls").Exec(ctx)
	if err != nil {
		return fmt.Errorf("count %d API calls of workspace %d: %w", calls, workspaceID, err)
	}
	return nil
}

// Used returns the calls the workspace made in the window ending at now.
func Used(ctx context.Context, db bun.IDB, workspaceID int64, now time.Time) (int64, error) {
	var n int64
	from := now.UTC().Truncate(time.Hour).Add(-Window + time.Hour)
	err := db.NewSelect().Model((*bucket)(nil)).ColumnExpr("COALESCE(SUM(calls), 0)").
		Where("workspace_id = ? AND hour >= ?", workspaceID, from).Scan(ctx, &n)
	if err != nil {
		return 0, fmt.Errorf("count API calls of workspace %d: %w", workspaceID, err)
	}
	return n, nil
}

// Prune deletes buckets that left the window.
func Prune(ctx context.Context, db bun.IDB, now time.Time) error {
	_, err := db.NewDelete().Model((*bucket)(nil)).Where("hour < ?", now.UTC().Add(-Window-time.Hour)).Exec(ctx)
	if err != nil {
		return fmt.Errorf("prune API call counts: %w", err)
	}
	return nil
}

// UsedByWorkspace returns the calls every workspace made in the window
// ending at now (workspaces without calls are absent), for metrics.
func UsedByWorkspace(ctx context.Context, db bun.IDB, now time.Time) (map[int64]int64, error) {
	var rows []struct {
		WorkspaceID int64 `bun:"workspace_id"`
		Calls       int64 `bun:"calls"`
	}
	from := now.UTC().Truncate(time.Hour).Add(-Window + time.Hour)
	err := db.NewSelect().Model((*bucket)(nil)).ColumnExpr("workspace_id, SUM(calls) AS calls").
		Where("hour >= ?", from).Group("workspace_id").Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("count API calls of all workspaces: %w", err)
	}
	out := make(map[int64]int64, len(rows))
	for _, r := range rows {
		out[r.WorkspaceID] = r.Calls
	}
	return out, nil
}

// HourCalls is the number of calls crmsync made in one hour.
type HourCalls struct {
	Hour  time.Time // the hour's start, UTC
	Calls int64
}

// Hourly returns the workspace's calls in each hour of the window ending
// at now, oldest first: 24 entries, hours without calls as 0. Their sum is
// Used.
func Hourly(ctx context.Context, db bun.IDB, workspaceID int64, now time.Time) ([]HourCalls, error) {
	var rows []bucket
	current := now.UTC().Truncate(time.Hour)
	from := current.Add(-Window + time.Hour)
	err := db.NewSelect().Model(&rows).Where("workspace_id = ? AND hour >= ?", workspaceID, from).Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("list hourly API calls of workspace %d: %w", workspaceID, err)
	}
	out := make([]HourCalls, Window/time.Hour)
	for i := range out {
		out[i].Hour = from.Add(time.Duration(i) * time.Hour)
	}
	for _, r := range rows {
		i := int(r.Hour.UTC().Sub(from) / time.Hour)
		if i >= 0 && i < len(out) {
			out[i].Calls += r.Calls
		}
	}
	return out, nil
}
