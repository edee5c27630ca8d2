package push

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/limits"
)

// PaceConfig tunes budget pacing of outbound flushes (docs/sync.md,
// "Pacing"). Each connection spends its CRM calls from a token bucket
// whose content is counted in calls and whose refill rate spreads the
// budget left over the rolling 24 hours. A flush starts only with at least
// one call in the bucket, and takes what it spent out of it: a burst's
// flush may leave the bucket in debt, which the next flush waits out.
//
// The bucket lives on the connection row (pace_tokens, pace_rate,
// pace_at) and is read and written only by the flush holding the
// connection's lease, so every replica shares it. golang.org/x/time/rate
// keeps its bucket in memory, one per process: it cannot be shared this way.
type PaceConfig struct {
	// Enabled turns pacing on (--flush-schedule budget). Off, the engine
	// flushes whenever asked and the caller paces (fixed windows).
	Enabled bool
	// Share is the fraction of the org's daily allowance left after other
	// clients' usage that crmsync spends when no crmsync daily limit is
	// set (default 0.5).
	Share float64
	// Burst is the bucket's capacity in calls: how many calls may go back
	// to back after a quiet spell (default 6, a few one- or two-call
	// flushes).
	Burst float64
	// FallbackAllowance is the org's daily allowance assumed while the CRM
	// has not reported one (default 15,000, Salesforce's smallest).
	FallbackAllowance int64
}

func (c *PaceConfig) defaults() {
	if c.Share <= 0 || c.Share > 1 {
		c.Share = 0.5
	}
	if c.Burst < 1 {
		c.Burst = 6
	}
	if c.FallbackAllowance <= 0 {
		c.FallbackAllowance = 15_000
	}
}

// Budget sources, as the overview names them.
const (
	BudgetDailyLimit = "crmsync daily limit"
	BudgetShare      = "share of the Salesforce allowance"
	BudgetAssumed    = "assumed allowance (no usage reported yet)"
)

// Pace is a connection's pacing state at one moment.
type Pace struct {
	// Enabled is false when flushes run on fixed windows.
	Enabled bool
	// BudgetPerDay is the calls crmsync may make in any 24 hours, and
	// Source where that figure comes from.
	BudgetPerDay int64
	Source       string
	// Spent is the calls crmsync made in the last 24 hours (inbound
	// included: it shares the budget).
	Spent int64
	// Rate is the bucket's refill rate in calls per second.
	Rate float64
	// Tokens is the bucket's content in calls (negative: in debt after a
	// burst), Burst its capacity.
	Tokens, Burst float64
	// Wait is how long a flush must wait for a call's worth of tokens
	// (zero: it may start now).
	Wait time.Duration
}

// Pace returns the workspace's pacing state now.
func (e *Engine) Pace(ctx context.Context, workspaceID int64) (Pace, error) {
	c, err := e.conns.Get(ctx, workspaceID)
	if err != nil {
		return Pace{}, err
	}
	return e.pace(ctx, e.db, c, e.now().UTC())
}

func (e *Engine) pace(ctx context.Context, db bun.IDB, c *connection.Connection, now time.Time) (Pace, error) {
	cfg := e.cfg.Pace
	hours, err := limits.Hourly(ctx, db, c.WorkspaceID, now)
	if err != nil {
		return Pace{}, err
	}
	p := Pace{Enabled: cfg.Enabled, Burst: cfg.Burst}
	hourly := make(map[time.Time]int64, len(hours))
	for _, h := range hours {
		hourly[h.Hour] = h.Calls
		p.Spent += h.Calls
	}
	p.BudgetPerDay, p.Source = budgetPerDay(c, p.Spent, cfg)
	p.Rate = refillRate(p.BudgetPerDay, hourly, now)
	p.Tokens = bucketTokens(c, p.Rate, p.Burst, now)
	p.Wait = bucketWait(p.Tokens, p.Rate, now)
	if p.Spent >= p.BudgetPerDay {
		// Spent: nothing until calls leave the window, however full the bucket.
		p.Wait = max(p.Wait, untilNextHour(now))
	}
	return p, nil
}

// budgetPerDay is the crmsync daily limit when one is set; else the
// configured share of the org's allowance left after other clients' usage
// (the usage Salesforce reports, minus crmsync's own calls).
func budgetPerDay(c *connection.Connection, spent int64, cfg PaceConfig) (int64, string) {
	if c.DailyLimit.Valid {
		return c.DailyLimit.Int64, BudgetDailyLimit
	}
	allowance, others, source := cfg.FallbackAllowance, int64(0), BudgetAssumed
	if c.APIMax.Valid && c.APIMax.Int64 > 0 {
		allowance, source = c.APIMax.Int64, BudgetShare
		if c.APIUsed.Valid {
			others = max(c.APIUsed.Int64-spent, 0)
		}
	}
	return int64(cfg.Share * float64(max(allowance-others, 0))), source
}

// refillRate is the budget left over the time left, in calls per second,
// for a rolling 24-hour window counted in hourly buckets (package limits):
// the highest steady rate at which the window's count stays within budget
// at every hour boundary of the next 24 hours. Just before the boundary k
// hours ahead the window still counts the hours from that boundary minus
// 24 hours, so the budget left for the time until it is the budget minus
// those hours' calls. Within an hour the count only grows, so the
// boundaries are where it peaks. With nothing spent this is about the
// budget over 24 hours; after a burst it drops until the burst's hour
// leaves the window.
func refillRate(budget int64, hourly map[time.Time]int64, now time.Time) float64 {
	hour := now.UTC().Truncate(time.Hour)
	rate := math.Inf(1)
	for k := 1; k <= 24; k++ {
		boundary := hour.Add(time.Duration(k) * time.Hour)
		var still int64
		for h, n := range hourly {
			if !h.Before(boundary.Add(-limits.Window)) {
				still += n
			}
		}
		rate = min(rate, float64(budget-still)/boundary.Sub(now).Seconds())
	}
	return max(rate, 0)
}

// bucketTokens is the bucket's content at now: what the last flush left,
// refilled since at rate, capped at burst. A connection that never flushed
// under pacing has a full bucket.
func bucketTokens(c *connection.Connection, rate, burst float64, now time.Time) float64 {
	if c.PaceAt.IsZero() || !c.PaceTokens.Valid {
		return burst
	}
	elapsed := max(now.Sub(c.PaceAt.Time).Seconds(), 0)
	return min(c.PaceTokens.Float64+rate*elapsed, burst)
}

// bucketWait is how long until the bucket holds one call.
func bucketWait(tokens, rate float64, now time.Time) time.Duration {
	if tokens >= 1 {
		return 0
	}
	if rate <= 0 {
		return untilNextHour(now) // calls leave the window on the hour
	}
	return time.Duration((1 - tokens) / rate * float64(time.Second))
}

func untilNextHour(now time.Time) time.Duration {
	return now.Truncate(time.Hour).Add(time.Hour).Sub(now) + time.Second
}

// NextStart is when a flush of connection c may start at the earliest,
// seen at now from the bucket the last flush stored (no query): now when
// the bucket holds a call, else when it will have refilled one. The flush
// itself decides with a fresh rate; this only spares a job that would
// find the bucket dry. Every change arriving while the bucket is dry gets
// the same time, so they share one job.
func NextStart(c *connection.Connection, now time.Time) time.Time {
	if c.PaceAt.IsZero() || !c.PaceTokens.Valid {
		return now
	}
	rate := c.PaceRate.Float64
	tokens := c.PaceTokens.Float64 + rate*max(now.Sub(c.PaceAt.Time).Seconds(), 0)
	return now.Add(bucketWait(tokens, rate, now))
}

// StoredPace is a connection's pace as its last paced flush left it, seen
// at now with spent calls in the window (for the overview and metrics,
// which do not know the engine's settings). Enabled is false when no flush
// was ever paced.
func StoredPace(c *connection.Connection, spent int64, now time.Time) Pace {
	if c.PaceAt.IsZero() || !c.PaceTokens.Valid {
		return Pace{Spent: spent}
	}
	p := Pace{Enabled: true, Spent: spent, BudgetPerDay: c.PaceBudget.Int64, Rate: c.PaceRate.Float64, Burst: c.PaceBurst.Float64}
	if c.DailyLimit.Valid {
		p.Source = BudgetDailyLimit
	} else {
		p.Source = BudgetShare
	}
	p.Tokens = bucketTokens(c, p.Rate, max(p.Burst, 1), now)
	p.Wait = bucketWait(p.Tokens, p.Rate, now)
	return p
}

// spend takes a flush's calls out of the bucket, in the flush's commit.
func (f *flush) spend(ctx context.Context, tx bun.IDB) error {
	if !f.pace.Enabled {
		return nil
	}
	tokens := f.pace.Tokens - float64(f.meter.Calls)
	if err := f.e.conns.With(tx).SetPace(ctx, f.c, tokens, f.pace.Rate, f.pace.Burst, f.pace.BudgetPerDay, f.now); err != nil {
		return fmt.Errorf("spend %d calls from the bucket: %w", f.meter.Calls, err)
	}
	return nil
}
