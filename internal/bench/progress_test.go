package bench

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/overview"
)

func TestProgressLine(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	for name, tc := range map[string]struct {
		p    overview.Progress
		d    outbound.Depth
		want string
	}{
		"not started": {
			overview.Progress{Since: now.Add(-time.Minute), Remaining: 120_000},
			outbound.Depth{Queued: 120_000},
			"bench: [....................] 0/120000 records (0%), 0/min, ETA unknown; 120000 changes queued, 0 failed",
		},
		"under way": {
			overview.Progress{Since: now.Add(-10 * time.Minute), Done: 30_000, Remaining: 70_000, PerMinute: 2400, ETA: now.Add(29*time.Minute + 10*time.Second + 400*time.Millisecond)},
			outbound.Depth{Queued: 70_000, Failed: 3},
			"bench: [######..............] 30000/100000 records (30%), 2400/min, ETA 29m10s; 70000 changes queued, 3 failed",
		},
		"ETA passed": {
			overview.Progress{Done: 99, Remaining: 1, PerMinute: 0.5, ETA: now.Add(-time.Second)},
			outbound.Depth{Queued: 1},
			"bench: [###################.] 99/100 records (99%), 0.5/min, ETA 0s; 1 changes queued, 0 failed",
		},
	} {
		require.Equal(t, tc.want, progressLine(tc.p, tc.d, now), name)
	}
}

// TestProgressPrinter: off a terminal, updates become plain lines, at most
// one per interval; Done always prints.
func TestProgressPrinter(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	p := newProgress(&buf)
	require.False(t, p.terminal)
	p.Update("a %d", 1)
	p.Update("a %d", 2) // within the interval: dropped
	p.Done("done")
	require.Equal(t, "a 1\ndone\n", buf.String())
}
