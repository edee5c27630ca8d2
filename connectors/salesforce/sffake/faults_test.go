package sffake_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/salesforce/sffake"
)

func TestStatusFaults(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		fault      sffake.Fault
		wantStatus int
		wantBody   string
	}{
		"503 on the 2nd query": {sffake.Fault{Method: "GET", Path: "/query", Nth: 2, Times: 1, Status: 503}, 503,
			`[{"message":"Server is unavailable, please try again later","errorCode":"SERVER_UNAVAILABLE"}]`},
		"401 session": {sffake.Fault{Path: "/query", Nth: 2, Times: 1, Status: 401}, 401,
			`[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]`},
		"403 limit": {sffake.Fault{Path: "/query", Nth: 2, Times: 1, Status: 403}, 403,
			`[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]`},
		"403 concurrent limit": {sffake.Fault{Path: "/query", Nth: 2, Times: 1, Status: 403, Message: "ConcurrentPerOrgLongTxn Limit exceeded."}, 403,
			`[{"message":"ConcurrentPerOrgLongTxn Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]`},
		"500":           {sffake.Fault{Path: "/query", Nth: 2, Times: 1, Status: 500}, 500, ""},
		"420 edge page": {sffake.Fault{Path: "/q*", Nth: 2, Times: 1, Status: 420}, 420, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.sf.InjectFault(tc.fault)
			require.Equal(t, 200, b.query(t, "SELECT Id FROM Lead").status)
			r := b.query(t, "SELECT Id FROM Lead")
			require.Equal(t, tc.wantStatus, r.status)
			switch {
			case tc.wantBody != "":
				require.JSONEq(t, tc.wantBody, string(r.body))
			case tc.wantStatus == 420:
				require.Contains(t, r.header.Get("Content-Type"), "text/html")
			default:
				require.Equal(t, "UNKNOWN_EXCEPTION", r.errorCode(t))
			}
			require.Equal(t, 200, b.query(t, "SELECT Id FROM Lead").status, "the fault fired once")
			used, _ := b.sf.Usage()
			require.Equal(t, 2, used, "a refused call does not count")
		})
	}
}

func TestTruncatedBodyAndReset(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sf.InjectFault(sffake.Fault{Path: "/limits", Kind: sffake.FaultTruncate, Times: 1})
	req, _ := http.NewRequest("GET", b.sf.URL()+v+"/limits", nil)
	req.Header.Set("Authorization", "Bearer "+b.token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode)
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)

	b.sf.InjectFault(sffake.Fault{Method: "POST", Path: "/composite", Kind: sffake.FaultReset, Times: 1})
	req, _ = http.NewRequest("POST", b.sf.URL()+v+"/composite/sobjects", nil)
	req.Header.Set("Authorization", "Bearer "+b.token)
	_, err = http.DefaultClient.Do(req)
	require.Error(t, err)
	log := b.sf.RequestLog()
	require.Equal(t, 0, log[len(log)-1].Status)
	require.Equal(t, 200, b.do(t, "GET", v+"/limits", nil).status, "both faults are spent")
}

func TestLatencyFault(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sf.InjectFault(sffake.Fault{Path: "/limits", Kind: sffake.FaultLatency, Latency: time.Minute, Times: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", b.sf.URL()+v+"/limits", nil)
	req.Header.Set("Authorization", "Bearer "+b.token)
	_, err := http.DefaultClient.Do(req)
	require.True(t, errors.Is(err, context.DeadlineExceeded), "the call is still delayed when the client gives up: %v", err)
}

func TestRecordFaults(t *testing.T) {
	t.Parallel()
	b := setup(t)
	locked := b.insert(t, "Account", map[string]any{"Name": "Locked"})
	free := b.insert(t, "Account", map[string]any{"Name": "Free"})
	b.sf.InjectRecordFault(sffake.RecordFault{ID: locked, Code: "UNABLE_TO_LOCK_ROW", Times: 2})
	update := map[string]any{"allOrNone": false, "records": []any{
		rec("Account", map[string]any{"Id": locked, "Name": "L2"}),
		rec("Account", map[string]any{"Id": free, "Name": "F2"}),
	}}
	for try := range 3 {
		r := b.do(t, "PATCH", v+"/composite/sobjects", update)
		require.Equal(t, 200, r.status)
		res := r.json(t).([]any)
		require.Equal(t, true, res[1].(map[string]any)["success"])
		if try < 2 {
			require.Equal(t, map[string]any{"id": locked, "success": false, "errors": []any{map[string]any{
				"statusCode": "UNABLE_TO_LOCK_ROW", "message": "unable to obtain exclusive access to this record or 1 records: " + locked, "fields": []any{}}}}, res[0])
			continue
		}
		require.Equal(t, true, res[0].(map[string]any)["success"], "the lock cleared after 2 tries")
	}

	b.sf.InjectRecordFault(sffake.RecordFault{Object: "Lead", Field: "Email", Value: "blocked@x.io", Code: "FIELD_CUSTOM_VALIDATION_EXCEPTION", Message: "Leads from x.io need approval", Fields: []string{"Email"}})
	r := b.do(t, "POST", v+"/sobjects/Lead", map[string]any{"LastName": "A", "Company": "B", "Email": "Blocked@x.io"})
	require.Equal(t, 400, r.status)
	require.JSONEq(t, `[{"message":"Leads from x.io need approval","errorCode":"FIELD_CUSTOM_VALIDATION_EXCEPTION","fields":["Email"]}]`, string(r.body))
	require.Equal(t, 201, b.do(t, "POST", v+"/sobjects/Lead", map[string]any{"LastName": "A", "Company": "B", "Email": "ok@x.io"}).status)

	b.sf.ClearFaults()
	r = b.do(t, "POST", v+"/sobjects/Lead", map[string]any{"LastName": "A", "Company": "B", "Email": "blocked@x.io"})
	require.Equal(t, 201, r.status)
}

func TestGlobalLatencyAndRequestLog(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sf.SetLatency(time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", b.sf.URL()+v+"/limits", nil)
	_, err := http.DefaultClient.Do(req)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	b.sf.SetLatency(0)

	b.do(t, "PATCH", v+"/sobjects/Lead/00Q000000000000AAA", map[string]any{"Title": "x"}, "Sforce-Auto-Assign", "FALSE", "Sforce-Call-Options", "client=crmsync")
	// The abandoned GET may be logged after the PATCH: its handler ends
	// when its modelled minute is cut short, which can come later.
	log := b.sf.RequestLog()
	var last sffake.Request
	for _, e := range log {
		if e.Method == "PATCH" {
			last = e
		}
	}
	require.Equal(t, "PATCH", last.Method)
	require.Equal(t, v+"/sobjects/Lead/00Q000000000000AAA", last.Path)
	require.Equal(t, "FALSE", last.AutoAssign())
	require.Equal(t, "client=crmsync", last.Header.Get("Sforce-Call-Options"))
	require.JSONEq(t, `{"Title":"x"}`, string(last.Body))
	require.Equal(t, 404, last.Status)
	require.Equal(t, "write", last.Kind)
	require.Equal(t, b.sf.IntegrationUserID(), last.UserID)
	require.Equal(t, "auth", log[0].Kind)
}
