package outbound

import (
	"time"

	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/internal/record"
)

// Op is what an item asks of the CRM record.
type Op string

const (
	// OpUpsert writes the item's fields, creating the CRM record if needed.
	OpUpsert Op = "UPSERT"
	// OpRemove deletes the CRM record (a contact leaving a campaign).
	OpRemove Op = "REMOVE"
)

// State is where an item stands.
type State string

const (
	// StateQueued: waiting to be pushed (possibly after a backoff).
	StateQueued State = "queued"
	// StateFailed: parked after a permanent failure until retried or
	// dismissed by a user.
	StateFailed State = "failed"
)

// Item is one queued change (a row of outbound_items). IDs grow
// monotonically: they are the queue's total order.
type Item struct {
	bun.BaseModel `bun:"table:outbound_items"`

	ID            int64         `bun:"id,pk,autoincrement"`
	WorkspaceID   int64         `bun:"workspace_id,notnull"`
	RecordID      int64         `bun:"record_id,notnull"`
	RecordType    record.Type   `bun:"record_type,notnull"`
	Op            Op            `bun:"op,notnull"`
	Fields        record.Fields `bun:"fields,type:text,notnull"`
	Source        record.Source `bun:"source,notnull"`
	State         State         `bun:"state,notnull"`
	Attempts      int           `bun:"attempts,notnull"`
	NextAttemptAt bun.NullTime  `bun:"next_attempt_at"`
	ErrorCode     string        `bun:"error_code,notnull"`
	ErrorMessage  string        `bun:"error_message,notnull"`
	CreatedAt     time.Time     `bun:"created_at,notnull"`
}

// Write is what several queued items of one record coalesce into: the last
// operation asked, and per field the value of the latest change.
type Write struct {
	RecordID   int64
	RecordType record.Type
	Op         Op
	Fields     record.Fields
	// ItemIDs are the items the write covers, in queue order; they are
	// removed from the queue once the write succeeds.
	ItemIDs []int64
	// Attempts is the most attempts any of the items has had.
	Attempts int
}

// Coalesce merges items per record. Writes come out in the order of each
// record's first item; within a record, a field takes the value of its latest
// change by ChangedAt, and of the later item on a tie. The last item's Op wins;
// fields changed before a removal are dropped with it.
func Coalesce(items []Item) []Write {
	index := make(map[int64]int, len(items))
	writes := make([]Write, 0, len(items))
	for _, it := range items {
		i, ok := index[it.RecordID]
		if !ok {
			i = len(writes)
			index[it.RecordID] = i
			writes = append(writes, Write{RecordID: it.RecordID, RecordType: it.RecordType, Fields: record.Fields{}})
		}
		w := &writes[i]
		w.ItemIDs = append(w.ItemIDs, it.ID)
		w.Attempts = max(w.Attempts, it.Attempts)
		if it.Op == OpRemove {
			w.Fields = record.Fields{}
		}
		w.Op = it.Op
		for name, fs := range it.Fields {
			w.Fields.Keep(name, fs)
		}
	}
	return writes
}
