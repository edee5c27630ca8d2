package salesforce_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/salesforce"
)

func TestParseLimitInfo(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		in        string
		used, max int64
		ok        bool
	}{
		"plain":          {"api-usage=18/5000", 18, 5000, true},
		"per app":        {"api-usage=25/5000; per-app-api-usage=17/250(appName=sample-connected-app)", 25, 5000, true},
		"bursts":         {"api-usage=10018/100000; api-bursts=1/750", 10018, 100000, true},
		"per app first":  {"per-app-api-usage=17/250(appName=x);api-usage=25/5000", 25, 5000, true},
		"spaces":         {"  api-usage = 7 / 15000 ", 7, 15000, true},
		"comma":          {"api-usage=3/15000, api-bursts=1/750", 3, 15000, true},
		"empty":          {"", 0, 0, false},
		"per app only":   {"per-app-api-usage=17/250(appName=x)", 0, 0, false},
		"garbage":        {"api-usage=lots/many", 0, 0, false},
		"zero max":       {"api-usage=1/0", 0, 0, false},
		"no slash":       {"api-usage=12", 0, 0, false},
		"negative":       {"api-usage=-1/10", 0, 0, false},
		"case":           {"API-Usage=5/10", 5, 10, true},
		"over allowance": {"api-usage=15001/15000", 15001, 15000, true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			used, max, ok := salesforce.ParseLimitInfo(tt.in)
			require.Equal(t, tt.ok, ok)
			require.Equal(t, tt.used, used)
			require.Equal(t, tt.max, max)
		})
	}
}

func TestErrorAnswersMapToKinds(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		status int
		body   string
		kind   connector.Kind
	}{
		"daily limit":      {403, `[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]`, connector.KindRateLimited},
		"concurrent limit": {403, `[{"message":"ConcurrentPerOrgLongTxn Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]`, connector.KindRateLimited},
		"forbidden":        {403, `[{"message":"no","errorCode":"INSUFFICIENT_ACCESS"}]`, connector.KindInvalid},
		"api disabled":     {403, `[{"message":"API is not enabled for this Organization or Partner","errorCode":"API_DISABLED_FOR_ORG"}]`, connector.KindCredentials},
		"500":              {500, `[{"message":"An unexpected error occurred","errorCode":"UNKNOWN_EXCEPTION"}]`, connector.KindUnavailable},
		"502 html":         {502, `<html><body>Bad Gateway</body></html>`, connector.KindUnavailable},
		"503":              {503, `[{"message":"server too busy","errorCode":"SERVER_UNAVAILABLE"}]`, connector.KindUnavailable},
		"420 edge":         {420, `<html>Enhance your calm</html>`, connector.KindUnavailable},
		"query timeout":    {400, `[{"message":"Your query request was running too long","errorCode":"QUERY_TIMEOUT"}]`, connector.KindUnavailable},
		"malformed":        {400, `[{"message":"unexpected token","errorCode":"MALFORMED_QUERY"}]`, connector.KindInvalid},
		"not found":        {404, `[{"message":"The requested resource does not exist","errorCode":"NOT_FOUND"}]`, connector.KindInvalid},
		"truncated 200":    {200, `{"DailyApiRequests":{"Max":15000,"Rem`, connector.KindUnavailable},
		"html 200":         {200, `<html>login</html>`, connector.KindUnavailable},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t)
			s.handle("GET /limits", func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			})
			_, err := newConnector(t).Limits(t.Context(), connector.LimitsRequest{Session: s.session()})
			require.Error(t, err)
			require.Equal(t, tt.kind, connector.KindOf(err), "%v", err)
			if tt.kind == connector.KindRateLimited {
				var ce *connector.Error
				require.True(t, errors.As(err, &ce))
				require.Positive(t, ce.RetryAfter)
			}
		})
	}
}

func TestAPIErrorIsTheCause(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	s.handle("GET /limits", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 403, sfErr("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."))
	})
	_, err := newConnector(t).Limits(t.Context(), connector.LimitsRequest{Session: s.session()})
	var ae *salesforce.APIError
	require.True(t, errors.As(err, &ae))
	require.Equal(t, salesforce.APIError{Status: 403, Code: "REQUEST_LIMIT_EXCEEDED", Message: "TotalRequests Limit exceeded."}, *ae)
}

func TestConnectionResetIsUnavailable(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	s.handle("GET /limits", func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		require.NoError(t, err)
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // RST instead of FIN
		}
		_ = conn.Close()
	})
	_, err := newConnector(t).Limits(t.Context(), connector.LimitsRequest{Session: s.session()})
	require.ErrorIs(t, err, connector.ErrUnavailable)
}

func TestTruncatedBodyIsUnavailable(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	s.handle("GET /limits", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "500")
		w.WriteHeader(200)
		_, _ = w.Write([]byte(`{"DailyApiRequests":`))
		conn, _, err := w.(http.Hijacker).Hijack()
		require.NoError(t, err)
		_ = conn.Close()
	})
	_, err := newConnector(t).Limits(t.Context(), connector.LimitsRequest{Session: s.session()})
	require.ErrorIs(t, err, connector.ErrUnavailable)
}

func TestContextIsHonoured(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	s.handle("GET /limits", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	c := newConnector(t)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Limits(ctx, connector.LimitsRequest{Session: s.session()})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.True(t, connector.Retryable(err))

	canceled, cancel2 := context.WithCancel(t.Context())
	cancel2()
	_, err = c.FetchCurrent(canceled, connector.FetchCurrentRequest{Session: s.session(), Object: "Contact", IDs: []string{}})
	require.ErrorIs(t, err, context.Canceled)
}

func TestGzipAnswersAreRead(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	s.handle("GET /limits", func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "gzip", r.Header.Get("Accept-Encoding"))
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		_, _ = zw.Write([]byte(`{"DailyApiRequests":{"Max":15000,"Remaining":14000}}`))
		require.NoError(t, zw.Close())
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b.Bytes())
	})
	resp, err := newConnector(t).Limits(t.Context(), connector.LimitsRequest{Session: s.session()})
	require.NoError(t, err)
	require.Equal(t, int64(1000), resp.Usage.Used)
	require.Equal(t, 1, resp.Calls)
	require.Equal(t, int64(1), resp.Meta.Usage.Used, "Meta.Usage comes from Sforce-Limit-Info")
}

func TestDescribeMapsAndCaches(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	c := newConnector(t)
	static, err := c.Describe(t.Context(), connector.DescribeRequest{})
	require.NoError(t, err)
	require.Equal(t, "salesforce", static.Name)
	require.True(t, static.Has(connector.CapabilityFetchChanges))
	require.True(t, static.Has(connector.CapabilityUpsert))
	require.Empty(t, static.Objects)
	require.Equal(t, connector.SalesforceContract(), static.Contract, "the contract is declared with or without credentials")
	require.Empty(t, s.requests("/"), "no call without credentials")

	d, err := c.Describe(t.Context(), connector.DescribeRequest{Session: s.session(), Objects: []string{"Lead"}})
	require.NoError(t, err)
	require.Len(t, d.Objects, 1)
	require.Equal(t, connector.SalesforceContract(), d.Contract)
	lead := d.Objects[0]
	status, ok := lead.Field("Status")
	require.True(t, ok)
	require.Equal(t, connector.Field{Name: "Status", Label: "Status", Type: "picklist", Createable: true, Updateable: true,
		Nillable: true, PicklistValues: []string{"Open"}}, status, "inactive picklist values left out")
	owner, _ := lead.Field("OwnerId")
	require.Equal(t, []string{"User"}, owner.ReferenceTo)
	require.Equal(t, 1, d.Calls)

	_, err = c.Describe(t.Context(), connector.DescribeRequest{Session: s.session(), Objects: []string{"Lead"}})
	require.NoError(t, err)
	require.Len(t, s.requests("/sobjects/Lead/describe"), 1, "cached")
	require.Equal(t, "/services/data/v62.0/sobjects/Lead/describe", s.requests("/sobjects/Lead/describe")[0].Path)

	_, err = c.Describe(t.Context(), connector.DescribeRequest{Session: s.session(), Objects: []string{"Nope__c"}})
	require.ErrorIs(t, err, connector.ErrInvalid)
}
