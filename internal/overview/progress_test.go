package overview_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/memcrm"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/overview"
	"github.com/crmsync/crmsync/internal/push"
	"github.com/crmsync/crmsync/internal/record"
	"github.com/crmsync/crmsync/internal/secret"
)

type noScheduler struct{}

func (noScheduler) ScheduleFlushTx(context.Context, bun.Tx, int64) error { return nil }

type oneConnector struct{ c connector.Connector }

func (o oneConnector) Connector(context.Context, string) (connector.Connector, error) {
	return o.c, nil
}

// progressBundle is a workspace connected to an in-memory CRM, whose
// ingester and flushes run on one fake clock, so the times progress is
// computed from are exact.
type progressBundle struct {
	db     *bun.DB
	ws     int64
	clock  *memcrm.Clock
	in     *outbound.Ingester
	engine *push.Engine
}

// setupProgress connects a workspace; each flush claims at most maxItems.
func setupProgress(t *testing.T, bdb *bun.DB, maxItems int) *progressBundle {
	t.Helper()
	ctx := context.Background()
	b := &progressBundle{db: bdb, clock: memcrm.NewClock(time.Now().UTC().Add(-time.Hour).Truncate(time.Second))}
	crm := memcrm.New(memcrm.WithClock(b.clock.Now))
	org := crm.Org("org-" + t.Name())
	require.NoError(t, bdb.NewRaw("INSERT INTO workspaces (name, created_at) VALUES (?, ?) RETURNING id", "t", time.Now().UTC()).Scan(ctx, &b.ws))
	key := make([]byte, secret.KeySize)
	_, _ = rand.Read(key)
	box, err := secret.NewBox(key)
	require.NoError(t, err)
	conns := connection.NewStore(bdb, box)
	s := memcrm.Session("org-"+t.Name(), memcrm.DefaultToken)
	_, err = conns.Save(ctx, b.ws, memcrm.Name, s.Config, s.Credentials, org.Identity(), nil)
	require.NoError(t, err)
	b.engine = push.New(bdb, conns, oneConnector{crm}, nil, slog.New(slog.DiscardHandler),
		push.Config{MaxItems: maxItems, RetryBase: time.Minute, Now: b.clock.Now})
	b.in = outbound.NewIngester(bdb, noScheduler{}, nil, outbound.WithClock(b.clock.Now))
	return b
}

func (b *progressBundle) overview(t *testing.T) overview.Overview {
	t.Helper()
	o, err := overview.Get(context.Background(), b.db, b.ws, b.clock.Now())
	require.NoError(t, err)
	return o
}

func company(id string, at time.Time, name string) outbound.Change {
	return outbound.Change{Type: record.TypeCompany, ID: id, Source: record.SourceImport,
		Fields: map[string]outbound.FieldChange{"name": {Value: name, ChangedAt: at}}}
}

// TestProgressOfABacklog queues 12 records (13 changes: one record has
// two), flushes them five items at a time, and checks every figure of
// the progress after each step, against the fake clock.
func TestProgressOfABacklog(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setupProgress(t, bdb, 5)
		ctx := context.Background()
		t0 := b.clock.Now()
		// co0 twice, then a Lead without its required Company (parked as
		// failed by the CRM), then co1..co10.
		changes := []outbound.Change{company("co0", t0, "Zero"), company("co0", t0, "Zero again"),
			{Type: record.TypeContact, ID: "bad", Source: record.SourceImport, Fields: map[string]outbound.FieldChange{
				"email": {Value: "bad@example.com", ChangedAt: t0}, "lastName": {Value: "Bad", ChangedAt: t0}}}}
		for i := 1; i <= 10; i++ {
			changes = append(changes, company(fmt.Sprintf("co%d", i), t0, fmt.Sprintf("Company %d", i)))
		}
		_, err := b.in.Ingest(ctx, b.ws, changes)
		require.NoError(t, err)

		o := b.overview(t)
		require.Equal(t, 13, o.Queued)
		require.Equal(t, &overview.Progress{Since: t0, Done: 0, Remaining: 12}, utcProgress(o.Progress), "nothing finished yet: no rate, no ETA")
		require.EqualValues(t, 12, o.Progress.Total())

		// Flush 1, a minute in: co0 (both items), bad, co1, co2.
		b.clock.Set(t0.Add(time.Minute))
		res, err := b.engine.Flush(ctx, b.ws)
		require.NoError(t, err)
		require.Equal(t, 3, res.Batch.Created, "%+v", res.Batch)
		require.Equal(t, 1, res.Batch.Failed, "%+v", res.Batch)
		// Flush 2, two minutes in: co3..co7.
		b.clock.Set(t0.Add(2 * time.Minute))
		res, err = b.engine.Flush(ctx, b.ws)
		require.NoError(t, err)
		require.Equal(t, 5, res.Batch.Created, "%+v", res.Batch)

		// 9 records finished in 2 minutes (the parked failure counts:
		// it left the queue), 3 left: 4.5 a minute, 40 s to go.
		o = b.overview(t)
		now := b.clock.Now()
		require.Equal(t, &overview.Progress{Since: t0, Done: 9, Remaining: 3, PerMinute: 4.5, ETA: now.Add(40 * time.Second)}, utcProgress(o.Progress))
		require.EqualValues(t, 12, o.Progress.Total())

		// Four and a half minutes later the window (5 minutes) holds flush
		// 2 only: 5 records in 5 minutes, 3 left: 3 minutes to go.
		b.clock.Set(t0.Add(6*time.Minute + 30*time.Second))
		o = b.overview(t)
		now = b.clock.Now()
		require.Equal(t, &overview.Progress{Since: t0, Done: 9, Remaining: 3, PerMinute: 1, ETA: now.Add(3 * time.Minute)}, utcProgress(o.Progress))

		// Ten minutes after flush 2, nothing finished in the window: the
		// rate is 0 and the ETA unknown.
		b.clock.Set(t0.Add(12 * time.Minute))
		o = b.overview(t)
		require.Equal(t, &overview.Progress{Since: t0, Done: 9, Remaining: 3}, utcProgress(o.Progress))

		// The last flush empties the queue: no progress to show.
		res, err = b.engine.Flush(ctx, b.ws)
		require.NoError(t, err)
		require.Equal(t, 3, res.Batch.Created, "%+v", res.Batch)
		o = b.overview(t)
		require.Zero(t, o.Queued)
		require.Nil(t, o.Progress)
	})
}

// TestProgressNilWhenNothingQueued: a workspace that never queued
// anything, and one whose queue drained, have no progress.
func TestProgressNilWhenNothingQueued(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setupProgress(t, bdb, 50_000)
		require.Nil(t, b.overview(t).Progress)

		_, err := b.in.Ingest(context.Background(), b.ws, []outbound.Change{company("co1", b.clock.Now(), "One")})
		require.NoError(t, err)
		require.NotNil(t, b.overview(t).Progress)
		_, err = b.engine.Flush(context.Background(), b.ws)
		require.NoError(t, err)
		require.Nil(t, b.overview(t).Progress)
	})
}

// TestProgressNotConnected: a backlog queued before a CRM is connected
// has remaining records, nothing done and no ETA.
func TestProgressNotConnected(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		var ws int64
		require.NoError(t, bdb.NewRaw("INSERT INTO workspaces (name, created_at) VALUES (?, ?) RETURNING id", "t", time.Now().UTC()).Scan(ctx, &ws))
		t0 := time.Now().UTC().Truncate(time.Second)
		in := outbound.NewIngester(bdb, noScheduler{}, nil, outbound.WithClock(func() time.Time { return t0 }))
		_, err := in.Ingest(ctx, ws, []outbound.Change{company("co1", t0, "One"), company("co2", t0, "Two")})
		require.NoError(t, err)
		o, err := overview.Get(ctx, bdb, ws, t0.Add(time.Minute))
		require.NoError(t, err)
		require.True(t, o.Paused)
		require.Equal(t, &overview.Progress{Since: t0, Remaining: 2}, utcProgress(o.Progress))
	})
}

// utcProgress puts p's times in UTC, as the test's clock is, so that
// require.Equal compares instants (the databases return them in their
// own zones).
func utcProgress(p *overview.Progress) *overview.Progress {
	if p == nil {
		return nil
	}
	q := *p
	q.Since = q.Since.UTC()
	if !q.ETA.IsZero() {
		q.ETA = q.ETA.UTC()
	}
	return &q
}
