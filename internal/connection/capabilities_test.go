package connection_test

import (
	"context"
	"encoding/json"
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

// bulkByConfig announces bulk with the threshold its session's
// configuration sets, and remembers what each describe carried.
type bulkByConfig struct {
	*memcrm.CRM
	sessions []connector.Session
}

func (b *bulkByConfig) Describe(ctx context.Context, req connector.DescribeRequest) (*connector.Description, error) {
	b.sessions = append(b.sessions, req.Session)
	desc, err := b.CRM.Describe(ctx, req)
	if err != nil {
		return nil, err
	}
	var cfg struct {
		BulkThreshold int `json:"bulkThreshold"`
	}
	_ = json.Unmarshal(req.Session.Config, &cfg)
	if cfg.BulkThreshold > 0 {
		desc.Capabilities = append(desc.Capabilities, connector.CapabilityBulk)
		desc.BulkThreshold = cfg.BulkThreshold
	}
	return desc, nil
}

func TestBulkThresholdIsTheConnections(t *testing.T) {
	t.Parallel()
	crm := &bulkByConfig{CRM: memcrm.New()}
	cache := connection.NewDescribeCache(time.Hour)
	withBulk := &connection.Connection{ID: 1, Connector: memcrm.Name, Config: json.RawMessage(`{"org": "a", "bulkThreshold": 2500}`),
		Credentials: json.RawMessage(`{"token": "secret"}`)}
	caps, err := cache.Capabilities(t.Context(), withBulk, crm)
	require.NoError(t, err)
	n, ok := caps.BulkThreshold()
	require.True(t, ok)
	require.Equal(t, 2500, n)
	require.Len(t, crm.sessions, 1)
	require.JSONEq(t, string(withBulk.Config), string(crm.sessions[0].Config), "the describe carries the connection's configuration")
	require.Empty(t, crm.sessions[0].Credentials, "and no credentials: no CRM call")

	without := &connection.Connection{ID: 2, Connector: memcrm.Name, Config: json.RawMessage(`{"org": "b"}`)}
	caps, err = cache.Capabilities(t.Context(), without, crm)
	require.NoError(t, err)
	n, ok = caps.BulkThreshold()
	require.False(t, ok, "memcrm announces no bulk path")
	require.Zero(t, n)

	// A threshold without the capability is not a bulk path.
	caps = connection.CapabilitiesOf(&connector.Description{BulkThreshold: 100})
	_, ok = caps.BulkThreshold()
	require.False(t, ok)
}
