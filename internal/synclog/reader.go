package synclog

import (
	"context"

	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/internal/record"
)

// Reader reads a workspace's sync log for the API.
type Reader struct{ db bun.IDB }

// NewReader returns a Reader of the sync log stored in db.
func NewReader(db bun.IDB) *Reader { return &Reader{db: db} }

// List lists batches, newest first (see List).
func (r *Reader) List(ctx context.Context, workspaceID int64, f Filter, before int64, limit int) ([]*Batch, error) {
	return List(ctx, r.db, workspaceID, f, before, limit)
}

// Get returns one batch with its records (see Get).
func (r *Reader) Get(ctx context.Context, workspaceID, id int64) (*Batch, error) {
	return Get(ctx, r.db, workspaceID, id)
}

// Find returns one batch without its records (see Find).
func (r *Reader) Find(ctx context.Context, workspaceID, id int64) (*Batch, error) {
	return Find(ctx, r.db, workspaceID, id)
}

// RecordPage returns a page of one batch's records (see RecordPage).
func (r *Reader) RecordPage(ctx context.Context, workspaceID, batchID, after int64, limit int) ([]*Record, error) {
	return RecordPage(ctx, r.db, workspaceID, batchID, after, limit)
}

// Records returns the records of batches (see Records).
func (r *Reader) Records(ctx context.Context, workspaceID int64, batchIDs []int64) (map[int64][]*Record, error) {
	return Records(ctx, r.db, workspaceID, batchIDs)
}

// History returns a record's sync history (see History).
func (r *Reader) History(ctx context.Context, workspaceID int64, t record.Type, conversionID string, limit int) ([]*Record, error) {
	return History(ctx, r.db, workspaceID, t, conversionID, limit)
}
