package sffake_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"github.com/crmsync/crmsync/connectors/salesforce/sffake"
)

// A fake org served on a local port: get a token with the refresh-token
// flow, then query a seeded lead.
func Example() {
	sf := sffake.New(sffake.Options{Clock: sffake.NewClock(time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC))})
	srv := httptest.NewServer(sf)
	defer srv.Close()
	sf.SetBaseURL(srv.URL)
	if _, err := sf.Insert("Lead", map[string]any{"LastName": "Ng", "Company": "Acme", "Email": "ng@acme.io"}); err != nil {
		panic(err)
	}

	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {sf.IssueRefreshToken(sf.IntegrationUserID())},
		"client_id": {sf.ClientID()}, "client_secret": {sf.ClientSecret()}}
	resp, err := http.Post(srv.URL+"/services/oauth2/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		panic(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		InstanceURL string `json:"instance_url"`
	}
	json.NewDecoder(resp.Body).Decode(&tok) //nolint:errcheck // example
	resp.Body.Close()

	q := url.QueryEscape("SELECT Email, LastModifiedDate FROM Lead WHERE Company = 'Acme'")
	req, _ := http.NewRequest("GET", tok.InstanceURL+"/services/data/v62.0/query?q="+q, nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	var page struct {
		TotalSize int              `json:"totalSize"`
		Records   []map[string]any `json:"records"`
	}
	json.NewDecoder(resp.Body).Decode(&page) //nolint:errcheck // example
	fmt.Println(resp.Header.Get("Sforce-Limit-Info"))
	fmt.Println(page.TotalSize, page.Records[0]["Email"], page.Records[0]["LastModifiedDate"])
	// Output:
	// api-usage=1/15000
	// 1 ng@acme.io 2024-05-01T12:00:00.000+0000
}
