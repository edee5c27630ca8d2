package outbound

import (
	"slices"
	"testing"
	"time"

	"github.com/crmsync/crmsync/internal/record"
)

var fuzzFields = [3]string{"f0", "f1", "f2"}

// itemsFromBytes turns fuzz bytes into a queue of at most 64 items: four
// bytes per item say which record (of 4), upsert or remove, which field
// (of 3) and when (of 6 instants, so ties are common). Ids grow, as in the
// queue.
func itemsFromBytes(data []byte) []Item {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var items []Item
	for i := 0; i+4 <= len(data) && len(items) < 64; i += 4 {
		b := data[i : i+4]
		it := Item{ID: int64(len(items) + 1), RecordID: int64(b[0] % 4), RecordType: record.TypeContact,
			Op: OpUpsert, Attempts: int(b[3] % 5)}
		if b[1]%7 == 0 {
			it.Op = OpRemove
		} else {
			it.Fields = record.Fields{fuzzFields[b[1]%3]: {Value: it.ID, ChangedAt: t0.Add(time.Duration(b[2]%6) * time.Second)}}
			if b[2]&0x80 != 0 { // a second field in the same item
				it.Fields[fuzzFields[(b[1]+1)%3]] = record.FieldState{Value: -it.ID, ChangedAt: t0.Add(time.Duration(b[3]%6) * time.Second)}
			}
		}
		items = append(items, it)
	}
	return items
}

// FuzzCoalesce checks Coalesce's invariants on any queue: one write per
// record, the writes' ItemIDs partition the input in order, the last item's
// Op wins, and each field holds its latest change (by ChangedAt, the later
// item on a tie) since the record's last removal.
func FuzzCoalesce(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 1, 1, 0, 0, 1, 0, 0})             // an older change arriving later
	f.Add([]byte{0, 1, 2, 0, 0, 1, 2, 0, 0, 2, 2, 0}) // ties: later item wins
	f.Add([]byte{0, 1, 1, 0, 0, 7, 0, 0, 0, 2, 3, 0}) // remove between upserts
	f.Add([]byte{1, 1, 5, 1, 2, 2, 4, 2, 1, 0, 0, 3, 3, 14, 0x81, 4})
	f.Fuzz(func(t *testing.T, data []byte) {
		items := itemsFromBytes(data)
		writes := Coalesce(items)

		byRecord := map[int64][]Item{}
		var order []int64
		for _, it := range items {
			if _, ok := byRecord[it.RecordID]; !ok {
				order = append(order, it.RecordID)
			}
			byRecord[it.RecordID] = append(byRecord[it.RecordID], it)
		}
		if len(writes) != len(order) {
			t.Fatalf("%d writes for %d records", len(writes), len(order))
		}
		var covered []int64
		for i, w := range writes {
			if w.RecordID != order[i] {
				t.Fatalf("write %d is for record %d, want %d (order of first item)", i, w.RecordID, order[i])
			}
			its := byRecord[w.RecordID]
			var wantIDs []int64
			attempts := 0
			for _, it := range its {
				wantIDs = append(wantIDs, it.ID)
				attempts = max(attempts, it.Attempts)
			}
			if !slices.Equal(w.ItemIDs, wantIDs) {
				t.Fatalf("record %d: ItemIDs %v, want %v", w.RecordID, w.ItemIDs, wantIDs)
			}
			covered = append(covered, w.ItemIDs...)
			if w.Attempts != attempts {
				t.Fatalf("record %d: attempts %d, want %d", w.RecordID, w.Attempts, attempts)
			}
			if last := its[len(its)-1].Op; w.Op != last {
				t.Fatalf("record %d: op %s, want the last item's %s", w.RecordID, w.Op, last)
			}
			want := latestFields(its)
			if len(w.Fields) != len(want) {
				t.Fatalf("record %d: fields %v, want %v", w.RecordID, w.Fields, want)
			}
			for name, fs := range want {
				if got := w.Fields[name]; got.Value != fs.Value || !got.ChangedAt.Equal(fs.ChangedAt) {
					t.Fatalf("record %d field %s: %v at %v, want %v at %v", w.RecordID, name, got.Value, got.ChangedAt, fs.Value, fs.ChangedAt)
				}
			}
		}
		slices.Sort(covered)
		for i, id := range covered {
			if id != int64(i+1) {
				t.Fatalf("items covered %v: each of 1..%d exactly once", covered, len(items))
			}
		}
		if len(covered) != len(items) {
			t.Fatalf("%d items covered, want %d", len(covered), len(items))
		}
	})
}

// latestFields computes, independently of Coalesce, each field's winning
// change among the items after the record's last removal.
func latestFields(its []Item) record.Fields {
	start := 0
	for i, it := range its {
		if it.Op == OpRemove {
			start = i + 1
		}
	}
	out := record.Fields{}
	for _, it := range its[start:] {
		for name, fs := range it.Fields {
			if prev, ok := out[name]; !ok || !fs.ChangedAt.Before(prev.ChangedAt) {
				out[name] = fs
			}
		}
	}
	return out
}
