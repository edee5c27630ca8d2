package push_test

import (
	"context"
	"encoding/json"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/crmplugin"
	"github.com/crmsync/crmsync/connectors/memcrm"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/push"
	"github.com/crmsync/crmsync/internal/record"
)

// TestMain doubles as a connector plugin binary: the plugin host launches
// this test executable as `<exe> connector memcrm`.
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == "connector" && os.Args[2] == memcrm.Name {
		crmplugin.Serve(memcrm.New())
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// A credentials error whose message is not valid UTF-8 (a CRM's error body
// cut inside a character) crosses the plugin boundary as a credentials
// error: the flush marks the connection expired and pauses, and keeps the
// change queued.
func TestCredentialsErrorWithInvalidUTF8ThroughPluginExpiresConnection(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	require.NoError(t, err)
	// A short socket directory: a Unix socket path holds at most 108 bytes,
	// and t.TempDir() is named after this long test.
	sockets, err := os.MkdirTemp("", "engine")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(sockets) })
	host, err := crmplugin.NewHost(crmplugin.HostConfig{Executable: exe, SocketDir: sockets})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, host.Close()) })
	remote, err := host.Connector(t.Context(), memcrm.Name)
	require.NoError(t, err)

	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		b := setup(t, bdb)
		b.wrap = func(connector.Connector) connector.Connector { return remote }
		c, err := b.conns.Get(ctx, b.ws)
		require.NoError(t, err)
		var cfg memcrm.Config
		require.NoError(t, json.Unmarshal(c.Config, &cfg))
		cfg.Faults = &memcrm.Faults{Fail: &memcrm.ErrorFault{Kind: connector.KindCredentials,
			Message: []byte("salesforce query: 401 INVALID_SESSION_ID: Session expired \xe2\x80")}}
		raw, err := json.Marshal(cfg)
		require.NoError(t, err)
		_, err = b.conns.Save(ctx, b.ws, memcrm.Name, raw, memcrm.Session(cfg.Org, memcrm.DefaultToken).Credentials, b.org.Identity(), nil)
		require.NoError(t, err)

		b.ingest(t, change(record.TypeCompany, "a", b.clock.Now(), map[string]any{"name": "A"}))
		res := b.flush(t)
		require.Equal(t, push.PauseConnectionExpired, res.Paused)
		c, err = b.conns.Get(ctx, b.ws)
		require.NoError(t, err)
		require.Equal(t, connection.StatusExpired, c.Status)
		require.Contains(t, c.StatusReason, "INVALID_SESSION_ID: Session expired \uFFFD")
		d, err := outbound.Measure(ctx, bdb, b.ws)
		require.NoError(t, err)
		require.Equal(t, 1, d.Queued, "the change waits for new credentials")
	})
}
