package push

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/internal/limits"
)

func TestDrainTimeWaitsForTheBucket(t *testing.T) {
	t.Parallel()
	// Fixed windows: the flushes' calls back to back.
	require.Equal(t, 20*time.Second, drainTime([]int{10, 10}, time.Second, Pace{}))
	// Paced, a full bucket of 6 refilled at one call a second: the first
	// flush starts at once and leaves the bucket 4 calls in debt, which
	// the second waits out (5 s to hold one call again).
	p := Pace{Enabled: true, Tokens: 6, Burst: 6, Rate: 1}
	require.Equal(t, 25*time.Second, drainTime([]int{10, 10}, time.Second, p))
	// A dry bucket with no refill rate waits at the budget over a day.
	p = Pace{Enabled: true, Tokens: 0, Burst: 6, BudgetPerDay: 86_400}
	require.Equal(t, 11*time.Second, drainTime([]int{10}, time.Second, p))
}

func TestBudgetReleaseFollowsTheWindow(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 1, 12, 30, 0, 0, time.UTC)
	hours := make([]limits.HourCalls, 24)
	for i := range hours {
		hours[i].Hour = now.Truncate(time.Hour).Add(time.Duration(i-23) * time.Hour)
	}
	hours[2].Calls, hours[5].Calls = 100, 100
	// 150 calls more than today's budget: the window frees them when the
	// second busy hour leaves it.
	require.Equal(t, hours[5].Hour.Add(limits.Window), budgetRelease(hours, 150, 1000, now))
	// More than the window holds: a day's budget per day after that.
	require.Equal(t, now.Truncate(time.Hour).Add(2*limits.Window), budgetRelease(hours, 1500, 1000, now))
}
