package httpserver_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/internal/db"
	"github.com/crmsync/crmsync/internal/db/dbtest"
)

// TestContentType checks that a /graphql request no transport accepts gets
// one line saying what to send, not "transport not supported".
func TestContentType(t *testing.T) {
	t.Parallel()
	b := setup(t, dbtest.Open(t, db.SQLite))
	for name, tc := range map[string]struct {
		method, contentType string
		status              int
		code, says          string
	}{
		"missing":          {http.MethodPost, "", http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", "missing Content-Type: send Content-Type: application/json"},
		"form":             {http.MethodPost, "application/x-www-form-urlencoded", http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", `unsupported Content-Type "application/x-www-form-urlencoded": send Content-Type: application/json`},
		"text":             {http.MethodPost, "text/plain", http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", "send Content-Type: application/json"},
		"garbled":          {http.MethodPost, "application/json;;", http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", "send Content-Type: application/json"},
		"put":              {http.MethodPut, "application/json", http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "PUT is not served at /graphql: send a POST with Content-Type: application/json"},
		"json":             {http.MethodPost, "application/json", http.StatusOK, "", ""},
		"json and charset": {http.MethodPost, "application/json; charset=utf-8", http.StatusOK, "", ""},
	} {
		resp, body := b.do(t, tc.method, "/graphql", "admin-token", strings.NewReader(`{"query":"{ __typename }"}`), "Content-Type", tc.contentType)
		require.Equal(t, tc.status, resp.StatusCode, name)
		if tc.code == "" {
			continue
		}
		requireGraphQLError(t, body, tc.code)
		var parsed struct {
			Errors []struct{ Message string } `json:"errors"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &parsed))
		msg := parsed.Errors[0].Message
		require.Contains(t, msg, tc.says, name)
		require.NotContains(t, msg, "\n", "one line")
		require.NotContains(t, msg, "transport not supported")
	}
}
