package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/salesforce/sffake"
	"github.com/crmsync/crmsync/connectors/salesforce/sffake/sffaketest"
	"github.com/crmsync/crmsync/internal/db/dbtest"
)

// TestServeMountsWebFlowAndSyncMetrics runs `crmsync serve` configured for
// the Salesforce web flow: start redirects to the org's authorize page with
// PKCE, the callback refuses a bad state, and /metrics carries the sync
// metrics on the ops listener only.
func TestServeMountsWebFlowAndSyncMetrics(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			sf := sffaketest.Start(t)
			addr, opsAddr := freeAddr(t), freeAddr(t)
			vars := map[string]string{"CRMSYNC_DATA_DIR": t.TempDir(),
				"CRMSYNC_SALESFORCE_CLIENT_ID":     sffake.DefaultClientID,
				"CRMSYNC_SALESFORCE_CLIENT_SECRET": sffake.DefaultClientSecret,
				"CRMSYNC_SALESFORCE_LOGIN_URL":     sf.URL(),
				"CRMSYNC_SALESFORCE_REDIRECT_URL":  "http://" + addr + "/oauth/salesforce/callback",
			}
			if dialect == "postgres" {
				vars["DATABASE_URL"] = dbtest.PostgresURL(t)
			}
			getenv := envOf(vars)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			logs := &lockedBuffer{}
			done := make(chan error, 1)
			go func() {
				done <- run(ctx, []string{"serve", "--listen", addr, "--ops-listen", opsAddr}, getenv, io.Discard, logs)
			}()
			waitHealthy(t, addr, done)
			token := field(t, runCmd(t, getenv, "workspace", "create", "Acme"), "token")

			client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			get := func(u string) *http.Response {
				t.Helper()
				resp, err := client.Get(u)
				require.NoError(t, err)
				_, _ = io.Copy(io.Discard, resp.Body)
				require.NoError(t, resp.Body.Close())
				return resp
			}
			resp := get("http://" + addr + "/oauth/salesforce/start?token=" + url.QueryEscape(token))
			require.Equal(t, http.StatusFound, resp.StatusCode)
			authz, err := url.Parse(resp.Header.Get("Location"))
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(authz.String(), sf.URL()+"/services/oauth2/authorize?"), authz.String())
			require.Equal(t, "S256", authz.Query().Get("code_challenge_method"))
			// sffake approves and sends the browser back with a code.
			resp = get(authz.String())
			require.Equal(t, http.StatusFound, resp.StatusCode)
			back, err := url.Parse(resp.Header.Get("Location"))
			require.NoError(t, err)
			require.Equal(t, "/oauth/salesforce/callback", back.Path)
			require.NotEmpty(t, back.Query().Get("code"))
			resp = get("http://" + addr + "/oauth/salesforce/callback?code=x&state=forged")
			require.Equal(t, http.StatusBadRequest, resp.StatusCode)
			require.Equal(t, http.StatusUnauthorized, get("http://"+addr+"/oauth/salesforce/start").StatusCode)

			status, body := graphql(t, addr, token, `mutation { recordChanges(input: [{recordType: COMPANY, recordId: "a", source: API, fields: [{name: "name", value: "A"}]}]) { queued } }`)
			require.Equal(t, http.StatusOK, status, body)
			resp = get("http://" + addr + "/metrics")
			require.Equal(t, http.StatusNotFound, resp.StatusCode, "metrics are not on the API listener")
			resp, err = http.Get("http://" + opsAddr + "/metrics")
			require.NoError(t, err)
			metrics, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
			require.Contains(t, string(metrics), "crmsync_metrics_scrape_error 0")
			require.Contains(t, string(metrics), `crmsync_queue_items{connector="",workspace="1"} 1`, "queued while not connected")
			require.NotContains(t, logs.String(), token, "the token is never logged")

			http.DefaultClient.CloseIdleConnections()
			client.CloseIdleConnections()
			cancel()
			select {
			case err := <-done:
				require.NoError(t, err, logs.String())
			case <-time.After(10 * time.Second):
				t.Fatal("serve did not stop within 10s of cancellation")
			}
		})
	}
}

func TestHelpDocumentsWebFlowSettings(t *testing.T) {
	t.Parallel()
	var stdout bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"serve", "--help"}, envOf(nil), &stdout, io.Discard))
	for _, name := range []string{"CRMSYNC_SALESFORCE_CLIENT_ID", "CRMSYNC_SALESFORCE_CLIENT_SECRET", "CRMSYNC_SALESFORCE_LOGIN_URL",
		"CRMSYNC_SALESFORCE_REDIRECT_URL", "CRMSYNC_SALESFORCE_RETURN_URL"} {
		require.Contains(t, stdout.String(), name)
	}
}
