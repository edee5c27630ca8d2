package console_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/internal/console"
)

var configRe = regexp.MustCompile(`(?s)<script type="application/json" id="graphiql-config">(.*?)</script>`)

// The page's settings reach GraphiQL intact, and a query text cannot end
// the script element it is embedded in.
func TestGraphiQLPageConfig(t *testing.T) {
	t.Parallel()
	tabs := []console.Tab{{Query: "{ viewer { name } } # </script><script>alert(1)</script>", Variables: `{"a": 1}`}}
	h, err := console.GraphiQL(console.GraphiQLOptions{Title: "demo <b>", Token: "crms_x", Tabs: tabs, StorageKey: "k:"})
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/demo", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
	body := rec.Body.String()
	require.Contains(t, body, "<title>demo &lt;b&gt;</title>")
	m := configRe.FindStringSubmatch(body)
	require.NotNil(t, m, body)
	require.NotContains(t, m[1], "</script", "the config cannot close its script element")
	var cfg struct {
		Endpoint, Token, StorageKey string
		Tabs                        []console.Tab
	}
	require.NoError(t, json.Unmarshal([]byte(m[1]), &cfg))
	require.Equal(t, "/graphql", cfg.Endpoint)
	require.Equal(t, "crms_x", cfg.Token)
	require.Equal(t, "k:", cfg.StorageKey)
	require.Equal(t, tabs, cfg.Tabs)
}

func TestAssetsServed(t *testing.T) {
	t.Parallel()
	m := http.NewServeMux()
	console.Mount(m)
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	for path, typ := range map[string]string{
		"/console":                   "text/html; charset=utf-8",
		"/assets/console/console.js": "text/javascript; charset=utf-8",
		"/assets/dist/graphiql.js":   "text/javascript; charset=utf-8",
		"/assets/dist/graphiql.css":  "text/css; charset=utf-8",
	} {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		require.Equal(t, typ, resp.Header.Get("Content-Type"), path)
	}
	resp, err := http.Get(srv.URL + "/assets/nope.js")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}
