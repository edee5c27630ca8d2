package jobs_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync/atomic"
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
	"github.com/crmsync/crmsync/internal/synclog"
	"github.com/crmsync/crmsync/jobs"
)

// probeCounter counts Limits probes and the data calls made after the
// first rate-limit refusal.
type probeCounter struct {
	connector.Connector
	limited    atomic.Bool
	afterLimit atomic.Int64
	probes     atomic.Int64
}

func (p *probeCounter) data(err error) error {
	if errors.Is(err, connector.ErrRateLimited) {
		p.limited.Store(true)
	}
	return err
}

func (p *probeCounter) begin() {
	if p.limited.Load() {
		p.afterLimit.Add(1)
	}
}

func (p *probeCounter) Describe(ctx context.Context, req connector.DescribeRequest) (*connector.Description, error) {
	p.begin()
	r, err := p.Connector.Describe(ctx, req)
	return r, p.data(err)
}

func (p *probeCounter) FetchCurrent(ctx context.Context, req connector.FetchCurrentRequest) (*connector.FetchCurrentResponse, error) {
	p.begin()
	r, err := p.Connector.FetchCurrent(ctx, req)
	return r, p.data(err)
}

func (p *probeCounter) BulkUpdate(ctx context.Context, req connector.BulkUpdateRequest) (*connector.BulkUpdateResponse, error) {
	p.begin()
	r, err := p.Connector.BulkUpdate(ctx, req)
	return r, p.data(err)
}

func (p *probeCounter) Limits(ctx context.Context, req connector.LimitsRequest) (*connector.LimitsResponse, error) {
	p.probes.Add(1)
	return p.Connector.Limits(ctx, req)
}

// TestAllowanceRunsOutMidBurstAndQueueDrainsItself runs the real River
// client: the org's allowance runs out in the middle of a burst; crmsync
// stops calling, holds the queue, shows the pause, probes on its ticks, and
// drains by itself once the allowance is back, with no one calling Flush.
func TestAllowanceRunsOutMidBurstAndQueueDrainsItself(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		const interval = 200 * time.Millisecond

		crm := memcrm.New()
		org := crm.Org(t.Name())
		counter := &probeCounter{Connector: crm}
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
		eng := push.New(bdb, conns, connectorsFunc(func(context.Context, string) (connector.Connector, error) { return counter, nil }),
			nil, quiet(), push.Config{LimitProbe: 300 * time.Millisecond})

		workers := river.NewWorkers()
		river.AddWorker(workers, jobs.NewFlushWorker(bdb, eng, interval, quiet()))
		river.AddWorker(workers, jobs.NewSweepWorker(bdb))
		client, err := jobs.NewClient(bdb, quiet(), workers, []*river.PeriodicJob{jobs.SweepPeriodic(time.Second)})
		require.NoError(t, err)
		require.NoError(t, client.Start(ctx))
		defer func() {
			stopCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
			defer stop()
			require.NoError(t, client.Stop(stopCtx))
		}()
		in := outbound.NewIngester(bdb, jobs.NewScheduler(client, interval), nil)

		// Two calls left: the describe and the match go through, the write
		// of the burst is refused.
		org.SetDailyMax(2)
		const n = 30
		var burst []outbound.Change
		for i := range n {
			burst = append(burst, outbound.Change{Type: record.TypeCompany, ID: fmt.Sprintf("co%d", i), Source: record.SourceImport,
				Fields: map[string]outbound.FieldChange{"name": {Value: fmt.Sprintf("Company %d", i)}, "website": {Value: fmt.Sprintf("co%d.example", i)}}})
		}
		_, err = in.Ingest(ctx, ws, burst)
		require.NoError(t, err)

		require.Eventually(t, func() bool {
			o, err := overview.Get(ctx, bdb, ws, time.Now())
			return err == nil && o.Paused && o.PauseReason == push.PauseSalesforceLimit && counter.limited.Load()
		}, 30*time.Second, 20*time.Millisecond, "the CRM refuses a call and the overview shows the pause")

		// Ticks come and probe; none sends data, nothing leaves the queue.
		probes := counter.probes.Load()
		// (After the refusal the job snoozes until the next tick.)
		require.Eventually(t, func() bool { return counter.probes.Load() >= probes+2 }, 60*time.Second, 20*time.Millisecond)
		require.Zero(t, counter.afterLimit.Load(), "no data call after the first REQUEST_LIMIT_EXCEEDED")
		d, err := outbound.Measure(ctx, bdb, ws)
		require.NoError(t, err)
		require.Equal(t, n, d.Queued, "the queue holds")
		paused, err := synclog.List(ctx, bdb, ws, synclog.Filter{Status: synclog.StatusPaused}, 0, 10)
		require.NoError(t, err)
		require.Len(t, paused, 1, "the pause is logged once")

		// The allowance is back: the queue drains by itself.
		org.ResetUsage()
		org.SetDailyMax(memcrm.DefaultDailyMax)
		require.Eventually(t, func() bool {
			d, err := outbound.Measure(ctx, bdb, ws)
			return err == nil && d.Queued == 0
		}, 60*time.Second, 50*time.Millisecond, "the queue drains once the allowance is back")
		accounts := org.All("Account")
		require.Len(t, accounts, n, "every change arrived, once")
		o, err := overview.Get(ctx, bdb, ws, time.Now())
		require.NoError(t, err)
		require.False(t, o.Paused)
	})
}

func TestSweepPrunesCallCountsOutsideTheWindow(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var ws int64
		require.NoError(t, bdb.NewRaw("INSERT INTO workspaces (name, created_at) VALUES (?, ?) RETURNING id", "t", time.Now().UTC()).Scan(ctx, &ws))
		now := time.Now()
		require.NoError(t, limits.Record(ctx, bdb, ws, now.Add(-30*time.Hour), 5))
		require.NoError(t, limits.Record(ctx, bdb, ws, now, 2))

		workers := river.NewWorkers()
		river.AddWorker(workers, jobs.NewSweepWorker(bdb))
		client, err := jobs.NewClient(bdb, quiet(), workers, []*river.PeriodicJob{jobs.SweepPeriodic(200 * time.Millisecond)})
		require.NoError(t, err)
		require.NoError(t, client.Start(ctx))
		defer func() {
			stopCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
			defer stop()
			require.NoError(t, client.Stop(stopCtx))
		}()
		require.Eventually(t, func() bool {
			n, err := bdb.NewSelect().Table("api_calls").Where("workspace_id = ?", ws).Count(ctx)
			return err == nil && n == 1
		}, 30*time.Second, 50*time.Millisecond, "the bucket 30 hours old is pruned")
		used, err := limits.Used(ctx, bdb, ws, time.Now())
		require.NoError(t, err)
		require.Equal(t, int64(2), used)
	})
}
