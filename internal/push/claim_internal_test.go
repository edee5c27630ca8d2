package push

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestClaimLimitsLearn(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	ago := func(d time.Duration) time.Time { return time.Now().Add(-d) }
	c := newClaimLimits(50_000)
	require.Equal(t, 50_000, c.limit(ctx, 1))
	require.Equal(t, 50_000, c.limit(context.Background(), 1), "no deadline: the whole claim")

	// Cut off by the deadline: half of what it claimed.
	next, changed := c.learn(ctx, 1, 50_000, true, ago(time.Minute), context.DeadlineExceeded)
	require.True(t, changed)
	require.Equal(t, 25_000, next)
	require.Equal(t, 25_000, c.limit(ctx, 1))
	require.Equal(t, 50_000, c.limit(ctx, 2), "per workspace")
	require.Equal(t, 50_000, c.limit(context.Background(), 1), "no deadline: the whole claim")

	// A full claim that used 60% of its time (budget: the hour left +
	// the 1.5 h it took = 2.5 h): sized to take half the budget.
	c.by[1] = 20_000
	next, _ = c.learn(ctx, 1, 20_000, true, ago(3*time.Hour/2), nil)
	require.InDelta(t, 20_000*1.25/1.5, next, 1)

	// Fast full claims grow back, to MaxItems at most (then forgotten).
	next, _ = c.learn(ctx, 1, next, true, ago(time.Second), nil)
	require.InDelta(t, 2*16_666, next, 2)
	next, _ = c.learn(ctx, 1, next, true, ago(time.Second), nil)
	require.Equal(t, 50_000, next)
	require.NotContains(t, c.by, int64(1))

	// A partial claim or a failure says nothing of the size.
	c.by[1] = 1000
	_, changed = c.learn(ctx, 1, 10, false, ago(time.Second), nil)
	require.False(t, changed)
	_, changed = c.learn(ctx, 1, 1000, true, ago(time.Second), errors.New("boom"))
	require.False(t, changed)

	// Never below one collection call's worth.
	for range 10 {
		c.learn(ctx, 1, c.limit(ctx, 1), true, ago(time.Second), context.DeadlineExceeded)
	}
	require.Equal(t, minClaim, c.limit(ctx, 1))
}
