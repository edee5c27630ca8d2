package jobs

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestFlushSlot(t *testing.T) {
	t.Parallel()
	const interval = 10 * time.Second
	w := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC) // a window start
	require.Equal(t, w.Add(3*time.Second), flushSlot(time.Time{}, w.Add(3*time.Second), interval), "never flushed: at once")
	require.Equal(t, w.Add(3*time.Second), flushSlot(w.Add(-time.Second), w.Add(3*time.Second), interval), "last flush in the previous window: at once")
	require.Equal(t, w.Add(interval), flushSlot(w.Add(time.Second), w.Add(3*time.Second), interval), "a flush already started in this window: the next one")
	require.Equal(t, w.Add(interval), flushSlot(w, w.Add(9999*time.Millisecond), interval), "a flush at the window's very start counts")
}

// Changes one interval apart, each flush starting a little after its slot
// (job pickup): the wait stays bounded instead of growing change after
// change, at most one flush starts per window, and no change waits past the
// next window's start (where a fixed tick would flush it).
func TestFlushSlotDoesNotDrift(t *testing.T) {
	t.Parallel()
	const interval = 10 * time.Second
	const pickup = 350 * time.Millisecond
	for _, phase := range []time.Duration{0, 100 * time.Millisecond, 5 * time.Second, 9700 * time.Millisecond, 9900 * time.Millisecond} {
		start := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC).Add(phase)
		var last time.Time
		windows := map[time.Time]int{}
		var waits []time.Duration
		for k := range 200 {
			arrived := start.Add(time.Duration(k) * interval)
			started := flushSlot(last, arrived, interval).Add(pickup)
			require.False(t, started.Before(arrived))
			waits = append(waits, started.Sub(arrived))
			windows[started.Truncate(interval)]++
			require.LessOrEqual(t, started, arrived.Truncate(interval).Add(interval).Add(pickup), "change %d waited past the next window", k)
			last = started
		}
		for win, n := range windows {
			require.Equal(t, 1, n, "phase %s: %d flushes started in the window at %s", phase, n, win)
		}
		require.Equal(t, waits[10], waits[len(waits)-1], "phase %s: the wait settles instead of growing", phase)
	}
}
