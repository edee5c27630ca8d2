package salesforce_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/connector"
)

func TestBulkUpdateSingleCollectionIsSentDirectly(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	s.handle("POST /composite/sobjects", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, []any{
			map[string]any{"id": fakeID("00Q", 1), "success": true, "errors": []any{}},
			map[string]any{"success": false, "errors": []any{map[string]any{"statusCode": "REQUIRED_FIELD_MISSING",
				"message": "Required fields are missing: [LastName]", "fields": []string{"LastName"}}}},
		})
	})
	owner := fakeID("00G", 7)
	resp, err := newConnector(t).BulkUpdate(t.Context(), connector.BulkUpdateRequest{Session: s.session(), Operations: []connector.Operation{
		{Kind: connector.OpCreate, Object: "Lead", Fields: map[string]any{"LastName": "Ng", "Company": "Acme", "OwnerId": owner, "Id": "ignored"}},
		{Kind: connector.OpCreate, Object: "Lead", Fields: map[string]any{"Company": "Acme", "Email": nil}},
	}})
	require.NoError(t, err)
	got := s.requests("/composite/sobjects")
	require.Len(t, got, 1)
	require.Equal(t, "POST", got[0].Method)
	require.Equal(t, "/services/data/v62.0/composite/sobjects", got[0].Path)
	require.Equal(t, "application/json", got[0].Header.Get("Content-Type"))
	require.Equal(t, "Bearer at-1", got[0].Header.Get("Authorization"))
	require.Equal(t, "FALSE", got[0].Header.Get("Sforce-Auto-Assign"), "OwnerId is set: no assignment rules")
	jsonEq(t, fmt.Sprintf(`{"allOrNone":false,"records":[
		{"attributes":{"type":"Lead"},"Company":"Acme","LastName":"Ng","OwnerId":%q},
		{"attributes":{"type":"Lead"},"Company":"Acme","Email":null}]}`, owner), got[0].Body)

	require.Equal(t, []connector.Result{
		{ID: fakeID("00Q", 1), Created: true},
		{Error: &connector.RecordError{Code: "REQUIRED_FIELD_MISSING", Message: "Required fields are missing: [LastName]", Fields: []string{"LastName"}}},
	}, resp.Results)
	require.Equal(t, 2, resp.Calls, "describe + one collection call")
}

func TestBulkUpdatePacksKindsIntoOneComposite(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	c1, c2, l1 := fakeID("003", 1), fakeID("003", 2), fakeID("00Q", 3)
	camp, member := fakeID("701", 1), fakeID("00v", 1)
	var body struct {
		AllOrNone        bool `json:"allOrNone"`
		CompositeRequest []struct {
			Method      string            `json:"method"`
			URL         string            `json:"url"`
			ReferenceID string            `json:"referenceId"`
			Body        json.RawMessage   `json:"body"`
			HTTPHeaders map[string]string `json:"httpHeaders"`
		} `json:"compositeRequest"`
	}
	var autoAssign string
	s.handle("POST /composite", func(w http.ResponseWriter, r *http.Request) {
		autoAssign = r.Header.Get("Sforce-Auto-Assign")
		require.NoError(t, json.NewDecoder(r.Body).Decode(&body))
		ok := func(id string, extra ...any) map[string]any {
			m := map[string]any{"id": id, "success": true, "errors": []any{}}
			if len(extra) > 0 {
				m["created"] = extra[0]
			}
			return m
		}
		fail := func(code, msg string) map[string]any {
			return map[string]any{"success": false, "errors": []any{map[string]any{"statusCode": code, "message": msg, "fields": []any{}}}}
		}
		sub := func(i int, status int, v any) map[string]any {
			b, _ := json.Marshal(v)
			return map[string]any{"body": json.RawMessage(b), "httpHeaders": map[string]any{}, "httpStatusCode": status, "referenceId": fmt.Sprintf("r%d", i)}
		}
		writeJSON(w, 200, map[string]any{"compositeResponse": []any{
			sub(0, 200, []any{ok(c1), fail("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record"),
				fail("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")}),
			sub(1, 200, []any{ok(fakeID("003", 4), true), ok(fakeID("003", 5), false)}),
			sub(2, 200, []any{fail("ENTITY_IS_DELETED", "entity is deleted")}),
			sub(3, 200, []any{fail("DUPLICATE_VALUE", "Already a campaign member.")}),
		}})
	})
	s.handle("GET /query", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"totalSize": 1, "done": true, "records": []any{map[string]any{
			"attributes": map[string]any{"type": "CampaignMember"}, "Id": member, "CampaignId": camp, "LeadId": l1, "ContactId": nil}}})
	})
	resp, err := newConnector(t).BulkUpdate(t.Context(), connector.BulkUpdateRequest{Session: s.session(), Operations: []connector.Operation{
		{Kind: connector.OpUpdate, Object: "Contact", ID: c1, Fields: map[string]any{"LastName": "A"}},
		{Kind: connector.OpUpdate, Object: "Lead", ID: l1, Fields: map[string]any{"LastName": "L", "OwnerId": fakeID("005", 1)}},
		{Kind: connector.OpUpsert, Object: "Contact", ExternalIDField: "Conversion_Id__c", ExternalID: "conv-1", Fields: map[string]any{"LastName": "U1"}},
		{Kind: connector.OpUpdate, Object: "Contact", ID: c2, Fields: map[string]any{"LastName": "B"}},
		{Kind: connector.OpUpsert, Object: "Contact", ExternalIDField: "Conversion_Id__c", ExternalID: "conv-2", Fields: map[string]any{"LastName": "U2"}},
		{Kind: connector.OpDelete, Object: "Contact", ID: c2},
		{Kind: connector.OpCreate, Object: "CampaignMember", Fields: map[string]any{"CampaignId": camp, "LeadId": l1, "Status": "Sent"}},
		{Kind: connector.OpUpdate, Object: "Contact", ID: "003' OR Id != null", Fields: map[string]any{"LastName": "X"}},
		{Kind: connector.OpUpdate, Object: "Contact", ID: c1, Fields: map[string]any{"Nope__c": "X"}},
	}})
	require.NoError(t, err)
	require.Len(t, s.requests("/composite"), 1, "four collection subrequests, one call")
	require.False(t, body.AllOrNone)
	require.Equal(t, "FALSE", autoAssign)
	type sub struct{ method, url, body string }
	want := []sub{
		// Updates of several objects share one request (mixed types are
		// allowed), objects kept consecutive.
		{"PATCH", "/services/data/v62.0/composite/sobjects", fmt.Sprintf(`{"allOrNone":false,"records":[
			{"attributes":{"type":"Contact"},"id":%q,"LastName":"A"},{"attributes":{"type":"Contact"},"id":%q,"LastName":"B"},
			{"attributes":{"type":"Lead"},"id":%q,"LastName":"L","OwnerId":%q}]}`, c1, c2, l1, fakeID("005", 1))},
		{"PATCH", "/services/data/v62.0/composite/sobjects/Contact/Conversion_Id__c", `{"allOrNone":false,"records":[
			{"attributes":{"type":"Contact"},"Conversion_Id__c":"conv-1","LastName":"U1"},
			{"attributes":{"type":"Contact"},"Conversion_Id__c":"conv-2","LastName":"U2"}]}`},
		{"DELETE", "/services/data/v62.0/composite/sobjects?ids=" + c2 + "&allOrNone=false", ""},
		{"POST", "/services/data/v62.0/composite/sobjects", fmt.Sprintf(`{"allOrNone":false,"records":[
			{"attributes":{"type":"CampaignMember"},"CampaignId":%q,"LeadId":%q,"Status":"Sent"}]}`, camp, l1)},
	}
	require.Len(t, body.CompositeRequest, len(want))
	for i, w := range want {
		got := body.CompositeRequest[i]
		require.Equal(t, w.method, got.Method, i)
		require.Equal(t, w.url, got.URL, i)
		require.Equal(t, fmt.Sprintf("r%d", i), got.ReferenceID)
		if w.body == "" {
			require.Empty(t, got.Body)
		} else {
			jsonEq(t, w.body, string(got.Body))
		}
	}
	require.Equal(t, map[string]string{"Sforce-Auto-Assign": "FALSE"}, body.CompositeRequest[0].HTTPHeaders)
	require.Nil(t, body.CompositeRequest[1].HTTPHeaders)

	require.Equal(t, []connector.Result{
		{ID: c1},
		{Error: &connector.RecordError{Code: connector.CodeConvertedLead, Message: "cannot reference converted lead"}},
		{ID: fakeID("003", 4), Created: true},
		{Error: &connector.RecordError{Code: connector.CodeLocked, Message: "unable to obtain exclusive access to this record", Retryable: true}},
		{ID: fakeID("003", 5)},
		{Error: &connector.RecordError{Code: connector.CodeNotFound, Message: "entity is deleted"}},
		{ID: member},
		{Error: &connector.RecordError{Code: "MALFORMED_ID", Message: `malformed id "003' OR Id != null"`}},
		{Error: &connector.RecordError{Code: "INVALID_FIELD", Message: "No such column 'Nope__c' on sobject of type Contact", Fields: []string{"Nope__c"}}},
	}, resp.Results)
}

func TestBulkUpdateSplitsAt200AndFivePerComposite(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	var subs []int
	s.handle("POST /composite", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			CompositeRequest []struct {
				ReferenceID string
				Body        struct{ Records []json.RawMessage }
			} `json:"compositeRequest"`
		}
		require.NoError(t, json.NewDecoder(r.Body).Decode(&body))
		var out []any
		for _, sub := range body.CompositeRequest {
			subs = append(subs, len(sub.Body.Records))
			var items []any
			for range sub.Body.Records {
				items = append(items, map[string]any{"id": fakeID("003", len(subs)), "success": true, "errors": []any{}})
			}
			out = append(out, map[string]any{"body": items, "httpStatusCode": 200, "referenceId": sub.ReferenceID})
		}
		writeJSON(w, 200, map[string]any{"compositeResponse": out})
	})
	s.handle("POST /composite/sobjects", func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Records []json.RawMessage }
		require.NoError(t, json.NewDecoder(r.Body).Decode(&body))
		subs = append(subs, len(body.Records))
		var items []any
		for range body.Records {
			items = append(items, map[string]any{"id": fakeID("003", 99), "success": true, "errors": []any{}})
		}
		writeJSON(w, 200, items)
	})
	ops := make([]connector.Operation, 1250)
	for i := range ops {
		ops[i] = connector.Operation{Kind: connector.OpCreate, Object: "Contact", Fields: map[string]any{"LastName": fmt.Sprint(i)}}
	}
	resp, err := newConnector(t).BulkUpdate(t.Context(), connector.BulkUpdateRequest{Session: s.session(), Operations: ops})
	require.NoError(t, err)
	require.Equal(t, []int{200, 200, 200, 200, 200, 200, 50}, subs)
	require.Len(t, s.requests("/composite"), 2, "1,250 records: ⌈1250/1000⌉ composite calls")
	require.Equal(t, 3, resp.Calls, "describe + two composite calls")
	require.Len(t, resp.Results, 1250)
	for _, r := range resp.Results {
		require.Nil(t, r.Error)
		require.True(t, r.Created)
	}
	require.Empty(t, s.requests("/composite")[0].Header.Get("Sforce-Auto-Assign"), "no OwnerId, no header")
}

func TestBulkUpdateSubrequestFailuresAreRecordErrors(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	s.handle("POST /composite", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"compositeResponse": []any{
			map[string]any{"body": sfErr("SERVER_UNAVAILABLE", "server too busy"), "httpStatusCode": 503, "referenceId": "r0"},
			map[string]any{"body": sfErr("INVALID_FIELD", "No such column 'X'"), "httpStatusCode": 400, "referenceId": "r1"},
		}})
	})
	resp, err := newConnector(t).BulkUpdate(t.Context(), connector.BulkUpdateRequest{Session: s.session(), Operations: []connector.Operation{
		{Kind: connector.OpCreate, Object: "Contact", Fields: map[string]any{"LastName": "A"}},
		{Kind: connector.OpUpdate, Object: "Lead", ID: fakeID("00Q", 1), Fields: map[string]any{"LastName": "B"}},
	}})
	require.NoError(t, err)
	require.Equal(t, &connector.RecordError{Code: "SERVER_UNAVAILABLE", Message: "server too busy", Retryable: true}, resp.Results[0].Error)
	require.Equal(t, &connector.RecordError{Code: "INVALID_FIELD", Message: "No such column 'X'"}, resp.Results[1].Error)
}

func TestDuplicateValueFailsOutsideCampaignMembers(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	s.handle("PATCH /composite/sobjects", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, []any{map[string]any{"id": nil, "success": false, "errors": []any{
			map[string]any{"statusCode": "DUPLICATE_VALUE", "message": "duplicate value found: Conversion_Id__c duplicates value on record with id: 003",
				"fields": []string{"Conversion_Id__c"}}}}})
	})
	short := fakeID("003", 1)[:15]
	resp, err := newConnector(t).BulkUpdate(t.Context(), connector.BulkUpdateRequest{Session: s.session(), Operations: []connector.Operation{
		{Kind: connector.OpUpdate, Object: "Contact", ID: short, Fields: map[string]any{"Conversion_Id__c": "x"}}}})
	require.NoError(t, err)
	require.Equal(t, connector.CodeDuplicate, resp.Results[0].Error.Code)
	require.False(t, resp.Results[0].Error.Retryable)
	require.Equal(t, []string{"Conversion_Id__c"}, resp.Results[0].Error.Fields)
	req := s.requests("/composite/sobjects")[0]
	jsonEq(t, fmt.Sprintf(`{"allOrNone":false,"records":[{"attributes":{"type":"Contact"},"id":%q,"Conversion_Id__c":"x"}]}`, fakeID("003", 1)),
		req.Body)
	require.Empty(t, req.Header.Get("Sforce-Auto-Assign"))
}

// Records of several objects share 200-record requests, at most ten runs of
// one type each, so R records cost ⌈R/200⌉ requests whatever their objects.
func TestBulkUpdateMixesObjectsInRequests(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	var types [][]string
	s.handle("POST /composite", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			CompositeRequest []struct {
				Body struct {
					Records []struct {
						Attributes struct{ Type string } `json:"attributes"`
					}
				}
			} `json:"compositeRequest"`
		}
		require.NoError(t, json.NewDecoder(r.Body).Decode(&body))
		var out []any
		for i, sub := range body.CompositeRequest {
			var ts []string
			var items []any
			for range sub.Body.Records {
				items = append(items, map[string]any{"id": fakeID("001", len(items)+1), "success": true, "errors": []any{}})
			}
			for _, rec := range sub.Body.Records {
				ts = append(ts, rec.Attributes.Type)
			}
			types = append(types, ts)
			b, _ := json.Marshal(items)
			out = append(out, map[string]any{"body": json.RawMessage(b), "httpStatusCode": 200, "referenceId": fmt.Sprintf("r%d", i)})
		}
		writeJSON(w, 200, map[string]any{"compositeResponse": out})
	})
	var ops []connector.Operation
	for i := range 150 {
		ops = append(ops,
			connector.Operation{Kind: connector.OpCreate, Object: "Account", Fields: map[string]any{"Name": fmt.Sprint(i)}},
			connector.Operation{Kind: connector.OpCreate, Object: "Lead", Fields: map[string]any{"LastName": fmt.Sprint(i), "Company": "C"}})
	}
	resp, err := newConnector(t).BulkUpdate(t.Context(), connector.BulkUpdateRequest{Session: s.session(), Operations: ops})
	require.NoError(t, err)
	for i, r := range resp.Results {
		require.Nil(t, r.Error, i)
	}
	require.Len(t, types, 2, "300 records of two objects: two requests of 200 and 100, not one per object and size")
	require.Len(t, types[0], 200)
	require.Len(t, types[1], 100)
	for _, ts := range types {
		runs := 1
		for i := 1; i < len(ts); i++ {
			if ts[i] != ts[i-1] {
				runs++
			}
		}
		require.LessOrEqual(t, runs, 10, "at most ten runs of one type per request")
	}
}
