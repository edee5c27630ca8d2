package outbound_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/record"
)

// TestIngestKeepsFieldOrderByTime: a change older than the field's value in
// Conversion (from an earlier call, or from Salesforce, known to the
// second) does not replace it; its item marks the field superseded, so the
// flush logs it and never sends it. Other fields of the same change apply.
func TestIngestKeepsFieldOrderByTime(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		b := setup(t, bdb)
		t0 := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)

		_, err := b.in.Ingest(ctx, b.ws, []outbound.Change{contact("c1", t0.Add(2*time.Second), map[string]any{"title": "Newer"})})
		require.NoError(t, err)
		late := contact("c1", t0.Add(time.Second), map[string]any{"title": "Older"})
		late.Fields["phone"] = outbound.FieldChange{Value: "+1 555", ChangedAt: t0.Add(time.Second)}
		_, err = b.in.Ingest(ctx, b.ws, []outbound.Change{late})
		require.NoError(t, err)

		r, err := record.Get(ctx, bdb, b.ws, record.Key{Type: record.TypeContact, ID: "c1"})
		require.NoError(t, err)
		require.Equal(t, "Newer", r.Fields["title"].Value)
		require.Equal(t, "+1 555", r.Fields["phone"].Value)
		items := queuedItems(t, bdb, b.ws)
		require.Len(t, items, 2)
		require.False(t, items[0].Fields["title"].Superseded)
		require.True(t, items[1].Fields["title"].Superseded, "%+v", items[1].Fields)
		require.False(t, items[1].Fields["phone"].Superseded)

		// A value from Salesforce is known to the second: a change within
		// that second does not replace it (ties go to Salesforce), one in a
		// later second does.
		r.Fields["title"] = record.FieldState{Value: "Rep's", ChangedAt: t0.Add(10 * time.Second), Source: record.SourceSalesforce, Second: true}
		require.NoError(t, record.Update(ctx, bdb, []*record.Record{r}, "fields"))
		_, err = b.in.Ingest(ctx, b.ws, []outbound.Change{contact("c1", t0.Add(10*time.Second+900*time.Millisecond), map[string]any{"title": "Same second"})})
		require.NoError(t, err)
		_, err = b.in.Ingest(ctx, b.ws, []outbound.Change{contact("c1", t0.Add(11*time.Second), map[string]any{"title": "Next second"})})
		require.NoError(t, err)
		items = queuedItems(t, bdb, b.ws)
		require.Len(t, items, 4)
		require.True(t, items[2].Fields["title"].Superseded)
		require.False(t, items[3].Fields["title"].Superseded)
		r, err = record.Get(ctx, bdb, b.ws, record.Key{Type: record.TypeContact, ID: "c1"})
		require.NoError(t, err)
		require.Equal(t, "Next second", r.Fields["title"].Value)
	})
}

func queuedItems(t *testing.T, bdb *bun.DB, ws int64) []outbound.Item {
	t.Helper()
	var items []outbound.Item
	require.NoError(t, bdb.NewSelect().Model(&items).Where("workspace_id = ?", ws).OrderExpr("id").Scan(context.Background()))
	return items
}
