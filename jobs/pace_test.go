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
	"github.com/crmsync/crmsync/internal/limits"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/overview"
	"github.com/crmsync/crmsync/internal/push"
	"github.com/crmsync/crmsync/internal/record"
	"github.com/crmsync/crmsync/internal/secret"
	"github.com/crmsync/crmsync/jobs"
)

// TestFlushJobsPacedByBudget runs the real River client under budget
// pacing with a daily limit of about one call a second and a bucket of two
// calls: a trickle faster than the budget reaches the CRM whole, its
// changes coalesce while the bucket is dry, and the calls spent stay within
// what the bucket allows (its burst plus the refill over the run, plus the
// flush that took it into debt).
func TestFlushJobsPacedByBudget(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		const settle = 50 * time.Millisecond

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
		c, err := conns.Save(ctx, ws, memcrm.Name, s.Config, s.Credentials, org.Identity(), nil)
		require.NoError(t, err)
		daily := int64(86_400) // about one call per second
		require.NoError(t, conns.SetDailyLimit(ctx, c, &daily))
		eng := push.New(bdb, conns, connectorsFunc(func(context.Context, string) (connector.Connector, error) { return crm, nil }), nil, quiet(),
			push.Config{Pace: push.PaceConfig{Enabled: true, Burst: 2}})

		workers := river.NewWorkers()
		river.AddWorker(workers, jobs.NewFlushWorker(bdb, eng, time.Second, quiet()).WithPacing(settle))
		client, err := jobs.NewClient(bdb, quiet(), workers, nil)
		require.NoError(t, err)
		require.NoError(t, client.Start(ctx))
		defer func() {
			stopCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
			defer stop()
			require.NoError(t, client.Stop(stopCtx))
		}()
		in := outbound.NewIngester(bdb, jobs.NewScheduler(client, time.Second).WithPacing(settle), nil)

		// Ten changes a second for three seconds, to distinct companies.
		start := time.Now()
		const n = 30
		for i := range n {
			_, err := in.Ingest(ctx, ws, []outbound.Change{{Type: record.TypeCompany, ID: fmt.Sprintf("co%d", i), Source: record.SourceAPI,
				Fields: map[string]outbound.FieldChange{"name": {Value: fmt.Sprintf("Company %d", i)}}}})
			require.NoError(t, err)
			time.Sleep(100 * time.Millisecond)
		}
		require.Eventually(t, func() bool {
			d, err := outbound.Measure(ctx, bdb, ws)
			return err == nil && d.Queued == 0
		}, 30*time.Second, 20*time.Millisecond, "every change leaves the queue, paced")
		elapsed := time.Since(start)
		require.Len(t, org.All("Account"), n, "every change reached the CRM, once")

		used, err := limits.Used(ctx, bdb, ws, time.Now())
		require.NoError(t, err)
		p, err := eng.Pace(ctx, ws)
		require.NoError(t, err)
		require.Equal(t, push.BudgetDailyLimit, p.Source)
		// A flush of new companies costs a match query and a write.
		const flushCost = 2
		allowed := p.Burst + p.Rate*elapsed.Seconds() + flushCost
		require.LessOrEqual(t, float64(used), allowed, "calls never run ahead of the bucket")
		require.Less(t, used, int64(n), "changes coalesced while the bucket was dry")

		o, err := overview.Get(ctx, bdb, ws, time.Now())
		require.NoError(t, err)
		require.True(t, o.Pace.Enabled, "the overview shows the pace")
		require.Equal(t, daily, o.Pace.BudgetPerDay)
		require.Equal(t, used, o.Pace.Spent)
		require.InDelta(t, p.Rate, o.Pace.Rate, p.Rate/100)
	})
}
