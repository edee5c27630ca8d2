package jobs_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/memcrm"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/db"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/secret"
	"github.com/crmsync/crmsync/jobs"
)

// Scheduling a flush for a workspace that has one pending inserts no job
// and takes no lock on it: ingest transactions of one workspace do not
// wait for each other's commit on the job row.
func TestScheduleFlushReusesPendingJob(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		key := make([]byte, secret.KeySize)
		_, _ = rand.Read(key)
		box, err := secret.NewBox(key)
		require.NoError(t, err)
		conns := connection.NewStore(bdb, box)
		connected := func(name string) int64 {
			var ws int64
			require.NoError(t, bdb.NewRaw("INSERT INTO workspaces (name, created_at) VALUES (?, ?) RETURNING id", name, time.Now().UTC()).Scan(ctx, &ws))
			s := memcrm.Session(t.Name()+name, memcrm.DefaultToken)
			_, err := conns.Save(ctx, ws, memcrm.Name, s.Config, s.Credentials, memcrm.New().Org(t.Name()+name).Identity(), nil)
			require.NoError(t, err)
			return ws
		}
		ws1, ws2 := connected("a"), connected("b")
		client, err := jobs.NewClient(bdb, quiet(), nil, nil)
		require.NoError(t, err)
		sched := jobs.NewScheduler(client, time.Hour)
		schedule := func(ws int64) {
			require.NoError(t, bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				return sched.ScheduleFlushTx(ctx, tx, ws)
			}))
		}
		flushJobs := func() map[int64]int {
			var rows []struct {
				WS int64 `bun:"ws"`
				N  int   `bun:"n"`
			}
			expr := "(args->>'workspace_id')::bigint AS ws, COUNT(*) AS n"
			if db.DialectOf(bdb) == db.SQLite {
				expr = "json_extract(args, '$.workspace_id') AS ws, COUNT(*) AS n"
			}
			require.NoError(t, bdb.NewSelect().Table("river_job").ColumnExpr(expr).Where("kind = 'flush'").
				GroupExpr("ws").Scan(ctx, &rows))
			out := map[int64]int{}
			for _, r := range rows {
				out[r.WS] = r.N
			}
			return out
		}

		for range 5 {
			schedule(ws1)
		}
		schedule(ws2)
		require.Equal(t, map[int64]int{ws1: 1, ws2: 1}, flushJobs(), "one pending flush per workspace")

		if db.DialectOf(bdb) == db.Postgres {
			// A transaction that scheduled and has not committed yet holds
			// no lock another one waits for.
			open, err := bdb.BeginTx(ctx, nil)
			require.NoError(t, err)
			defer func() { _ = open.Rollback() }()
			require.NoError(t, sched.ScheduleFlushTx(ctx, open, ws1))
			waitCtx, waitCancel := context.WithTimeout(ctx, 10*time.Second)
			defer waitCancel()
			require.NoError(t, bdb.RunInTx(waitCtx, nil, func(ctx context.Context, tx bun.Tx) error {
				return sched.ScheduleFlushTx(ctx, tx, ws1)
			}), "the second transaction must not wait for the first")
			require.NoError(t, open.Rollback())
		}

		// Once the flush ran, a new change needs a new job.
		_, err = bdb.NewRaw("UPDATE river_job SET state = 'completed', finalized_at = ? WHERE kind = 'flush'", time.Now().UTC()).Exec(ctx)
		require.NoError(t, err)
		schedule(ws1)
		require.Equal(t, map[int64]int{ws1: 2, ws2: 1}, flushJobs())
	})
}
