package push

import (
	"database/sql"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/internal/connection"
)

func TestRefillRate(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 4, 10, 30, 0, 0, time.UTC)
	hour := now.Truncate(time.Hour)
	tests := map[string]struct {
		budget int64
		hourly map[time.Time]int64
		want   float64 // calls per second
	}{
		"nothing spent: the budget over the time to the hour boundary 24 h ahead": {
			budget: 86_400, want: 86_400 / (23.5 * 3600),
		},
		"all spent this hour: nothing until it leaves the window": {
			budget: 1000, hourly: map[time.Time]int64{hour: 1000}, want: 0,
		},
		"spent 23 hours ago: that hour leaves in 30 minutes, the budget binds": {
			// 100 calls left over the 30 minutes until it leaves is a
			// looser bound than the whole budget over 23.5 hours.
			budget: 1000, hourly: map[time.Time]int64{hour.Add(-23 * time.Hour): 900},
			want: 1000 / (23.5 * 3600),
		},
		"spent this hour: the rest spread until this hour leaves": {
			budget: 1000, hourly: map[time.Time]int64{hour: 400},
			want: 600 / (23.5 * 3600),
		},
		"overspent (the limit was lowered)": {
			budget: 100, hourly: map[time.Time]int64{hour.Add(-5 * time.Hour): 500}, want: 0,
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			require.InDelta(t, tt.want, refillRate(tt.budget, tt.hourly, now), 1e-9)
		})
	}
}

// TestRefillRateNeverOverspends spends at the computed rate, recomputed
// every minute as the pacer does, for three days against a rolling 24-hour
// window of hourly buckets, and checks the window's count never passes the
// budget.
func TestRefillRateNeverOverspends(t *testing.T) {
	t.Parallel()
	const budget = 5000
	start := time.Date(2026, 12, 4, 0, 17, 0, 0, time.UTC)
	hourly := map[time.Time]int64{}
	carry := 0.0
	// A burst first: half the budget at once.
	hourly[start.Truncate(time.Hour)] = budget / 2
	for now := start; now.Before(start.Add(72 * time.Hour)); now = now.Add(time.Minute) {
		for h := range hourly {
			if h.Before(now.Truncate(time.Hour).Add(-23 * time.Hour)) {
				delete(hourly, h)
			}
		}
		carry += refillRate(budget, hourly, now) * 60
		whole := int64(carry)
		carry -= float64(whole)
		hourly[now.Truncate(time.Hour)] += whole
		var used int64
		for _, n := range hourly {
			used += n
		}
		require.LessOrEqual(t, used, int64(budget), "window count at %s", now)
	}
	var used int64
	for _, n := range hourly {
		used += n
	}
	require.Greater(t, used, int64(budget*9/10), "the steady state spends (nearly) the whole budget")
}

func TestBucket(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 4, 10, 30, 0, 0, time.UTC)
	c := &connection.Connection{}
	require.Equal(t, 6.0, bucketTokens(c, 0.5, 6, now), "a connection never paced has a full bucket")
	require.Equal(t, now, NextStart(c, now))

	c.PaceTokens = sql.NullFloat64{Float64: -1, Valid: true}
	c.PaceRate = sql.NullFloat64{Float64: 0.5, Valid: true}
	c.PaceAt = bun.NullTime{Time: now.Add(-time.Second)}
	tokens := bucketTokens(c, 0.5, 6, now)
	require.InDelta(t, -0.5, tokens, 1e-9, "refilled at the rate since the last flush")
	require.Equal(t, 3*time.Second, bucketWait(tokens, 0.5, now), "in debt: wait for one whole call")
	require.Equal(t, now.Add(3*time.Second), NextStart(c, now))
	require.Equal(t, now.Add(3*time.Second), NextStart(c, now.Add(time.Second)),
		"every change of a dry spell gets the same start")

	c.PaceAt = bun.NullTime{Time: now.Add(-time.Hour)}
	require.Equal(t, 6.0, bucketTokens(c, 0.5, 6, now), "capped at the burst")
	require.Zero(t, bucketWait(6, 0.5, now))
	require.Equal(t, 30*time.Minute+time.Second, bucketWait(0, 0, now), "no rate: until calls leave the window on the hour")
}

func TestBudgetPerDay(t *testing.T) {
	t.Parallel()
	cfg := PaceConfig{}
	cfg.defaults()
	c := &connection.Connection{}
	got, src := budgetPerDay(c, 0, cfg)
	require.Equal(t, int64(7500), got)
	require.Equal(t, BudgetAssumed, src)

	c.APIMax = sql.NullInt64{Int64: 100_000, Valid: true}
	c.APIUsed = sql.NullInt64{Int64: 30_000, Valid: true}
	got, src = budgetPerDay(c, 10_000, cfg)
	require.Equal(t, int64(40_000), got, "half of what other clients (20,000) leave")
	require.Equal(t, BudgetShare, src)

	c.DailyLimit = sql.NullInt64{Int64: 1234, Valid: true}
	got, src = budgetPerDay(c, 10_000, cfg)
	require.Equal(t, int64(1234), got, "the crmsync daily limit wins")
	require.Equal(t, BudgetDailyLimit, src)
}
