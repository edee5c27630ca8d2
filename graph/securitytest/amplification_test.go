package securitytest

import (
	"context"
	"encoding/json"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/graph"
	"github.com/crmsync/crmsync/graph/graphtest"
	"github.com/crmsync/crmsync/internal/db"
	"github.com/crmsync/crmsync/internal/db/dbtest"
)

// amplification are the documents of the validation-error amplification
// attack: each repeats one thing gqlparser reports an error for, as often
// as size bytes allow. Before the document limits, a 2 MB one was answered
// with 310 MB of errors.
func amplification(size int) map[string]string {
	fill := func(prefix, unit, suffix string) string {
		var sb strings.Builder
		sb.WriteString(prefix)
		for sb.Len()+len(unit)+len(suffix) < size {
			sb.WriteString(unit)
		}
		sb.WriteString(suffix)
		return sb.String()
	}
	return map[string]string{
		"unknown directive repeated": fill("{ __typename", " @x", " }"),
		"unknown arguments":          fill("{ __typename(", " a:1", ") }"),
		"unused variables":           fill("query(", " $v:Int", ") { __typename }"),
		"@include spam":              fill("{ __typename", " @include(if:true)", " }"),
		"unknown fields":             fill("{", " x", " }"),
	}
}

// Bounds every amplification answer must keep, whatever the document.
const (
	maxAttackResponse = 16 << 10 // bytes of the answer
	maxAttackAlloc    = 64 << 20 // bytes allocated by the whole process while serving it
)

// TestValidationErrorAmplificationIsBounded sends the worst document of
// each kind, just under the body limit over HTTP and just under the message
// limit over both websocket protocols: each is refused with a small answer
// (at most DefaultMaxErrors errors and a note), allocating a bounded amount,
// and the server answers normally afterwards. It runs alone (not parallel)
// so the process's allocation counter is this test's. SQLite only: nothing
// here reaches storage but the token lookup.
func TestValidationErrorAmplificationIsBounded(t *testing.T) {
	b := setup(t, dbtest.Open(t, db.SQLite))
	_, token := b.newWorkspace(t, "Acme")

	for name, query := range amplification(httpBodyBudget) {
		t.Run("http/"+name, func(t *testing.T) {
			body, err := json.Marshal(map[string]any{"query": query})
			require.NoError(t, err)
			var resp *graphtest.Response
			elapsed, alloc := measure(func() {
				resp = b.api.Do(t, http.MethodPost, "/graphql", token, "application/json", body)
			})
			t.Logf("%d-byte request: %d-byte answer in %v, %d bytes allocated", len(body), len(resp.Body), elapsed, alloc)
			require.Equal(t, http.StatusUnprocessableEntity, resp.Status, cut(resp.Body))
			require.Equal(t, graph.CodeQueryTooLarge, resp.Errors[0].Code(), cut(resp.Body))
			require.LessOrEqual(t, len(resp.Errors), graph.DefaultMaxErrors+1)
			require.Less(t, len(resp.Body), maxAttackResponse)
			require.Less(t, alloc, uint64(maxAttackAlloc))
			requireNoData(t, resp)
		})
	}
	for _, protocol := range []string{"graphql-transport-ws", "graphql-ws"} {
		for name, query := range amplification(graph.DefaultWebsocketReadLimit - 1024) {
			t.Run(protocol+"/"+name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				conn := dialInit(ctx, t, b, protocol, map[string]any{"Authorization": "Bearer " + token})
				conn.SetReadLimit(1 << 30) // measure what the server sends, whatever its size
				start := map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": query}}
				if protocol == "graphql-ws" {
					start["type"] = "start"
				}
				msg, err := json.Marshal(start)
				require.NoError(t, err)
				var frame []byte
				elapsed, alloc := measure(func() {
					require.NoError(t, conn.Write(ctx, websocket.MessageText, msg))
					frame = readFrame(ctx, t, conn, "error")
				})
				t.Logf("%d-byte message: %d-byte frame in %v, %d bytes allocated", len(msg), len(frame), elapsed, alloc)
				require.Less(t, len(frame), maxAttackResponse)
				require.Contains(t, string(frame), graph.CodeQueryTooLarge)
				require.Less(t, alloc, uint64(maxAttackAlloc))
				closeConn(t, conn)
			})
		}
	}

	t.Run("errors within every limit are capped", func(t *testing.T) {
		// 100 unknown directives pass the directive limit and fail
		// validation one by one: the answer keeps the first 50.
		resp := b.query(t, token, "{ __typename"+strings.Repeat(" @x", graph.DefaultMaxDirectives)+" }", nil)
		require.Equal(t, http.StatusUnprocessableEntity, resp.Status, cut(resp.Body))
		require.Len(t, resp.Errors, graph.DefaultMaxErrors+1)
		last := resp.Errors[graph.DefaultMaxErrors]
		require.Equal(t, graph.CodeTooManyErrors, last.Code())
		require.Regexp(t, `^and [0-9]+ more errors`, last.Message)
		require.Equal(t, "GRAPHQL_VALIDATION_FAILED", resp.Errors[0].Code())
	})
	t.Run("token limit", func(t *testing.T) {
		resp := b.query(t, token, "{ __typename"+strings.Repeat(" ", 1000)+strings.Repeat("#c\n", 100)+strings.Repeat(" __typename", graph.DefaultMaxTokens)+" }", nil)
		require.Equal(t, http.StatusUnprocessableEntity, resp.Status, cut(resp.Body))
		require.Len(t, resp.Errors, 1)
		require.Equal(t, graph.CodeQueryTooLarge, resp.Errors[0].Code())
		require.Contains(t, resp.Errors[0].Message, "more than 15000 tokens")
	})
	t.Run("limits hold per kind", func(t *testing.T) {
		for what, query := range map[string]string{
			"directives": "{ __typename" + strings.Repeat(" @skip(if:false)", graph.DefaultMaxDirectives+1) + " }",
			"arguments":  "{ __typename(" + strings.Repeat(" a:1", graph.DefaultMaxArguments+1) + ") }",
			"variables":  "query(" + strings.Repeat(" $v:Int", graph.DefaultMaxVariables+1) + ") { __typename }",
		} {
			resp := b.query(t, token, query, nil)
			require.Equal(t, http.StatusUnprocessableEntity, resp.Status, cut(resp.Body))
			require.Len(t, resp.Errors, 1, what)
			require.Equal(t, graph.CodeQueryTooLarge, resp.Errors[0].Code(), what)
			require.Contains(t, resp.Errors[0].Message, what)
		}
	})
	requireHealthy(t, b, token)
}

// httpBodyBudget keeps an attack's JSON body just under the body limit.
const httpBodyBudget = 2<<20 - 1024

// measure runs fn and returns how long it took and how many bytes the
// whole process allocated meanwhile.
func measure(fn func()) (time.Duration, uint64) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	fn()
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	return elapsed, after.TotalAlloc - before.TotalAlloc
}

// readFrame reads raw websocket frames, skipping keep-alives, until one of
// the given type, and returns it.
func readFrame(ctx context.Context, t *testing.T, conn *websocket.Conn, typ string) []byte {
	t.Helper()
	for {
		_, data, err := conn.Read(ctx)
		require.NoError(t, err)
		var msg struct{ Type string }
		require.NoError(t, json.Unmarshal(data, &msg), cut(string(data)))
		if msg.Type == typ {
			return data
		}
		require.Contains(t, []string{"ka", "ping", "pong"}, msg.Type, cut(string(data)))
	}
}

// cut shortens a body for a failure message.
func cut(s string) string {
	if len(s) > 2000 {
		return s[:2000] + "…"
	}
	return s
}
