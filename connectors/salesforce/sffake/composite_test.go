package sffake_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/salesforce/sffake"
)

func sub(method, url, ref string, body any) map[string]any {
	m := map[string]any{"method": method, "url": url, "referenceId": ref}
	if body != nil {
		m["body"] = body
	}
	return m
}

func TestCompositeReferencesCountOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.do(t, "POST", v+"/composite", map[string]any{"allOrNone": true, "compositeRequest": []any{
		sub("POST", v+"/sobjects/Account", "refAcct", map[string]any{"Name": "Acme"}),
		sub("POST", v+"/sobjects/Contact", "refContact", map[string]any{"LastName": "Ng", "AccountId": "@{refAcct.id}"}),
		sub("GET", v+"/query?q=SELECT+Id,AccountId+FROM+Contact", "refQ", nil),
		sub("PATCH", v+"/sobjects/Contact/@{refQ.records[0].Id}", "refUpd", map[string]any{"Title": "CTO"}),
		sub("POST", v+"/composite/sobjects", "refColl", map[string]any{"records": []any{rec("Lead", map[string]any{"LastName": "L", "Company": "C"})}}),
	}})
	require.Equal(t, 200, r.status, string(r.body))
	resp := r.json(t).(map[string]any)["compositeResponse"].([]any)
	require.Len(t, resp, 5)
	acct := resp[0].(map[string]any)
	require.Equal(t, 201.0, acct["httpStatusCode"])
	require.Equal(t, "refAcct", acct["referenceId"])
	acctID := acct["body"].(map[string]any)["id"].(string)
	require.Equal(t, map[string]any{"Location": v + "/sobjects/Account/" + acctID}, acct["httpHeaders"])
	contactID := resp[1].(map[string]any)["body"].(map[string]any)["id"].(string)
	upd := resp[3].(map[string]any)
	require.Equal(t, 204.0, upd["httpStatusCode"])
	require.Nil(t, upd["body"])
	require.Equal(t, 200.0, resp[4].(map[string]any)["httpStatusCode"])
	c, _ := b.sf.Get("Contact", contactID)
	require.Equal(t, acctID, c["AccountId"])
	require.Equal(t, "CTO", c["Title"])
	require.Equal(t, sffake.CallCounts{Auth: 1, Write: 1}, b.sf.Calls(), "a composite request is one call")
	used, _ := b.sf.Usage()
	require.Equal(t, 1, used)
}

func TestCompositeAllOrNoneHalts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.do(t, "POST", v+"/composite", map[string]any{"allOrNone": true, "compositeRequest": []any{
		sub("POST", v+"/sobjects/Account", "ok", map[string]any{"Name": "Acme"}),
		sub("POST", v+"/sobjects/Account", "bad", map[string]any{"Website": "x"}),
		sub("POST", v+"/sobjects/Account", "later", map[string]any{"Name": "Later"}),
	}})
	require.Equal(t, 200, r.status)
	halted := []any{map[string]any{"errorCode": "PROCESSING_HALTED", "message": "The transaction was rolled back since another operation in the same transaction failed."}}
	resp := r.json(t).(map[string]any)["compositeResponse"].([]any)
	require.Equal(t, halted, resp[0].(map[string]any)["body"])
	require.Equal(t, 400.0, resp[0].(map[string]any)["httpStatusCode"])
	require.Equal(t, "REQUIRED_FIELD_MISSING", resp[1].(map[string]any)["body"].([]any)[0].(map[string]any)["errorCode"])
	require.Equal(t, halted, resp[2].(map[string]any)["body"])
	require.Empty(t, b.sf.All("Account"), "everything rolled back")

	// Without allOrNone only dependents of the failure stop.
	r = b.do(t, "POST", v+"/composite", map[string]any{"allOrNone": false, "compositeRequest": []any{
		sub("POST", v+"/sobjects/Account", "bad", map[string]any{"Website": "x"}),
		sub("POST", v+"/sobjects/Contact", "dep", map[string]any{"LastName": "N", "AccountId": "@{bad.id}"}),
		sub("POST", v+"/sobjects/Account", "ok", map[string]any{"Name": "Acme"}),
	}})
	resp = r.json(t).(map[string]any)["compositeResponse"].([]any)
	require.Equal(t, 400.0, resp[1].(map[string]any)["httpStatusCode"])
	require.Equal(t, "PROCESSING_HALTED", resp[1].(map[string]any)["body"].([]any)[0].(map[string]any)["errorCode"])
	require.Equal(t, 201.0, resp[2].(map[string]any)["httpStatusCode"])
	require.Len(t, b.sf.All("Account"), 1)
}

func TestCompositeLimits(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var heavy []any
	for i := range 6 {
		heavy = append(heavy, sub("GET", v+"/query?q=SELECT+Id+FROM+Lead", "q"+letter(i), nil))
	}
	r := b.do(t, "POST", v+"/composite", map[string]any{"compositeRequest": heavy})
	require.Equal(t, 400, r.status, "at most 5 collection or query subrequests")
	r = b.do(t, "POST", v+"/composite", map[string]any{"compositeRequest": heavy[:5]})
	require.Equal(t, 200, r.status)

	var light []any
	for i := range 26 {
		light = append(light, sub("GET", v+"/limits", "l"+letter(i), nil))
	}
	r = b.do(t, "POST", v+"/composite", map[string]any{"compositeRequest": light})
	require.Equal(t, 400, r.status, "at most 25 subrequests")
	r = b.do(t, "POST", v+"/composite", map[string]any{"compositeRequest": light[:25]})
	require.Equal(t, 200, r.status)

	r = b.do(t, "POST", v+"/composite", map[string]any{"compositeRequest": []any{sub("GET", v+"/limits", "", nil)}})
	require.Equal(t, 400, r.status, "referenceId is required")
}

func letter(i int) string { return string(rune('a' + i)) }

func TestCompositeBatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.do(t, "POST", v+"/composite/batch", map[string]any{"haltOnError": true, "batchRequests": []any{
		map[string]any{"method": "POST", "url": "v62.0/sobjects/Account", "richInput": map[string]any{"Name": "Acme"}},
		map[string]any{"method": "GET", "url": "v62.0/sobjects/Lead/describe"},
		map[string]any{"method": "POST", "url": "v62.0/sobjects/Account", "richInput": map[string]any{}},
		map[string]any{"method": "GET", "url": "v62.0/limits"},
	}})
	require.Equal(t, 200, r.status, string(r.body))
	body := r.json(t).(map[string]any)
	require.Equal(t, true, body["hasErrors"])
	var statuses []float64
	for _, res := range body["results"].([]any) {
		statuses = append(statuses, res.(map[string]any)["statusCode"].(float64))
	}
	require.Equal(t, []float64{201, 200, 400, 412}, statuses)
	used, _ := b.sf.Usage()
	require.Equal(t, 3, used, "each subrequest that ran is a call")
	require.Len(t, b.sf.All("Account"), 1, "subrequests commit on their own")
}

// A /composite request that only reads (queries, GETs, collection
// retrieves) is counted as a read; one with any write among its
// subrequests is a write. Either way it is one call against the allowance.
func TestCompositeOfReadsCountsAsARead(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.do(t, "POST", v+"/composite", map[string]any{"compositeRequest": []any{
		sub("GET", v+"/query?q=SELECT+Id+FROM+Contact", "refQ", nil),
		sub("POST", v+"/composite/sobjects/Contact", "refR", map[string]any{"ids": []string{"003000000000001AAA"}, "fields": []string{"Id"}}),
		sub("GET", v+"/limits", "refL", nil),
	}})
	require.Equal(t, 200, r.status, string(r.body))
	require.Equal(t, sffake.CallCounts{Auth: 1, Read: 1}, b.sf.Calls())

	r = b.do(t, "POST", v+"/composite", map[string]any{"compositeRequest": []any{
		sub("GET", v+"/query?q=SELECT+Id+FROM+Contact", "refQ", nil),
		sub("POST", v+"/sobjects/Account", "refA", map[string]any{"Name": "Acme"}),
	}})
	require.Equal(t, 200, r.status, string(r.body))
	require.Equal(t, sffake.CallCounts{Auth: 1, Read: 1, Write: 1}, b.sf.Calls())
	used, _ := b.sf.Usage()
	require.Equal(t, 2, used)
}
