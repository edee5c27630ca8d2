package jobs_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/memcrm"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/push"
	"github.com/crmsync/crmsync/internal/record"
	"github.com/crmsync/crmsync/internal/secret"
	"github.com/crmsync/crmsync/internal/synclog"
	"github.com/crmsync/crmsync/jobs"
)

type connectorsFunc func(ctx context.Context, name string) (connector.Connector, error)

func (f connectorsFunc) Connector(ctx context.Context, name string) (connector.Connector, error) {
	return f(ctx, name)
}

// TestFlushJobsDrainAndPace runs the real River client: changes reach the
// CRM without anyone calling Flush, and a trickle is flushed at most once
// per interval window.
func TestFlushJobsDrainAndPace(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		const interval = time.Second

		crm := memcrm.New()
		org := crm.Org(t.Name())
		var ws int64
		require.NoError(t, bdb.NewRaw("INSERT INTO workspaces (name, created_at) VALUES (?, ?) RETURNING id", "t", time.Now().UTC()).Scan(ctx, &ws))
		key := make([]byte, secret.KeySize)
		_, _ = rand.Read(key)
		box, err := secret.NewBox(key)
		require.NoError(t, err)
		conns := connection.NewStore(bdb, box)
		s := memcrm.Session(t.Name(), memcrm.DefaultToken)
		_, err = conns.Save(ctx, ws, memcrm.Name, s.Config, s.Credentials, org.Identity(), nil)
		require.NoError(t, err)
		eng := push.New(bdb, conns, connectorsFunc(func(context.Context, string) (connector.Connector, error) { return crm, nil }), nil, quiet(), push.Config{})

		workers := river.NewWorkers()
		river.AddWorker(workers, jobs.NewFlushWorker(bdb, eng, interval, quiet()))
		river.AddWorker(workers, jobs.NewSweepWorker(bdb))
		client, err := jobs.NewClient(bdb, quiet(), workers, []*river.PeriodicJob{jobs.SweepPeriodic(time.Minute)})
		require.NoError(t, err)
		require.NoError(t, client.Start(ctx))
		defer func() {
			stopCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
			defer stop()
			require.NoError(t, client.Stop(stopCtx))
		}()
		in := outbound.NewIngester(bdb, jobs.NewScheduler(client, interval), nil)

		// A trickle: one change every 100 ms for 2.5 s, to distinct companies.
		start := time.Now()
		const n = 25
		for i := range n {
			_, err := in.Ingest(ctx, ws, []outbound.Change{{Type: record.TypeCompany, ID: fmt.Sprintf("co%d", i), Source: record.SourceAPI,
				Fields: map[string]outbound.FieldChange{"name": {Value: fmt.Sprintf("Company %d", i)}}}})
			require.NoError(t, err)
			time.Sleep(100 * time.Millisecond)
		}
		require.Eventually(t, func() bool {
			d, err := outbound.Measure(ctx, bdb, ws)
			return err == nil && d.Queued == 0
		}, 30*time.Second, 50*time.Millisecond, "every change leaves the queue through River")
		elapsed := time.Since(start)
		require.Len(t, org.All("Account"), n, "every change reached the CRM, once")

		batches, err := synclog.List(ctx, bdb, ws, synclog.Filter{Direction: synclog.Outbound}, 0, 100)
		require.NoError(t, err)
		// At most one flush per interval window (flushSlot, tested on its
		// own): the windows the run touched bound the flushes.
		maxFlushes := int(elapsed/interval) + 2
		require.LessOrEqual(t, len(batches), maxFlushes, "at most one flush per interval window under a trickle")
		require.Less(t, len(batches), n, "a trickle is batched, not flushed change by change")
	})
}
