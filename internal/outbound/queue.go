package outbound

import (
	"context"

	"github.com/uptrace/bun"
)

// Queue is the outbound queue as the API sees it: failed items, their
// retry and dismissal, a record's queued items. Every call is scoped to a
// workspace.
type Queue struct{ db bun.IDB }

// NewQueue returns the queue stored in db.
func NewQueue(db bun.IDB) *Queue { return &Queue{db: db} }

// Failed lists failed items (see the package function Failed).
func (q *Queue) Failed(ctx context.Context, workspaceID, afterID int64, limit int) ([]Item, error) {
	return Failed(ctx, q.db, workspaceID, afterID, limit)
}

// Retry makes failed items due again (see Retry).
func (q *Queue) Retry(ctx context.Context, workspaceID int64, ids []int64) (int, error) {
	return Retry(ctx, q.db, workspaceID, ids)
}

// Dismiss drops failed items (see Dismiss).
func (q *Queue) Dismiss(ctx context.Context, workspaceID int64, ids []int64) (int, error) {
	return Dismiss(ctx, q.db, workspaceID, ids)
}

// ByRecord lists a record's queued items (see ByRecord).
func (q *Queue) ByRecord(ctx context.Context, workspaceID, recordID int64) ([]Item, error) {
	return ByRecord(ctx, q.db, workspaceID, recordID)
}
