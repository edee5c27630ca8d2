package outbound

import (
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

// Item is one queued change.
type Item struct {
	ID         int64
	RecordID   int64
	RecordType record.Type
	Op         Op
	Fields     record.Fields
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
		if it.Op == OpRemove {
			w.Fields = record.Fields{}
		}
		w.Op = it.Op
		for name, fs := range it.Fields {
			if prev, ok := w.Fields[name]; ok && prev.ChangedAt.After(fs.ChangedAt) {
				continue
			}
			w.Fields[name] = fs
		}
	}
	return writes
}
