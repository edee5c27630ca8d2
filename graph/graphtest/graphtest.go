// Package graphtest serves crmsync's whole GraphQL stack (internal/httpserver
// in front of graph.NewHandler) on a test server, so resolver tests go
// through the same authentication, limits and error presenter as
// production.
//
//	srv := graphtest.New(t, dbtest.Open(t, db.SQLite), nil)
//	_, token := srv.NewWorkspace(t, "Acme")
//	resp := srv.Query(t, token, `{ viewer { name } }`, nil)
package graphtest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/graph"
	"github.com/crmsync/crmsync/internal/db"
	"github.com/crmsync/crmsync/internal/httpserver"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/overview"
	"github.com/crmsync/crmsync/internal/record"
	"github.com/crmsync/crmsync/internal/synclog"
	"github.com/crmsync/crmsync/internal/workspace"
)

// AdminToken is the admin token of every test server.
const AdminToken = "graphtest-admin-token"

// Server is a running test server.
type Server struct {
	URL        string // base URL; GraphQL is at URL + "/graphql"
	DB         *bun.DB
	Workspaces *workspace.Service
	Resolver   *graph.Resolver
	Registry   *prometheus.Registry
}

// New serves the GraphQL API over bdb. r may be nil or carry the services a
// test needs; its Logger, Workspaces and read services (WithDB) are filled
// in when nil. The server is closed when the test ends.
func New(t testing.TB, bdb *bun.DB, r *graph.Resolver) *Server {
	t.Helper()
	if r == nil {
		r = &graph.Resolver{}
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	WithDB(r, bdb)
	auth := workspace.NewAuthenticator(r.Workspaces, AdminToken)
	gql := graph.NewHandler(r, graph.HandlerOptions{
		Logger:        r.Logger,
		Authenticate:  auth.Authenticate,
		Introspection: true,
	})
	reg := prometheus.NewRegistry()
	srv, err := httpserver.New(httpserver.Deps{
		Logger:       r.Logger,
		DB:           bdb,
		GraphQL:      gql,
		Authenticate: auth.Authenticate,
		Registry:     reg,
	})
	if err != nil {
		t.Fatalf("graphtest: %v", err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return &Server{URL: ts.URL, DB: bdb, Workspaces: r.Workspaces, Resolver: r, Registry: reg}
}

// WithDB fills in r's workspace and read services over bdb where nil (as
// cmd/crmsync wires them) and returns r.
func WithDB(r *graph.Resolver, bdb *bun.DB) *graph.Resolver {
	if r.Workspaces == nil {
		r.Workspaces = workspace.NewService(bdb)
	}
	if r.Database == nil {
		r.Database = db.NewHealth(bdb)
	}
	if r.Queue == nil {
		r.Queue = outbound.NewQueue(bdb)
	}
	if r.Records == nil {
		r.Records = record.NewReader(bdb)
	}
	if r.SyncLog == nil {
		r.SyncLog = synclog.NewReader(bdb)
	}
	if r.Overview == nil {
		r.Overview = overview.NewService(bdb)
	}
	return r
}

// NewWorkspace creates a workspace and returns its id and API token.
func (s *Server) NewWorkspace(t testing.TB, name string) (int64, string) {
	t.Helper()
	ws, issued, err := s.Workspaces.Create(context.Background(), name)
	if err != nil {
		t.Fatalf("graphtest: create workspace: %v", err)
	}
	return ws.ID, issued.Token
}

// Response is a GraphQL response with its HTTP status.
type Response struct {
	Status int
	Data   json.RawMessage `json:"data"`
	Errors []Error         `json:"errors"`
	Body   string          // the raw body
}

// Error is one GraphQL error.
type Error struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

// Code returns the error's extensions.code.
func (e Error) Code() string {
	c, _ := e.Extensions["code"].(string)
	return c
}

// Query POSTs a GraphQL operation with token as bearer token ("" for none).
func (s *Server) Query(t testing.TB, token, query string, variables map[string]any) *Response {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": variables})
	if err != nil {
		t.Fatalf("graphtest: %v", err)
	}
	return s.Do(t, http.MethodPost, "/graphql", token, "application/json", body)
}

// Do sends a raw request and decodes the GraphQL response.
func (s *Server) Do(t testing.TB, method, path, token, contentType string, body []byte) *Response {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("graphtest: %v", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	httpResp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("graphtest: %s %s: %v", method, path, err)
	}
	defer httpResp.Body.Close()
	raw, err := io.ReadAll(httpResp.Body)
	if err != nil {
		t.Fatalf("graphtest: read response: %v", err)
	}
	resp := &Response{Status: httpResp.StatusCode, Body: string(raw)}
	if err := json.Unmarshal(raw, resp); err != nil {
		t.Fatalf("graphtest: response is not JSON (%d): %s", httpResp.StatusCode, raw)
	}
	return resp
}

// Decode unmarshals the data of a response without errors into dst.
func (r *Response) Decode(t testing.TB, dst any) {
	t.Helper()
	if len(r.Errors) > 0 {
		t.Fatalf("graphtest: unexpected errors: %s", r.Body)
	}
	if err := json.Unmarshal(r.Data, dst); err != nil {
		t.Fatalf("graphtest: decode data: %v: %s", err, r.Data)
	}
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}
