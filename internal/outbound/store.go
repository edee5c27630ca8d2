package outbound

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/internal/record"
)

// Claim returns the oldest queued items of a workspace that are due, at most
// limit of them, in queue order. A record with any item still in backoff
// is left out entirely, so a record's changes are never sent out of order.
func Claim(ctx context.Context, db bun.IDB, workspaceID int64, now time.Time, limit int) ([]Item, error) {
	var items []Item
	err := db.NewSelect().Model(&items).
		Where("workspace_id = ? AND state = ?", workspaceID, StateQueued).
		Where("record_id NOT IN (?)", db.NewSelect().Model((*Item)(nil)).Column("record_id").
			Where("workspace_id = ? AND state = ? AND next_attempt_at > ?", workspaceID, StateQueued, now.UTC())).
		OrderExpr("id ASC").Limit(int64(limit)).Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("claim items of workspace %d: %w", workspaceID, err)
	}
	return items, nil
}

// Delete removes items that were written (or need no write).
func Delete(ctx context.Context, db bun.IDB, ids []int64) error {
	for chunk := range chunks(ids, 1000) {
		if _, err := db.NewDelete().Model((*Item)(nil)).Where("id IN (?)", bun.List(chunk)).Exec(ctx); err != nil {
			return fmt.Errorf("delete %d items: %w", len(chunk), err)
		}
	}
	return nil
}

// Backoff keeps items queued but not due before until, recording why.
func Backoff(ctx context.Context, db bun.IDB, ids []int64, until time.Time, code, message string) error {
	for chunk := range chunks(ids, 1000) {
		_, err := db.NewUpdate().Model((*Item)(nil)).
			Set("attempts = attempts + 1, next_attempt_at = ?, error_code = ?, error_message = ?", until.UTC(), code, message).
			Where("id IN (?)", bun.List(chunk)).Exec(ctx)
		if err != nil {
			return fmt.Errorf("back off %d items: %w", len(chunk), err)
		}
	}
	return nil
}

// Park moves items to the failed state with the CRM's error.
func Park(ctx context.Context, db bun.IDB, ids []int64, code, message string) error {
	for chunk := range chunks(ids, 1000) {
		_, err := db.NewUpdate().Model((*Item)(nil)).
			Set("state = ?, attempts = attempts + 1, next_attempt_at = NULL, error_code = ?, error_message = ?", StateFailed, code, message).
			Where("id IN (?)", bun.List(chunk)).Exec(ctx)
		if err != nil {
			return fmt.Errorf("park %d items: %w", len(chunk), err)
		}
	}
	return nil
}

// Failed lists a workspace's parked items, oldest first, after the given id.
func Failed(ctx context.Context, db bun.IDB, workspaceID int64, afterID int64, limit int) ([]Item, error) {
	var items []Item
	err := db.NewSelect().Model(&items).
		Where("workspace_id = ? AND state = ? AND id > ?", workspaceID, StateFailed, afterID).
		OrderExpr("id ASC").Limit(int64(limit)).Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("list failed items of workspace %d: %w", workspaceID, err)
	}
	return items, nil
}

// Retry re-queues a workspace's parked items (all when ids is empty) and
// returns how many. Only the workspace's own items are touched.
func Retry(ctx context.Context, db bun.IDB, workspaceID int64, ids []int64) (int, error) {
	q := db.NewUpdate().Model((*Item)(nil)).
		Set("state = ?, next_attempt_at = NULL, attempts = 0", StateQueued).
		Where("workspace_id = ? AND state = ?", workspaceID, StateFailed)
	if len(ids) > 0 {
		q = q.Where("id IN (?)", bun.List(ids))
	}
	return affected(q.Exec(ctx))
}

// Dismiss deletes a workspace's parked items (all when ids is empty).
func Dismiss(ctx context.Context, db bun.IDB, workspaceID int64, ids []int64) (int, error) {
	q := db.NewDelete().Model((*Item)(nil)).Where("workspace_id = ? AND state = ?", workspaceID, StateFailed)
	if len(ids) > 0 {
		q = q.Where("id IN (?)", bun.List(ids))
	}
	return affected(q.Exec(ctx))
}

func affected(res sql.Result, err error) (int, error) {
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// CodeWaitingForParent is the error code of a queued item held back until
// a parent record (a campaign, company or contact) reaches the CRM.
const CodeWaitingForParent = "WAITING_FOR_PARENT"

// Depth summarizes a workspace's queue.
type Depth struct {
	Queued int
	// Waiting is how many of the Queued items wait for a parent record.
	Waiting      int
	Failed       int
	OldestQueued time.Time // zero when nothing is queued
	// Due is the earliest time a queued item may be sent (zero when none).
	Due time.Time
	// QueuedByType is Queued by record type (types with none are absent).
	QueuedByType map[record.Type]int
}

// Measure returns the workspace's queue depth.
func Measure(ctx context.Context, db bun.IDB, workspaceID int64) (Depth, error) {
	var d Depth
	var rows []struct {
		State   State        `bun:"state"`
		Type    record.Type  `bun:"record_type"`
		N       int          `bun:"n"`
		Waiting int          `bun:"waiting"`
		Oldest  bun.NullTime `bun:"oldest"`
		Due     bun.NullTime `bun:"due"`
	}
	err := db.NewSelect().Model((*Item)(nil)).
		ColumnExpr("state, record_type, COUNT(*) AS n, MIN(created_at) AS oldest, MIN(COALESCE(next_attempt_at, created_at)) AS due").
		ColumnExpr("SUM(CASE WHEN error_code = ? THEN 1 ELSE 0 END) AS waiting", CodeWaitingForParent).
		Where("workspace_id = ?", workspaceID).Group("state", "record_type").Scan(ctx, &rows)
	if err != nil {
		return d, fmt.Errorf("measure queue of workspace %d: %w", workspaceID, err)
	}
	d.QueuedByType = map[record.Type]int{}
	for _, r := range rows {
		switch r.State {
		case StateQueued:
			d.Queued += r.N
			d.Waiting += r.Waiting
			d.QueuedByType[r.Type] += r.N
			d.OldestQueued = earliest(d.OldestQueued, r.Oldest.Time)
			d.Due = earliest(d.Due, r.Due.Time)
		case StateFailed:
			d.Failed += r.N
		}
	}
	return d, nil
}

// earliest is the earlier of two times, a zero time counting as none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// ByRecord lists the items of one record, in queue order.
func ByRecord(ctx context.Context, db bun.IDB, workspaceID, recordID int64) ([]Item, error) {
	var items []Item
	err := db.NewSelect().Model(&items).Where("workspace_id = ? AND record_id = ?", workspaceID, recordID).
		OrderExpr("id ASC").Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("list items of record %d: %w", recordID, err)
	}
	return items, nil
}

func chunks[T any](s []T, n int) func(func([]T) bool) {
	return func(yield func([]T) bool) {
		for len(s) > 0 {
			k := min(n, len(s))
			if !yield(s[:k]) {
				return
			}
			s = s[k:]
		}
	}
}

// Queued returns up to limit of a workspace's queued items with ids above
// afterID, in queue order, those in backoff included: what the flushes to
// come will claim, a page at a time (the forecast's read; Claim is the
// flush's).
func Queued(ctx context.Context, db bun.IDB, workspaceID, afterID int64, limit int) ([]Item, error) {
	var items []Item
	err := db.NewSelect().Model(&items).
		Where("workspace_id = ? AND state = ? AND id > ?", workspaceID, StateQueued, afterID).
		OrderExpr("id ASC").Limit(int64(limit)).Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("list queued items of workspace %d: %w", workspaceID, err)
	}
	return items, nil
}

// QueuedRecords counts the distinct records with queued items in the
// workspace: the writes the flushes still have to make (a record's items
// are coalesced into one). Kept out of Measure: on PostgreSQL the distinct
// count costs about as much as the rest of Measure (a sort of every queued
// item), and Measure runs after every flush.
func QueuedRecords(ctx context.Context, db bun.IDB, workspaceID int64) (int64, error) {
	var n int64
	err := db.NewSelect().Model((*Item)(nil)).ColumnExpr("COUNT(DISTINCT record_id)").
		Where("workspace_id = ? AND state = ?", workspaceID, StateQueued).Scan(ctx, &n)
	if err != nil {
		return 0, fmt.Errorf("count queued records of workspace %d: %w", workspaceID, err)
	}
	return n, nil
}
