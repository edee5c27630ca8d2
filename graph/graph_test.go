package graph_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"github.com/vektah/gqlparser/v2/formatter"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"go.uber.org/goleak"

	"github.com/crmsync/crmsync/graph"
	"github.com/crmsync/crmsync/graph/graphtest"
	"github.com/crmsync/crmsync/internal/db"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/workspace"
)

var update = flag.Bool("update", false, "rewrite testdata/schema.graphql from the schema")

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestSchemaGolden catches accidental API changes: the printed schema must
// match testdata/schema.graphql. After an intended change run
// go test ./graph -run TestSchemaGolden -update.
func TestSchemaGolden(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	formatter.NewFormatter(&buf, formatter.WithComments()).FormatSchema(graph.NewExecutableSchema(&graph.Resolver{}).Schema())
	path := filepath.Join("testdata", "schema.graphql")
	if *update {
		require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./graph -run TestSchemaGolden -update to create it")
	if diff := cmp.Diff(string(want), buf.String()); diff != "" {
		t.Fatalf("schema changed (-golden +now); if intended, run go test ./graph -run TestSchemaGolden -update:\n%s", diff)
	}
}

func TestViewer(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		srv := graphtest.New(t, bdb, nil)
		id, token := srv.NewWorkspace(t, "Acme")

		resp := srv.Query(t, token, `{ viewer { id name createdAt } }`, nil)
		require.Equal(t, http.StatusOK, resp.Status)
		var data struct {
			Viewer struct {
				ID, Name  string
				CreatedAt time.Time
			}
		}
		resp.Decode(t, &data)
		require.Equal(t, strconv.FormatInt(id, 10), data.Viewer.ID)
		require.Equal(t, "Acme", data.Viewer.Name)
		require.WithinDuration(t, time.Now(), data.Viewer.CreatedAt, time.Minute)

		// The admin token has no workspace.
		resp = srv.Query(t, graphtest.AdminToken, `{ viewer { name } }`, nil)
		require.Len(t, resp.Errors, 1, resp.Body)
		require.Equal(t, graph.CodeForbidden, resp.Errors[0].Code())

		// No token: 401 before GraphQL.
		resp = srv.Query(t, "", `{ viewer { name } }`, nil)
		require.Equal(t, http.StatusUnauthorized, resp.Status)
		require.Equal(t, graph.CodeUnauthenticated, resp.Errors[0].Code())
	})
}

func TestCreateWorkspace(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		srv := graphtest.New(t, bdb, nil)
		const mutation = `mutation($name: String!) { createWorkspace(name: $name) { workspace { id name } token } }`

		resp := srv.Query(t, graphtest.AdminToken, mutation, map[string]any{"name": "Globex"})
		var data struct {
			CreateWorkspace struct {
				Workspace struct{ ID, Name string }
				Token     string
			}
		}
		resp.Decode(t, &data)
		require.Equal(t, "Globex", data.CreateWorkspace.Workspace.Name)

		// The returned token works.
		resp = srv.Query(t, data.CreateWorkspace.Token, `{ viewer { id name } }`, nil)
		require.JSONEq(t, `{"viewer":{"id":"`+data.CreateWorkspace.Workspace.ID+`","name":"Globex"}}`, string(resp.Data))

		// A workspace token may not create workspaces.
		resp = srv.Query(t, data.CreateWorkspace.Token, mutation, map[string]any{"name": "Initech"})
		require.Len(t, resp.Errors, 1, resp.Body)
		require.Equal(t, graph.CodeForbidden, resp.Errors[0].Code())

		// A domain validation error reaches the client with its code.
		resp = srv.Query(t, graphtest.AdminToken, mutation, map[string]any{"name": "  "})
		require.Len(t, resp.Errors, 1, resp.Body)
		require.Equal(t, workspace.ErrInvalidName.Error(), resp.Errors[0].Message)
		require.Equal(t, graph.CodeBadUserInput, resp.Errors[0].Code())
	})
}

func TestHealth(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		srv := graphtest.New(t, bdb, nil)
		_, token := srv.NewWorkspace(t, "Acme")
		resp := srv.Query(t, token, `{ health { database migrations } }`, nil)
		want := map[db.Dialect]string{db.SQLite: "SQLITE", db.Postgres: "POSTGRES"}[db.DialectOf(bdb)]
		require.JSONEq(t, `{"health":{"database":"`+want+`","migrations":"UP_TO_DATE"}}`, string(resp.Data), resp.Body)
	})
}

// TestInvalidEnum: RecordType and SyncMode are bound to domain types
// (record.Type, prefs.Mode), whose generated unmarshalers map names to
// constants without checking them. A name outside the enum must still be
// rejected before any resolver runs, with an error that names it, whether
// it comes as a literal, a variable or a field of an input variable.
func TestInvalidEnum(t *testing.T) {
	t.Parallel()
	srv := graphtest.New(t, dbtest.Open(t, db.SQLite), nil)
	_, token := srv.NewWorkspace(t, "Acme")
	for name, tc := range map[string]struct {
		query string
		vars  map[string]any
		want  string
	}{
		"literal": {query: `{ fieldSyncPreferences(recordType: NOPE) { field } }`,
			want: `Value "NOPE" does not exist in "RecordType!" enum.`},
		"variable": {query: `query($t: RecordType!) { fieldSyncPreferences(recordType: $t) { field } }`,
			vars: map[string]any{"t": "NOPE"}, want: `NOPE is not a valid RecordType`},
		"input field": {query: `mutation($in: FieldSyncPreferenceInput!) { updateFieldSyncPreference(input: $in) { mode } }`,
			vars: map[string]any{"in": map[string]any{"recordType": "CONTACT", "field": "email", "crmField": "Email", "mode": "NOPE"}},
			want: `NOPE is not a valid SyncMode`},
	} {
		t.Run(name, func(t *testing.T) {
			resp := srv.Query(t, token, tc.query, tc.vars)
			require.Len(t, resp.Errors, 1, resp.Body)
			require.Contains(t, resp.Errors[0].Message, tc.want, resp.Body)
			require.Equal(t, "GRAPHQL_VALIDATION_FAILED", resp.Errors[0].Code(), resp.Body)
			requireNoData(t, resp)
		})
	}
}

func TestTransportsAndLimits(t *testing.T) {
	t.Parallel()
	srv := graphtest.New(t, dbtest.Open(t, db.SQLite), nil)
	_, token := srv.NewWorkspace(t, "Acme")
	get := func(query string) *graphtest.Response {
		return srv.Do(t, http.MethodGet, "/graphql?query="+url.QueryEscape(query), token, "", nil)
	}

	t.Run("GET query", func(t *testing.T) {
		resp := get(`{ viewer { name } }`)
		require.Equal(t, http.StatusOK, resp.Status)
		require.JSONEq(t, `{"viewer":{"name":"Acme"}}`, string(resp.Data))
	})
	t.Run("GET mutation refused", func(t *testing.T) {
		resp := get(`mutation { createWorkspace(name: "x") { token } }`)
		require.NotEqual(t, http.StatusOK, resp.Status)
		require.Len(t, resp.Errors, 1)
		require.Contains(t, resp.Errors[0].Message, "GET requests only allow query operations")
	})
	t.Run("malformed JSON", func(t *testing.T) {
		resp := srv.Do(t, http.MethodPost, "/graphql", token, "application/json", []byte(`{"query": "{ viewer`))
		require.Equal(t, http.StatusBadRequest, resp.Status)
		require.Len(t, resp.Errors, 1)
		require.Contains(t, resp.Errors[0].Message, "json")
	})
	t.Run("form post refused", func(t *testing.T) {
		resp := srv.Do(t, http.MethodPost, "/graphql", token, "application/x-www-form-urlencoded", []byte(`query=%7Bviewer%7Bname%7D%7D`))
		require.Equal(t, http.StatusUnsupportedMediaType, resp.Status)
		require.Len(t, resp.Errors, 1)
		require.Equal(t, "UNSUPPORTED_MEDIA_TYPE", resp.Errors[0].Code())
		require.Contains(t, resp.Errors[0].Message, "send Content-Type: application/json")
		requireNoData(t, resp)
	})
	t.Run("oversized body", func(t *testing.T) {
		big := []byte(`{"query":"{ viewer { name } }","variables":{"pad":"` + strings.Repeat("x", 10<<20) + `"}}`)
		resp := srv.Do(t, http.MethodPost, "/graphql", token, "application/json", big)
		require.Equal(t, http.StatusRequestEntityTooLarge, resp.Status)
		require.Equal(t, "REQUEST_TOO_LARGE", resp.Errors[0].Code())
	})
	t.Run("depth 100 refused", func(t *testing.T) {
		q := "{ __schema { types { fields { type " + strings.Repeat("{ ofType ", 96) + "{ name }" + strings.Repeat(" }", 96) + " } } } }"
		resp := srv.Query(t, token, q, nil)
		require.Equal(t, http.StatusUnprocessableEntity, resp.Status, resp.Body)
		require.Len(t, resp.Errors, 1)
		require.Equal(t, graph.CodeQueryTooDeep, resp.Errors[0].Code())
		requireNoData(t, resp)
	})
	t.Run("GraphiQL introspection within limits", func(t *testing.T) {
		// graphql-js's introspection query with its deepest TypeRef (9 levels).
		typeRef := "kind name"
		for range 9 {
			typeRef = "kind name ofType { " + typeRef + " }"
		}
		q := `query IntrospectionQuery { __schema { queryType { name } mutationType { name }
			types { ...FullType } directives { name locations args { ...InputValue } } } }
		fragment FullType on __Type { kind name description
			fields(includeDeprecated: true) { name args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
			inputFields { ...InputValue } interfaces { ...TypeRef }
			enumValues(includeDeprecated: true) { name } possibleTypes { ...TypeRef } }
		fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
		fragment TypeRef on __Type { ` + typeRef + ` }`
		resp := srv.Query(t, token, q, nil)
		require.Empty(t, resp.Errors, resp.Body)
	})
}

func TestWebsocket(t *testing.T) {
	t.Parallel()
	srv := graphtest.New(t, dbtest.Open(t, db.SQLite), nil)
	_, token := srv.NewWorkspace(t, "Acme")
	wsURL := "ws" + strings.TrimPrefix(srv.URL, "http") + "/graphql"

	dial := func(t *testing.T, protocol string) *websocket.Conn {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{Subprotocols: []string{protocol}})
		require.NoError(t, err)
		t.Cleanup(func() { _ = conn.CloseNow() })
		return conn
	}

	for _, protocol := range []string{"graphql-transport-ws", "graphql-ws"} {
		t.Run(protocol+" bad token closes", func(t *testing.T) {
			for _, payload := range []map[string]any{
				{},
				{"Authorization": "Bearer " + workspace.TokenPrefix + "bad"},
				{"authToken": "nope"},
			} {
				conn := dial(t, protocol)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				require.NoError(t, wsjson.Write(ctx, conn, map[string]any{"type": "connection_init", "payload": payload}))
				var err error
				for err == nil { // a connection_error message may come first
					var msg map[string]any
					err = wsjson.Read(ctx, conn, &msg)
					if err == nil {
						require.Equal(t, "connection_error", msg["type"], msg)
					}
				}
				cancel()
				var closeErr websocket.CloseError
				require.True(t, errors.As(err, &closeErr), "want a close, got %v", err)
				require.Equal(t, websocket.StatusCode(4403), closeErr.Code)
			}
		})
	}

	t.Run("graphql-transport-ws query", func(t *testing.T) {
		conn := dial(t, "graphql-transport-ws")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, wsjson.Write(ctx, conn, map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + token}}))
		requireMessage(ctx, t, conn, "connection_ack")
		require.NoError(t, wsjson.Write(ctx, conn, map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": "{ viewer { name } }"}}))
		msg := requireMessage(ctx, t, conn, "next")
		require.Equal(t, map[string]any{"data": map[string]any{"viewer": map[string]any{"name": "Acme"}}}, msg["payload"])
		requireMessage(ctx, t, conn, "complete")
		require.NoError(t, conn.Close(websocket.StatusNormalClosure, ""))
	})

	t.Run("graphql-ws query with authToken", func(t *testing.T) {
		conn := dial(t, "graphql-ws")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, wsjson.Write(ctx, conn, map[string]any{"type": "connection_init", "payload": map[string]any{"authToken": token}}))
		requireMessage(ctx, t, conn, "connection_ack")
		require.NoError(t, wsjson.Write(ctx, conn, map[string]any{"id": "1", "type": "start", "payload": map[string]any{"query": "{ viewer { name } }"}}))
		msg := requireMessage(ctx, t, conn, "data")
		require.Equal(t, map[string]any{"data": map[string]any{"viewer": map[string]any{"name": "Acme"}}}, msg["payload"])
		require.NoError(t, conn.Close(websocket.StatusNormalClosure, ""))
	})

	t.Run("foreign origin refused", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{
			Subprotocols: []string{"graphql-transport-ws"},
			HTTPHeader:   http.Header{"Origin": []string{"https://evil.example.com"}},
		})
		require.Error(t, err)
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
	})
}

func requireNoData(t *testing.T, resp *graphtest.Response) {
	t.Helper()
	require.True(t, len(resp.Data) == 0 || string(resp.Data) == "null", "want no data, got %s", resp.Data)
}

// requireMessage reads messages, skipping keep-alives, until one of type typ.
func requireMessage(ctx context.Context, t *testing.T, conn *websocket.Conn, typ string) map[string]any {
	t.Helper()
	for {
		var msg map[string]any
		require.NoError(t, wsjson.Read(ctx, conn, &msg))
		switch msg["type"] {
		case "ka", "ping", "pong":
			continue
		case typ:
			return msg
		default:
			t.Fatalf("want a %q message, got %v", typ, msg)
		}
	}
}

func TestErrorPresenter(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	present := graph.ErrorPresenter(slog.New(slog.NewTextHandler(&logs, nil)))
	ctx := context.Background()

	internal := present(ctx, errors.New("pq: password authentication failed for user secret"))
	require.Equal(t, "internal error", internal.Message)
	require.Equal(t, graph.CodeInternal, internal.Extensions["code"])
	require.Contains(t, logs.String(), "password authentication failed", "internal errors are logged")

	wrapped := present(ctx, gqlerror.WrapPath(nil, errors.Join(errors.New("create token for workspace 7"), workspace.ErrNotFound)))
	require.Equal(t, "workspace not found", wrapped.Message)
	require.Equal(t, "NOT_FOUND", wrapped.Extensions["code"])

	overloaded := present(ctx, fmt.Errorf("record changes: %w", &outbound.OverloadedError{RetryAfter: 40 * time.Millisecond}))
	require.Equal(t, "overloaded, retry after 40 ms", overloaded.Message)
	require.Equal(t, map[string]any{"code": "OVERLOADED", "retryAfterMs": int64(40), "retryable": true}, overloaded.Extensions)

	logs.Reset()
	notCommitted := present(ctx, fmt.Errorf("record changes: %w", outbound.ErrNotCommitted))
	require.Equal(t, outbound.ErrNotCommitted.Error(), notCommitted.Message)
	require.Equal(t, "UNAVAILABLE", notCommitted.Extensions["code"], "a failed commit is retryable, not internal")

	own := &gqlerror.Error{Message: "Cannot query field \"x\" on type \"Query\"."}
	require.Same(t, own, present(ctx, own))
}

func TestIntrospectionOff(t *testing.T) {
	t.Parallel()
	bdb := dbtest.Open(t, db.SQLite)
	svc := workspace.NewService(bdb)
	h := graph.NewHandler(graphtest.WithDB(&graph.Resolver{Logger: slog.New(slog.DiscardHandler), Workspaces: svc}, bdb),
		graph.HandlerOptions{Logger: slog.New(slog.DiscardHandler), Authenticate: workspace.NewAuthenticator(svc, "").Authenticate})
	ws, _, err := svc.Create(context.Background(), "Acme")
	require.NoError(t, err)

	query := func(q string) string {
		req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(`{"query":`+strconv.Quote(q)+`}`))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req.WithContext(workspace.NewContext(req.Context(), ws.ID)))
		return rec.Body.String()
	}
	require.JSONEq(t, `{"data":{"viewer":{"name":"Acme"}}}`, query(`{ viewer { name } }`))
	require.Contains(t, query(`{ __schema { types { name } } }`), graph.CodeIntrospectionDisabled)
	require.Contains(t, query(`query { ...F } fragment F on Query { __type(name: "Query") { name } }`), graph.CodeIntrospectionDisabled)
	require.JSONEq(t, `{"data":{"__typename":"Query"}}`, query(`{ __typename }`))
}
