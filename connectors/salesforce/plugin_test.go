package salesforce_test

import (
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/crmplugin"
	"github.com/crmsync/crmsync/connectors/salesforce"
)

// TestMain doubles as the plugin binary: a Host launches this test
// executable as `<exe> connector salesforce`, the way crmsync launches
// itself for its built-in connectors.
func TestMain(m *testing.M) {
	if len(os.Args) >= 3 && os.Args[1] == "connector" && os.Args[2] == salesforce.Name {
		var allowed []string // as crmsync passes them: --allow-crm-host=HOST
		for _, a := range os.Args[3:] {
			if h, ok := strings.CutPrefix(a, "--allow-crm-host="); ok {
				allowed = append(allowed, h)
			}
		}
		crmplugin.Serve(salesforce.New(salesforce.WithLogger(crmplugin.Logger()), salesforce.WithAllowedHosts(allowed...)))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// pluginConnector starts the connector as a plugin process.
func pluginConnector(t *testing.T) connector.Connector {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	host, err := crmplugin.NewHost(crmplugin.HostConfig{Executable: exe, BuiltinArgs: []string{"--allow-crm-host=127.0.0.1"}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = host.Close() })
	c, err := host.Connector(t.Context(), salesforce.Name)
	require.NoError(t, err)
	return c
}

func TestThroughPluginProcess(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	s.tokenOK("at-2", nil)
	s.handle("GET /limits", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer at-2" {
			writeJSON(w, 401, sfErr("INVALID_SESSION_ID", "Session expired or invalid"))
			return
		}
		limitsHandler(w, r)
	})
	s.handle("PATCH /composite/sobjects", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 403, sfErr("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."))
	})
	c := pluginConnector(t)

	resp, err := c.Limits(t.Context(), connector.LimitsRequest{Session: s.session()})
	require.NoError(t, err)
	require.Equal(t, int64(10), resp.Usage.Used)
	var creds salesforce.Credentials
	require.NoError(t, salesforceCreds(resp.Credentials, &creds), "refreshed credentials cross the process boundary")
	require.Equal(t, "at-2", creds.AccessToken)

	_, err = c.BulkUpdate(t.Context(), connector.BulkUpdateRequest{Session: s.session(), Operations: []connector.Operation{
		{Kind: connector.OpUpdate, Object: "Contact", ID: fakeID("003", 1), Fields: map[string]any{"LastName": "X"}}}})
	require.ErrorIs(t, err, connector.ErrRateLimited)
	var ce *connector.Error
	require.True(t, errors.As(err, &ce))
	require.Positive(t, ce.RetryAfter)
}
