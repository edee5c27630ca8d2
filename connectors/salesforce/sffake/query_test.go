package sffake_test

import (
	"encoding/json"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/salesforce/sffake"
	"github.com/crmsync/crmsync/connectors/salesforce/sffake/sffaketest"
)

// quote escapes a SOQL string literal as the SOQL reference prescribes.
func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "\t", `\t`, "\b", `\b`, "\f", `\f`)
	return "'" + r.Replace(s) + "'"
}

func TestQueryFilters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	clock := b.sf.Clock()
	l1 := b.insert(t, "Lead", map[string]any{"LastName": "Ng", "Company": "Acme", "Email": "ng@acme.io", "NumberOfEmployees": 10})
	clock.Advance(30 * time.Minute)
	l2 := b.insert(t, "Lead", map[string]any{"LastName": "Li", "Company": "Beta", "Email": "li@beta.io", "NumberOfEmployees": 50, "DoNotCall": true})
	clock.Advance(30 * time.Minute)
	l3 := b.insert(t, "Lead", map[string]any{"LastName": "O'Brien", "Company": "Acme"})
	tests := map[string]struct {
		soql string
		want []string
	}{
		"all":                       {"SELECT Id FROM Lead", []string{l1, l2, l3}},
		"equals ignores case":       {"SELECT Id FROM Lead WHERE Email = 'NG@ACME.IO'", []string{l1}},
		"not equals":                {"SELECT Id FROM Lead WHERE Company != 'Acme'", []string{l2}},
		"not equals includes nulls": {"SELECT Id FROM Lead WHERE Email != 'ng@acme.io'", []string{l2, l3}},
		"in":                        {"SELECT Id FROM Lead WHERE Email IN ('li@beta.io', 'ng@acme.io')", []string{l1, l2}},
		"not in":                    {"SELECT Id FROM Lead WHERE Company NOT IN ('Beta')", []string{l1, l3}},
		"null":                      {"SELECT Id FROM Lead WHERE Email = null", []string{l3}},
		"not null":                  {"SELECT Id FROM Lead WHERE Email != null", []string{l1, l2}},
		"boolean":                   {"SELECT Id FROM Lead WHERE DoNotCall = true", []string{l2}},
		"number":                    {"SELECT Id FROM Lead WHERE NumberOfEmployees >= 10 AND NumberOfEmployees < 50", []string{l1}},
		"datetime":                  {"SELECT Id FROM Lead WHERE SystemModstamp > 2024-05-01T12:00:00Z", []string{l2, l3}},
		"datetime offset":           {"SELECT Id FROM Lead WHERE CreatedDate <= 2024-05-01T13:30:00.000+0100", []string{l1, l2}},
		"like":                      {"SELECT Id FROM Lead WHERE LastName LIKE 'n%'", []string{l1}},
		"like underscore":           {"SELECT Id FROM Lead WHERE LastName LIKE 'L_'", []string{l2}},
		"escaped quote":             {"SELECT Id FROM Lead WHERE LastName = 'O\\'Brien'", []string{l3}},
		"parentheses":               {"SELECT Id FROM Lead WHERE (Company = 'Beta' OR Email = null) AND IsDeleted = false", []string{l2, l3}},
		"not":                       {"SELECT Id FROM Lead WHERE NOT Company = 'Acme'", []string{l2}},
		"id in 15 and 18":           {"SELECT Id FROM Lead WHERE Id IN ('" + l1[:15] + "', '" + strings.ToLower(l2) + "')", []string{l1, l2}},
		"order desc limit":          {"SELECT Id FROM Lead ORDER BY CreatedDate DESC LIMIT 2", []string{l3, l2}},
		"order nulls last":          {"SELECT Id FROM Lead ORDER BY Email ASC NULLS LAST", []string{l2, l1, l3}},
		"offset":                    {"SELECT Id FROM Lead ORDER BY LastName OFFSET 1", []string{l1, l3}},
		"keywords any case":         {"select id from lead where company = 'Beta'", []string{l2}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := ids(t, b.query(t, tc.soql))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("%s (-want +got):\n%s", tc.soql, diff)
			}
		})
	}
}

func TestQueryRendersRecords(t *testing.T) {
	t.Parallel()
	b := setup(t)
	queue := b.sf.AddQueue("Inbound", "Lead")
	l1 := b.insert(t, "Lead", map[string]any{"LastName": "Ng", "Company": "Acme", "OwnerId": queue})
	r := b.query(t, "SELECT Id, LastName, Owner.Name, LastModifiedDate, LastModifiedById FROM Lead")
	require.JSONEq(t, `{"totalSize":1,"done":true,"records":[{
	  "attributes":{"type":"Lead","url":"`+v+`/sobjects/Lead/`+l1+`"},
	  "Id":"`+l1+`","LastName":"Ng",
	  "Owner":{"attributes":{"type":"Group","url":"`+v+`/sobjects/Group/`+queue+`"},"Name":"Inbound"},
	  "LastModifiedDate":"2024-05-01T12:00:00.000+0000","LastModifiedById":"`+b.sf.RepUserID()+`"}]}`, string(r.body))
	require.True(t, strings.HasPrefix(string(r.body), `{`) && strings.Index(string(r.body), `"attributes"`) < strings.Index(string(r.body), `"Id"`), "attributes come first")

	r = b.query(t, "SELECT COUNT() FROM Lead WHERE Company = 'Acme'")
	require.JSONEq(t, `{"totalSize":1,"done":true,"records":[]}`, string(r.body))
}

func TestQueryErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tests := map[string]struct {
		soql, code string
	}{
		"unknown field":            {"SELECT Foo__c FROM Lead", "INVALID_FIELD"},
		"unknown object":           {"SELECT Id FROM Nope", "INVALID_TYPE"},
		"unknown relationship":     {"SELECT Nope.Name FROM Lead", "INVALID_FIELD"},
		"no FROM":                  {"SELECT Id", "MALFORMED_QUERY"},
		"trailing garbage":         {"SELECT Id FROM Lead garbage", "MALFORMED_QUERY"},
		"mixed AND OR":             {"SELECT Id FROM Lead WHERE Company = 'a' AND Email = 'b' OR LastName = 'c'", "MALFORMED_QUERY"},
		"unterminated string":      {"SELECT Id FROM Lead WHERE Company = 'abc", "MALFORMED_QUERY"},
		"unknown escape":           {`SELECT Id FROM Lead WHERE Company = 'a\qb'`, "MALFORMED_QUERY"},
		"quoted datetime":          {"SELECT Id FROM Lead WHERE SystemModstamp > '2024-01-01T00:00:00Z'", "INVALID_FIELD"},
		"unquoted string":          {"SELECT Id FROM Lead WHERE Company = 12", "INVALID_FIELD"},
		"quoted boolean":           {"SELECT Id FROM Lead WHERE IsConverted = 'false'", "INVALID_FIELD"},
		"invalid id":               {"SELECT Id FROM Lead WHERE Id = 'abc'", "INVALID_QUERY_FILTER_OPERATOR"},
		"duplicate field":          {"SELECT Id, id FROM Lead", "MALFORMED_QUERY"},
		"string literal over 4000": {"SELECT Id FROM Lead WHERE Company = " + quote(strings.Repeat("a", 4001)), "MALFORMED_QUERY"},
		"empty select":             {"SELECT FROM Lead", "MALFORMED_QUERY"},
		"bare injection":           {"SELECT Id FROM Lead WHERE Company = '' OR Id != null'", "MALFORMED_QUERY"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := b.query(t, tc.soql)
			require.Equal(t, 400, r.status, string(r.body))
			require.Equal(t, tc.code, r.errorCode(t), string(r.body))
		})
	}
	r := b.query(t, "SELECT Foo__c FROM Lead")
	var env []map[string]string
	require.NoError(t, json.Unmarshal(r.body, &env))
	require.Equal(t, "\nSELECT Foo__c FROM Lead\n       ^\nERROR at Row:1:Column:8\nNo such column 'Foo__c' on entity 'Lead'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.", env[0]["message"])
}

// TestQueryInjectionNeverWidens stores hostile values and queries for each
// of them, escaped per the SOQL rules: every query matches exactly the
// records holding that value, or fails; none matches more.
func TestQueryInjectionNeverWidens(t *testing.T) {
	t.Parallel()
	b := setup(t)
	hostile := []string{
		`' OR Id != null`, `\' OR Id != null OR LastName = '`, `O'Brien`, `back\slash`, `trailing\`, `\\'`,
		`100%`, `a_b`, `%`, `_`, `"double"`, "new\nline", "tab\tbed", `'); DELETE FROM Lead; --`, `\u0027`,
	}
	byValue := map[string]string{}
	for _, val := range hostile {
		byValue[val] = b.insert(t, "Lead", map[string]any{"LastName": val, "Company": "Acme"})
	}
	decoy := b.insert(t, "Lead", map[string]any{"LastName": "abc", "Company": "Acme"})
	for _, val := range hostile {
		t.Run(val, func(t *testing.T) {
			t.Parallel()
			got := ids(t, b.query(t, "SELECT Id FROM Lead WHERE LastName = "+quote(val)))
			require.Equal(t, []string{byValue[val]}, got)
			got = ids(t, b.query(t, "SELECT Id FROM Lead WHERE LastName IN ("+quote(val)+", 'nothing')"))
			require.Equal(t, []string{byValue[val]}, got)
		})
	}
	// LIKE with escaped wildcards matches the literal only.
	likeEsc := func(s string) string {
		q := quote(s)
		return strings.NewReplacer("%", `\%`, "_", `\_`).Replace(q)
	}
	require.Equal(t, []string{byValue["100%"]}, ids(t, b.query(t, "SELECT Id FROM Lead WHERE LastName LIKE "+likeEsc("100%"))))
	require.Equal(t, []string{byValue["a_b"]}, ids(t, b.query(t, "SELECT Id FROM Lead WHERE LastName LIKE "+likeEsc("a_b"))))
	require.Equal(t, []string{byValue["%"]}, ids(t, b.query(t, "SELECT Id FROM Lead WHERE LastName LIKE "+likeEsc("%"))))
	require.NotContains(t, ids(t, b.query(t, "SELECT Id FROM Lead WHERE LastName LIKE "+likeEsc("_"))), decoy)

	// A 10,000-character value is refused (string literals are capped at
	// 4,000 characters) or too long for the URI: never a wider result.
	long := strings.Repeat(`a'\%_`, 2000)
	r := b.query(t, "SELECT Id FROM Lead WHERE LastName = "+quote(long))
	require.Contains(t, []int{400, 414}, r.status)

	// An id filter with an injection attempt is an invalid id, not a match.
	r = b.query(t, "SELECT Id FROM Lead WHERE Id = "+quote(`' OR Id != null`))
	require.Equal(t, "INVALID_QUERY_FILTER_OPERATOR", r.errorCode(t))
}

var locatorRE = regexp.MustCompile(`^/services/data/v62\.0/query/01g[0-9A-Za-z]{15}-(\d+)$`)

func TestQueryPaging(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var want []string
	for range 450 {
		want = append(want, b.insert(t, "Contact", map[string]any{"LastName": "C"}))
	}
	first := b.do(t, "GET", v+"/query?q="+url.QueryEscape("SELECT Id FROM Contact"), nil, "Sforce-Query-Options", "batchSize=200")
	var got []string
	page := first
	var pages []int
	for {
		var body struct {
			TotalSize      int              `json:"totalSize"`
			Done           bool             `json:"done"`
			NextRecordsURL string           `json:"nextRecordsUrl"`
			Records        []map[string]any `json:"records"`
		}
		require.Equal(t, 200, page.status, string(page.body))
		require.NoError(t, json.Unmarshal(page.body, &body))
		require.Equal(t, 450, body.TotalSize)
		pages = append(pages, len(body.Records))
		for _, r := range body.Records {
			got = append(got, r["Id"].(string))
		}
		if body.Done {
			require.Empty(t, body.NextRecordsURL)
			break
		}
		require.Regexp(t, locatorRE, body.NextRecordsURL)
		page = b.do(t, "GET", body.NextRecordsURL, nil)
	}
	require.Equal(t, []int{200, 200, 50}, pages)
	require.Equal(t, want, got)
	require.Equal(t, 3, b.sf.Calls().Read, "each page is a call")

	r := b.do(t, "GET", v+"/query/01gXXXXXXXXXXXXXXX-200", nil)
	require.Equal(t, "INVALID_QUERY_LOCATOR", r.errorCode(t))

	// Without the header the default batch is 2,000 rows.
	r = b.query(t, "SELECT Id FROM Contact")
	require.Len(t, ids(t, r), 450)
}

func TestQueryAllSeesDeletes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	keep := b.insert(t, "Lead", map[string]any{"LastName": "Keep", "Company": "A"})
	gone := b.insert(t, "Lead", map[string]any{"LastName": "Gone", "Company": "A"})
	b.sf.Clock().Advance(time.Minute)
	require.Equal(t, 204, b.do(t, "DELETE", v+"/sobjects/Lead/"+gone, nil).status)
	require.Equal(t, []string{keep}, ids(t, b.query(t, "SELECT Id FROM Lead")))
	r := b.do(t, "GET", v+"/queryAll?q="+url.QueryEscape("SELECT Id, IsDeleted, SystemModstamp FROM Lead WHERE SystemModstamp >= 2024-05-01T12:01:00Z ORDER BY SystemModstamp ASC"), nil)
	require.JSONEq(t, `{"totalSize":1,"done":true,"records":[{"attributes":{"type":"Lead","url":"`+v+`/sobjects/Lead/`+gone+`"},"Id":"`+gone+`","IsDeleted":true,"SystemModstamp":"2024-05-01T12:01:00.000+0000"}]}`, string(r.body))
}

func TestQueryPageSizeOption(t *testing.T) {
	t.Parallel()
	sf := sffaketest.Start(t, sffake.Options{QueryPageSize: 2})
	for range 3 {
		_, err := sf.Insert("Account", map[string]any{"Name": "A"})
		require.NoError(t, err)
	}
	b := &bundle{sf: sf, token: sf.IssueAccessToken(sf.IntegrationUserID())}
	body := b.query(t, "SELECT Id FROM Account").json(t).(map[string]any)
	require.Equal(t, false, body["done"])
	require.Len(t, body["records"], 2)
}
