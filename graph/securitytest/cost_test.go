package securitytest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/graph"
	"github.com/crmsync/crmsync/graph/graphtest"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/httpserver"
)

// repeat joins n copies of format (with %d replaced by the index).
func repeat(n int, format string) string {
	var sb strings.Builder
	for i := range n {
		if strings.Contains(format, "%d") {
			fmt.Fprintf(&sb, format, i)
		} else {
			sb.WriteString(format)
		}
		sb.WriteByte(' ')
	}
	return sb.String()
}

func changes(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = map[string]any{"recordType": "COMPANY", "recordId": fmt.Sprintf("co%d", i), "source": "API",
			"fields": []any{map[string]any{"name": "name", "value": "x"}}}
	}
	return out
}

// TestCostAttacksRefusedBeforeExecution sends operations built to exhaust
// the server: each is refused with a clear error and no data, nothing it
// asked for happens, and the server answers normally afterwards.
func TestCostAttacksRefusedBeforeExecution(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setup(t, bdb)
		_, token := b.newWorkspace(t, "Acme")
		b.connect(t, token, "acme")

		deep := "{ __schema { types { fields { type " + strings.Repeat("{ ofType ", 46) + "{ name }" + strings.Repeat(" }", 46) + " } } } }"
		tests := map[string]struct {
			query  string
			vars   map[string]any
			status int
			code   string
			msg    string
		}{
			"depth 50": {query: deep, status: http.StatusUnprocessableEntity, code: graph.CodeQueryTooDeep, msg: "deeper than the limit"},
			"1,000 aliases of __typename": {query: "{ " + repeat(1000, "a%d: __typename") + "}",
				status: http.StatusUnprocessableEntity, code: graph.CodeQueryTooLarge, msg: "aliases"},
			"1,000 aliased introspections (free in complexity)": {query: "{ " + repeat(1000, "a%d: __schema { types { name fields { name } } }") + "}",
				status: http.StatusUnprocessableEntity, code: graph.CodeQueryTooLarge},
			"1,000 aliased mutations": {query: "mutation { " + repeat(1000, "a%d: pauseSync { paused }") + "}",
				status: http.StatusUnprocessableEntity, code: graph.CodeQueryTooLarge},
			"20,000 repeated fields (quadratic validation)": {query: "{ " + repeat(20_000, "viewer { id }") + "}",
				status: http.StatusUnprocessableEntity, code: graph.CodeQueryTooLarge, msg: "more than"},
			"one fragment spread 2,000 times": {query: "fragment F on Query { viewer { id } } { " + repeat(2000, "...F") + "}",
				status: http.StatusUnprocessableEntity, code: graph.CodeQueryTooLarge},
			"introspection cycle": {query: "{ __schema { types { fields { type { fields { type { fields { type { fields { name } } } } } } } } } }",
				status: http.StatusUnprocessableEntity, code: "GRAPHQL_VALIDATION_FAILED", msg: "introspection depth"},
			"6,000 changes": {query: `mutation($in: [RecordChangeInput!]!) { recordChanges(input: $in) { accepted } }`, vars: map[string]any{"in": changes(6000)},
				status: http.StatusOK, code: graph.CodeBadUserInput, msg: "at most 5000 changes"},
			"failedItems first: 100000": {query: `{ failedItems(first: 100000) { edges { cursor } } }`,
				status: http.StatusOK, code: graph.CodeBadUserInput, msg: "first must be between 1 and 100"},
			"syncLogs first: 100000": {query: `{ syncLogs(first: 100000) { edges { cursor } } }`,
				status: http.StatusOK, code: graph.CodeBadUserInput, msg: "first must be between 1 and 100"},
			"syncLogs first: -1": {query: `{ syncLogs(first: -1) { edges { cursor } } }`,
				status: http.StatusOK, code: graph.CodeBadUserInput, msg: "first must be between 1 and 100"},
		}
		for name, tc := range tests {
			t.Run(name, func(t *testing.T) {
				start := time.Now()
				resp := b.query(t, token, tc.query, tc.vars)
				t.Logf("%s: refused in %v", name, time.Since(start))
				require.Equal(t, tc.status, resp.Status, resp.Body)
				require.NotEmpty(t, resp.Errors, resp.Body)
				require.Equal(t, tc.code, resp.Errors[0].Code(), resp.Body)
				require.Contains(t, resp.Errors[0].Message, tc.msg)
				requireNoData(t, resp)
			})
		}
		t.Run("history first: 100000", func(t *testing.T) {
			b.mustQuery(t, token, `mutation { recordChanges(input: [{recordType: COMPANY, recordId: "h", source: API, fields: [{name: "name", value: "h"}]}]) { accepted } }`, nil, nil)
			resp := b.query(t, token, `{ record(type: COMPANY, id: "h") { history(first: 100000) { outcome } } }`, nil)
			require.NotEmpty(t, resp.Errors, resp.Body)
			require.Equal(t, graph.CodeBadUserInput, resp.Errors[0].Code())
			require.Contains(t, resp.Errors[0].Message, "first must be between 1 and 100")
		})

		t.Run("1,000 aliases over GET", func(t *testing.T) {
			q := url.Values{"query": {"{ " + repeat(1000, "a%d: __schema { types { name } }") + "}"}}
			resp := b.api.Do(t, http.MethodGet, "/graphql?"+q.Encode(), token, "", nil)
			require.Equal(t, http.StatusUnprocessableEntity, resp.Status, resp.Body)
			require.Equal(t, graph.CodeQueryTooLarge, resp.Errors[0].Code())
			requireNoData(t, resp)
		})
		t.Run("1,000 aliases over a websocket", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			before := b.bus.started()
			conn := dialInit(ctx, t, b, "graphql-transport-ws", map[string]any{"Authorization": "Bearer " + token})
			writeMsg(ctx, t, conn, map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{
				"query": "subscription { " + repeat(1000, "a%d: syncOverviewUpdated { paused }") + "}"}})
			msgs := readUntil(ctx, t, conn, func(m map[string]any) bool { return m["type"] == "error" || m["type"] == "next" })
			last := msgs[len(msgs)-1]
			require.Equal(t, "error", last["type"], "%v", last)
			raw, _ := json.Marshal(last["payload"])
			require.Contains(t, string(raw), graph.CodeQueryTooLarge)
			require.Equal(t, before, b.bus.started(), "no subscription started")
			closeConn(t, conn)
		})
		t.Run("100,000 changes", func(t *testing.T) {
			resp := b.query(t, token, `mutation($in: [RecordChangeInput!]!) { recordChanges(input: $in) { accepted } }`, map[string]any{"in": changes(100_000)})
			require.Equal(t, http.StatusRequestEntityTooLarge, resp.Status)
			require.Equal(t, "REQUEST_TOO_LARGE", resp.Errors[0].Code())
		})
		t.Run("batched operations", func(t *testing.T) {
			body := []byte(`[{"query":"{ viewer { id } }"},{"query":"mutation { pauseSync { paused } }"}]`)
			resp := b.api.Do(t, http.MethodPost, "/graphql", token, "application/json", body)
			require.Equal(t, http.StatusBadRequest, resp.Status, resp.Body)
			require.NotEmpty(t, resp.Errors)
			requireNoData(t, resp)
		})
		t.Run("10 MB body", func(t *testing.T) {
			body := []byte(`{"query":"{ viewer { id } }","variables":{"pad":"` + strings.Repeat("x", 10<<20) + `"}}`)
			resp := b.api.Do(t, http.MethodPost, "/graphql", token, "application/json", body)
			require.Equal(t, http.StatusRequestEntityTooLarge, resp.Status)
			require.Equal(t, "REQUEST_TOO_LARGE", resp.Errors[0].Code())
			require.Contains(t, resp.Errors[0].Message, fmt.Sprint(httpserver.DefaultMaxBodyBytes))
		})
		t.Run("10 MB chunked body", func(t *testing.T) {
			// No Content-Length: the limit is enforced while reading.
			body := io.MultiReader(strings.NewReader(`{"query":"{ viewer { id } }","variables":{"pad":"`),
				strings.NewReader(strings.Repeat("x", 10<<20)), strings.NewReader(`"}}`))
			req, err := http.NewRequest(http.MethodPost, b.api.URL+"/graphql", io.NopCloser(body))
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			req.ContentLength = -1
			res, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer res.Body.Close()
			require.Equal(t, http.StatusRequestEntityTooLarge, res.StatusCode)
		})

		// Nothing refused ran: the workspace is not paused.
		var d struct{ SyncOverview struct{ Paused bool } }
		b.mustQuery(t, token, `{ syncOverview { paused queuedBatchItems } }`, nil, &d)
		require.False(t, d.SyncOverview.Paused, "no refused mutation ran")
		requireHealthy(t, b, token)
	})
}

// TestLegitimateOperationsFitTheLimits keeps the limits honest: GraphiQL's
// introspection, a page of 100, the most aliases allowed and a 5,000-change
// call all pass.
func TestLegitimateOperationsFitTheLimits(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setup(t, bdb)
		_, token := b.newWorkspace(t, "Acme")
		b.connect(t, token, "acme")
		typeRef := "kind name"
		for range 9 {
			typeRef = "kind name ofType { " + typeRef + " }"
		}
		introspection := `query IntrospectionQuery { __schema { queryType { name } mutationType { name } subscriptionType { name }
			types { ...FullType } directives { name description locations args { ...InputValue } } } }
		fragment FullType on __Type { kind name description
			fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
			inputFields { ...InputValue } interfaces { ...TypeRef }
			enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason } possibleTypes { ...TypeRef } }
		fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
		fragment TypeRef on __Type { ` + typeRef + ` }`
		b.mustQuery(t, token, introspection, nil, nil)
		b.mustQuery(t, token, `{ failedItems(first: 100) { edges { cursor } } syncLogs(first: 100) { edges { cursor } } }`, nil, nil)
		b.mustQuery(t, token, "{ "+repeat(graph.DefaultMaxAliases, "a%d: __typename")+"}", nil, nil)
		var d struct{ RecordChanges struct{ Accepted int } }
		b.mustQuery(t, token, `mutation($in: [RecordChangeInput!]!) { recordChanges(input: $in) { accepted } }`, map[string]any{"in": changes(5000)}, &d)
		require.Equal(t, 5000, d.RecordChanges.Accepted)
	})
}

func requireNoData(t *testing.T, resp *graphtest.Response) {
	t.Helper()
	require.True(t, len(resp.Data) == 0 || string(resp.Data) == "null", "want no data, got %s", resp.Data)
}

// requireHealthy checks the server still answers queries and health checks.
func requireHealthy(t *testing.T, b *bundle, token string) {
	t.Helper()
	var d struct{ Viewer struct{ Name string } }
	b.mustQuery(t, token, `{ viewer { name } }`, nil, &d)
	res, err := http.Get(b.api.URL + "/healthz")
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	var body bytes.Buffer
	_, _ = body.ReadFrom(res.Body)
	var health map[string]string
	require.NoError(t, json.Unmarshal(body.Bytes(), &health))
	require.Equal(t, "ok", health["status"])
}
