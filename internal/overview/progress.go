package overview

import (
	"context"
	"time"

	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/synclog"
)

// ProgressWindow is how far back the drain rate looks: long enough to
// span several flushes (a flush finishes its records at once, so the rate
// moves in flush-sized steps), short enough to follow a slowdown.
const ProgressWindow = 5 * time.Minute

// Progress is how far a workspace's outbound backlog has come, computed
// from the database alone so that every replica reports the same
// (docs/sync.md, "Progress"). The backlog began when its oldest
// still-queued item was queued; it ends when the queue is empty.
type Progress struct {
	// Since is when the oldest queued item was queued.
	Since time.Time
	// Done counts the records the flushes finished since then
	// (synclog.Finished: written, skipped, or parked as failed).
	Done int64
	// Remaining counts the distinct records with queued items.
	Remaining int64
	// PerMinute is the records finished per minute over the last
	// ProgressWindow, or since Since when that is later; 0 when none.
	PerMinute float64
	// ETA is when Remaining runs out at that rate; zero while the rate
	// is 0 (nothing finished in the window: not started, or stalled).
	ETA time.Time
}

// Total is Done + Remaining: the records of the backlog as far as it is
// known now (it grows when changes to new records arrive).
func (p Progress) Total() int64 { return p.Done + p.Remaining }

// GetProgress computes the progress at now of a workspace with queued
// items, the oldest queued at since (outbound.Depth.OldestQueued). Two
// reads: the distinct queued records, and the backlog's batches in the
// sync log.
func GetProgress(ctx context.Context, db bun.IDB, workspaceID int64, since, now time.Time) (Progress, error) {
	remaining, err := outbound.QueuedRecords(ctx, db, workspaceID)
	if err != nil {
		return Progress{}, err
	}
	from := since
	if w := now.Add(-ProgressWindow); w.After(from) {
		from = w
	}
	f, err := synclog.FinishedSince(ctx, db, workspaceID, since, from)
	if err != nil {
		return Progress{}, err
	}
	return newProgress(since, f, remaining, from, now), nil
}

// newProgress derives the rate and ETA from records finished since since,
// f.Recent of them at or after from.
func newProgress(since time.Time, f synclog.Finished, remaining int64, from, now time.Time) Progress {
	p := Progress{Since: since, Done: f.Records, Remaining: remaining}
	span := now.Sub(from)
	if span <= 0 || f.Recent <= 0 {
		return p
	}
	p.PerMinute = float64(f.Recent) / span.Minutes()
	// remaining at recent per span; in float64, where span × remaining
	// cannot overflow (int64 nanoseconds would past ~30,000 records).
	p.ETA = now.Add(time.Duration(float64(span) * float64(remaining) / float64(f.Recent)))
	return p
}
