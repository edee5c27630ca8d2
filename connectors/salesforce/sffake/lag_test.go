package sffake_test

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/salesforce/sffake"
	"github.com/crmsync/crmsync/connectors/salesforce/sffake/sffaketest"
)

func TestCommitLag(t *testing.T) {
	t.Parallel()
	b := setup(t)
	old := b.insert(t, "Lead", map[string]any{"LastName": "Old", "Company": "A"})
	b.sf.SetCommitLag(30 * time.Second)
	inFlight := b.insert(t, "Lead", map[string]any{"LastName": "New", "Company": "A"})
	require.NoError(t, b.sf.EditAsUser(b.sf.RepUserID(), "Lead", old, map[string]any{"Title": "pending"}))

	require.Equal(t, []string{old}, ids(t, b.query(t, "SELECT Id FROM Lead WHERE Title = null")), "the new lead and the edit are not committed yet")
	r := b.do(t, "POST", v+"/composite/sobjects/Lead", map[string]any{"ids": []string{inFlight}, "fields": []string{"Id"}})
	require.JSONEq(t, `[null]`, string(r.body))

	b.sf.Clock().Advance(30 * time.Second)
	r = b.query(t, "SELECT Id, Title, SystemModstamp FROM Lead WHERE SystemModstamp >= 2024-05-01T12:00:00Z")
	require.Equal(t, []string{old, inFlight}, ids(t, r), "in creation order")
	var body struct {
		Records []map[string]any `json:"records"`
	}
	require.NoError(t, json.Unmarshal(r.body, &body))
	for _, rec := range body.Records {
		require.Equal(t, "2024-05-01T12:00:00.000+0000", rec["SystemModstamp"], "visible late, stamped early")
	}
}

func TestQueryLocatorExpiry(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sf.SetQueryPageSize(1)
	for range 3 {
		b.insert(t, "Account", map[string]any{"Name": "A"})
	}
	next := b.query(t, "SELECT Id FROM Account").json(t).(map[string]any)["nextRecordsUrl"].(string)
	require.Equal(t, 200, b.do(t, "GET", next, nil).status)
	b.sf.ExpireQueryLocators()
	r := b.do(t, "GET", next, nil)
	require.Equal(t, 400, r.status)
	require.JSONEq(t, `[{"message":"invalid query locator","errorCode":"INVALID_QUERY_LOCATOR"}]`, string(r.body))

	next = b.query(t, "SELECT Id FROM Account").json(t).(map[string]any)["nextRecordsUrl"].(string)
	b.sf.Clock().Advance(48 * time.Hour)
	b.token = b.sf.IssueAccessToken(b.sf.IntegrationUserID())
	require.Equal(t, "INVALID_QUERY_LOCATOR", b.do(t, "GET", next, nil).errorCode(t), "locators live about two days")
}

func TestRefreshTokenRotation(t *testing.T) {
	t.Parallel()
	sf := sffaketest.Start(t, sffake.Options{RotateRefreshTokens: true})
	first := sf.IssueRefreshToken(sf.IntegrationUserID())
	form := func(rt string) url.Values {
		return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {sffake.DefaultClientID}, "client_secret": {sffake.DefaultClientSecret}}
	}
	r := tokenRequest(t, sf, form(first))
	require.Equal(t, 200, r.status)
	second := r.json(t).(map[string]any)["refresh_token"].(string)
	require.NotEqual(t, first, second)
	require.Equal(t, "invalid_grant", tokenRequest(t, sf, form(first)).json(t).(map[string]any)["error"])
	require.Equal(t, 200, tokenRequest(t, sf, form(second)).status)
}

func TestDescribeIfModifiedSince(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.do(t, "GET", v+"/sobjects/Lead/describe", nil)
	lastModified := r.header.Get("Last-Modified")
	require.NotEmpty(t, lastModified)
	r = b.do(t, "GET", v+"/sobjects/Lead/describe", nil, "If-Modified-Since", lastModified)
	require.Equal(t, 304, r.status)
	require.Empty(t, r.body)
	r = b.do(t, "GET", v+"/sobjects/Lead/describe", nil, "If-Modified-Since", "Mon, 01 Jan 2024 00:00:00 GMT")
	require.Equal(t, 200, r.status)
}

func TestGzip(t *testing.T) {
	t.Parallel()
	sf := sffaketest.Start(t, sffake.Options{GzipResponses: true})
	tok := sf.IssueAccessToken(sf.IntegrationUserID())
	req, _ := http.NewRequest("GET", sf.URL()+v+"/limits", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept-Encoding", "gzip") // set by hand: the transport leaves the body compressed
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, "gzip", resp.Header.Get("Content-Encoding"))
	gz, err := gzip.NewReader(resp.Body)
	require.NoError(t, err)
	b, err := io.ReadAll(gz)
	require.NoError(t, err)
	require.Contains(t, string(b), "DailyApiRequests")
}

func TestRequestLogKeepsTheLatest(t *testing.T) {
	t.Parallel()
	sf := sffaketest.Start(t, sffake.Options{LogLimit: 2})
	b := &bundle{sf: sf, token: sf.IssueAccessToken(sf.IntegrationUserID())}
	for _, p := range []string{"/limits", "/sobjects", "/sobjects/Lead/describe"} {
		require.Equal(t, 200, b.do(t, "GET", v+p, nil).status)
	}
	log := sf.RequestLog()
	require.Len(t, log, 2)
	require.Equal(t, v+"/sobjects", log[0].Path)
	require.Equal(t, v+"/sobjects/Lead/describe", log[1].Path)
	require.Equal(t, sffake.CallCounts{Read: 3}, sf.Calls())
}

func TestRefreshWithoutSecret(t *testing.T) {
	t.Parallel()
	sf := sffaketest.Start(t)
	sf.RegisterApp(sffake.App{ClientID: "public", ClientSecret: "s", RefreshWithoutSecret: true})
	sf.RegisterApp(sffake.App{ClientID: sffake.DefaultClientID, ClientSecret: sffake.DefaultClientSecret})
	refresh := sf.IssueRefreshToken(sf.IntegrationUserID())
	r := tokenRequest(t, sf, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {"public"}})
	require.Equal(t, "invalid_grant", r.json(t).(map[string]any)["error"], "a refresh token belongs to the app it was issued to")
	r = tokenRequest(t, sf, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {sf.IssueRefreshTokenFor("public", sf.RepUserID())}, "client_id": {"public"}})
	require.Equal(t, 200, r.status, string(r.body))
	require.Equal(t, sf.URL()+"/id/"+sf.OrgID()+"/"+sf.RepUserID(), r.json(t).(map[string]any)["id"])
}
