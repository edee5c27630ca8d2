package connection_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/memcrm"
	"github.com/crmsync/crmsync/internal/connection"
)

// describeCounter counts describes and announces what it is told.
type describeCounter struct {
	*memcrm.CRM
	announce  []connector.Capability
	describes int
}

func (d *describeCounter) Describe(ctx context.Context, req connector.DescribeRequest) (*connector.Description, error) {
	d.describes++
	desc, err := d.CRM.Describe(ctx, req)
	if err != nil {
		return nil, err
	}
	desc.Capabilities = d.announce
	return desc, nil
}

func TestCapabilitiesAreTheAnnouncedOnes(t *testing.T) {
	t.Parallel()
	crm := &describeCounter{CRM: memcrm.New(), announce: []connector.Capability{connector.CapabilityUpsert}}
	cache := connection.NewDescribeCache(time.Hour)
	c := &connection.Connection{ID: 1, Connector: memcrm.Name}

	caps, err := cache.Capabilities(t.Context(), c, crm)
	require.NoError(t, err)
	require.True(t, caps.Has(connector.CapabilityUpsert))
	require.False(t, caps.Has(connector.CapabilityFetchChanges))
	// memcrm implements ChangeFetcher, but it was not announced.
	_, ok := connection.Optional[connector.ChangeFetcher](caps, connector.CapabilityFetchChanges, crm)
	require.False(t, ok, "an unannounced interface is not used")

	_, err = cache.Capabilities(t.Context(), c, crm)
	require.NoError(t, err)
	require.Equal(t, 1, crm.describes, "cached with the describe")

	// A describe with objects refreshes them.
	crm.announce = []connector.Capability{connector.CapabilityFetchChanges}
	cache.Add(c, &connector.Description{Capabilities: crm.announce})
	caps, err = cache.Capabilities(t.Context(), c, crm)
	require.NoError(t, err)
	fetcher, ok := connection.Optional[connector.ChangeFetcher](caps, connector.CapabilityFetchChanges, crm)
	require.True(t, ok)
	require.NotNil(t, fetcher)
	require.Equal(t, 1, crm.describes)

	// Announced but without the method set: not usable either.
	_, ok = connection.Optional[connector.ChangeFetcher](caps, connector.CapabilityFetchChanges, struct{ connector.Connector }{crm})
	require.False(t, ok)
}
