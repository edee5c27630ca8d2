package securitytest

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/internal/db/dbtest"
)

// TestAmbiguousAuthorizationRefused sends two Authorization headers (a
// valid token and another, in both orders): the request is refused with
// 400 before anything runs, whichever header a proxy would have kept.
func TestAmbiguousAuthorizationRefused(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setup(t, bdb)
		_, token := b.newWorkspace(t, "Acme")
		_, other := b.newWorkspace(t, "Other")
		b.connect(t, token, "acme")
		for name, headers := range map[string][]string{
			"valid then garbage":   {"Bearer " + token, "Bearer nope"},
			"garbage then valid":   {"Bearer nope", "Bearer " + token},
			"two valid workspaces": {"Bearer " + token, "Bearer " + other},
			"same token twice":     {"Bearer " + token, "Bearer " + token},
		} {
			t.Run(name, func(t *testing.T) {
				req, err := http.NewRequest(http.MethodPost, b.api.URL+"/graphql",
					bytes.NewReader([]byte(`{"query":"mutation { pauseSync { paused } }"}`)))
				require.NoError(t, err)
				req.Header.Set("Content-Type", "application/json")
				for _, h := range headers {
					req.Header.Add("Authorization", h)
				}
				res, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				body, _ := io.ReadAll(res.Body)
				require.NoError(t, res.Body.Close())
				require.Equal(t, http.StatusBadRequest, res.StatusCode, string(body))
				require.Contains(t, string(body), "AMBIGUOUS_AUTHORIZATION")
			})
		}
		var d struct{ SyncOverview struct{ Paused bool } }
		b.mustQuery(t, token, `{ syncOverview { paused } }`, nil, &d)
		require.False(t, d.SyncOverview.Paused, "no refused mutation ran")
	})
}

// TestMetricsNotPublic: the API listener does not serve /metrics (it labels
// every workspace), with or without a token, and its health endpoints name
// no workspace.
func TestMetricsNotPublic(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setup(t, bdb)
		_, token := b.newWorkspace(t, "Canary-Workspace-Name")
		b.connect(t, token, "acme")
		b.mustQuery(t, token, `mutation { recordChanges(input: [{recordType: COMPANY, recordId: "c1", source: API, fields: [{name: "name", value: "x"}]}]) { accepted } }`, nil, nil)
		get := func(path, token string) (int, string) {
			req, err := http.NewRequest(http.MethodGet, b.api.URL+path, nil)
			require.NoError(t, err)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			res, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			body, _ := io.ReadAll(res.Body)
			require.NoError(t, res.Body.Close())
			return res.StatusCode, string(body)
		}
		for _, tok := range []string{"", token} {
			status, body := get("/metrics", tok)
			require.Equal(t, http.StatusNotFound, status)
			require.NotContains(t, body, "crmsync_queue_items")
		}
		for _, path := range []string{"/healthz", "/readyz"} {
			status, body := get(path, "")
			require.Equal(t, http.StatusOK, status, body)
			require.NotContains(t, body, "workspace")
			require.NotContains(t, body, "Canary")
		}
	})
}
