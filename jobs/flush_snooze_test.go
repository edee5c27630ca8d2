package jobs_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/push"
	"github.com/crmsync/crmsync/jobs"
)

type flushFunc func(ctx context.Context, ws int64) (*push.Result, error)

func (f flushFunc) Flush(ctx context.Context, ws int64) (*push.Result, error) { return f(ctx, ws) }

// TestFlushWorkerSnoozesOnRateLimit: a rate-limited flush comes back on the
// next tick (or sooner when the CRM says so), never after the CRM's whole
// reset time: the gate keeps the ticks free of CRM calls until the
// allowance is back.
func TestFlushWorkerSnoozesOnRateLimit(t *testing.T) {
	t.Parallel()
	const interval = 10 * time.Second
	tests := map[string]struct {
		err    error
		snooze time.Duration
	}{
		"daily allowance spent":   {err: connector.RateLimited(5*time.Hour, "REQUEST_LIMIT_EXCEEDED"), snooze: interval},
		"no retry-after":          {err: connector.RateLimited(0, "REQUEST_LIMIT_EXCEEDED"), snooze: interval},
		"concurrent limit, brief": {err: connector.RateLimited(2*time.Second, "ConcurrentPerOrgLongTxn"), snooze: 2 * time.Second},
		"busy":                    {err: connection.ErrBusy, snooze: time.Second},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := jobs.NewFlushWorker(nil, flushFunc(func(context.Context, int64) (*push.Result, error) { return nil, tt.err }), interval, quiet())
			err := w.Work(context.Background(), &river.Job[jobs.FlushArgs]{Args: jobs.FlushArgs{WorkspaceID: 1, Continue: true}})
			var snooze *rivertype.JobSnoozeError
			require.True(t, errors.As(err, &snooze), "%v", err)
			require.Equal(t, tt.snooze, snooze.Duration)
		})
	}
}
