package jobs_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/jobs"
)

type pingArgs struct {
	Note string `json:"note"`
}

func (pingArgs) Kind() string { return "test_ping" }

type pingWorker struct {
	river.WorkerDefaults[pingArgs]
	done chan string
}

func (w *pingWorker) Work(ctx context.Context, job *river.Job[pingArgs]) error {
	select {
	case w.done <- job.Args.Note:
	case <-ctx.Done():
	}
	return nil
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// A job inserted in the transaction of a row exists exactly when the row
// does, and a working client runs it.
func TestClientInsertTxAndWork(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()

		insertOnly, err := jobs.NewClient(bdb, quiet(), nil, nil)
		require.NoError(t, err)

		// Rolled back: neither the row nor the job exists.
		tx, err := bdb.BeginTx(ctx, nil)
		require.NoError(t, err)
		_, err = tx.NewRaw("INSERT INTO workspaces (name) VALUES ('rolled back')").Exec(ctx)
		require.NoError(t, err)
		_, err = insertOnly.InsertTx(ctx, tx.Tx, pingArgs{Note: "rolled back"}, nil)
		require.NoError(t, err)
		require.NoError(t, tx.Rollback())

		// Committed: both exist.
		tx, err = bdb.BeginTx(ctx, nil)
		require.NoError(t, err)
		_, err = tx.NewRaw("INSERT INTO workspaces (name) VALUES ('committed')").Exec(ctx)
		require.NoError(t, err)
		res, err := insertOnly.InsertTx(ctx, tx.Tx, pingArgs{Note: "committed"}, nil)
		require.NoError(t, err)
		require.NoError(t, tx.Commit())

		var names []string
		require.NoError(t, bdb.NewRaw("SELECT name FROM workspaces").Scan(ctx, &names))
		require.Equal(t, []string{"committed"}, names)
		list, err := insertOnly.JobList(ctx, river.NewJobListParams())
		require.NoError(t, err)
		require.Len(t, list.Jobs, 1)
		require.Equal(t, res.Job.ID, list.Jobs[0].ID)

		// A working client runs it.
		workers := river.NewWorkers()
		w := &pingWorker{done: make(chan string, 1)}
		river.AddWorker(workers, w)
		client, err := jobs.NewClient(bdb, quiet(), workers, nil)
		require.NoError(t, err)
		runCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		require.NoError(t, client.Start(runCtx))
		t.Cleanup(func() {
			stopCtx, stopCancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer stopCancel()
			require.NoError(t, client.Stop(stopCtx))
		})
		select {
		case note := <-w.done:
			require.Equal(t, "committed", note)
		case <-time.After(30 * time.Second):
			t.Fatal("the job was not worked within 30s")
		}
	})
}

func TestNewClientPeriodicNeedsWorkers(t *testing.T) {
	t.Parallel()
	bdb := dbtest.Open(t, "sqlite")
	periodic := river.NewPeriodicJob(river.PeriodicInterval(time.Minute), func() (river.JobArgs, *river.InsertOpts) {
		return pingArgs{}, nil
	}, nil)
	_, err := jobs.NewClient(bdb, quiet(), nil, []*river.PeriodicJob{periodic})
	require.ErrorContains(t, err, "no workers")
}
