package securitytest

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/internal/db"
	"github.com/crmsync/crmsync/internal/db/dbtest"
)

const pauseMutation = `mutation { pauseSync { paused } }`

// requireNotPaused proves a refused mutation did not run.
func requireNotPaused(t *testing.T, b *bundle, token string) {
	t.Helper()
	var d struct{ SyncOverview struct{ Paused bool } }
	b.mustQuery(t, token, `{ syncOverview { paused } }`, nil, &d)
	require.False(t, d.SyncOverview.Paused, "the refused mutation ran")
}

// TestNoMutationOverGETOrCrossSiteForms sends pauseSync the ways a
// cross-site page could (GET links and image tags, HTML form posts in
// their three encodings, text/plain fetches without a preflight), with a
// valid token even: every one is refused and nothing is paused.
func TestNoMutationOverGETOrCrossSiteForms(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setup(t, bdb)
		_, token := b.newWorkspace(t, "Acme")
		b.connect(t, token, "acme")

		gets := map[string]url.Values{
			"mutation":                      {"query": {pauseMutation}},
			"mutation chosen by name":       {"query": {`query Q { viewer { id } } mutation M { pauseSync { paused } }`}, "operationName": {"M"}},
			"mutation with empty variables": {"query": {pauseMutation}, "variables": {"{}"}},
		}
		for name, q := range gets {
			t.Run("GET "+name, func(t *testing.T) {
				resp := b.api.Do(t, http.MethodGet, "/graphql?"+q.Encode(), token, "", nil)
				require.GreaterOrEqual(t, resp.Status, 400, resp.Body)
				require.NotEmpty(t, resp.Errors)
				require.Contains(t, resp.Errors[0].Message, "GET requests only allow query operations")
				requireNoData(t, resp)
				requireNotPaused(t, b, token)
			})
		}

		var multi bytes.Buffer
		mw := multipart.NewWriter(&multi)
		require.NoError(t, mw.WriteField("operations", `{"query":"`+pauseMutation+`"}`))
		require.NoError(t, mw.WriteField("map", `{}`))
		require.NoError(t, mw.Close())
		posts := map[string]struct {
			contentType string
			body        []byte
		}{
			"urlencoded form":        {"application/x-www-form-urlencoded", []byte(url.Values{"query": {pauseMutation}}.Encode())},
			"multipart form":         {mw.FormDataContentType(), multi.Bytes()},
			"text/plain JSON":        {"text/plain", []byte(`{"query":"` + pauseMutation + `"}`)},
			"text/plain form":        {"text/plain", []byte(`query=` + pauseMutation)},
			"no content type":        {"", []byte(`{"query":"` + pauseMutation + `"}`)},
			"json lookalike":         {"application/json-patch+json", []byte(`{"query":"` + pauseMutation + `"}`)},
			"malformed content type": {"application/json; charset", []byte(`{"query":"` + pauseMutation + `"}`)},
		}
		for name, p := range posts {
			t.Run("POST "+name, func(t *testing.T) {
				resp := b.api.Do(t, http.MethodPost, "/graphql", token, p.contentType, p.body)
				require.GreaterOrEqual(t, resp.Status, 400, resp.Body)
				require.NotEmpty(t, resp.Errors)
				requireNoData(t, resp)
				requireNotPaused(t, b, token)
			})
		}

		t.Run("POST application/json is the one way", func(t *testing.T) { // the control
			resp := b.api.Do(t, http.MethodPost, "/graphql", token, "application/json; charset=utf-8", []byte(`{"query":"`+pauseMutation+`"}`))
			require.Empty(t, resp.Errors, resp.Body)
			require.JSONEq(t, `{"pauseSync":{"paused":true}}`, string(resp.Data))
		})
	})
}

// TestCORSDoesNotLetForeignOriginsRead checks the CORS answers: only the
// configured origin is allowed, never a wildcard, never credentials, and a
// foreign origin's preflight gets no grant.
func TestCORSDoesNotLetForeignOriginsRead(t *testing.T) {
	t.Parallel()
	b := setup(t, dbtest.Open(t, db.SQLite))
	_, token := b.newWorkspace(t, "Acme")

	send := func(t *testing.T, method, origin string, header map[string]string, body string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, b.api.URL+"/graphql", strings.NewReader(body))
		require.NoError(t, err)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		require.NoError(t, res.Body.Close())
		require.NotEqual(t, "*", res.Header.Get("Access-Control-Allow-Origin"), "never a wildcard")
		require.Empty(t, res.Header.Get("Access-Control-Allow-Credentials"), "never credentials")
		return res
	}
	preflight := map[string]string{"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"}
	query := map[string]string{"Authorization": "Bearer " + token, "Content-Type": "application/json"}
	const body = `{"query":"{ viewer { name } }"}`

	for _, origin := range []string{"https://evil.example.com", "null", "https://app.example.com.evil.example", "http://app.example.com", "https://APP.example.com:443"} {
		t.Run(origin, func(t *testing.T) {
			res := send(t, http.MethodOptions, origin, preflight, "")
			require.Empty(t, res.Header.Get("Access-Control-Allow-Origin"), "no preflight grant")
			require.Empty(t, res.Header.Get("Access-Control-Allow-Headers"), "Authorization is not granted")
			res = send(t, http.MethodPost, origin, query, body)
			require.Empty(t, res.Header.Get("Access-Control-Allow-Origin"), "the browser may not read the answer")
		})
	}
	t.Run("allowed origin", func(t *testing.T) {
		res := send(t, http.MethodOptions, allowedOrigin, preflight, "")
		require.Equal(t, http.StatusNoContent, res.StatusCode)
		require.Equal(t, allowedOrigin, res.Header.Get("Access-Control-Allow-Origin"))
		require.Contains(t, res.Header.Get("Access-Control-Allow-Headers"), "Authorization")
		res = send(t, http.MethodPost, allowedOrigin, query, body)
		require.Equal(t, http.StatusOK, res.StatusCode)
		require.Equal(t, allowedOrigin, res.Header.Get("Access-Control-Allow-Origin"))
		require.Contains(t, res.Header.Values("Vary"), "Origin")
	})
}
