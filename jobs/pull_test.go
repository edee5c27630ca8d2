package jobs_test

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/memcrm"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/inbound"
	"github.com/crmsync/crmsync/internal/push"
	"github.com/crmsync/crmsync/internal/record"
	"github.com/crmsync/crmsync/internal/secret"
	"github.com/crmsync/crmsync/jobs"
)

// TestPullJobsRunPeriodically runs the real River client with the pull
// sweep: Salesforce changes reach Conversion without anyone calling Pull,
// once per interval.
func TestPullJobsRunPeriodically(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		const interval = 300 * time.Millisecond

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
		connectors := connectorsFunc(func(context.Context, string) (connector.Connector, error) { return crm, nil })
		eng := push.New(bdb, conns, connectors, nil, quiet(), push.Config{})
		puller := inbound.New(bdb, conns, connectors, eng, nil, quiet(), inbound.Config{})

		workers := river.NewWorkers()
		river.AddWorker(workers, jobs.NewPullWorker(puller, interval, quiet()))
		river.AddWorker(workers, jobs.NewPullSweepWorker(bdb))
		client, err := jobs.NewClient(bdb, quiet(), workers, []*river.PeriodicJob{jobs.PullSweepPeriodic(100*time.Millisecond, interval)})
		require.NoError(t, err)
		require.NoError(t, client.Start(ctx))
		defer func() {
			stopCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
			defer stop()
			require.NoError(t, client.Stop(stopCtx))
		}()

		rep := org.SalesRepIDs()[0]
		for _, email := range []string{"first@example.com", "second@example.com"} {
			id, err := org.CreateAsUser(rep, "Lead", map[string]any{"LastName": "L", "Company": "C", "Email": email})
			require.NoError(t, err)
			require.Eventually(t, func() bool {
				r, err := record.Get(ctx, bdb, ws, record.Key{Type: record.TypeContact, ID: inbound.ConversionIDPrefix + id})
				return err == nil && r.CRMID == id
			}, 30*time.Second, 20*time.Millisecond, "the Lead reaches Conversion through River")
		}
		first, err := inbound.LastPull(ctx, bdb, ws)
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			last, err := inbound.LastPull(ctx, bdb, ws)
			return err == nil && last.After(first)
		}, 30*time.Second, 20*time.Millisecond, "pulls repeat every interval")
		last, err := inbound.LastPull(ctx, bdb, ws)
		require.NoError(t, err)
		require.GreaterOrEqual(t, last.Sub(first), interval, "at most one pull per interval")
	})
}

type pullFunc func(ctx context.Context, workspaceID int64) (*inbound.Result, error)

func (f pullFunc) Pull(ctx context.Context, workspaceID int64) (*inbound.Result, error) {
	return f(ctx, workspaceID)
}

// TestPullWorkerControlFlow: what the worker makes of each pull outcome.
func TestPullWorkerControlFlow(t *testing.T) {
	t.Parallel()
	const interval = time.Minute
	tests := map[string]struct {
		res    *inbound.Result
		err    error
		snooze time.Duration // 0: no snooze
		fails  bool
	}{
		"done":                  {res: &inbound.Result{}},
		"paused":                {res: &inbound.Result{Paused: push.PauseSalesforceLimit}},
		"more pages":            {res: &inbound.Result{More: true}, snooze: time.Second},
		"busy":                  {err: connection.ErrBusy, snooze: 2 * time.Second},
		"rate limited briefly":  {err: connector.RateLimited(10*time.Second, "slow down"), snooze: 10 * time.Second},
		"rate limited for long": {err: connector.RateLimited(5*time.Hour, "spent"), snooze: interval},
		"rate limited, unknown": {err: connector.RateLimited(0, "spent"), snooze: interval},
		"unavailable":           {err: connector.Errorf(connector.KindUnavailable, "down"), fails: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := jobs.NewPullWorker(pullFunc(func(context.Context, int64) (*inbound.Result, error) { return tt.res, tt.err }), interval, quiet())
			err := w.Work(context.Background(), &river.Job[jobs.PullArgs]{Args: jobs.PullArgs{WorkspaceID: 1}})
			var snooze *rivertype.JobSnoozeError
			switch {
			case tt.snooze > 0:
				require.True(t, errors.As(err, &snooze), "%v", err)
				require.Equal(t, tt.snooze, snooze.Duration)
			case tt.fails:
				require.Error(t, err)
				require.False(t, errors.As(err, &snooze))
			default:
				require.NoError(t, err)
			}
		})
	}
}
