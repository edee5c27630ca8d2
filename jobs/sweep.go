package jobs

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/limits"
	"github.com/crmsync/crmsync/internal/outbound"
)

// SweepArgs is the periodic safety net: every connected workspace with
// queued items gets a flush, whatever happened to the job that should have
// flushed them (a crash between commit and insert cannot happen, since jobs
// are inserted transactionally, but a job discarded after too many failures
// can). It reads the database only: an idle connection costs no CRM call.
type SweepArgs struct{}

// Kind implements river.JobArgs.
func (SweepArgs) Kind() string { return "flush_sweep" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (SweepArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueFlush, MaxAttempts: 3}
}

// SweepWorker runs SweepArgs.
type SweepWorker struct {
	river.WorkerDefaults[SweepArgs]
	db *bun.DB
}

// NewSweepWorker returns the sweep worker.
func NewSweepWorker(db *bun.DB) *SweepWorker { return &SweepWorker{db: db} }

// SweepPeriodic is the periodic job that runs the sweep every interval.
func SweepPeriodic(interval time.Duration) *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(interval),
		func() (river.JobArgs, *river.InsertOpts) { return SweepArgs{}, nil },
		&river.PeriodicJobOpts{ID: "flush_sweep"})
}

// Work implements river.Worker. It also prunes crmsync's call counts that
// left the limit window.
func (w *SweepWorker) Work(ctx context.Context, job *river.Job[SweepArgs]) error {
	if err := limits.Prune(ctx, w.db, time.Now()); err != nil {
		return err
	}
	var ids []int64
	err := w.db.NewSelect().Model((*connection.Connection)(nil)).Column("workspace_id").
		Where("workspace_id IN (?)", w.db.NewSelect().Model((*outbound.Item)(nil)).Column("workspace_id").
			Where("state = ?", outbound.StateQueued)).
		Scan(ctx, &ids)
	if err != nil {
		return fmt.Errorf("sweep: list workspaces with queued items: %w", err)
	}
	client := river.ClientFromContext[*sql.Tx](ctx)
	slot := time.Now().Truncate(time.Minute).UnixMilli()
	for _, ws := range ids {
		if err := insertFlush(ctx, client, nil, FlushArgs{WorkspaceID: ws, NotBefore: slot}); err != nil {
			return err
		}
	}
	return nil
}
