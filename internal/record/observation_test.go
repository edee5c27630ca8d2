package record_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/record"
)

func TestObservationProven(t *testing.T) {
	t.Parallel()
	lm := time.Date(2026, 12, 4, 10, 0, 5, 0, time.UTC)
	tests := map[string]struct {
		known *record.Observation
		want  bool
	}{
		"unknown":                         {nil, false},
		"observed in the same second":     {&record.Observation{LastModified: lm, ObservedAt: lm.Add(999 * time.Millisecond)}, false},
		"observed exactly a second later": {&record.Observation{LastModified: lm, ObservedAt: lm.Add(time.Second)}, true},
		"observed much later":             {&record.Observation{LastModified: lm, ObservedAt: lm.Add(time.Hour)}, true},
		"observed before (clock skew)":    {&record.Observation{LastModified: lm, ObservedAt: lm.Add(-time.Second)}, false},
		"no observation time":             {&record.Observation{LastModified: lm}, false},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tt.want, tt.known.Proven())
		})
	}
}

// TestObservationRoundTrip stores a known state and the re-observation time
// through record.Update and reads them back, on both databases.
func TestObservationRoundTrip(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		var ws int64
		require.NoError(t, bdb.NewRaw("INSERT INTO workspaces (name, created_at) VALUES (?, ?) RETURNING id", "test", time.Now().UTC()).Scan(ctx, &ws))
		t0 := time.Now().UTC().Truncate(time.Second)
		r := &record.Record{WorkspaceID: ws, Type: record.TypeContact, ConversionID: "c1", Fields: record.Fields{},
			CRMFields: map[string]any{}, CRMPending: map[string]any{}, CreatedAt: t0, UpdatedAt: t0}
		_, err := bdb.NewInsert().Model(r).Returning("id").Exec(ctx)
		require.NoError(t, err)
		got, err := record.ByIDs(ctx, bdb, ws, []int64{r.ID})
		require.NoError(t, err)
		require.Nil(t, got[r.ID].CRMKnown, "unknown by default")

		r.CRMKnown = &record.Observation{ID: "00Q000000000001AAA", Fields: map[string]any{"Phone": "+1", "IsConverted": false},
			LastModified: t0, LastModifiedByID: "005x", ObservedAt: t0.Add(2 * time.Second)}
		r.CRMObserveAfter = bun.NullTime{Time: t0.Add(time.Second)}
		require.NoError(t, record.Update(ctx, bdb, []*record.Record{r}, "crm_known", "crm_observe_after"))
		got, err = record.ByIDs(ctx, bdb, ws, []int64{r.ID})
		require.NoError(t, err)
		k := got[r.ID].CRMKnown
		require.NotNil(t, k)
		require.Equal(t, r.CRMKnown.Fields, k.Fields)
		require.True(t, k.LastModified.Equal(t0))
		require.True(t, k.Proven())
		require.True(t, got[r.ID].CRMObserveAfter.Time.Equal(t0.Add(time.Second)))

		r.CRMKnown, r.CRMObserveAfter = nil, bun.NullTime{}
		require.NoError(t, record.Update(ctx, bdb, []*record.Record{r}, "crm_known", "crm_observe_after"))
		got, err = record.ByIDs(ctx, bdb, ws, []int64{r.ID})
		require.NoError(t, err)
		require.Nil(t, got[r.ID].CRMKnown, "cleared")
		require.True(t, got[r.ID].CRMObserveAfter.IsZero())
	})
}
