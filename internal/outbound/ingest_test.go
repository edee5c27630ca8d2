package outbound_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/prefs"
	"github.com/crmsync/crmsync/internal/record"
)

// schedulerFunc is a Scheduler built from a function.
type schedulerFunc func(ctx context.Context, tx bun.Tx, workspaceID int64) error

func (f schedulerFunc) ScheduleFlushTx(ctx context.Context, tx bun.Tx, workspaceID int64) error {
	return f(ctx, tx, workspaceID)
}

type testBundle struct {
	db        *bun.DB
	ws        int64
	in        *outbound.Ingester
	scheduled int
	mu        sync.Mutex
}

func setup(t *testing.T, bdb *bun.DB) *testBundle {
	t.Helper()
	b := &testBundle{db: bdb, ws: newWorkspace(t, bdb)}
	b.in = outbound.NewIngester(bdb, schedulerFunc(func(ctx context.Context, tx bun.Tx, ws int64) error {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.scheduled++
		return nil
	}), nil)
	return b
}

func newWorkspace(t *testing.T, bdb *bun.DB) int64 {
	t.Helper()
	var id int64
	err := bdb.NewRaw("INSERT INTO workspaces (name, created_at) VALUES (?, ?) RETURNING id", "test", time.Now().UTC()).
		Scan(context.Background(), &id)
	require.NoError(t, err)
	return id
}

func contact(id string, at time.Time, fields map[string]any) outbound.Change {
	c := outbound.Change{Type: record.TypeContact, ID: id, Source: record.SourceUI, Fields: map[string]outbound.FieldChange{}}
	for k, v := range fields {
		c.Fields[k] = outbound.FieldChange{Value: v, ChangedAt: at}
	}
	return c
}

func TestIngest(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		b := setup(t, bdb)
		t0 := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)

		res, err := b.in.Ingest(ctx, b.ws, []outbound.Change{
			contact("c1", t0, map[string]any{"email": "ada@example.com", "lastName": "Lovelace"}),
			contact("c1", t0.Add(time.Second), map[string]any{"title": "Countess"}),
			contact("c2", t0, map[string]any{"email": "alan@example.com"}),
		})
		require.NoError(t, err)
		require.Equal(t, outbound.IngestResult{Accepted: 3, Queued: 3}, res)
		require.Equal(t, 1, b.scheduled, "one flush scheduled per call")

		r, err := record.Get(ctx, bdb, b.ws, record.Key{Type: record.TypeContact, ID: "c1"})
		require.NoError(t, err)
		require.Equal(t, "Countess", r.Fields["title"].Value)
		require.Equal(t, "ada@example.com", r.Fields["email"].Value)
		require.Equal(t, record.SourceUI, r.Fields["title"].Source)

		items, err := outbound.Claim(ctx, bdb, b.ws, time.Now(), 100)
		require.NoError(t, err)
		require.Len(t, items, 3)
		require.Less(t, items[0].ID, items[1].ID)
		writes := outbound.Coalesce(items)
		require.Len(t, writes, 2)
		require.Len(t, writes[0].ItemIDs, 2)

		depth, err := outbound.Measure(ctx, bdb, b.ws)
		require.NoError(t, err)
		require.Equal(t, 3, depth.Queued)
		require.False(t, depth.OldestQueued.IsZero())

		// An older change arriving later does not overwrite the record.
		_, err = b.in.Ingest(ctx, b.ws, []outbound.Change{contact("c1", t0.Add(-time.Hour), map[string]any{"title": "Old"})})
		require.NoError(t, err)
		r, err = record.Get(ctx, bdb, b.ws, record.Key{Type: record.TypeContact, ID: "c1"})
		require.NoError(t, err)
		require.Equal(t, "Countess", r.Fields["title"].Value)
	})
}

func TestIngestWriteDisabledKeepsRecordOnly(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		b := setup(t, bdb)
		require.NoError(t, prefs.SetObject(ctx, bdb, b.ws, prefs.ObjectPreference{RecordType: record.TypeCompany, WriteEnabled: false, ReadEnabled: true, CreateAs: prefs.CreateAsLead}))
		res, err := b.in.Ingest(ctx, b.ws, []outbound.Change{{Type: record.TypeCompany, ID: "acme", Source: record.SourceAPI,
			Fields: map[string]outbound.FieldChange{"name": {Value: "Acme"}}}})
		require.NoError(t, err)
		require.Equal(t, outbound.IngestResult{Accepted: 1, Queued: 0}, res)
		_, err = record.Get(ctx, bdb, b.ws, record.Key{Type: record.TypeCompany, ID: "acme"})
		require.NoError(t, err)
		depth, err := outbound.Measure(ctx, bdb, b.ws)
		require.NoError(t, err)
		require.Zero(t, depth.Queued)
	})
}

func TestIngestRefusesBadInputWhole(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		b := setup(t, bdb)
		now := time.Now()
		_, err := b.in.Ingest(ctx, b.ws, []outbound.Change{
			contact("ok", now, map[string]any{"email": "a@b.c"}),
			{Type: "PERSON", ID: "x", Source: record.SourceUI, Fields: map[string]outbound.FieldChange{"a": {Value: "b"}}},
			contact("", now, map[string]any{"bad name!": "x"}),
			contact("future", now.Add(48*time.Hour), map[string]any{"email": "x"}),
			contact("obj", now, map[string]any{"email": map[string]any{"nested": true}}),
		})
		var ie *outbound.InputError
		require.True(t, errors.As(err, &ie), "got %v", err)
		indexes := map[int]bool{}
		for _, p := range ie.Problems {
			indexes[p.Index] = true
		}
		require.Equal(t, map[int]bool{1: true, 2: true, 3: true, 4: true}, indexes)
		require.Contains(t, err.Error(), `unknown record type "PERSON"`)
		_, err = record.Get(ctx, bdb, b.ws, record.Key{Type: record.TypeContact, ID: "ok"})
		require.Error(t, err, "a refused batch must apply nothing")
		require.Zero(t, b.scheduled)

		tooMany := make([]outbound.Change, outbound.MaxChanges+1)
		_, err = b.in.Ingest(ctx, b.ws, tooMany)
		require.ErrorContains(t, err, fmt.Sprintf("at most %d changes", outbound.MaxChanges))
	})
}

func TestIngestConcurrentSameRecord(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		b := setup(t, bdb)
		t0 := time.Now().UTC().Add(-time.Hour)
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := b.in.Ingest(ctx, b.ws, []outbound.Change{contact("hot", t0.Add(time.Duration(i)*time.Second), map[string]any{fmt.Sprintf("f%d", i): i})})
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		r, err := record.Get(ctx, bdb, b.ws, record.Key{Type: record.TypeContact, ID: "hot"})
		require.NoError(t, err)
		require.Len(t, r.Fields, 20, "no concurrent merge may be lost")
		items, err := outbound.Claim(ctx, bdb, b.ws, time.Now(), 100)
		require.NoError(t, err)
		require.Len(t, outbound.Coalesce(items), 1)
		require.Len(t, items, 20)
	})
}

func TestFailedItemsRetryAndDismiss(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		b := setup(t, bdb)
		other := setup(t, bdb)
		for _, bb := range []*testBundle{b, other} {
			_, err := bb.in.Ingest(ctx, bb.ws, []outbound.Change{contact("a", time.Now(), map[string]any{"email": "a@x"}), contact("b", time.Now(), map[string]any{"email": "b@x"})})
			require.NoError(t, err)
		}
		items, err := outbound.Claim(ctx, bdb, b.ws, time.Now(), 10)
		require.NoError(t, err)
		require.NoError(t, outbound.Park(ctx, bdb, []int64{items[0].ID, items[1].ID}, "REQUIRED_FIELD_MISSING", "Required fields are missing: [LastName]"))
		otherItems, err := outbound.Claim(ctx, bdb, other.ws, time.Now(), 10)
		require.NoError(t, err)
		require.NoError(t, outbound.Park(ctx, bdb, []int64{otherItems[0].ID}, "X", "y"))

		failed, err := outbound.Failed(ctx, bdb, b.ws, 0, 10)
		require.NoError(t, err)
		require.Len(t, failed, 2)
		require.Equal(t, "REQUIRED_FIELD_MISSING", failed[0].ErrorCode)

		// Another workspace's ids are never touched.
		n, err := outbound.Retry(ctx, bdb, b.ws, []int64{otherItems[0].ID})
		require.NoError(t, err)
		require.Zero(t, n)
		n, err = outbound.Retry(ctx, bdb, b.ws, []int64{items[0].ID})
		require.NoError(t, err)
		require.Equal(t, 1, n)
		n, err = outbound.Dismiss(ctx, bdb, b.ws, nil)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		depth, err := outbound.Measure(ctx, bdb, b.ws)
		require.NoError(t, err)
		require.Equal(t, outbound.Depth{Queued: 1, OldestQueued: depth.OldestQueued, Due: depth.Due, QueuedByType: map[record.Type]int{record.TypeContact: 1}}, depth)
		otherDepth, err := outbound.Measure(ctx, bdb, other.ws)
		require.NoError(t, err)
		require.Equal(t, 1, otherDepth.Failed)

		// A record with an item in backoff is not claimed at all.
		require.NoError(t, outbound.Backoff(ctx, bdb, []int64{items[0].ID}, time.Now().Add(time.Hour), "UNABLE_TO_LOCK_ROW", "locked"))
		claimed, err := outbound.Claim(ctx, bdb, b.ws, time.Now(), 10)
		require.NoError(t, err)
		require.Empty(t, claimed)
	})
}

// BenchmarkIngestAndClaim ingests 1,000 changes over 100 records and
// claims them, the hot path of every burst.
func BenchmarkIngestAndClaim(b *testing.B) {
	for _, d := range dbtest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			ctx := context.Background()
			bdb := dbtest.Open(b, d)
			var ws int64
			require.NoError(b, bdb.NewRaw("INSERT INTO workspaces (name, created_at) VALUES (?, ?) RETURNING id", "b", time.Now().UTC()).Scan(ctx, &ws))
			in := outbound.NewIngester(bdb, schedulerFunc(func(context.Context, bun.Tx, int64) error { return nil }), nil)
			changes := make([]outbound.Change, 1000)
			for i := range changes {
				changes[i] = contact(fmt.Sprintf("c%d", i%100), time.Now(), map[string]any{"title": fmt.Sprintf("t%d", i)})
			}
			b.ReportAllocs()
			for b.Loop() {
				_, err := in.Ingest(ctx, ws, changes)
				require.NoError(b, err)
				items, err := outbound.Claim(ctx, bdb, ws, time.Now(), 10_000)
				require.NoError(b, err)
				ids := make([]int64, len(items))
				for i, it := range items {
					ids[i] = it.ID
				}
				require.NoError(b, outbound.Delete(ctx, bdb, ids))
			}
			b.ReportMetric(float64(b.N*len(changes))/b.Elapsed().Seconds(), "changes/s")
		})
	}
}

// Concurrent batches touching the same records of several types in
// different orders neither deadlock nor fail: records are locked in one
// global order, and a transaction PostgreSQL aborts anyway is retried.
func TestIngestConcurrentMixedTypes(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		b := setup(t, bdb)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var changes []outbound.Change
				for i := range 40 {
					n := (i*7 + g*13) % 10
					typ := record.TypeContact
					if (i+g)%2 == 0 {
						typ = record.TypeCampaign
					}
					changes = append(changes, outbound.Change{Type: typ, ID: fmt.Sprintf("r%d", n), Source: record.SourceAPI,
						Fields: map[string]outbound.FieldChange{"name": {Value: fmt.Sprintf("g%d-%d", g, i)}}})
				}
				for range 5 {
					if _, err := b.in.Ingest(ctx, b.ws, changes); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
	})
}

// Updates to many existing records in one call (more than one bulk-update
// chunk) reach every record, each merged with what it had.
func TestIngestUpdatesManyExistingRecords(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		b := setup(t, bdb)
		t0 := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
		const n = 1200
		var creates, updates []outbound.Change
		for i := range n {
			id := fmt.Sprintf("c%d", i)
			creates = append(creates, contact(id, t0, map[string]any{"email": id + "@example.com", "title": "old"}))
			updates = append(updates, contact(id, t0.Add(time.Second), map[string]any{"title": fmt.Sprintf("new %d", i)}))
		}
		_, err := b.in.Ingest(ctx, b.ws, creates)
		require.NoError(t, err)
		_, err = b.in.Ingest(ctx, b.ws, updates)
		require.NoError(t, err)
		for i := range n {
			id := fmt.Sprintf("c%d", i)
			r, err := record.Get(ctx, bdb, b.ws, record.Key{Type: record.TypeContact, ID: id})
			require.NoError(t, err)
			require.Equal(t, fmt.Sprintf("new %d", i), r.Fields["title"].Value, id)
			require.Equal(t, id+"@example.com", r.Fields["email"].Value, id)
			require.True(t, r.Fields["title"].ChangedAt.Equal(t0.Add(time.Second)), id)
		}
	})
}

// Concurrent batches creating the same new records in different orders all
// succeed (an ingest that loses the race to insert a record merges into the
// winner's row), and every change reaches its record.
func TestIngestConcurrentNewRecords(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		b := setup(t, bdb)
		const writers, keys = 8, 300
		touched := make([]map[string]bool, writers)
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for g := range writers {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			touched[g] = map[string]bool{}
			var batches [][]outbound.Change
			for range 4 {
				var changes []outbound.Change
				for _, n := range rng.Perm(keys)[:100] {
					id := fmt.Sprintf("new%d", n)
					touched[g][id] = true
					changes = append(changes, contact(id, time.Time{}, map[string]any{fmt.Sprintf("g%d", g): n}))
				}
				batches = append(batches, changes)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, changes := range batches {
					if _, err := b.in.Ingest(ctx, b.ws, changes); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		for n := range keys {
			id := fmt.Sprintf("new%d", n)
			want := 0
			for g := range writers {
				if touched[g][id] {
					want++
				}
			}
			if want == 0 {
				continue
			}
			r, err := record.Get(ctx, bdb, b.ws, record.Key{Type: record.TypeContact, ID: id})
			require.NoError(t, err)
			require.Len(t, r.Fields, want, "record %s: one field per writer that touched it", id)
		}
	})
}
