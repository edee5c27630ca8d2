package push_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/push"
	"github.com/crmsync/crmsync/internal/record"
)

// slowOrg spends perRecord on every operation of a write, as an org with
// triggers and flows does, and gives up when its caller does.
type slowOrg struct {
	connector.Connector
	perRecord time.Duration
}

func (s *slowOrg) BulkUpdate(ctx context.Context, req connector.BulkUpdateRequest) (*connector.BulkUpdateResponse, error) {
	t := time.NewTimer(time.Duration(len(req.Operations)) * s.perRecord)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
	}
	return s.Connector.BulkUpdate(ctx, req)
}

// TestClaimShrinksToFitTheFlushDeadline: an org too slow to write a full
// claim within the flush's deadline (a River job's timeout) used to cut
// every flush off and never drain. A cut-off flush halves the next claim,
// so the queue drains, in claims that fit, and nothing is created twice.
func TestClaimShrinksToFitTheFlushDeadline(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setup(t, bdb)
		const n = 1000
		// A full claim takes 5 s against a 2 s deadline; the smallest
		// claim (200) takes 1 s, leaving a second for the flush's own
		// work on a loaded machine under the race detector.
		org := &slowOrg{Connector: b.crm, perRecord: 5 * time.Millisecond}
		engine := push.New(bdb, b.conns, connectorsFunc(func(context.Context, string) (connector.Connector, error) { return org, nil }),
			nil, slog.New(slog.DiscardHandler), push.Config{MaxItems: n, RetryBase: time.Millisecond, WaitDelay: time.Millisecond})
		now := b.clock.Now()
		var changes []outbound.Change
		for i := range n {
			changes = append(changes, change(record.TypeCompany, fmt.Sprint("co", i), now,
				map[string]any{"name": fmt.Sprint("Co ", i), "website": fmt.Sprintf("co%d.example", i)}))
		}
		b.ingest(t, changes...)

		cuts, flushes := 0, 0
		for queued := n; queued > 0; flushes++ {
			require.Less(t, flushes, 40, "the queue did not drain: %d left after %d cut-off flushes", queued, cuts)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := engine.Flush(ctx, b.ws)
			cancel()
			switch {
			case errors.Is(err, context.DeadlineExceeded):
				cuts++
			case err != nil:
				require.NoError(t, err)
			}
			d, err := outbound.Measure(context.Background(), bdb, b.ws)
			require.NoError(t, err)
			queued = d.Queued
		}
		t.Logf("drained %d companies in %d flushes, %d cut off by the deadline", n, flushes, cuts)
		require.Positive(t, cuts, "a full claim outlives the deadline")
		require.Len(t, b.org.All("Account"), n, "every company created once")
	})
}
