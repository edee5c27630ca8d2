package sffake_test

import (
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/salesforce/sffake"
)

func TestChecksum(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"012000000000000": "AAA",
		"AAAAAAAAAAAAAAA": "555",
		"a0Ab00000FooBaR": "EQU",
		"001D000000IRFma": "IAH",
		"00Di0000000icUB": "EAY",
		"a011s00000DML8X": "AAX",
	}
	for id15, want := range tests {
		t.Run(id15, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, want, sffake.Checksum(id15))
			id18, ok := sffake.NormalizeID(id15)
			require.True(t, ok)
			require.Equal(t, id15+want, id18)
			// The 18-character form is case-insensitive.
			back, ok := sffake.NormalizeID(strings.ToLower(id18))
			require.True(t, ok)
			require.Equal(t, id18, back)
		})
	}
	for _, bad := range []string{"", "001", "001D000000IRFm", "001D000000IRFma!", "001D000000IRFmaIA", "' OR Id != null"} {
		_, ok := sffake.NormalizeID(bad)
		require.False(t, ok, bad)
	}
}

var idRE = regexp.MustCompile(`^[0-9A-Za-z]{18}$`)

func TestNewRecordsHaveValidIDsAndStamps(t *testing.T) {
	t.Parallel()
	b := setup(t)
	prefixes := map[string]map[string]any{
		"00Q": {"object": "Lead", "fields": map[string]any{"LastName": "Ng", "Company": "Acme"}},
		"001": {"object": "Account", "fields": map[string]any{"Name": "Acme"}},
		"003": {"object": "Contact", "fields": map[string]any{"LastName": "Ruiz"}},
		"701": {"object": "Campaign", "fields": map[string]any{"Name": "Spring"}},
		"00T": {"object": "Task", "fields": map[string]any{"Subject": "Call"}},
	}
	for prefix, tc := range prefixes {
		obj := tc["object"].(string)
		r := b.do(t, "POST", v+"/sobjects/"+obj, tc["fields"])
		require.Equal(t, 201, r.status, string(r.body))
		id := r.json(t).(map[string]any)["id"].(string)
		require.Regexp(t, idRE, id)
		require.Equal(t, prefix, id[:3])
		require.Equal(t, sffake.Checksum(id[:15]), id[15:])
		require.Equal(t, v+"/sobjects/"+obj+"/"+id, r.header.Get("Location"))

		got := b.do(t, "GET", v+"/sobjects/"+obj+"/"+id, nil).json(t).(map[string]any)
		require.Equal(t, map[string]any{"type": obj, "url": v + "/sobjects/" + obj + "/" + id}, got["attributes"])
		require.Equal(t, "2024-05-01T12:00:00.000+0000", got["CreatedDate"])
		require.Equal(t, "2024-05-01T12:00:00.000+0000", got["SystemModstamp"])
		require.Equal(t, b.sf.IntegrationUserID(), got["CreatedById"])
		require.Equal(t, b.sf.IntegrationUserID(), got["LastModifiedById"])
		require.Equal(t, false, got["IsDeleted"])
	}
}

func TestVersionsLimitsAndUsage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.do(t, "GET", "/services/data/", nil)
	require.Equal(t, 200, r.status)
	require.Contains(t, r.json(t), map[string]any{"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"})
	used, max := b.sf.Usage()
	require.Equal(t, 0, used, "the versions list is free")
	require.Equal(t, 15000, max)

	r = b.do(t, "GET", v+"/limits", nil)
	require.Equal(t, "api-usage=1/15000", r.header.Get("Sforce-Limit-Info"))
	lim := r.json(t).(map[string]any)["DailyApiRequests"].(map[string]any)
	require.Equal(t, map[string]any{"Max": 15000.0, "Remaining": 14999.0}, lim)

	require.Equal(t, 404, b.do(t, "GET", "/services/data/v12.0/limits", nil).status, "unknown version")
}

func TestRequestLimitExceeded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sf.SetDailyMax(3)
	b.sf.SetUsage(1)
	require.Equal(t, 200, b.do(t, "GET", v+"/limits", nil).status)
	r := b.do(t, "GET", v+"/limits", nil)
	require.Equal(t, 200, r.status)
	require.Equal(t, "api-usage=3/3", r.header.Get("Sforce-Limit-Info"))
	r = b.do(t, "GET", v+"/query?q=SELECT+Id+FROM+Lead", nil)
	require.Equal(t, 403, r.status)
	require.JSONEq(t, `[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]`, string(r.body))
	require.Equal(t, "api-usage=3/3", r.header.Get("Sforce-Limit-Info"))
	require.Equal(t, 200, b.do(t, "GET", "/services/data/", nil).status, "versions stay available")
	b.sf.SetUsage(0)
	require.Equal(t, 200, b.do(t, "GET", v+"/limits", nil).status)
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, obj := range []string{"Lead", "Contact", "Account", "Campaign", "CampaignMember", "Task", "User", "Group"} {
		r := b.do(t, "GET", v+"/sobjects/"+obj+"/describe", nil)
		require.Equal(t, 200, r.status, obj)
		d := r.json(t).(map[string]any)
		require.Equal(t, obj, d["name"])
		fields := map[string]map[string]any{}
		for _, f := range d["fields"].([]any) {
			fm := f.(map[string]any)
			fields[fm["name"].(string)] = fm
		}
		for _, sys := range []string{"Id", "LastModifiedDate", "LastModifiedById", "SystemModstamp", "CreatedDate", "IsDeleted"} {
			require.Contains(t, fields, sys, obj)
			require.Equal(t, false, fields[sys]["updateable"], obj+"."+sys)
		}
		if obj == "Lead" || obj == "Contact" || obj == "Account" {
			ext := fields["Conversion_Id__c"]
			require.Equal(t, true, ext["externalId"])
			require.Equal(t, true, ext["custom"])
		}
	}
	lead := b.do(t, "GET", v+"/sobjects/Lead/describe", nil).json(t).(map[string]any)
	var owner, lastName map[string]any
	for _, f := range lead["fields"].([]any) {
		switch fm := f.(map[string]any); fm["name"] {
		case "OwnerId":
			owner = fm
		case "LastName":
			lastName = fm
		}
	}
	require.Equal(t, []any{"Group", "User"}, owner["referenceTo"])
	require.Equal(t, "Owner", owner["relationshipName"])
	require.Equal(t, true, owner["defaultedOnCreate"])
	require.Equal(t, 80.0, lastName["length"])
	require.Equal(t, false, lastName["nillable"])
	require.Equal(t, "00Q", lead["keyPrefix"])
	require.Equal(t, "NOT_FOUND", b.do(t, "GET", v+"/sobjects/Nope/describe", nil).errorCode(t))
}

func TestSingleRecordCRUD(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.do(t, "POST", v+"/sobjects/Lead", map[string]any{"LastName": "Ng", "Company": "Acme", "Email": "ng@acme.io", "Title": ""})
	require.Equal(t, 201, r.status)
	require.Equal(t, []any{}, r.json(t).(map[string]any)["errors"])
	id := r.json(t).(map[string]any)["id"].(string)

	b.sf.Clock().Advance(90 * time.Second)
	r = b.do(t, "PATCH", v+"/sobjects/Lead/"+id[:15], map[string]any{"Title": "CTO"}, "Sforce-Auto-Assign", "FALSE")
	require.Equal(t, 204, r.status, string(r.body))
	require.Empty(t, r.body)
	got := b.do(t, "GET", v+"/sobjects/Lead/"+id+"?fields=Title,LastModifiedDate", nil).json(t).(map[string]any)
	require.Equal(t, map[string]any{"attributes": got["attributes"], "Title": "CTO", "LastModifiedDate": "2024-05-01T12:01:30.000+0000"}, got)
	log := b.sf.RequestLog()
	require.Equal(t, "FALSE", log[len(log)-2].AutoAssign())

	require.Equal(t, 204, b.do(t, "DELETE", v+"/sobjects/Lead/"+id, nil).status)
	r = b.do(t, "GET", v+"/sobjects/Lead/"+id, nil)
	require.Equal(t, 404, r.status)
	require.Equal(t, "ENTITY_IS_DELETED", r.errorCode(t))
	r = b.do(t, "PATCH", v+"/sobjects/Lead/"+id, map[string]any{"Title": "x"})
	require.Equal(t, "ENTITY_IS_DELETED", r.errorCode(t))
	require.Equal(t, 404, b.do(t, "DELETE", v+"/sobjects/Lead/"+id, nil).status)
	require.Equal(t, "NOT_FOUND", b.do(t, "GET", v+"/sobjects/Lead/00Q5g00000zzzzzzzz", nil).errorCode(t))
}

func TestWriteValidation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	account := b.insert(t, "Account", map[string]any{"Name": "Acme"})
	deletedAccount := b.insert(t, "Account", map[string]any{"Name": "Gone"})
	require.NoError(t, b.sf.DeleteAsUser(b.sf.RepUserID(), deletedAccount))
	tests := map[string]struct {
		object, method, id string
		body               map[string]any
		wantStatus         int
		want               string // the whole error envelope
	}{
		"lead required fields": {object: "Lead", body: map[string]any{"FirstName": "A"}, wantStatus: 400,
			want: `[{"message":"Required fields are missing: [LastName, Company]","errorCode":"REQUIRED_FIELD_MISSING","fields":["LastName","Company"]}]`},
		"contact last name": {object: "Contact", body: map[string]any{"FirstName": "A"}, wantStatus: 400,
			want: `[{"message":"Required fields are missing: [LastName]","errorCode":"REQUIRED_FIELD_MISSING","fields":["LastName"]}]`},
		"account name": {object: "Account", body: map[string]any{"Website": "x.io"}, wantStatus: 400,
			want: `[{"message":"Required fields are missing: [Name]","errorCode":"REQUIRED_FIELD_MISSING","fields":["Name"]}]`},
		"campaign member needs a lead or contact": {object: "CampaignMember", body: map[string]any{"Status": "Sent"}, wantStatus: 400,
			want: `[{"message":"Required fields are missing: [CampaignId]","errorCode":"REQUIRED_FIELD_MISSING","fields":["CampaignId"]}]`},
		"unknown field": {object: "Lead", body: map[string]any{"LastName": "A", "Company": "B", "Foo__c": "x"}, wantStatus: 400,
			want: `[{"message":"No such column 'Foo__c' on sobject of type Lead","errorCode":"INVALID_FIELD"}]`},
		"read-only field": {object: "Lead", body: map[string]any{"LastName": "A", "Company": "B", "IsConverted": true}, wantStatus: 400,
			want: `[{"message":"Unable to create/update fields: IsConverted. Please check the security settings of this field and verify that it is read/write for your profile or permission set.","errorCode":"INVALID_FIELD_FOR_INSERT_UPDATE","fields":["IsConverted"]}]`},
		"bad email": {object: "Contact", body: map[string]any{"LastName": "A", "Email": "not-an-email"}, wantStatus: 400,
			want: `[{"message":"Email: invalid email address: not-an-email","errorCode":"INVALID_EMAIL_ADDRESS","fields":["Email"]}]`},
		"too long": {object: "Contact", body: map[string]any{"LastName": strings.Repeat("x", 81)}, wantStatus: 400,
			want: `[{"message":"Last Name: data value too large: ` + strings.Repeat("x", 81) + ` (max length=80)","errorCode":"STRING_TOO_LONG","fields":["LastName"]}]`},
		"reference of the wrong type": {object: "Contact", body: map[string]any{"LastName": "A", "AccountId": b.sf.RepUserID()}, wantStatus: 400,
			want: `[{"message":"Account ID: id value of incorrect type: ` + b.sf.RepUserID() + `","errorCode":"MALFORMED_ID","fields":["AccountId"]}]`},
		"reference that is not an id": {object: "Contact", body: map[string]any{"LastName": "A", "AccountId": "' OR 1=1"}, wantStatus: 400,
			want: `[{"message":"Account ID: id value of incorrect type: ' OR 1=1","errorCode":"MALFORMED_ID","fields":["AccountId"]}]`},
		"reference to a deleted record": {object: "Contact", body: map[string]any{"LastName": "A", "AccountId": deletedAccount}, wantStatus: 400,
			want: `[{"message":"invalid cross reference id","errorCode":"INVALID_CROSS_REFERENCE_KEY","fields":[]}]`},
		"wrong JSON type": {object: "Contact", body: map[string]any{"LastName": 12}, wantStatus: 400,
			want: `[{"message":"Cannot deserialize instance of string from VALUE_NUMBER_INT value 12 or request may be missing a required field","errorCode":"JSON_PARSER_ERROR"}]`},
		"id on insert": {object: "Contact", body: map[string]any{"LastName": "A", "Id": account}, wantStatus: 400,
			want: `[{"message":"cannot specify Id in an insert call","errorCode":"INVALID_FIELD","fields":[]}]`},
		"update blanks a required field": {object: "Account", method: "PATCH", id: account, body: map[string]any{"Name": ""}, wantStatus: 400,
			want: `[{"message":"Required fields are missing: [Name]","errorCode":"REQUIRED_FIELD_MISSING","fields":["Name"]}]`},
		"update of a create-only field": {object: "Account", method: "PATCH", id: account, body: map[string]any{"CreatedDate": "2024-01-01T00:00:00Z"}, wantStatus: 400,
			want: `[{"message":"Unable to create/update fields: CreatedDate. Please check the security settings of this field and verify that it is read/write for your profile or permission set.","errorCode":"INVALID_FIELD_FOR_INSERT_UPDATE","fields":["CreatedDate"]}]`},
		"setup object": {object: "User", body: map[string]any{"LastName": "A"}, wantStatus: 400,
			want: `[{"message":"entity type cannot be inserted: User","errorCode":"INVALID_TYPE_FOR_OPERATION","fields":[]}]`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			method, path := "POST", v+"/sobjects/"+tc.object
			if tc.method != "" {
				method, path = tc.method, path+"/"+tc.id
			}
			r := b.do(t, method, path, tc.body)
			require.Equal(t, tc.wantStatus, r.status, string(r.body))
			require.JSONEq(t, tc.want, string(r.body))
		})
	}
}

func TestUpsertByExternalID(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.do(t, "PATCH", v+"/sobjects/Contact/Conversion_Id__c/c-1", map[string]any{"LastName": "Ng"})
	require.Equal(t, 201, r.status, string(r.body))
	created := r.json(t).(map[string]any)
	require.Equal(t, true, created["created"])
	r = b.do(t, "PATCH", v+"/sobjects/Contact/Conversion_Id__c/C-1", map[string]any{"LastName": "Ng2"})
	require.Equal(t, 200, r.status, "external ids match case-insensitively")
	updated := r.json(t).(map[string]any)
	require.Equal(t, map[string]any{"id": created["id"], "success": true, "errors": []any{}, "created": false}, updated)
	rec, ok := b.sf.Get("Contact", created["id"].(string))
	require.True(t, ok)
	require.Equal(t, "Ng2", rec["LastName"])

	r = b.do(t, "PATCH", v+"/sobjects/Contact/Email/x@y.io", map[string]any{"LastName": "Ng"})
	require.Equal(t, 404, r.status)
	require.Equal(t, "NOT_FOUND", r.errorCode(t))

	// A unique external id cannot be created twice.
	r = b.do(t, "POST", v+"/sobjects/Contact", map[string]any{"LastName": "Dup", "Conversion_Id__c": "c-1"})
	require.Equal(t, "DUPLICATE_VALUE", r.errorCode(t))
}

func TestConvertedLeadsAndCampaignMembers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	lead := b.insert(t, "Lead", map[string]any{"LastName": "Ng", "Company": "Acme", "Email": "ng@acme.io"})
	other := b.insert(t, "Lead", map[string]any{"LastName": "Li", "Company": "Acme"})
	campaign := b.insert(t, "Campaign", map[string]any{"Name": "Spring"})

	r := b.do(t, "POST", v+"/sobjects/CampaignMember", map[string]any{"CampaignId": campaign, "LeadId": other})
	require.Equal(t, 201, r.status, string(r.body))
	r = b.do(t, "POST", v+"/sobjects/CampaignMember", map[string]any{"CampaignId": campaign, "LeadId": other})
	require.Equal(t, 400, r.status)
	require.JSONEq(t, `[{"message":"Already a campaign member.","errorCode":"DUPLICATE_VALUE","fields":[]}]`, string(r.body))

	contact, account, err := b.sf.ConvertLead(lead)
	require.NoError(t, err)
	got, _ := b.sf.Get("Lead", lead)
	require.Equal(t, true, got["IsConverted"])
	require.Equal(t, contact, got["ConvertedContactId"])
	require.Equal(t, account, got["ConvertedAccountId"])
	c, _ := b.sf.Get("Contact", contact)
	require.Equal(t, "ng@acme.io", c["Email"])
	require.Equal(t, account, c["AccountId"])

	r = b.do(t, "PATCH", v+"/sobjects/Lead/"+lead, map[string]any{"Title": "CTO"})
	require.Equal(t, 400, r.status)
	require.JSONEq(t, `[{"message":"cannot reference converted lead","errorCode":"CANNOT_UPDATE_CONVERTED_LEAD","fields":[]}]`, string(r.body))
	r = b.do(t, "POST", v+"/sobjects/Task", map[string]any{"Subject": "Call", "WhoId": lead})
	require.Equal(t, "CANNOT_UPDATE_CONVERTED_LEAD", r.errorCode(t))
	r = b.do(t, "POST", v+"/sobjects/Task", map[string]any{"Subject": "Call", "WhoId": contact, "WhatId": account})
	require.Equal(t, 201, r.status, string(r.body))
}

func TestQueueOwnerAndAssignmentRule(t *testing.T) {
	t.Parallel()
	b := setup(t)
	leadQueue := b.sf.AddQueue("Inbound", "Lead")
	caseQueue := b.sf.AddQueue("Support", "Case")
	r := b.do(t, "POST", v+"/sobjects/Lead", map[string]any{"LastName": "Ng", "Company": "Acme", "OwnerId": leadQueue}, "Sforce-Auto-Assign", "FALSE")
	require.Equal(t, 201, r.status, string(r.body))
	id := r.json(t).(map[string]any)["id"].(string)
	got, _ := b.sf.Get("Lead", id)
	require.Equal(t, leadQueue, got["OwnerId"])

	r = b.do(t, "POST", v+"/sobjects/Lead", map[string]any{"LastName": "Ng", "Company": "Acme", "OwnerId": caseQueue})
	require.Equal(t, "INVALID_CROSS_REFERENCE_KEY", r.errorCode(t))
	r = b.do(t, "POST", v+"/sobjects/Contact", map[string]any{"LastName": "Ng", "OwnerId": leadQueue})
	require.Equal(t, "MALFORMED_ID", r.errorCode(t), "contacts cannot be owned by a queue")

	// An active assignment rule overrides OwnerId unless the header says FALSE.
	b.sf.SetLeadAssignmentOwner(b.sf.RepUserID())
	r = b.do(t, "POST", v+"/sobjects/Lead", map[string]any{"LastName": "Ng", "Company": "Acme", "OwnerId": leadQueue})
	got, _ = b.sf.Get("Lead", r.json(t).(map[string]any)["id"].(string))
	require.Equal(t, b.sf.RepUserID(), got["OwnerId"])
	r = b.do(t, "POST", v+"/sobjects/Lead", map[string]any{"LastName": "Ng", "Company": "Acme", "OwnerId": leadQueue}, "Sforce-Auto-Assign", "FALSE")
	got, _ = b.sf.Get("Lead", r.json(t).(map[string]any)["id"].(string))
	require.Equal(t, leadQueue, got["OwnerId"])
}

func TestEditAsUser(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.do(t, "POST", v+"/sobjects/Lead", map[string]any{"LastName": "Ng", "Company": "Acme"})
	id := r.json(t).(map[string]any)["id"].(string)
	b.sf.Clock().Advance(1500 * time.Millisecond)
	require.NoError(t, b.sf.EditAsUser(b.sf.RepUserID(), "Lead", id, map[string]any{"Title": "VP"}))
	got, _ := b.sf.Get("Lead", id)
	require.Equal(t, b.sf.RepUserID(), got["LastModifiedById"])
	require.Equal(t, b.sf.IntegrationUserID(), got["CreatedById"])
	require.Equal(t, "2024-05-01T12:00:01.000+0000", got["LastModifiedDate"], "second precision")
	require.Equal(t, "2024-05-01T12:00:00.000+0000", got["CreatedDate"])
	before := b.sf.Calls()
	require.Equal(t, sffake.CallCounts{Auth: 1, Write: 1}, before, "hooks do not count")

	b.sf.Clock().Advance(time.Minute)
	require.NoError(t, b.sf.Touch(id))
	got, _ = b.sf.Get("Lead", id)
	require.Equal(t, "2024-05-01T12:01:01.000+0000", got["SystemModstamp"])
	require.Equal(t, "2024-05-01T12:00:01.000+0000", got["LastModifiedDate"])
}

func TestAddAndRemoveFields(t *testing.T) {
	t.Parallel()
	b := setup(t)
	lastModified := b.do(t, "GET", v+"/sobjects/Lead/describe", nil).header.Get("Last-Modified")
	b.sf.Clock().Advance(time.Minute)
	require.NoError(t, b.sf.RemoveField("Lead", "Conversion_Id__c"))
	require.NoError(t, b.sf.AddField("Lead", sffake.Field{Name: "Score__c", Label: "Score", Type: "int", Createable: true, Updateable: true, Nillable: true, Custom: true}))
	require.Error(t, b.sf.AddField("Lead", sffake.Field{Name: "score__c", Type: "int"}), "field names are case-insensitive")

	r := b.do(t, "GET", v+"/sobjects/Lead/describe", nil, "If-Modified-Since", lastModified)
	require.Equal(t, 200, r.status, "describe changed")
	var names []string
	for _, f := range r.json(t).(map[string]any)["fields"].([]any) {
		names = append(names, f.(map[string]any)["name"].(string))
	}
	require.Contains(t, names, "Score__c")
	require.NotContains(t, names, "Conversion_Id__c")

	r = b.do(t, "PATCH", v+"/sobjects/Lead/Conversion_Id__c/x-1", map[string]any{"LastName": "A", "Company": "B"})
	require.Equal(t, 404, r.status)
	require.Equal(t, "INVALID_FIELD", b.query(t, "SELECT Conversion_Id__c FROM Lead").errorCode(t))
	r = b.do(t, "POST", v+"/sobjects/Lead", map[string]any{"LastName": "A", "Company": "B", "Score__c": 7})
	require.Equal(t, 201, r.status, string(r.body))
	require.Equal(t, "JSON_PARSER_ERROR", b.do(t, "POST", v+"/sobjects/Lead", map[string]any{"LastName": "A", "Company": "B", "Score__c": 7.5}).errorCode(t))
	require.Len(t, ids(t, b.query(t, "SELECT Id FROM Lead WHERE Score__c > 5")), 1)
}

// TestExternalIDIndexFollowsWrites: external ids are looked up through an
// index, so a changed, rolled-back or deleted value must stop matching and
// a freed value must be usable again.
func TestExternalIDIndexFollowsWrites(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.insert(t, "Contact", map[string]any{"LastName": "Ng", "Conversion_Id__c": "old"})

	r := b.do(t, "PATCH", v+"/sobjects/Contact/"+id, map[string]any{"Conversion_Id__c": "New"})
	require.Equal(t, 204, r.status, string(r.body))
	r = b.do(t, "PATCH", v+"/sobjects/Contact/Conversion_Id__c/new", map[string]any{"Title": "CTO"})
	require.Equal(t, 200, r.status, "the new value matches, case-insensitively: %s", r.body)
	r = b.do(t, "POST", v+"/sobjects/Contact", map[string]any{"LastName": "Li", "Conversion_Id__c": "OLD"})
	require.Equal(t, 201, r.status, "the old value is free again: %s", r.body)

	// An all-or-none collection that fails leaves its external ids unused.
	r = b.do(t, "POST", v+"/composite/sobjects", map[string]any{"allOrNone": true, "records": []any{
		rec("Contact", map[string]any{"LastName": "Kept out", "Conversion_Id__c": "rolled-back"}),
		rec("Contact", map[string]any{"LastName": "Bad", "Email": "bad"}),
	}})
	require.Equal(t, 200, r.status, string(r.body))
	r = b.do(t, "PATCH", v+"/sobjects/Contact/Conversion_Id__c/rolled-back", map[string]any{"LastName": "Fresh"})
	require.Equal(t, 201, r.status, "a rolled-back create does not hold its external id: %s", r.body)

	// A deleted record's external id no longer matches an upsert.
	r = b.do(t, "DELETE", v+"/sobjects/Contact/"+id, nil)
	require.Equal(t, 204, r.status, string(r.body))
	r = b.do(t, "PATCH", v+"/sobjects/Contact/Conversion_Id__c/new", map[string]any{"LastName": "Again"})
	require.Equal(t, 201, r.status, "the deleted record is not matched: %s", r.body)
}

// TestQueryInListOfStrings: IN and NOT IN over strings compare
// case-insensitively and treat null as equal to no string.
func TestQueryInListOfStrings(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.insert(t, "Contact", map[string]any{"LastName": "A", "Email": "a@x.io"})
	b.insert(t, "Contact", map[string]any{"LastName": "B", "Email": "b@x.io"})
	b.insert(t, "Contact", map[string]any{"LastName": "N"})
	names := func(q string) []string {
		r := b.do(t, "GET", v+"/query?q="+url.QueryEscape(q), nil)
		require.Equal(t, 200, r.status, string(r.body))
		var out []string
		for _, rec := range r.json(t).(map[string]any)["records"].([]any) {
			out = append(out, rec.(map[string]any)["LastName"].(string))
		}
		return out
	}
	require.Equal(t, []string{"A"}, names("SELECT LastName FROM Contact WHERE Email IN ('A@X.IO', 'c@x.io') ORDER BY LastName"))
	require.Equal(t, []string{"B", "N"}, names("SELECT LastName FROM Contact WHERE Email NOT IN ('a@x.io') ORDER BY LastName"))
	require.Equal(t, []string{"A", "N"}, names("SELECT LastName FROM Contact WHERE Email IN ('a@x.io', null) ORDER BY LastName"))
}
