package outbound

import (
	"context"
	"time"

	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/internal/record"
)

// Preview is what Ingest would make of a batch of changes, computed
// without storing anything: the records they touch, each as stored with
// the changes merged (a record that does not exist yet gets a negative
// placeholder id), and one item per change as Ingest queues it (with
// superseded fields marked). Types with writing off or that the connector
// does not support are included: the flush's plan skips them, with the
// reason it would log.
type Preview struct {
	Items   []Item
	Records map[int64]*record.Record
}

// PreviewIngest validates changes exactly as Ingest does (an *InputError
// listing every problem) and returns what Ingest would store for them,
// reading the records they touch without locking or writing anything
// (the dry run of recordChanges).
func PreviewIngest(ctx context.Context, db bun.IDB, workspaceID int64, changes []Change, now time.Time) (*Preview, error) {
	if err := Validate(changes, now); err != nil {
		return nil, err
	}
	keys := make([]record.Key, 0, len(changes))
	seen := map[record.Key]bool{}
	for _, c := range changes {
		k := record.Key{Type: c.Type, ID: c.ID}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	stored, err := record.ByKeys(ctx, db, workspaceID, keys)
	if err != nil {
		return nil, err
	}
	p := &Preview{Records: make(map[int64]*record.Record, len(keys))}
	byKey := make(map[record.Key]*record.Record, len(keys))
	for i, k := range keys {
		r := stored[k]
		if r == nil {
			r = &record.Record{ID: -int64(i + 1), WorkspaceID: workspaceID, Type: k.Type, ConversionID: k.ID,
				Fields: record.Fields{}, CRMFields: map[string]any{}, CRMPending: map[string]any{}, CreatedAt: now}
		}
		byKey[k], p.Records[r.ID] = r, r
	}
	for _, c := range changes {
		merge(byKey[record.Key{Type: c.Type, ID: c.ID}], c, now)
	}
	for i, c := range changes {
		op := c.Op
		if op == "" {
			op = OpUpsert
		}
		r := byKey[record.Key{Type: c.Type, ID: c.ID}]
		p.Items = append(p.Items, Item{ID: int64(i + 1), WorkspaceID: workspaceID, RecordID: r.ID, RecordType: c.Type, Op: op,
			Fields: markSuperseded(fieldStates(c, now), r), Source: c.Source, State: StateQueued, CreatedAt: now})
	}
	return p, nil
}
