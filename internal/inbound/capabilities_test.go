package inbound_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/inbound"
	"github.com/crmsync/crmsync/internal/push"
)

// unannounced hides capabilities from the connector's Describe while
// keeping its methods, as a plugin client does for a plugin that lacks them
// (the client implements every optional interface).
type unannounced struct {
	*fetchCounter
	hide connector.Capability
}

func (u unannounced) Describe(ctx context.Context, req connector.DescribeRequest) (*connector.Description, error) {
	d, err := u.fetchCounter.Describe(ctx, req)
	if err != nil {
		return nil, err
	}
	out := *d
	out.Capabilities = slices.DeleteFunc(slices.Clone(d.Capabilities), func(c connector.Capability) bool { return c == u.hide })
	return &out, nil
}

// The pull asks the connection's announced capabilities, not the Go type:
// a connector that has FetchChanges but does not announce fetch_changes is
// never asked for changes.
func TestPullAsksAnnouncedCapabilities(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setup(t, bdb, inbound.Config{})
		counter := &fetchCounter{Connector: b.crm, fetches: map[string]int{}}
		b.wrap = func(connector.Connector) connector.Connector {
			return unannounced{fetchCounter: counter, hide: connector.CapabilityFetchChanges}
		}
		b.syncedContact(t, "c", "quiet@example.com")
		b.clock.Advance(time.Minute)
		res := b.pull(t)
		require.Nil(t, res.Batch)
		require.Equal(t, push.PauseNone, res.Paused)
		_, total := counter.counts()
		require.Zero(t, total, "FetchChanges is never called without the announcement")
		// (With it, the same connector is pulled from: every other pull test.)
	})
}
