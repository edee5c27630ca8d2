package salesforce_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/salesforce"
)

func contactRow(id, email string) map[string]any {
	return map[string]any{
		"attributes": map[string]any{"type": "Contact", "url": "/services/data/v62.0/sobjects/Contact/" + id},
		"Id":         id, "Email": email,
		"LastModifiedDate": "2024-01-02T03:04:05.000+0000", "LastModifiedById": userID,
		"SystemModstamp": "2024-01-02T03:04:06.000+0000",
	}
}

// fakeID returns a valid 18-character id with the given 3-character prefix.
func fakeID(prefix string, n int) string {
	return salesforce.ID18(fmt.Sprintf("%s5g%010d", prefix, n))
}

func TestFetchCurrentByIDsRetrievesThroughCollections(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	a, b := fakeID("003", 1), fakeID("003", 2)
	s.handle("POST /composite/sobjects/Contact", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, []any{contactRow(a, "a@x.io"), nil, contactRow(b, "b@x.io")})
	})
	c := newConnector(t)
	resp, err := c.FetchCurrent(t.Context(), connector.FetchCurrentRequest{Session: s.session(), Object: "Contact",
		IDs: []string{a, "003' OR Id != null", fakeID("003", 3), b[:15], b}, Fields: []string{"Email"}})
	require.NoError(t, err)

	got := s.requests("/composite/sobjects/Contact")
	require.Len(t, got, 1)
	req := got[0]
	require.Equal(t, "POST", req.Method)
	require.Equal(t, "/services/data/v62.0/composite/sobjects/Contact", req.Path)
	require.Equal(t, "Bearer at-1", req.Header.Get("Authorization"))
	require.Equal(t, "application/json", req.Header.Get("Content-Type"))
	// The malformed id is never sent; the 15-character one is sent in its
	// 18-character form once.
	jsonEq(t, fmt.Sprintf(`{"ids":[%q,%q,%q],"fields":["Id","Email","LastModifiedDate","LastModifiedById","SystemModstamp"]}`,
		a, fakeID("003", 3), b), req.Body)

	require.Len(t, resp.Records, 2, "the null slot is skipped")
	r := resp.Records[0]
	require.Equal(t, a, r.ID)
	require.Equal(t, "Contact", r.Object)
	require.Equal(t, "a@x.io", r.Fields["Email"])
	require.Equal(t, userID, r.LastModifiedByID)
	require.Equal(t, "2024-01-02T03:04:05Z", r.LastModified.Format("2006-01-02T15:04:05Z07:00"))
	require.Equal(t, "2024-01-02T03:04:06Z", r.SystemModstamp.Format("2006-01-02T15:04:05Z07:00"))
	require.Equal(t, 2, resp.Calls, "describe + retrieve")
	require.Equal(t, int64(2), resp.Usage.Used)
	require.Equal(t, int64(15000), resp.Usage.Max)
	require.Nil(t, resp.Credentials, "the session's token worked: nothing to hand back")
}

func TestFetchCurrentPacksLargeRetrievesIntoComposite(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	var body struct {
		AllOrNone        bool `json:"allOrNone"`
		CompositeRequest []struct {
			Method, URL, ReferenceID string
			Body                     struct{ IDs, Fields []string }
		} `json:"compositeRequest"`
	}
	s.handle("POST /composite", func(w http.ResponseWriter, r *http.Request) {
		require.NoError(t, json.NewDecoder(r.Body).Decode(&body))
		var answers []map[string]any
		for _, sub := range body.CompositeRequest {
			answers = append(answers, map[string]any{"body": []any{contactRow(sub.Body.IDs[0], "x@x.io")},
				"httpHeaders": map[string]any{}, "httpStatusCode": 200, "referenceId": sub.ReferenceID})
		}
		writeJSON(w, 200, map[string]any{"compositeResponse": answers})
	})
	ids := make([]string, 4500)
	for i := range ids {
		ids[i] = fakeID("003", i)
	}
	c := newConnector(t)
	resp, err := c.FetchCurrent(t.Context(), connector.FetchCurrentRequest{Session: s.session(), Object: "Contact", IDs: ids})
	require.NoError(t, err)
	require.Len(t, s.requests("/composite"), 1, "4,500 ids: one composite call")
	require.False(t, body.AllOrNone)
	require.Len(t, body.CompositeRequest, 3, "2,000 + 2,000 + 500")
	for i, sub := range body.CompositeRequest {
		require.Equal(t, "POST", sub.Method)
		require.Equal(t, "/services/data/v62.0/composite/sobjects/Contact", sub.URL)
		require.Equal(t, fmt.Sprintf("r%d", i), sub.ReferenceID)
		require.Equal(t, []string{"Id", "LastModifiedDate", "LastModifiedById", "SystemModstamp"}, sub.Body.Fields)
	}
	require.Len(t, body.CompositeRequest[0].Body.IDs, 2000)
	require.Len(t, body.CompositeRequest[2].Body.IDs, 500)
	require.Len(t, resp.Records, 3)
}

func TestFetchCurrentByMatchKeyQueriesWithEscapedLiterals(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	lead := fakeID("00Q", 1)
	s.handle("GET /query", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"totalSize": 2, "done": false, "nextRecordsUrl": "/services/data/v62.0/query/01gxx0000000001-1",
			"records": []any{map[string]any{"attributes": map[string]any{"type": "Lead"}, "Id": lead, "Email": "o'brien@x.io",
				"IsConverted": true, "ConvertedContactId": fakeID("003", 9), "LastModifiedDate": "2024-01-02T03:04:05.000+0000"}}})
	})
	s.handle("GET /query/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"totalSize": 2, "done": true,
			"records": []any{map[string]any{"attributes": map[string]any{"type": "Lead"}, "Id": fakeID("00Q", 2), "Email": "b@x.io"}}})
	})
	c := newConnector(t)
	resp, err := c.FetchCurrent(t.Context(), connector.FetchCurrentRequest{Session: s.session(), Object: "Lead",
		Match:  &connector.MatchKey{Field: "Email", Values: []string{"o'brien@x.io", "b@x.io", `\' OR Id != null`, "o'brien@x.io"}},
		Fields: []string{"Email"}})
	require.NoError(t, err)
	require.Len(t, resp.Records, 2, "both pages read")
	require.Equal(t, true, resp.Records[0].Fields["IsConverted"])
	require.Equal(t, fakeID("003", 9), resp.Records[0].Fields["ConvertedContactId"])

	q := s.requests("/query")
	require.Len(t, q, 2)
	require.Equal(t, "/services/data/v62.0/query", q[0].Path)
	soql, err := url.QueryUnescape(strings.TrimPrefix(q[0].Query, "q="))
	require.NoError(t, err)
	require.Equal(t, `SELECT Id,Email,LastModifiedDate,LastModifiedById,SystemModstamp,IsConverted,ConvertedContactId FROM Lead `+
		`WHERE Email IN ('o\'brien@x.io','b@x.io','\\\' OR Id != null')`, soql)
	require.Equal(t, "/services/data/v62.0/query/01gxx0000000001-1", q[1].Path)
	require.Empty(t, q[1].Query)
	require.Equal(t, 3, resp.Calls)
}

func TestFetchCurrentRejectsUnknownFieldsBeforeSOQL(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	c := newConnector(t)
	for _, field := range []string{"Email FROM User --", "Nope__c", "Email,Id"} {
		_, err := c.FetchCurrent(t.Context(), connector.FetchCurrentRequest{Session: s.session(), Object: "Contact",
			Match: &connector.MatchKey{Field: field, Values: []string{"x"}}})
		require.ErrorIs(t, err, connector.ErrInvalid, field)
		_, err = c.FetchCurrent(t.Context(), connector.FetchCurrentRequest{Session: s.session(), Object: "Contact",
			Match: &connector.MatchKey{Field: "Email", Values: []string{"x"}}, Fields: []string{field}})
		require.ErrorIs(t, err, connector.ErrInvalid, field)
	}
	_, err := c.FetchCurrent(t.Context(), connector.FetchCurrentRequest{Session: s.session(), Object: "Contact WHERE",
		IDs: []string{fakeID("003", 1)}})
	require.ErrorIs(t, err, connector.ErrInvalid)
	require.Empty(t, s.requests("/query"), "nothing unvalidated reached SOQL")
}

func TestFetchCurrentPacksChunkedMatchQueries(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	var subs int
	s.handle("POST /composite", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			CompositeRequest []struct{ Method, URL, ReferenceID string } `json:"compositeRequest"`
		}
		require.NoError(t, json.NewDecoder(r.Body).Decode(&body))
		var answers []map[string]any
		for _, sub := range body.CompositeRequest {
			require.Equal(t, "GET", sub.Method)
			require.True(t, strings.HasPrefix(sub.URL, "/services/data/v62.0/query?q=SELECT+"), sub.URL)
			require.Less(t, len(sub.URL), 16_000)
			subs++
			answers = append(answers, map[string]any{"body": map[string]any{"totalSize": 0, "done": true, "records": []any{}},
				"httpStatusCode": 200, "referenceId": sub.ReferenceID})
		}
		writeJSON(w, 200, map[string]any{"compositeResponse": answers})
	})
	emails := make([]string, 1500)
	for i := range emails {
		emails[i] = fmt.Sprintf("someone.%04d@a-rather-long-domain-name.example.com", i)
	}
	c := newConnector(t)
	resp, err := c.FetchCurrent(t.Context(), connector.FetchCurrentRequest{Session: s.session(), Object: "Contact",
		Match: &connector.MatchKey{Field: "Email", Values: emails}})
	require.NoError(t, err)
	calls := len(s.requests("/composite"))
	require.Greater(t, subs, 1, "the IN list is chunked")
	require.Equal(t, (subs+4)/5, calls, "five queries per composite call")
	require.Equal(t, 1+calls, resp.Calls)
}
