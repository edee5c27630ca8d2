package record

import (
	"context"

	"github.com/uptrace/bun"
)

// Reader reads a workspace's records for the API.
type Reader struct{ db bun.IDB }

// NewReader returns a Reader of the records stored in db.
func NewReader(db bun.IDB) *Reader { return &Reader{db: db} }

// Get returns the record with key (see Get).
func (r *Reader) Get(ctx context.Context, workspaceID int64, key Key) (*Record, error) {
	return Get(ctx, r.db, workspaceID, key)
}

// ByIDs returns records by row id (see ByIDs).
func (r *Reader) ByIDs(ctx context.Context, workspaceID int64, ids []int64) (map[int64]*Record, error) {
	return ByIDs(ctx, r.db, workspaceID, ids)
}
