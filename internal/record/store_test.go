package record_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/record"
)

func TestUpdateWritesOnlyTheNamedColumns(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		var ws int64
		require.NoError(t, bdb.NewRaw("INSERT INTO workspaces (name, created_at) VALUES (?, ?) RETURNING id", "test", time.Now().UTC()).Scan(ctx, &ws))
		t0 := time.Now().UTC().Truncate(time.Millisecond)
		// More than one chunk of 500.
		recs := make([]*record.Record, 1203)
		for i := range recs {
			recs[i] = &record.Record{WorkspaceID: ws, Type: record.TypeContact, ConversionID: fmt.Sprintf("c%d", i),
				Fields:    record.Fields{"email": {Value: "old", ChangedAt: t0, Source: record.SourceUI}},
				CRMFields: map[string]any{"Email": "old"}, CRMPending: map[string]any{}, CreatedAt: t0, UpdatedAt: t0}
		}
		_, err := bdb.NewInsert().Model(&recs).Returning("id").Exec(ctx)
		require.NoError(t, err)

		keys := []record.Key{{Type: record.TypeContact, ID: "c7"}, {Type: record.TypeContact, ID: "c1202"}, {Type: record.TypeContact, ID: "missing"}}
		ids, err := record.IDsByKeys(ctx, bdb, ws, keys)
		require.NoError(t, err)
		require.Equal(t, map[record.Key]int64{keys[0]: recs[7].ID, keys[1]: recs[1202].ID}, ids)

		t1 := t0.Add(time.Minute)
		for _, r := range recs {
			r.Fields = record.Fields{"email": {Value: "new-" + r.ConversionID, ChangedAt: t1, Source: record.SourceAPI}}
			r.UpdatedAt = t1
			r.CRMFields = map[string]any{"Email": "must not be written"}
		}
		err = bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			all := make([]int64, 0, len(recs))
			for i := len(recs) - 1; i >= 0; i-- { // any order in, id order taken
				all = append(all, recs[i].ID)
			}
			if err := record.LockIDs(ctx, tx, all); err != nil {
				return err
			}
			return record.Update(ctx, tx, recs, "fields", "updated_at")
		})
		require.NoError(t, err)

		err = bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			got, err := record.Lock(ctx, tx, ws, []int64{recs[1202].ID, recs[0].ID, recs[0].ID, -1})
			require.NoError(t, err)
			require.Len(t, got, 2)
			for _, i := range []int{0, 1202} {
				r := got[recs[i].ID]
				require.Equal(t, "new-"+r.ConversionID, r.Fields["email"].Value)
				require.Equal(t, record.SourceAPI, r.Fields["email"].Source)
				require.True(t, t1.Equal(r.UpdatedAt), "updated_at %v, want %v", r.UpdatedAt, t1)
				require.Equal(t, map[string]any{"Email": "old"}, r.CRMFields, "a column not named is left alone")
			}
			return nil
		})
		require.NoError(t, err)
	})
}

// IDsByKeys looks up keys of several types in one query and returns only
// the keys asked for, even when another type shares a Conversion id.
func TestIDsByKeysMixedTypes(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		var ws int64
		require.NoError(t, bdb.NewRaw("INSERT INTO workspaces (name, created_at) VALUES (?, ?) RETURNING id", "test", time.Now().UTC()).Scan(ctx, &ws))
		now := time.Now().UTC()
		var recs []*record.Record
		for _, k := range []record.Key{{Type: record.TypeContact, ID: "x"}, {Type: record.TypeCompany, ID: "x"}, {Type: record.TypeCompany, ID: "y"}, {Type: record.TypeCampaign, ID: "z"}} {
			recs = append(recs, &record.Record{WorkspaceID: ws, Type: k.Type, ConversionID: k.ID, Fields: record.Fields{},
				CRMFields: map[string]any{}, CRMPending: map[string]any{}, CreatedAt: now, UpdatedAt: now})
		}
		_, err := bdb.NewInsert().Model(&recs).Returning("id").Exec(ctx)
		require.NoError(t, err)

		keys := []record.Key{{Type: record.TypeContact, ID: "x"}, {Type: record.TypeCompany, ID: "y"}, {Type: record.TypeCampaign, ID: "z"},
			{Type: record.TypeCampaign, ID: "x"}, {Type: record.TypeContact, ID: "x"}}
		ids, err := record.IDsByKeys(ctx, bdb, ws, keys)
		require.NoError(t, err)
		require.Equal(t, map[record.Key]int64{keys[0]: recs[0].ID, keys[1]: recs[2].ID, keys[2]: recs[3].ID}, ids)
	})
}
