package synclog_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/record"
	"github.com/crmsync/crmsync/internal/synclog"
)

func TestWriteListGet(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		ws := func() int64 {
			var id int64
			require.NoError(t, bdb.NewRaw("INSERT INTO workspaces (name, created_at) VALUES (?, ?) RETURNING id", "t", time.Now().UTC()).Scan(ctx, &id))
			return id
		}
		a, b := ws(), ws()
		t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
		write := func(w int64, dir synclog.Direction, at time.Time, recs ...*synclog.Record) *synclog.Batch {
			batch := &synclog.Batch{WorkspaceID: w, Direction: dir, StartedAt: at, FinishedAt: at.Add(time.Second), Records: recs}
			batch.Count()
			require.NoError(t, synclog.Write(ctx, bdb, batch))
			return batch
		}
		first := write(a, synclog.Outbound, t0, &synclog.Record{RecordType: record.TypeContact, ConversionID: "c1", Outcome: synclog.OutcomeCreated,
			Fields: []synclog.Field{{Field: "title", CRMField: "Title", Mode: "TWO_WAY", Value: "CEO", Sent: true, Reason: "new record"}}})
		second := write(a, synclog.Outbound, t0.Add(time.Hour), &synclog.Record{RecordType: record.TypeCompany, ConversionID: "co", Outcome: synclog.OutcomeFailed, ErrorCode: "X"})
		write(a, synclog.Inbound, t0.Add(2*time.Hour))
		write(b, synclog.Outbound, t0, &synclog.Record{RecordType: record.TypeContact, ConversionID: "c1", Outcome: synclog.OutcomeCreated})

		require.Equal(t, synclog.StatusFailed, second.Status, "its only record failed")
		all, err := synclog.List(ctx, bdb, a, synclog.Filter{}, 0, 10)
		require.NoError(t, err)
		require.Len(t, all, 3)
		require.Greater(t, all[0].ID, all[1].ID, "newest first")

		page, err := synclog.List(ctx, bdb, a, synclog.Filter{}, all[0].ID, 1)
		require.NoError(t, err)
		require.Equal(t, []int64{second.ID}, []int64{page[0].ID})

		for name, tc := range map[string]struct {
			f    synclog.Filter
			want []int64
		}{
			"direction": {synclog.Filter{Direction: synclog.Outbound}, []int64{second.ID, first.ID}},
			"status":    {synclog.Filter{Status: synclog.StatusFailed}, []int64{second.ID}},
			"record":    {synclog.Filter{RecordType: record.TypeContact, ConversionID: "c1"}, []int64{first.ID}},
			"time":      {synclog.Filter{From: t0.Add(30 * time.Minute), To: t0.Add(90 * time.Minute)}, []int64{second.ID}},
		} {
			got, err := synclog.List(ctx, bdb, a, tc.f, 0, 10)
			require.NoError(t, err, name)
			var ids []int64
			for _, g := range got {
				ids = append(ids, g.ID)
			}
			require.Equal(t, tc.want, ids, name)
		}

		full, err := synclog.Get(ctx, bdb, a, first.ID)
		require.NoError(t, err)
		require.Len(t, full.Records, 1)
		require.Equal(t, "CEO", full.Records[0].Fields[0].Value)
		_, err = synclog.Get(ctx, bdb, b, first.ID)
		require.Error(t, err, "another workspace's batch is not found")

		hist, err := synclog.History(ctx, bdb, a, record.TypeContact, "c1", 5)
		require.NoError(t, err)
		require.Len(t, hist, 1)
		latest, err := synclog.Latest(ctx, bdb, a)
		require.NoError(t, err)
		require.True(t, latest.Equal(t0.Add(2*time.Hour+time.Second)), latest)
	})
}

// BenchmarkWrite writes a batch of 1,000 records with 5 field decisions
// each, the log of a large flush.
func BenchmarkWrite(b *testing.B) {
	for _, d := range dbtest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			ctx := context.Background()
			bdb := dbtest.Open(b, d)
			var ws int64
			require.NoError(b, bdb.NewRaw("INSERT INTO workspaces (name, created_at) VALUES (?, ?) RETURNING id", "b", time.Now().UTC()).Scan(ctx, &ws))
			now := time.Now().UTC()
			b.ReportAllocs()
			for b.Loop() {
				batch := &synclog.Batch{WorkspaceID: ws, Direction: synclog.Outbound, StartedAt: now, FinishedAt: now}
				for i := range 1000 {
					r := &synclog.Record{RecordType: record.TypeContact, ConversionID: fmt.Sprintf("c%d", i), Outcome: synclog.OutcomeUpdated}
					for f := range 5 {
						r.Fields = append(r.Fields, synclog.Field{Field: fmt.Sprintf("f%d", f), CRMField: "F", Mode: "TWO_WAY", Value: "v", Sent: true, Reason: "Conversion change is newer"})
					}
					batch.Records = append(batch.Records, r)
				}
				batch.Count()
				require.NoError(b, synclog.Write(ctx, bdb, batch))
			}
		})
	}
}
