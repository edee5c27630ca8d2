package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/inbound"
)

// DefaultPullInterval is how often each connection is pulled unless
// configured otherwise.
const DefaultPullInterval = 5 * time.Minute

// PullArgs asks for one inbound pull of a workspace's CRM changes. Jobs are
// unique by workspace over every unfinished state, so a workspace never has
// two pulls queued or running; the connection lease keeps a pull and a
// flush of one connection from running at once across replicas.
type PullArgs struct {
	WorkspaceID int64 `json:"workspace_id"`
}

// Kind implements river.JobArgs.
func (PullArgs) Kind() string { return "pull" }

// InsertOpts implements river.JobArgsWithInsertOpts. Pulls run on the
// default queue; a pull that keeps failing is discarded after a few
// attempts and the sweep schedules a fresh one an interval later.
func (PullArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:       river.QueueDefault,
		MaxAttempts: 5,
		UniqueOpts:  uniqueWhileActive(),
	}
}

// Puller runs one pull (*inbound.Puller).
type Puller interface {
	Pull(ctx context.Context, workspaceID int64) (*inbound.Result, error)
}

// PullWorker runs pull jobs.
type PullWorker struct {
	river.WorkerDefaults[PullArgs]

	puller   Puller
	interval time.Duration
	logger   *slog.Logger
}

// NewPullWorker returns the pull worker. interval is the pull interval
// (DefaultPullInterval when zero): a rate-limited pull waits at most that
// long before it is tried again.
func NewPullWorker(p Puller, interval time.Duration, logger *slog.Logger) *PullWorker {
	if interval <= 0 {
		interval = DefaultPullInterval
	}
	return &PullWorker{puller: p, interval: interval, logger: logger}
}

// Timeout bounds one pull under River's rescue delay and under the
// connection lease the pull holds (inbound.Config.LeaseTTL).
func (w *PullWorker) Timeout(*river.Job[PullArgs]) time.Duration { return 3 * time.Minute }

// Work implements river.Worker. Errors become River control flow: another
// sync holding the connection → snooze a moment; rate limited → snooze
// (no attempt spent) for the Retry-After when shorter than the interval,
// else the interval (the gate then holds pulls until the allowance frees);
// a pull that stopped after its page budget → snooze a second and continue,
// which lets a waiting flush take the lease in between; other errors retry.
func (w *PullWorker) Work(ctx context.Context, job *river.Job[PullArgs]) error {
	res, err := w.puller.Pull(ctx, job.Args.WorkspaceID)
	var cerr *connector.Error
	switch {
	case errors.Is(err, connection.ErrBusy):
		return river.JobSnooze(2 * time.Second)
	case errors.Is(err, connector.ErrRateLimited) && errors.As(err, &cerr):
		d := w.interval
		if cerr.RetryAfter > 0 && cerr.RetryAfter < d {
			d = cerr.RetryAfter
		}
		return river.JobSnooze(d)
	case err != nil:
		return err
	case res.More:
		return river.JobSnooze(time.Second)
	}
	return nil
}

// PullSweepArgs is the periodic job that schedules pulls: every connected
// workspace whose last pull started at least Interval ago gets a PullArgs
// job. It reads the database only.
type PullSweepArgs struct {
	Interval time.Duration `json:"interval"`
}

// Kind implements river.JobArgs.
func (PullSweepArgs) Kind() string { return "pull_sweep" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (PullSweepArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: river.QueueDefault, MaxAttempts: 3}
}

// PullSweepWorker runs PullSweepArgs.
type PullSweepWorker struct {
	river.WorkerDefaults[PullSweepArgs]
	db *bun.DB
}

// NewPullSweepWorker returns the pull sweep worker.
func NewPullSweepWorker(db *bun.DB) *PullSweepWorker { return &PullSweepWorker{db: db} }

// PullSweepPeriodic is the periodic job that runs the pull sweep every
// every (a minute in production), pulling each connection once per
// pullInterval (DefaultPullInterval when zero). River runs periodic jobs on
// the elected leader only, so replicas do not multiply pulls.
func PullSweepPeriodic(every, pullInterval time.Duration) *river.PeriodicJob {
	if pullInterval <= 0 {
		pullInterval = DefaultPullInterval
	}
	return river.NewPeriodicJob(river.PeriodicInterval(every),
		func() (river.JobArgs, *river.InsertOpts) { return PullSweepArgs{Interval: pullInterval}, nil },
		&river.PeriodicJobOpts{ID: "pull_sweep", RunOnStart: true})
}

// Work implements river.Worker.
func (w *PullSweepWorker) Work(ctx context.Context, job *river.Job[PullSweepArgs]) error {
	interval := job.Args.Interval
	if interval <= 0 {
		interval = DefaultPullInterval
	}
	ids, err := inbound.Due(ctx, w.db, time.Now().Add(-interval))
	if err != nil {
		return fmt.Errorf("pull sweep: %w", err)
	}
	client := river.ClientFromContext[*sql.Tx](ctx)
	for _, ws := range ids {
		if _, err := client.Insert(ctx, PullArgs{WorkspaceID: ws}, nil); err != nil {
			return fmt.Errorf("pull sweep: insert pull of workspace %d: %w", ws, err)
		}
	}
	return nil
}
