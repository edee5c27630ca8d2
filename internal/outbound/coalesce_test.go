package outbound

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/crmsync/crmsync/internal/record"
)

func TestCoalesce(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	fs := func(v any, s int) record.FieldState {
		return record.FieldState{Value: v, ChangedAt: at(s), Source: record.SourceUI}
	}
	tests := map[string]struct {
		items []Item
		want  []Write
	}{
		"empty": {nil, []Write{}},
		"latest value per field wins, order by first item": {
			items: []Item{
				{ID: 1, RecordID: 10, Op: OpUpsert, Fields: record.Fields{"title": fs("A", 1), "phone": fs("1", 1)}},
				{ID: 2, RecordID: 20, Op: OpUpsert, Fields: record.Fields{"name": fs("X", 2)}},
				{ID: 3, RecordID: 10, Op: OpUpsert, Fields: record.Fields{"title": fs("B", 3)}},
			},
			want: []Write{
				{RecordID: 10, Op: OpUpsert, ItemIDs: []int64{1, 3}, Fields: record.Fields{"title": fs("B", 3), "phone": fs("1", 1)}},
				{RecordID: 20, Op: OpUpsert, ItemIDs: []int64{2}, Fields: record.Fields{"name": fs("X", 2)}},
			},
		},
		"an older change arriving later loses": {
			items: []Item{
				{ID: 1, RecordID: 10, Op: OpUpsert, Fields: record.Fields{"title": fs("new", 5)}},
				{ID: 2, RecordID: 10, Op: OpUpsert, Fields: record.Fields{"title": fs("old", 4)}},
			},
			want: []Write{{RecordID: 10, Op: OpUpsert, ItemIDs: []int64{1, 2}, Fields: record.Fields{"title": fs("new", 5)}}},
		},
		"same time: later item wins": {
			items: []Item{
				{ID: 1, RecordID: 10, Op: OpUpsert, Fields: record.Fields{"title": fs("first", 5)}},
				{ID: 2, RecordID: 10, Op: OpUpsert, Fields: record.Fields{"title": fs("second", 5)}},
			},
			want: []Write{{RecordID: 10, Op: OpUpsert, ItemIDs: []int64{1, 2}, Fields: record.Fields{"title": fs("second", 5)}}},
		},
		"remove then add keeps only the add": {
			items: []Item{
				{ID: 1, RecordID: 10, Op: OpUpsert, Fields: record.Fields{"status": fs("Sent", 1)}},
				{ID: 2, RecordID: 10, Op: OpRemove},
				{ID: 3, RecordID: 10, Op: OpUpsert, Fields: record.Fields{"status": fs("Responded", 3)}},
			},
			want: []Write{{RecordID: 10, Op: OpUpsert, ItemIDs: []int64{1, 2, 3}, Fields: record.Fields{"status": fs("Responded", 3)}}},
		},
		"add then remove is a remove": {
			items: []Item{
				{ID: 1, RecordID: 10, Op: OpUpsert, Fields: record.Fields{"status": fs("Sent", 1)}},
				{ID: 2, RecordID: 10, Op: OpRemove},
			},
			want: []Write{{RecordID: 10, Op: OpRemove, ItemIDs: []int64{1, 2}, Fields: record.Fields{}}},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, Coalesce(tt.items)); diff != "" {
				t.Fatalf("Coalesce (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCoalesceTenThousandChangesToOneRecord(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	items := make([]Item, 10_000)
	for i := range items {
		items[i] = Item{ID: int64(i + 1), RecordID: 7, Op: OpUpsert,
			Fields: record.Fields{"title": {Value: i, ChangedAt: t0.Add(time.Duration(i) * time.Millisecond)}}}
	}
	writes := Coalesce(items)
	if len(writes) != 1 || len(writes[0].ItemIDs) != 10_000 || writes[0].Fields["title"].Value != 9_999 {
		t.Fatalf("got %d writes, last value %v", len(writes), writes[0].Fields["title"].Value)
	}
}

func BenchmarkCoalesce(b *testing.B) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	items := make([]Item, 10_000)
	for i := range items {
		items[i] = Item{ID: int64(i + 1), RecordID: int64(i % 1000), Op: OpUpsert,
			Fields: record.Fields{"title": {Value: "x", ChangedAt: t0.Add(time.Duration(i))}, "phone": {Value: "y", ChangedAt: t0}}}
	}
	b.ReportAllocs()
	for b.Loop() {
		Coalesce(items)
	}
}
