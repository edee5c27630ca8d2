package salesforce_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/salesforce"
)

const (
	orgID  = "00D5g000004XXXXEAA"
	userID = "0055g00000AbCdEAAV"
)

// seen is one request a test server received.
type seen struct {
	Method string
	Path   string
	Query  string
	Header http.Header
	Body   string
}

// sfServer is a small scripted Salesforce for unit tests: handlers keyed by
// "METHOD /path" (path without the /services/data/v62.0 prefix for data
// calls), a log of every request, and an api-usage counter in the
// Sforce-Limit-Info header of every data answer.
type sfServer struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	handlers map[string]http.HandlerFunc
	log      []seen
	used     int
}

func newServer(t *testing.T) *sfServer {
	t.Helper()
	s := &sfServer{t: t, handlers: map[string]http.HandlerFunc{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	// Describes answer for the objects the tests use, unless replaced.
	for name, fields := range testObjects {
		s.handle("GET /sobjects/"+name+"/describe", func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 200, describeJSON(name, fields))
		})
	}
	return s
}

func (s *sfServer) handle(route string, h http.HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[route] = h
}

func (s *sfServer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	path := r.URL.Path
	data := strings.HasPrefix(path, "/services/data/v62.0")
	route := strings.TrimPrefix(path, "/services/data/v62.0")
	s.mu.Lock()
	s.log = append(s.log, seen{Method: r.Method, Path: path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: string(body)})
	h, ok := s.handlers[r.Method+" "+route]
	if !ok && strings.HasPrefix(route, "/query/") {
		h, ok = s.handlers[r.Method+" /query/"]
	}
	if data {
		s.used++
		w.Header().Set("Sforce-Limit-Info", fmt.Sprintf("api-usage=%d/15000", s.used))
	}
	s.mu.Unlock()
	if !ok {
		writeJSON(w, 404, []map[string]any{{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}})
		return
	}
	r.Body = io.NopCloser(strings.NewReader(string(body)))
	h(w, r)
}

// requests returns the logged requests whose path contains part.
func (s *sfServer) requests(part string) []seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []seen
	for _, r := range s.log {
		if strings.Contains(r.Path, part) {
			out = append(out, r)
		}
	}
	return out
}

func (s *sfServer) session() connector.Session {
	return salesforce.NewSession(salesforce.Config{LoginURL: s.srv.URL, ClientID: "cid"}, salesforce.Credentials{
		ClientSecret: "secret", RefreshToken: "rt", AccessToken: "at-1", InstanceURL: s.srv.URL,
		IdentityURL: s.srv.URL + "/id/" + orgID + "/" + userID,
	})
}

func newConnector(t *testing.T, opts ...salesforce.Option) *salesforce.Connector {
	clock := func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
	return salesforce.New(append([]salesforce.Option{salesforce.WithClock(clock), salesforce.WithAllowedHosts("127.0.0.1"),
		salesforce.WithLogger(slog.New(slog.NewTextHandler(testWriter{t}, nil)))}, opts...)...)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func sfErr(code, msg string) []map[string]any {
	return []map[string]any{{"errorCode": code, "message": msg}}
}

// testObjects are the describes the unit-test server answers: field name →
// type (and length for strings).
var testObjects = map[string]map[string]string{
	"Contact": {"Id": "id", "FirstName": "string", "LastName": "string", "Email": "email", "OwnerId": "reference",
		"AccountId": "reference", "Conversion_Id__c": "string", "IsDeleted": "boolean"},
	"Lead": {"Id": "id", "LastName": "string", "Company": "string", "Email": "email", "OwnerId": "reference",
		"IsConverted": "boolean", "ConvertedContactId": "reference", "Status": "picklist", "IsDeleted": "boolean"},
	"CampaignMember": {"Id": "id", "CampaignId": "reference", "LeadId": "reference", "ContactId": "reference", "Status": "picklist"},
	"Account":        {"Id": "id", "Name": "string", "Website": "url", "NumberOfEmployees": "int"},
}

func describeJSON(name string, fields map[string]string) map[string]any {
	var fs []map[string]any
	for _, f := range []string{"LastModifiedDate", "LastModifiedById", "SystemModstamp"} {
		typ := "datetime"
		if f == "LastModifiedById" {
			typ = "reference"
		}
		fs = append(fs, map[string]any{"name": f, "label": f, "type": typ, "createable": false, "updateable": false, "filterable": true})
	}
	for f, typ := range fields {
		fd := map[string]any{"name": f, "label": f, "type": typ, "createable": f != "Id", "updateable": f != "Id",
			"nillable": f != "LastName", "filterable": true, "externalId": f == "Conversion_Id__c", "length": 0}
		switch typ {
		case "string":
			fd["length"] = 80
		case "email":
			fd["length"] = 80
		case "picklist":
			fd["picklistValues"] = []map[string]any{{"value": "Open", "label": "Open", "active": true}, {"value": "Old", "active": false}}
		case "reference":
			fd["referenceTo"] = []string{"User"}
		}
		fs = append(fs, fd)
	}
	return map[string]any{"name": name, "label": name, "createable": true, "updateable": true, "deletable": true, "queryable": true, "fields": fs}
}

func jsonEq(t *testing.T, want, got string) {
	t.Helper()
	require.JSONEq(t, want, got)
}

func salesforceCreds(raw []byte, out *salesforce.Credentials) error { return json.Unmarshal(raw, out) }
