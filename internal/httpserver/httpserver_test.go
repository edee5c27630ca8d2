package httpserver_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"go.uber.org/goleak"

	"github.com/crmsync/crmsync/internal/db"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/httpserver"
	"github.com/crmsync/crmsync/internal/workspace"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type testBundle struct {
	srv    *httpserver.Server
	server *httptest.Server
	svc    *workspace.Service
	db     *bun.DB
}

// setup serves an httpserver whose GraphQL handler answers with the
// authenticated workspace id (or "admin") and the body length it read.
func setup(t *testing.T, bdb *bun.DB) *testBundle {
	t.Helper()
	svc := workspace.NewService(bdb)
	fakeGraphQL := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		who := "admin"
		if id, ok := workspace.FromContext(r.Context()); ok {
			who = strconv.FormatInt(id, 10)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"who": who, "bodyLen": len(body)})
	})
	srv, err := httpserver.New(httpserver.Deps{
		Logger:         slog.New(slog.DiscardHandler),
		DB:             bdb,
		GraphQL:        fakeGraphQL,
		Authenticate:   workspace.NewAuthenticator(svc, "admin-token").Authenticate,
		Registry:       prometheus.NewRegistry(),
		GraphiQL:       true,
		AllowedOrigins: []string{"https://app.example.com"},
		MaxBodyBytes:   1024,
	})
	require.NoError(t, err)
	srv.Handle("GET /extra", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "extra") }))
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return &testBundle{srv: srv, server: ts, svc: svc, db: bdb}
}

func (b *testBundle) do(t *testing.T, method, path, token string, body io.Reader, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, b.server.URL+path, body)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := b.server.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(out)
}

func requireGraphQLError(t *testing.T, body, code string) {
	t.Helper()
	var resp struct {
		Errors []struct {
			Message    string            `json:"message"`
			Extensions map[string]string `json:"extensions"`
		} `json:"errors"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &resp), body)
	require.Len(t, resp.Errors, 1, body)
	require.NotEmpty(t, resp.Errors[0].Message)
	require.Equal(t, code, resp.Errors[0].Extensions["code"], body)
}

func TestAuth(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setup(t, bdb)
		ctx := context.Background()
		ws, issued, err := b.svc.Create(ctx, "Acme")
		require.NoError(t, err)
		token := issued.Token
		second, err := b.svc.CreateToken(ctx, ws.ID)
		require.NoError(t, err)
		require.NoError(t, b.svc.RevokeToken(ctx, second.TokenID))
		revoked := second.Token

		for name, bad := range map[string]string{"missing": "", "unknown": workspace.TokenPrefix + "nope", "revoked": revoked} {
			resp, body := b.do(t, http.MethodPost, "/graphql", bad, strings.NewReader(`{}`))
			require.Equal(t, http.StatusUnauthorized, resp.StatusCode, name)
			require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			requireGraphQLError(t, body, "UNAUTHENTICATED")
		}

		resp, body := b.do(t, http.MethodPost, "/graphql", token, strings.NewReader(`{}`))
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.JSONEq(t, `{"who":"`+strconv.FormatInt(ws.ID, 10)+`","bodyLen":2}`, body)

		resp, body = b.do(t, http.MethodGet, "/graphql", "admin-token", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.JSONEq(t, `{"who":"admin","bodyLen":0}`, body)
	})
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	b := setup(t, dbtest.Open(t, db.SQLite))
	_, issued, err := b.svc.Create(context.Background(), "Acme")
	require.NoError(t, err)
	token := issued.Token

	// Declared too large: refused before reading.
	resp, body := b.do(t, http.MethodPost, "/graphql", token, strings.NewReader(strings.Repeat("x", 1025)))
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	requireGraphQLError(t, body, "REQUEST_TOO_LARGE")

	// Chunked (no Content-Length) and too large: refused after the limit.
	resp, body = b.do(t, http.MethodPost, "/graphql", token, io.MultiReader(strings.NewReader(strings.Repeat("x", 1025))))
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	requireGraphQLError(t, body, "REQUEST_TOO_LARGE")

	// At the limit: passed through whole.
	resp, body = b.do(t, http.MethodPost, "/graphql", token, io.MultiReader(strings.NewReader(strings.Repeat("x", 1024))))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, `"bodyLen":1024`)
}

func TestCORS(t *testing.T) {
	t.Parallel()
	b := setup(t, dbtest.Open(t, db.SQLite))

	resp, _ := b.do(t, http.MethodOptions, "/graphql", "", nil, "Origin", "https://app.example.com",
		"Access-Control-Request-Method", "POST")
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	require.Equal(t, "https://app.example.com", resp.Header.Get("Access-Control-Allow-Origin"))
	require.Contains(t, resp.Header.Get("Access-Control-Allow-Headers"), "Authorization")

	resp, _ = b.do(t, http.MethodOptions, "/graphql", "", nil, "Origin", "https://evil.example.com",
		"Access-Control-Request-Method", "POST")
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
}

func TestHealthAndMetrics(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setup(t, bdb)

		resp, body := b.do(t, http.MethodGet, "/healthz", "", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.JSONEq(t, `{"status":"ok"}`, body)

		resp, body = b.do(t, http.MethodGet, "/readyz", "", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.JSONEq(t, `{"status":"ready","database":"`+string(db.DialectOf(bdb))+`"}`, body)

		resp, body = b.do(t, http.MethodGet, "/", "", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Contains(t, body, "graphiql")

		resp, body = b.do(t, http.MethodGet, "/extra", "", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "extra", body)

		b.do(t, http.MethodPost, "/graphql", "", strings.NewReader(`{}`))
		resp, _ = b.do(t, http.MethodGet, "/metrics", "", nil)
		require.Equal(t, http.StatusNotFound, resp.StatusCode, "metrics are not on the public listener")
		rec := httptest.NewRecorder()
		b.srv.Ops().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		require.Equal(t, http.StatusOK, rec.Code)
		body = rec.Body.String()
		require.Contains(t, body, `crmsync_http_requests_total{route="/graphql",status="401"} 1`)
		require.Contains(t, body, `crmsync_http_requests_total{route="GET /extra",status="200"} 1`)
		require.Contains(t, body, "go_goroutines")
		require.Contains(t, body, "process_cpu_seconds_total")
	})
}

func TestReadyzUnmigrated(t *testing.T) {
	t.Parallel()
	bdb, err := db.Open(context.Background(), "", t.TempDir(), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() { _ = bdb.Close() })
	b := setup(t, bdb)
	resp, body := b.do(t, http.MethodGet, "/readyz", "", nil)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Contains(t, body, "migrations pending")
}

func TestGraphiQLOff(t *testing.T) {
	t.Parallel()
	bdb := dbtest.Open(t, db.SQLite)
	srv, err := httpserver.New(httpserver.Deps{
		Logger: slog.New(slog.DiscardHandler), DB: bdb, GraphQL: http.NotFoundHandler(),
		Authenticate: workspace.NewAuthenticator(workspace.NewService(bdb), "").Authenticate,
		Registry:     prometheus.NewRegistry(),
	})
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	require.Equal(t, http.StatusFound, rec.Code, "without GraphiQL, / leads to the console")
	require.Equal(t, "/console", rec.Header().Get("Location"))
	rec = httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/console", nil))
	require.Equal(t, http.StatusOK, rec.Code)
}

func TestServe(t *testing.T) {
	t.Parallel()
	ln, err := httpserver.Listen("127.0.0.1:0")
	require.NoError(t, err)

	// The address is now taken.
	_, err = httpserver.Listen(ln.Addr().String())
	require.ErrorContains(t, err, "already in use")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "hi") })
	go func() { done <- httpserver.Serve(ctx, ln, h, slog.New(slog.DiscardHandler), 5*time.Second) }()

	resp, err := http.Get("http://" + ln.Addr().String() + "/")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, "hi", string(body))
	http.DefaultClient.CloseIdleConnections()

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}
