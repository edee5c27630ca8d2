package push

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// FlushTimeout is how long one flush may take: the River flush job's
// timeout (jobs, FlushWorker.Timeout), to which the claims are fitted and
// by which the forecast plans a flush cut off.
const FlushTimeout = 2 * time.Minute

// minClaim is the smallest claim the adaptive limit goes down to: one
// sObject Collections call's worth of records.
const minClaim = 200

// claimLimits sizes each workspace's next claim so a flush fits in the
// time its caller gives it (a River flush job's timeout). A claim is sized
// for call counts (Config.MaxItems coalesces a burst whole), but an org
// that spends ~10 ms a record (triggers, flows, sharing rules) writes only
// about 12,000 records in a two-minute job: a full claim of 50,000 would be
// cut off every time, re-reading and re-matching all of it on each retry,
// and a big import would never finish (docs/benchmarks.md, "Import").
//
// The rule: a flush cut off by its deadline halves the next claim; a flush
// of a full claim that used more than half its time shrinks the next claim
// in proportion; one that used less than a quarter doubles it, up to
// MaxItems. The limit is kept per process: a restarted or another replica
// starts at MaxItems and learns again within a few flushes. Flushes without
// a deadline (tests, the CLI) always claim MaxItems.
type claimLimits struct {
	max int
	mu  sync.Mutex
	by  map[int64]int
}

func newClaimLimits(max int) *claimLimits {
	return &claimLimits{max: max, by: map[int64]int{}}
}

// limit is the workspace's next claim size.
func (c *claimLimits) limit(ctx context.Context, workspaceID int64) int {
	if _, ok := ctx.Deadline(); !ok {
		return c.max
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.by[workspaceID]; ok {
		return n
	}
	return c.max
}

// learn adjusts the workspace's claim after a flush that claimed claimed
// items (full when it claimed its whole limit), ran from start, and ended
// with err, under ctx (the flush's caller's context). It returns the new
// limit and whether it changed.
func (c *claimLimits) learn(ctx context.Context, workspaceID int64, claimed int, full bool, start time.Time, err error) (int, bool) {
	deadline, ok := ctx.Deadline()
	if !ok || claimed == 0 {
		return c.max, false
	}
	budget := deadline.Sub(start)
	took := time.Since(start)
	c.mu.Lock()
	defer c.mu.Unlock()
	cur, ok := c.by[workspaceID]
	if !ok {
		cur = c.max
	}
	next := cur
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		next = min(cur, claimed) / 2
	case err != nil || !full || budget <= 0:
		// A failed flush says nothing of its size; a partial claim drained
		// the queue.
	case took > budget/2:
		next = int(float64(claimed) * float64(budget/2) / float64(took))
	case took < budget/4:
		next = cur * 2
	}
	next = max(minClaim, min(c.max, next))
	if next == c.max {
		delete(c.by, workspaceID)
	} else {
		c.by[workspaceID] = next
	}
	return next, next != cur
}

// flushLimited runs a flush with the workspace's claim limit and learns
// from how it went.
func (e *Engine) flushLimited(ctx context.Context, f *flush) (*Result, error) {
	ws := f.c.WorkspaceID
	f.claimLimit = e.claims.limit(ctx, ws)
	start := time.Now()
	res, err := f.run(ctx)
	if next, changed := e.claims.learn(ctx, ws, f.claimed, f.claimed == f.claimLimit, start, err); changed {
		e.logger.Info("flush claim resized to fit the flush's time", slog.Int64("workspace_id", ws),
			slog.Int("claimed", f.claimed), slog.Duration("took", time.Since(start).Round(time.Millisecond)),
			slog.Int("next_claim", next), slog.Bool("cut_off", errors.Is(ctx.Err(), context.DeadlineExceeded)))
	}
	return res, err
}
