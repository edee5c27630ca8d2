package salesforce_test

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/connector"
)

func changeRow(id, stamp string, deleted bool) map[string]any {
	return map[string]any{"attributes": map[string]any{"type": "Contact"}, "Id": id, "LastName": "L", "IsDeleted": deleted,
		"LastModifiedDate": stamp, "LastModifiedById": userID, "SystemModstamp": stamp}
}

func soqlOf(t *testing.T, r seen) string {
	t.Helper()
	q, err := url.ParseQuery(r.Query)
	require.NoError(t, err)
	return q.Get("q")
}

func TestFetchChangesPagesAndKeepsAWatermark(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	a, b, c := fakeID("003", 1), fakeID("003", 2), fakeID("003", 3)
	var locatorExpired atomic.Bool
	s.handle("GET /queryAll", func(w http.ResponseWriter, r *http.Request) {
		soql, _ := url.QueryUnescape(strings.TrimPrefix(r.URL.RawQuery, "q="))
		if strings.Contains(soql, "WHERE") {
			writeJSON(w, 200, map[string]any{"totalSize": 1, "done": true, "records": []any{changeRow(c, "2024-01-02T10:00:00.000+0000", false)}})
			return
		}
		writeJSON(w, 200, map[string]any{"totalSize": 2, "done": false, "nextRecordsUrl": "/services/data/v62.0/queryAll/01gA-1",
			"records": []any{changeRow(a, "2024-01-02T09:00:00.000+0000", false)}})
	})
	s.handle("GET /query/", func(w http.ResponseWriter, r *http.Request) { t.Error("query locator of queryAll used") })
	s.handle("GET /queryAll/01gA-1", func(w http.ResponseWriter, r *http.Request) {
		if locatorExpired.Load() {
			writeJSON(w, 400, sfErr("INVALID_QUERY_LOCATOR", "invalid query locator"))
			return
		}
		writeJSON(w, 200, map[string]any{"totalSize": 2, "done": true, "records": []any{changeRow(b, "2024-01-02T09:30:00.000+0000", true)}})
	})
	conn := newConnector(t)
	page := func(cursor string) *connector.FetchChangesResponse {
		resp, err := conn.FetchChanges(t.Context(), connector.FetchChangesRequest{Session: s.session(), Object: "Contact",
			Fields: []string{"LastName"}, Cursor: cursor, PageSize: 50})
		require.NoError(t, err)
		return resp
	}
	first := page("")
	require.True(t, first.More)
	require.Len(t, first.Records, 1)
	q := s.requests("/queryAll")
	require.Equal(t, "/services/data/v62.0/queryAll", q[0].Path)
	require.Equal(t, "SELECT Id,LastName,LastModifiedDate,LastModifiedById,SystemModstamp,IsDeleted FROM Contact ORDER BY SystemModstamp ASC, Id ASC",
		soqlOf(t, q[0]))
	require.Equal(t, "batchSize=200", q[0].Header.Get("Sforce-Query-Options"), "Salesforce's minimum page")

	second := page(first.NextCursor)
	require.False(t, second.More)
	require.Equal(t, b, second.Records[0].ID)
	require.True(t, second.Records[0].Deleted, "queryAll reports deletions")

	third := page(second.NextCursor)
	require.Equal(t, c, third.Records[0].ID)
	q = s.requests("/queryAll")
	require.Equal(t, "SELECT Id,LastName,LastModifiedDate,LastModifiedById,SystemModstamp,IsDeleted FROM Contact "+
		"WHERE SystemModstamp >= 2024-01-02T09:28:00Z ORDER BY SystemModstamp ASC, Id ASC", soqlOf(t, q[len(q)-1]),
		"the next cycle starts two minutes before the highest SystemModstamp read")

	// An expired locator runs the query again from its start, so nothing is skipped.
	locatorExpired.Store(true)
	again := page(first.NextCursor)
	require.Equal(t, a, again.Records[0].ID)
	require.True(t, again.More)

	_, err := conn.FetchChanges(t.Context(), connector.FetchChangesRequest{Session: s.session(), Object: "Contact", Cursor: "sf1.garbage!"})
	require.ErrorIs(t, err, connector.ErrInvalid)
	_, err = conn.FetchChanges(t.Context(), connector.FetchChangesRequest{Session: s.session(), Object: "Lead", Cursor: first.NextCursor})
	require.ErrorIs(t, err, connector.ErrInvalid, "a cursor belongs to its object")
	for _, evil := range []string{"https://evil.example/services/data/v62.0/query/x", "/services/data/v62.0/sobjects/Contact", "/services/data/v62.0/query/../limits"} {
		cursor := "sf1." + base64.RawURLEncoding.EncodeToString([]byte(`{"o":"Contact","n":"`+evil+`"}`))
		_, err = conn.FetchChanges(t.Context(), connector.FetchChangesRequest{Session: s.session(), Object: "Contact", Cursor: cursor})
		require.ErrorIs(t, err, connector.ErrInvalid, "a cursor only ever leads to a query locator: %s", evil)
	}
}

func TestFetchChangesStartsAtSince(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	s.handle("GET /queryAll", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"totalSize": 0, "done": true, "records": []any{}})
	})
	conn := newConnector(t)
	since := time.Date(2024, 3, 4, 5, 6, 7, 890, time.UTC)
	resp, err := conn.FetchChanges(t.Context(), connector.FetchChangesRequest{Session: s.session(), Object: "Contact", Since: since})
	require.NoError(t, err)
	require.False(t, resp.More)
	require.Empty(t, s.requests("/queryAll")[0].Header.Get("Sforce-Query-Options"), "no page size asked")
	require.Contains(t, soqlOf(t, s.requests("/queryAll")[0]), "WHERE SystemModstamp >= 2024-03-04T05:06:07Z ORDER BY")

	// Nothing found: the next cycle starts at Since again, not at the beginning of time.
	_, err = conn.FetchChanges(t.Context(), connector.FetchChangesRequest{Session: s.session(), Object: "Contact", Cursor: resp.NextCursor})
	require.NoError(t, err)
	require.Contains(t, soqlOf(t, s.requests("/queryAll")[1]), "WHERE SystemModstamp >= 2024-03-04T05:06:07Z ORDER BY")
}
