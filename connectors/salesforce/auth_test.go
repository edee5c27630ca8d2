package salesforce_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/salesforce"
)

func limitsHandler(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, 200, map[string]any{"DailyApiRequests": map[string]any{"Max": 15000, "Remaining": 14990},
		"DailyBulkApiBatches": map[string]any{"Max": 15000, "Remaining": 15000}})
}

// tokenOK answers the token endpoint like Salesforce, naming the test
// server as the instance.
func (s *sfServer) tokenOK(access string, extra map[string]any) {
	s.handle("POST /services/oauth2/token", func(w http.ResponseWriter, r *http.Request) {
		body := map[string]any{"access_token": access, "instance_url": s.srv.URL, "id": s.srv.URL + "/id/" + orgID + "/" + userID,
			"token_type": "Bearer", "scope": "api refresh_token", "issued_at": "1708058728442", "signature": "c2ln"}
		for k, v := range extra {
			body[k] = v
		}
		writeJSON(w, 200, body)
	})
}

func TestExpiredSessionIsRefreshedOnceAndReplayed(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	s.tokenOK("at-2", map[string]any{"refresh_token": "rt-rotated"})
	s.handle("GET /limits", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer at-2" {
			writeJSON(w, 401, sfErr("INVALID_SESSION_ID", "Session expired or invalid"))
			return
		}
		limitsHandler(w, r)
	})
	c := newConnector(t)
	resp, err := c.Limits(t.Context(), connector.LimitsRequest{Session: s.session()})
	require.NoError(t, err)
	require.Equal(t, connector.Usage{Used: 10, Max: 15000, ObservedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}, resp.Usage)

	tok := s.requests("/services/oauth2/token")
	require.Len(t, tok, 1)
	require.Equal(t, "application/x-www-form-urlencoded", tok[0].Header.Get("Content-Type"))
	form, err := url.ParseQuery(tok[0].Body)
	require.NoError(t, err)
	require.Equal(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"rt"}, "client_id": {"cid"},
		"client_secret": {"secret"}}, form)
	require.Len(t, s.requests("/limits"), 2, "replayed once")

	var creds salesforce.Credentials
	require.NoError(t, json.Unmarshal(resp.Credentials, &creds), "refreshed credentials handed back")
	require.Equal(t, salesforce.Credentials{ClientSecret: "secret", RefreshToken: "rt-rotated", AccessToken: "at-2",
		InstanceURL: s.srv.URL, IdentityURL: s.srv.URL + "/id/" + orgID + "/" + userID, UserID: userID}, creds)
}

func TestSessionRejectedAfterRefreshIsACredentialsError(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	s.tokenOK("at-2", nil)
	s.handle("GET /limits", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 401, sfErr("INVALID_SESSION_ID", "Session expired or invalid"))
	})
	_, err := newConnector(t).Limits(t.Context(), connector.LimitsRequest{Session: s.session()})
	require.ErrorIs(t, err, connector.ErrCredentials)
	require.Len(t, s.requests("/services/oauth2/token"), 1, "refreshed once, not in a loop")
	require.Len(t, s.requests("/limits"), 2)
}

func TestInvalidGrantIsACredentialsError(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	s.handle("POST /services/oauth2/token", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 400, map[string]any{"error": "invalid_grant", "error_description": "expired access/refresh token"})
	})
	sess := salesforce.NewSession(salesforce.Config{LoginURL: s.srv.URL, ClientID: "cid"},
		salesforce.Credentials{ClientSecret: "secret", RefreshToken: "revoked"})
	c := newConnector(t)
	_, err := c.Check(t.Context(), connector.CheckRequest{Session: sess})
	require.ErrorIs(t, err, connector.ErrCredentials)
	require.False(t, connector.Retryable(err))
	require.Contains(t, err.Error(), "invalid_grant")
	_, err = c.BulkUpdate(t.Context(), connector.BulkUpdateRequest{Session: sess, Operations: []connector.Operation{
		{Kind: connector.OpCreate, Object: "Contact", Fields: map[string]any{"LastName": "X"}}}})
	require.ErrorIs(t, err, connector.ErrCredentials)
}

func TestTokenEndpointOutageIsRetryable(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	s.handle("POST /services/oauth2/token", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(503)
		_, _ = w.Write([]byte("<html>Maintenance</html>"))
	})
	sess := salesforce.NewSession(salesforce.Config{LoginURL: s.srv.URL, ClientID: "cid"}, salesforce.Credentials{RefreshToken: "rt"})
	_, err := newConnector(t).Limits(t.Context(), connector.LimitsRequest{Session: sess})
	require.ErrorIs(t, err, connector.ErrUnavailable)
}

func TestConcurrentCallsShareOneRefresh(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	var tokens atomic.Int32
	s.handle("POST /services/oauth2/token", func(w http.ResponseWriter, r *http.Request) {
		tokens.Add(1)
		writeJSON(w, 200, map[string]any{"access_token": "at-2", "instance_url": s.srv.URL, "id": s.srv.URL + "/id/" + orgID + "/" + userID})
	})
	s.handle("GET /limits", limitsHandler)
	sess := salesforce.NewSession(salesforce.Config{LoginURL: s.srv.URL, ClientID: "cid"}, salesforce.Credentials{RefreshToken: "rt"})
	c := newConnector(t)
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			_, err := c.Limits(t.Context(), connector.LimitsRequest{Session: sess})
			errs <- err
		}()
	}
	for range 8 {
		require.NoError(t, <-errs)
	}
	require.Equal(t, int32(1), tokens.Load(), "one token request for eight concurrent calls")
}

func TestJWTBearerFlow(t *testing.T) {
	t.Parallel()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: must(x509.MarshalPKCS8PrivateKey(key))})

	s := newServer(t)
	s.tokenOK("at-jwt", nil)
	s.handle("GET /limits", limitsHandler)
	sess := salesforce.NewSession(salesforce.Config{LoginURL: s.srv.URL, ClientID: "consumer-key"},
		salesforce.Credentials{PrivateKey: string(keyPEM), Username: "integration@acme.example"})
	c := newConnector(t)
	resp, err := c.Limits(t.Context(), connector.LimitsRequest{Session: sess})
	require.NoError(t, err)
	require.Equal(t, "Bearer at-jwt", s.requests("/limits")[0].Header.Get("Authorization"))

	tok := s.requests("/services/oauth2/token")
	require.Len(t, tok, 1)
	form, err := url.ParseQuery(tok[0].Body)
	require.NoError(t, err)
	require.Equal(t, "urn:ietf:params:oauth:grant-type:jwt-bearer", form.Get("grant_type"))
	require.Len(t, form, 2, "grant_type and assertion only")

	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	claims := jwt.MapClaims{}
	parsed, err := jwt.ParseWithClaims(form.Get("assertion"), claims, func(tk *jwt.Token) (any, error) { return &key.PublicKey, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(func() time.Time { return now }))
	require.NoError(t, err)
	require.True(t, parsed.Valid)
	require.Equal(t, "consumer-key", claims["iss"])
	require.Equal(t, "integration@acme.example", claims["sub"])
	require.Equal(t, s.srv.URL, claims["aud"], "aud is the login URL, a plain string")
	exp, err := claims.GetExpirationTime()
	require.NoError(t, err)
	require.Equal(t, now.Add(3*time.Minute), exp.UTC())

	var creds salesforce.Credentials
	require.NoError(t, json.Unmarshal(resp.Credentials, &creds))
	require.Equal(t, "at-jwt", creds.AccessToken)
	require.Equal(t, string(keyPEM), creds.PrivateKey, "the key stays in the credentials")
}

func TestCheckReportsIdentityAndValidatesExternalIDs(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	s.handle("GET /limits", limitsHandler)
	s.handle("GET /id/"+orgID+"/"+userID, func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "Bearer at-1", r.Header.Get("Authorization"))
		writeJSON(w, 200, map[string]any{"username": "integration@acme.example", "user_id": userID, "organization_id": orgID})
	})
	c := newConnector(t)
	resp, err := c.Check(t.Context(), connector.CheckRequest{Session: s.session()})
	require.NoError(t, err)
	require.Equal(t, connector.Identity{UserID: userID, Username: "integration@acme.example", OrgID: orgID, InstanceURL: s.srv.URL}, resp.Identity)
	require.Equal(t, int64(1), resp.Usage.Used)

	bad := s.session()
	bad.Config = []byte(`{"loginUrl":"` + s.srv.URL + `","clientId":"cid","externalIdField":{"Contact":"Email"}}`)
	_, err = c.Check(t.Context(), connector.CheckRequest{Session: bad})
	require.ErrorIs(t, err, connector.ErrInvalid, "Email is not an external-id field")
	good := s.session()
	good.Config = []byte(`{"loginUrl":"` + s.srv.URL + `","clientId":"cid","externalIdField":{"Contact":"Conversion_Id__c"}}`)
	_, err = c.Check(t.Context(), connector.CheckRequest{Session: good})
	require.NoError(t, err)
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	c := newConnector(t)
	creds := []byte(`{"refreshToken":"rt"}`)
	for name, cfg := range map[string]string{
		"http off loopback": `{"loginUrl":"http://login.salesforce.com","clientId":"x"}`,
		"url with path":     `{"loginUrl":"https://login.salesforce.com/evil","clientId":"x"}`,
		"bad version":       `{"clientId":"x","apiVersion":"62"}`,
		"bad ext field":     `{"clientId":"x","externalIdField":{"Contact":"Id FROM User"}}`,
		"not json":          `{`,
	} {
		_, err := c.Limits(t.Context(), connector.LimitsRequest{Session: connector.Session{Config: []byte(cfg), Credentials: creds}})
		require.ErrorIs(t, err, connector.ErrInvalid, name)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
