package sffake_test

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/salesforce/sffake"
	"github.com/crmsync/crmsync/connectors/salesforce/sffake/sffaketest"
)

func TestRefreshTokenGrant(t *testing.T) {
	t.Parallel()
	sf := sffaketest.Start(t)
	refresh := sf.IssueRefreshToken(sf.IntegrationUserID())
	r := tokenRequest(t, sf, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {sffake.DefaultClientID}, "client_secret": {sffake.DefaultClientSecret}})
	require.Equal(t, 200, r.status, string(r.body))
	var tok map[string]string
	require.NoError(t, json.Unmarshal(r.body, &tok))
	require.Equal(t, sf.URL(), tok["instance_url"])
	require.Equal(t, sf.URL()+"/id/"+sf.OrgID()+"/"+sf.IntegrationUserID(), tok["id"])
	require.Equal(t, "Bearer", tok["token_type"])
	require.Equal(t, "1714564800000", tok["issued_at"], "epoch milliseconds of the org clock, as a string")
	mac := hmac.New(sha256.New, []byte(sffake.DefaultClientSecret))
	mac.Write([]byte(tok["id"] + tok["issued_at"]))
	require.Equal(t, base64.StdEncoding.EncodeToString(mac.Sum(nil)), tok["signature"])
	require.NotContains(t, tok, "refresh_token", "the refresh flow does not rotate by default")

	// The identity URL names the user.
	req, _ := http.NewRequest("GET", tok["id"], nil)
	req.Header.Set("Authorization", "Bearer "+tok["access_token"])
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	idr := readReply(t, resp)
	require.Equal(t, 200, idr.status)
	ident := idr.json(t).(map[string]any)
	require.Equal(t, sf.IntegrationUserID(), ident["user_id"])
	require.Equal(t, sf.OrgID(), ident["organization_id"])
	require.Equal(t, sffake.IntegrationUsername, ident["username"])
	require.Equal(t, sffake.CallCounts{Auth: 2}, sf.Calls(), "token and identity calls are auth calls")
	used, _ := sf.Usage()
	require.Zero(t, used, "OAuth calls do not count against the API allocation")
}

func TestTokenErrors(t *testing.T) {
	t.Parallel()
	sf := sffaketest.Start(t)
	refresh := sf.IssueRefreshToken(sf.IntegrationUserID())
	revoked := sf.IssueRefreshToken(sf.IntegrationUserID())
	sf.RevokeRefreshToken(revoked)
	good := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {sffake.DefaultClientID}, "client_secret": {sffake.DefaultClientSecret}}
	with := func(k, val string) url.Values {
		f := url.Values{}
		for key, vs := range good {
			f[key] = vs
		}
		f.Set(k, val)
		return f
	}
	tests := map[string]struct {
		form      url.Values
		wantError string
		wantDesc  string
	}{
		"revoked refresh token":  {with("refresh_token", revoked), "invalid_grant", "expired access/refresh token"},
		"unknown refresh token":  {with("refresh_token", "nope"), "invalid_grant", "expired access/refresh token"},
		"unknown client":         {with("client_id", "nope"), "invalid_client_id", "client identifier invalid"},
		"wrong secret":           {with("client_secret", "nope"), "invalid_client", "invalid client credentials"},
		"unsupported grant type": {with("grant_type", "magic"), "unsupported_grant_type", "grant type not supported"},
		"no run-as user":         {with("grant_type", "client_credentials"), "invalid_grant", "no client credentials user enabled"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := tokenRequest(t, sf, tc.form)
			require.Equal(t, 400, r.status)
			require.Equal(t, map[string]any{"error": tc.wantError, "error_description": tc.wantDesc}, r.json(t))
		})
	}
}

func TestAccessTokenExpiry(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.Equal(t, 200, b.do(t, "GET", v+"/limits", nil).status)

	b.sf.Clock().Advance(2*time.Hour + time.Second)
	r := b.do(t, "GET", v+"/limits", nil)
	require.Equal(t, 401, r.status)
	require.JSONEq(t, `[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]`, string(r.body))

	// A fresh token from the refresh token works again.
	refresh := b.sf.IssueRefreshToken(b.sf.IntegrationUserID())
	noSecret := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {sffake.DefaultClientID}}
	tr := tokenRequest(t, b.sf, noSecret)
	require.Equal(t, map[string]any{"error": "invalid_client", "error_description": "invalid client credentials"}, tr.json(t), "the secret is required by default")
	noSecret.Set("client_secret", sffake.DefaultClientSecret)
	tr = tokenRequest(t, b.sf, noSecret)
	require.Equal(t, 200, tr.status)
	b.token = tr.json(t).(map[string]any)["access_token"].(string)
	require.Equal(t, 200, b.do(t, "GET", v+"/limits", nil).status)

	b.sf.ExpireAccessTokens()
	require.Equal(t, 401, b.do(t, "GET", v+"/limits", nil).status)
}

func TestJWTBearer(t *testing.T) {
	t.Parallel()
	sf := sffaketest.Start(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	sf.RegisterApp(sffake.App{ClientID: "jwt-app", ClientSecret: "s", PublicKey: &key.PublicKey})
	now := sf.Clock().Now()
	sign := func(k *rsa.PrivateKey, claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(k)
		require.NoError(t, err)
		return s
	}
	claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"iss": "jwt-app", "sub": sffake.IntegrationUsername, "aud": "https://login.salesforce.com", "exp": now.Add(3 * time.Minute).Unix()}
		if mod != nil {
			mod(c)
		}
		return c
	}
	tests := map[string]struct {
		assertion string
		wantError string
	}{
		"valid":          {sign(key, claims(nil)), ""},
		"sandbox aud":    {sign(key, claims(func(c jwt.MapClaims) { c["aud"] = "https://test.salesforce.com" })), ""},
		"wrong key":      {sign(other, claims(nil)), "invalid_grant"},
		"expired":        {sign(key, claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() })), "invalid_grant"},
		"no exp":         {sign(key, claims(func(c jwt.MapClaims) { delete(c, "exp") })), "invalid_grant"},
		"wrong audience": {sign(key, claims(func(c jwt.MapClaims) { c["aud"] = "https://evil.example" })), "invalid_grant"},
		"unknown user":   {sign(key, claims(func(c jwt.MapClaims) { c["sub"] = "nobody@example.com" })), "invalid_grant"},
		"unknown client": {sign(key, claims(func(c jwt.MapClaims) { c["iss"] = "nope" })), "invalid_client_id"},
		"garbage":        {"not.a.jwt", "invalid_grant"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := tokenRequest(t, sf, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {tc.assertion}})
			body := r.json(t).(map[string]any)
			if tc.wantError == "" {
				require.Equal(t, 200, r.status, string(r.body))
				require.Equal(t, sf.URL()+"/id/"+sf.OrgID()+"/"+sf.IntegrationUserID(), body["id"])
				require.NotContains(t, body, "refresh_token")
				return
			}
			require.Equal(t, 400, r.status)
			require.Equal(t, tc.wantError, body["error"])
		})
	}
}

func TestAuthorizationCodePKCE(t *testing.T) {
	t.Parallel()
	sf := sffaketest.Start(t)
	sf.RegisterApp(sffake.App{ClientID: "web", ClientSecret: "web-secret", RedirectURIs: []string{"http://localhost:9/cb"}})
	verifier := "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	sum := sha256.Sum256([]byte(verifier))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	authorize := func(redirect string) (*url.URL, int) {
		q := url.Values{"response_type": {"code"}, "client_id": {"web"}, "redirect_uri": {redirect}, "state": {"st8"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
		resp, err := noRedirect.Get(sf.URL() + "/services/oauth2/authorize?" + q.Encode())
		require.NoError(t, err)
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		return loc, resp.StatusCode
	}
	_, status := authorize("http://localhost:9/other")
	require.Equal(t, 400, status, "unregistered redirect_uri")

	loc, status := authorize("http://localhost:9/cb")
	require.Equal(t, 302, status)
	require.Equal(t, "st8", loc.Query().Get("state"))
	code := loc.Query().Get("code")
	require.NotEmpty(t, code)
	exchange := func(code, redirect, verifier string) reply {
		return tokenRequest(t, sf, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {"web"}, "redirect_uri": {redirect}, "code_verifier": {verifier}})
	}
	r := exchange(code, "http://localhost:9/cb", "wrong-verifier")
	require.Equal(t, 400, r.status)
	require.Equal(t, "invalid_grant", r.json(t).(map[string]any)["error"])
	r = exchange(code, "http://localhost:9/cb", verifier)
	require.Equal(t, 400, r.status, "a code is single-use")

	loc, _ = authorize("http://localhost:9/cb")
	r = exchange(loc.Query().Get("code"), "http://localhost:9/elsewhere", verifier)
	require.Equal(t, "redirect_uri_mismatch", r.json(t).(map[string]any)["error"])

	loc, _ = authorize("http://localhost:9/cb")
	r = exchange(loc.Query().Get("code"), "http://localhost:9/cb", verifier)
	require.Equal(t, 200, r.status, string(r.body))
	tok := r.json(t).(map[string]any)
	require.NotEmpty(t, tok["refresh_token"])
	require.Equal(t, sf.URL(), tok["instance_url"])
}

func TestInactiveUser(t *testing.T) {
	t.Parallel()
	b := setup(t)
	refresh := b.sf.IssueRefreshToken(b.sf.RepUserID())
	require.NoError(t, b.sf.SetUserActive(b.sf.RepUserID(), false))
	r := tokenRequest(t, b.sf, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {sffake.DefaultClientID}, "client_secret": {sffake.DefaultClientSecret}})
	require.Equal(t, map[string]any{"error": "invalid_grant", "error_description": "inactive user"}, r.json(t))
}
