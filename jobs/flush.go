package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/push"
)

// QueueFlush is the River queue flush jobs run on.
const QueueFlush = "flush"

// FlushArgs asks for one flush of a workspace's outbound queue.
//
// Scheduling (docs/architecture.md#performance-model): time is cut into windows of one interval
// (aligned on the interval's multiples, see flushSlot). A change is flushed
// as soon as it arrives unless a flush of the workspace already started in
// the current window; then at the next window's start. NotBefore (unix
// milliseconds; immediate slots are whole seconds) is part of the args, so
// all changes arriving for the same slot share one job (River unique by
// args), while a change arriving during a running flush gets the next slot.
//
// River moves scheduled jobs to available every few seconds
// (riverSchedulerCadence), too coarse for a 10 s interval, so a job is
// scheduled that much ahead of its slot and waits out the rest itself.
type FlushArgs struct {
	WorkspaceID int64 `json:"workspace_id"`
	NotBefore   int64 `json:"not_before_ms"`
	// Continue marks the follow-up of a full claim: a backlog drains
	// back to back, without waiting for the interval.
	Continue bool `json:"continue,omitempty"`
}

// Kind implements river.JobArgs.
func (FlushArgs) Kind() string { return "flush" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (FlushArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:       QueueFlush,
		MaxAttempts: 50,
		UniqueOpts:  uniqueWhileActive(),
	}
}

// uniqueWhileActive makes a job unique by its arguments among jobs not yet
// finished: completed, cancelled and discarded jobs do not block a new one
// (a change arriving after a flush completed must get its own flush).
func uniqueWhileActive() river.UniqueOpts {
	return river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
		rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
		rivertype.JobStateRunning, rivertype.JobStateScheduled,
	}}
}

// Flusher runs one flush (the engine).
type Flusher interface {
	Flush(ctx context.Context, workspaceID int64) (*push.Result, error)
}

// Scheduler inserts flush jobs. It implements outbound.Scheduler.
type Scheduler struct {
	client   *river.Client[*sql.Tx]
	interval time.Duration
	// settle is set under budget pacing (WithPacing).
	settle time.Duration
	now    func() time.Time
}

// WithPacing switches the scheduler from fixed windows to budget pacing
// (push.PaceConfig): a change is flushed settle after it arrives while
// the connection's bucket holds a call, else when the bucket will have
// refilled one. The engine must pace too (push.Config.Pace.Enabled).
func (s *Scheduler) WithPacing(settle time.Duration) *Scheduler {
	s.settle = settle
	return s
}

// settleSlot is t plus settle, rounded up to a fifth of settle: changes
// arriving within a few milliseconds of each other (the fields of one form
// save) share one job (River unique by args), and a flush starts at most
// 1.2 settle after its first change. A change arriving later than that
// still goes with the flush if it is queued when the flush claims.
func settleSlot(t time.Time, settle time.Duration) time.Time {
	grid := max(settle/5, time.Millisecond)
	at := t.Add(settle)
	if r := at.Truncate(grid); r.Before(at) {
		return r.Add(grid)
	}
	return at
}

// NewScheduler returns a Scheduler flushing each workspace at most once per
// interval window under a trickle.
func NewScheduler(client *river.Client[*sql.Tx], interval time.Duration) *Scheduler {
	return &Scheduler{client: client, interval: interval, now: time.Now}
}

// ScheduleFlushTx implements outbound.Scheduler: it inserts the flush in the
// transaction that queued the items.
func (s *Scheduler) ScheduleFlushTx(ctx context.Context, tx bun.Tx, workspaceID int64) error {
	if s.settle > 0 {
		return s.schedulePaced(ctx, tx, workspaceID)
	}
	var last bun.NullTime
	err := tx.NewSelect().Model((*connection.Connection)(nil)).Column("last_flush_at").
		Where("workspace_id = ?", workspaceID).Scan(ctx, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // not connected: connecting schedules a flush
	}
	if err != nil {
		return fmt.Errorf("schedule flush of workspace %d: %w", workspaceID, err)
	}
	now := s.now()
	at := flushSlot(last.Time, now, s.interval)
	if at.Equal(now) {
		at = now.Truncate(time.Second) // changes within a second share one job
	}
	pending, err := pendingFlush(ctx, tx, workspaceID, at)
	if err != nil || pending {
		return err
	}
	return insertFlush(ctx, s.client, tx.Tx, FlushArgs{WorkspaceID: workspaceID, NotBefore: at.UnixMilli()})
}

// schedulePaced schedules the flush of a change under budget pacing.
func (s *Scheduler) schedulePaced(ctx context.Context, tx bun.Tx, workspaceID int64) error {
	c := new(connection.Connection)
	err := tx.NewSelect().Model(c).Column("pace_tokens", "pace_rate", "pace_at").
		Where("workspace_id = ?", workspaceID).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // not connected: connecting schedules a flush
	}
	if err != nil {
		return fmt.Errorf("schedule flush of workspace %d: %w", workspaceID, err)
	}
	now := s.now()
	at := settleSlot(push.NextStart(c, now), s.settle)
	pending, err := pendingFlush(ctx, tx, workspaceID, at)
	if err != nil || pending {
		return err
	}
	return insertFlush(ctx, s.client, tx.Tx, FlushArgs{WorkspaceID: workspaceID, NotBefore: at.UnixMilli()})
}

// pendingFlush reports whether the workspace has a flush job that has not
// started yet and is due no later than at: it will claim the items this
// transaction queues (it starts after the commit, or, if it starts before,
// its follow-up measures the queue after it). Ingest then inserts no job:
// River's unique insert is an INSERT … ON CONFLICT DO UPDATE, which
// write-locks the existing job row until the inserting transaction commits,
// so every ingest of a workspace used to wait for the one before it
// (docs/benchmarks.md, ingest). A plain read takes no lock.
func pendingFlush(ctx context.Context, tx bun.Tx, workspaceID int64, at time.Time) (bool, error) {
	q := tx.NewSelect().Table("river_job").ColumnExpr("1").
		Where("kind = ? AND queue = ? AND state IN ('available', 'scheduled')", FlushArgs{}.Kind(), QueueFlush)
	if tx.Dialect().Name() == dialect.PG {
		q = q.Where("args @> ?::jsonb", fmt.Sprintf(`{"workspace_id": %d}`, workspaceID)).
			Where("(args->>'not_before_ms')::bigint <= ?", at.UnixMilli())
	} else {
		q = q.Where("json_extract(args, '$.workspace_id') = ?", workspaceID).
			Where("json_extract(args, '$.not_before_ms') <= ?", at.UnixMilli())
	}
	ok, err := q.Exists(ctx)
	if err != nil {
		return false, fmt.Errorf("look up pending flush of workspace %d: %w", workspaceID, err)
	}
	return ok, nil
}

// ScheduleNow schedules an immediate flush outside any transaction (after
// connecting, retrying failed items, resuming).
func (s *Scheduler) ScheduleNow(ctx context.Context, workspaceID int64) error {
	return insertFlush(ctx, s.client, nil, FlushArgs{WorkspaceID: workspaceID, NotBefore: s.now().Truncate(time.Second).UnixMilli(), Continue: true})
}

// riverSchedulerCadence is how often River makes scheduled jobs available
// (its fixed job scheduler interval).
const riverSchedulerCadence = 5 * time.Second

func insertFlush(ctx context.Context, client *river.Client[*sql.Tx], tx *sql.Tx, args FlushArgs) error {
	opts := &river.InsertOpts{}
	if lead := time.Until(time.UnixMilli(args.NotBefore)) - riverSchedulerCadence; lead > 0 {
		opts.ScheduledAt = time.Now().Add(lead)
	}
	var err error
	if tx != nil {
		_, err = client.InsertTx(ctx, tx, args, opts)
	} else {
		_, err = client.Insert(ctx, args, opts)
	}
	if err != nil {
		return fmt.Errorf("insert flush job for workspace %d: %w", args.WorkspaceID, err)
	}
	return nil
}

// FlushWorker runs flush jobs and schedules what comes next: an immediate
// follow-up after a full claim, a check on the next tick while paused, and a
// flush when the earliest backed-off item is due.
type FlushWorker struct {
	river.WorkerDefaults[FlushArgs]

	db       *bun.DB
	engine   Flusher
	interval time.Duration
	settle   time.Duration
	logger   *slog.Logger
}

// WithPacing switches the worker to budget pacing (Scheduler.WithPacing):
// the engine decides when a flush may start; the worker waits as it says.
func (w *FlushWorker) WithPacing(settle time.Duration) *FlushWorker {
	w.settle = settle
	return w
}

// NewFlushWorker returns the flush worker.
func NewFlushWorker(db *bun.DB, e Flusher, interval time.Duration, logger *slog.Logger) *FlushWorker {
	return &FlushWorker{db: db, engine: e, interval: interval, logger: logger}
}

// Timeout bounds one flush well under River's rescue delay.
func (w *FlushWorker) Timeout(*river.Job[FlushArgs]) time.Duration { return push.FlushTimeout }

// Work implements river.Worker.
func (w *FlushWorker) Work(ctx context.Context, job *river.Job[FlushArgs]) error {
	ws := job.Args.WorkspaceID
	if err := waitUntil(ctx, time.UnixMilli(job.Args.NotBefore)); err != nil {
		return river.JobSnooze(0) // shutting down: run again on the next start
	}
	if !job.Args.Continue && w.settle == 0 {
		wait, err := w.untilInterval(ctx, ws)
		if err != nil {
			return err
		}
		if wait > riverSchedulerCadence {
			return river.JobSnooze(wait - riverSchedulerCadence)
		}
		if err := waitUntil(ctx, time.Now().Add(wait)); err != nil {
			return river.JobSnooze(0)
		}
	}
	res, err := w.engine.Flush(ctx, ws)
	// Paced, another flush of the connection is running: wait for it here
	// rather than snooze, which River would hold for its scheduler cadence.
	for deadline := time.Now().Add(riverSchedulerCadence); w.settle > 0 && errors.Is(err, connection.ErrBusy) && time.Now().Before(deadline); {
		if werr := waitUntil(ctx, time.Now().Add(w.settle/2)); werr != nil {
			return river.JobSnooze(0)
		}
		res, err = w.engine.Flush(ctx, ws)
	}
	// Paced: a short wait for the bucket is waited out here (River makes
	// snoozed jobs available only every few seconds); a longer one goes
	// to a job of its own, below.
	for err == nil && res.Wait > 0 && res.Wait <= riverSchedulerCadence {
		if werr := waitUntil(ctx, time.Now().Add(res.Wait)); werr != nil {
			return river.JobSnooze(0)
		}
		res, err = w.engine.Flush(ctx, ws)
	}
	var cerr *connector.Error
	switch {
	case errors.Is(err, connection.ErrBusy):
		return river.JobSnooze(time.Second)
	case errors.Is(err, connector.ErrRateLimited) && errors.As(err, &cerr):
		// Costs no attempt and drops nothing. Back on the next tick (sooner
		// if the CRM says so): the gate holds further calls until a probe
		// finds the allowance back, so a tick costs no CRM call.
		d := w.interval
		if cerr.RetryAfter > 0 && cerr.RetryAfter < d {
			d = cerr.RetryAfter
		}
		return river.JobSnooze(d)
	case err != nil:
		return err
	}
	client := river.ClientFromContext[*sql.Tx](ctx)
	next, ok, err := w.next(ctx, ws, res)
	if err != nil || !ok {
		return err
	}
	// Never the running job's own args, or River would merge the two.
	next.NotBefore = max(next.NotBefore, job.Args.NotBefore+1)
	return insertFlush(ctx, client, nil, next)
}

// waitUntil sleeps until t (at most a River scheduler cadence and a bit,
// since jobs are made available that much early), or until ctx ends.
func waitUntil(ctx context.Context, t time.Time) error {
	d := min(time.Until(t), riverSchedulerCadence+time.Second)
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// untilInterval returns how long to wait before the workspace may flush
// again (flushSlot): at most one flush per interval window.
func (w *FlushWorker) untilInterval(ctx context.Context, ws int64) (time.Duration, error) {
	var last bun.NullTime
	err := w.db.NewSelect().Model((*connection.Connection)(nil)).Column("last_flush_at").
		Where("workspace_id = ?", ws).Scan(ctx, &last)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && last.IsZero()) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read last flush of workspace %d: %w", ws, err)
	}
	now := time.Now()
	return flushSlot(last.Time, now, w.interval).Sub(now), nil
}

// flushSlot is when a workspace whose last flush started at last may flush
// next, seen at now: at once, unless a flush already started in the current
// window (the interval's multiples since the zero time), and then at the
// next window's start. At most one flush per window is never more than a
// fixed tick every interval costs, and a change never waits past the next
// window's start, where such a tick would flush it too. Pacing on "last
// flush + interval" instead let the delay between a change and its flush's
// start pile up, change after change, when changes came about one interval
// apart (docs/benchmarks.md, trickle).
func flushSlot(last, now time.Time, interval time.Duration) time.Time {
	window := now.Truncate(interval)
	if !last.IsZero() && !last.Before(window) {
		return window.Add(interval)
	}
	return now
}

// next decides the follow-up flush, if any.
func (w *FlushWorker) next(ctx context.Context, ws int64, res *push.Result) (FlushArgs, bool, error) {
	now := time.Now()
	if res.More && res.Paused == push.PauseNone {
		return FlushArgs{WorkspaceID: ws, NotBefore: now.UnixMilli(), Continue: true}, true, nil
	}
	if res.Paused == push.PauseNotConnected {
		return FlushArgs{}, false, nil // connecting schedules a flush
	}
	depth, err := outbound.Measure(ctx, w.db, ws)
	if err != nil || depth.Queued == 0 {
		return FlushArgs{}, false, err
	}
	if res.Wait > 0 { // paced, the bucket is dry: when it holds a call
		at := now.Add(res.Wait)
		if depth.Due.After(at) {
			at = depth.Due
		}
		return FlushArgs{WorkspaceID: ws, NotBefore: at.UnixMilli()}, true, nil
	}
	at := now.Truncate(w.interval).Add(w.interval) // the next window
	if w.settle > 0 && res.Paused == push.PauseNone && res.Batch != nil {
		// Paced: items that came during the flush go after a settle
		// delay (the engine waits for the bucket), backed-off ones when
		// due. A flush that found nothing due (items of records backed
		// off) checks again on the next window, as on fixed windows.
		at = settleSlot(now, w.settle)
	}
	if res.Paused == push.PauseNone && depth.Due.After(now) && depth.Due.Before(at) {
		at = depth.Due
	}
	return FlushArgs{WorkspaceID: ws, NotBefore: at.UnixMilli()}, true, nil
}
