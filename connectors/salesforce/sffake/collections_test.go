package sffake_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/salesforce/sffake"
)

func rec(typ string, fields map[string]any) map[string]any {
	out := map[string]any{"attributes": map[string]any{"type": typ}}
	for k, val := range fields {
		out[k] = val
	}
	return out
}

func TestCollectionCreateMixedTypes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.do(t, "POST", v+"/composite/sobjects", map[string]any{"allOrNone": false, "records": []any{
		rec("Lead", map[string]any{"LastName": "Ng", "Company": "Acme", "Email": "a@x.io"}),
		rec("Contact", map[string]any{"FirstName": "No last name"}),
		rec("Account", map[string]any{"Name": "Acme"}),
	}})
	require.Equal(t, 200, r.status, string(r.body))
	res := r.json(t).([]any)
	require.Len(t, res, 3)
	first := res[0].(map[string]any)
	require.Equal(t, true, first["success"])
	require.Equal(t, "00Q", first["id"].(string)[:3])
	require.Equal(t, map[string]any{"success": false, "errors": []any{map[string]any{"statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [LastName]", "fields": []any{"LastName"}}}}, res[1])
	require.Equal(t, "001", res[2].(map[string]any)["id"].(string)[:3])
	require.Equal(t, sffake.CallCounts{Auth: 1, Write: 1}, b.sf.Calls(), "a collection is one call")
}

func TestCollectionAllOrNone(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.do(t, "POST", v+"/composite/sobjects", map[string]any{"allOrNone": true, "records": []any{
		rec("Account", map[string]any{"Name": "Kept?"}),
		rec("Account", map[string]any{"Website": "no name"}),
	}})
	require.Equal(t, 200, r.status)
	require.JSONEq(t, `[
	 {"success":false,"errors":[{"statusCode":"ALL_OR_NONE_OPERATION_ROLLED_BACK","message":"Record rolled back because not all records were valid and the request was using AllOrNone header","fields":[]}]},
	 {"success":false,"errors":[{"statusCode":"REQUIRED_FIELD_MISSING","message":"Required fields are missing: [Name]","fields":["Name"]}]}]`, string(r.body))
	require.Empty(t, b.sf.All("Account"), "rolled back")
}

func TestCollectionLimitsAndChunks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var many []any
	for range 201 {
		many = append(many, rec("Account", map[string]any{"Name": "A"}))
	}
	r := b.do(t, "POST", v+"/composite/sobjects", map[string]any{"records": many})
	require.Equal(t, 400, r.status)
	require.JSONEq(t, `[{"message":"record limit reached. cannot submit more than 200 records into this call","errorCode":"EXCEEDED_ID_LIMIT"}]`, string(r.body))

	var chunky []any
	for i := range 11 {
		if i%2 == 0 {
			chunky = append(chunky, rec("Account", map[string]any{"Name": "A"}))
		} else {
			chunky = append(chunky, rec("Contact", map[string]any{"LastName": "C"}))
		}
	}
	r = b.do(t, "POST", v+"/composite/sobjects", map[string]any{"records": chunky})
	require.Equal(t, 400, r.status, "11 chunks of consecutive types")
	require.Equal(t, "INVALID_BATCH_REQUEST", r.errorCode(t))
	r = b.do(t, "POST", v+"/composite/sobjects", map[string]any{"records": chunky[:10]})
	require.Equal(t, 200, r.status, "10 chunks are allowed")

	r = b.do(t, "POST", v+"/composite/sobjects", map[string]any{"records": []any{map[string]any{"Name": "no attributes"}}})
	require.Equal(t, 400, r.status)
	r = b.do(t, "POST", v+"/composite/sobjects", map[string]any{"records": []any{rec("Account", map[string]any{"Name": "A", "Bogus": 1})}})
	require.Equal(t, "INVALID_FIELD", r.errorCode(t), "an unknown field fails the whole request")
	require.Len(t, b.sf.All("Account"), 5, "only the 10-chunk request wrote")
}

func TestCollectionUpdateUpsertRetrieveDelete(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a1 := b.insert(t, "Account", map[string]any{"Name": "One"})
	a2 := b.insert(t, "Account", map[string]any{"Name": "Two"})
	c1 := b.insert(t, "Contact", map[string]any{"LastName": "C", "Conversion_Id__c": "ext-1"})

	r := b.do(t, "PATCH", v+"/composite/sobjects", map[string]any{"allOrNone": false, "records": []any{
		rec("Account", map[string]any{"id": a1, "Name": "Uno"}),
		rec("Account", map[string]any{"Name": "no id"}),
		rec("Contact", map[string]any{"Id": c1, "Email": "bad"}),
	}})
	require.Equal(t, 200, r.status, string(r.body))
	require.JSONEq(t, `[{"id":"`+a1+`","success":true,"errors":[]},
	 {"success":false,"errors":[{"statusCode":"MISSING_ARGUMENT","message":"Id not specified in an update call","fields":[]}]},
	 {"id":"`+c1+`","success":false,"errors":[{"statusCode":"INVALID_EMAIL_ADDRESS","message":"Email: invalid email address: bad","fields":["Email"]}]}]`, string(r.body))

	r = b.do(t, "PATCH", v+"/composite/sobjects/Contact/Conversion_Id__c", map[string]any{"allOrNone": false, "records": []any{
		rec("Contact", map[string]any{"Conversion_Id__c": "ext-1", "LastName": "Updated"}),
		rec("Contact", map[string]any{"Conversion_Id__c": "ext-2", "LastName": "New"}),
	}})
	require.Equal(t, 200, r.status, string(r.body))
	res := r.json(t).([]any)
	require.Equal(t, map[string]any{"id": c1, "success": true, "errors": []any{}, "created": false}, res[0])
	require.Equal(t, true, res[1].(map[string]any)["created"])

	// Retrieve: null for missing and deleted ids, order kept, 15-char ids accepted.
	require.NoError(t, b.sf.DeleteAsUser(b.sf.RepUserID(), a2))
	r = b.do(t, "POST", v+"/composite/sobjects/Account", map[string]any{"ids": []string{a2, a1[:15], "001" + strings.Repeat("0", 12)}, "fields": []string{"Id", "Name"}})
	require.Equal(t, 200, r.status, string(r.body))
	require.JSONEq(t, `[null,{"attributes":{"type":"Account","url":"`+v+`/sobjects/Account/`+a1+`"},"Id":"`+a1+`","Name":"Uno"},null]`, string(r.body))
	r = b.do(t, "GET", v+"/composite/sobjects/Account?ids="+a1+"&fields=Name", nil)
	require.Equal(t, 200, r.status)
	require.Equal(t, sffake.CallCounts{Auth: 1, Read: 2, Write: 2}, b.sf.Calls())
	r = b.do(t, "POST", v+"/composite/sobjects/Account", map[string]any{"ids": []string{a1}, "fields": []string{"Nope"}})
	require.Equal(t, "INVALID_FIELD", r.errorCode(t))
	r = b.do(t, "POST", v+"/composite/sobjects/Account", map[string]any{"ids": []string{"' OR 1=1"}, "fields": []string{"Name"}})
	require.Equal(t, "MALFORMED_ID", r.errorCode(t))
	tooMany := make([]string, 2001)
	for i := range tooMany {
		tooMany[i] = a1
	}
	r = b.do(t, "POST", v+"/composite/sobjects/Account", map[string]any{"ids": tooMany, "fields": []string{"Name"}})
	require.Equal(t, "EXCEEDED_ID_LIMIT", r.errorCode(t))

	r = b.do(t, "DELETE", v+"/composite/sobjects?ids="+a1+","+a2+"&allOrNone=false", nil)
	require.Equal(t, 200, r.status)
	require.JSONEq(t, `[{"id":"`+a1+`","success":true,"errors":[]},
	 {"id":"`+a2+`","success":false,"errors":[{"statusCode":"ENTITY_IS_DELETED","message":"entity is deleted","fields":[]}]}]`, string(r.body))
}

func TestRetrieveByGETOverflowsTheURI(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.insert(t, "Account", map[string]any{"Name": "A"})
	idsParam := strings.TrimSuffix(strings.Repeat(a+",", 1000), ",")
	r := b.do(t, "GET", v+"/composite/sobjects/Account?fields=Name&ids="+idsParam, nil)
	require.Equal(t, 414, r.status, "about 800 ids fit in a GET; POST takes 2,000")
	used, _ := b.sf.Usage()
	require.Equal(t, 0, used)
	r = b.do(t, "GET", v+"/composite/sobjects/Account?fields=Name&ids="+strings.TrimSuffix(strings.Repeat(a+",", 800), ","), nil)
	require.Equal(t, 200, r.status)
}
