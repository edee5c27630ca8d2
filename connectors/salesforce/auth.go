package salesforce

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"

	"github.com/crmsync/crmsync/connectors/connector"
)

// jwtGrant is the JWT bearer grant type (RFC 7523).
const jwtGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// jwtLifetime is how long a JWT bearer assertion is valid.
const jwtLifetime = 3 * time.Minute

// token is an access token and what the token endpoint said with it.
type token struct {
	AccessToken  string
	InstanceURL  string
	IdentityURL  string // https://login.salesforce.com/id/{orgId}/{userId}
	RefreshToken string // set when the token endpoint rotated it
}

// identity returns the org and user ids from the identity URL.
func (t token) identity() (orgID, userID string) {
	u, err := url.Parse(t.IdentityURL)
	if err != nil {
		return "", ""
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) < 3 || parts[len(parts)-3] != "id" {
		return "", ""
	}
	org, user := parts[len(parts)-2], parts[len(parts)-1]
	if !ValidID(org) || !ValidID(user) {
		return "", ""
	}
	return org, user
}

func (t token) userID() string {
	_, u := t.identity()
	return u
}

// tokenCache shares access tokens between calls that carry the same
// credentials, so concurrent calls refresh once, not once each.
type tokenCache struct {
	mu    sync.Mutex
	slots map[string]*tokenSlot
}

type tokenSlot struct {
	sem chan struct{} // held while authenticating
	tok token
	ok  bool
}

func (tc *tokenCache) slot(key string) *tokenSlot {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	s, ok := tc.slots[key]
	if !ok {
		s = &tokenSlot{sem: make(chan struct{}, 1)}
		tc.slots[key] = s
	}
	return s
}

// cacheKey identifies the credentials a token was obtained with.
func (cl *call) cacheKey() string {
	h := sha256.New()
	for _, s := range []string{cl.cfg.LoginURL, cl.cfg.ClientID, cl.cfg.JWTAudience, cl.creds.ClientSecret,
		cl.creds.RefreshToken, cl.creds.Username, cl.creds.PrivateKey} {
		fmt.Fprintf(h, "%d:%s;", len(s), s)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// canAuthenticate reports whether the credentials can obtain a new token.
func (cl *call) canAuthenticate() bool {
	return cl.creds.RefreshToken != "" || (cl.creds.PrivateKey != "" && cl.creds.Username != "")
}

// ensureToken makes sure the call has an access token.
func (cl *call) ensureToken(ctx context.Context) error {
	if cl.tok.AccessToken != "" {
		return nil
	}
	return cl.reauth(ctx, "")
}

// reauth replaces the access token stale (rejected by Salesforce, or "" when
// the session has none): with the one another call already obtained, or a
// new one from the token endpoint.
func (cl *call) reauth(ctx context.Context, stale string) error {
	if !cl.canAuthenticate() {
		if stale != "" {
			return connector.Errorf(connector.KindCredentials, "salesforce: INVALID_SESSION_ID: session expired and the credentials hold no refresh token or JWT key")
		}
		return connector.Errorf(connector.KindCredentials, "salesforce: credentials need clientSecret+refreshToken or privateKey+username")
	}
	slot := cl.c.tokens.slot(cl.cacheKey())
	select {
	case slot.sem <- struct{}{}:
	case <-ctx.Done():
		return ctxErr("salesforce authenticate", ctx.Err())
	}
	defer func() { <-slot.sem }()
	if slot.ok && slot.tok.AccessToken != stale {
		cl.setToken(slot.tok)
		return nil
	}
	tok, err := cl.authenticate(ctx)
	if err != nil {
		return err
	}
	slot.tok, slot.ok = tok, true
	cl.setToken(tok)
	cl.c.logger.InfoContext(ctx, "salesforce session obtained", "instance_url", tok.InstanceURL, "user_id", tok.userID(),
		"flow", cl.flow())
	return nil
}

func (cl *call) setToken(t token) {
	if t.RefreshToken == "" {
		t.RefreshToken = cl.tok.RefreshToken
	}
	cl.tok = t
	if t.RefreshToken != "" {
		cl.creds.RefreshToken = t.RefreshToken
	}
	cl.changed = true
}

func (cl *call) flow() string {
	if cl.creds.RefreshToken != "" {
		return "refresh_token"
	}
	return "jwt_bearer"
}

func (cl *call) tokenURL() string { return cl.cfg.LoginURL + "/services/oauth2/token" }

// authenticate obtains a new access token from the token endpoint.
func (cl *call) authenticate(ctx context.Context) (token, error) {
	if cl.cfg.ClientID == "" {
		return token{}, connector.Errorf(connector.KindInvalid, "salesforce config: clientId is required to authenticate")
	}
	var (
		tok token
		err error
	)
	if cl.creds.RefreshToken != "" {
		tok, err = cl.refresh(ctx)
	} else {
		tok, err = cl.jwtBearer(ctx)
	}
	if err != nil {
		return token{}, err
	}
	tok.InstanceURL = strings.TrimRight(tok.InstanceURL, "/")
	if err := checkBaseURL(tok.InstanceURL); err != nil {
		return token{}, connector.Errorf(connector.KindUnavailable, "salesforce token endpoint: instance_url: %v", err)
	}
	if err := cl.c.hosts.checkURL(tok.InstanceURL, false); err != nil {
		return token{}, err
	}
	return tok, nil
}

// refresh runs the OAuth 2.0 refresh-token flow through x/oauth2 (client id
// and secret in the form body).
func (cl *call) refresh(ctx context.Context) (token, error) {
	conf := &oauth2.Config{
		ClientID:     cl.cfg.ClientID,
		ClientSecret: cl.creds.ClientSecret,
		Endpoint:     oauth2.Endpoint{TokenURL: cl.tokenURL(), AuthStyle: oauth2.AuthStyleInParams},
	}
	octx := context.WithValue(ctx, oauth2.HTTPClient, cl.c.http)
	t, err := conf.TokenSource(octx, &oauth2.Token{RefreshToken: cl.creds.RefreshToken}).Token()
	if err != nil {
		return token{}, tokenError(ctx, err)
	}
	tok := token{AccessToken: t.AccessToken, RefreshToken: t.RefreshToken}
	tok.InstanceURL, _ = t.Extra("instance_url").(string)
	tok.IdentityURL, _ = t.Extra("id").(string)
	if tok.RefreshToken == cl.creds.RefreshToken {
		tok.RefreshToken = "" // not rotated
	}
	return tok, nil
}

// tokenError maps a token endpoint failure: an OAuth error answer (such as
// invalid_grant) means the credentials are bad; anything else is transient.
func tokenError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctxErr("salesforce token endpoint", ctx.Err())
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		return oauthError(status, re.ErrorCode, re.ErrorDescription)
	}
	if errors.Is(err, ErrHostNotAllowed) {
		return hostNotAllowed()
	}
	return connector.Errorf(connector.KindUnavailable, "salesforce token endpoint: %w", err)
}

func oauthError(status int, code, description string) error {
	if status >= 500 || status == 420 || status == 429 || (code == "" && status < 400) {
		return connector.Errorf(connector.KindUnavailable, "salesforce token endpoint: HTTP %d %s %s", status, code, description)
	}
	if code == "unsupported_grant_type" || code == "invalid_request" {
		return connector.Errorf(connector.KindInvalid, "salesforce token endpoint: %s: %s", code, description)
	}
	// invalid_grant (expired or revoked refresh token, unapproved JWT
	// user...), invalid_client, invalid_client_id: the user must reconnect.
	return connector.Errorf(connector.KindCredentials, "salesforce token endpoint: %s: %s", code, description)
}

// jwtAssertion signs the JWT bearer assertion: RS256, iss = consumer key,
// sub = username, aud = login URL (or jwtAudience), exp = now + 3 minutes.
func (cl *call) jwtAssertion() (string, error) {
	key, err := jwt.ParseRSAPrivateKeyFromPEM([]byte(cl.creds.PrivateKey))
	if err != nil {
		return "", connector.Errorf(connector.KindCredentials, "salesforce credentials privateKey: %v", err)
	}
	aud := jwtAudience(cl.cfg)
	claims := jwt.MapClaims{
		"iss": cl.cfg.ClientID,
		"sub": cl.creds.Username,
		"aud": aud, // a plain string, as Salesforce documents it
		"exp": cl.c.now().Add(jwtLifetime).Unix(),
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(key)
	if err != nil {
		return "", connector.Errorf(connector.KindCredentials, "salesforce sign JWT assertion: %v", err)
	}
	return s, nil
}

// jwtAudience is the aud claim: the configured one, else the login URL,
// except that Salesforce wants https://login.salesforce.com (or
// https://test.salesforce.com for a sandbox) when logging in through a My
// Domain host.
func jwtAudience(cfg Config) string {
	if cfg.JWTAudience != "" {
		return cfg.JWTAudience
	}
	u, err := url.Parse(cfg.LoginURL)
	if err != nil {
		return cfg.LoginURL
	}
	host := strings.ToLower(u.Hostname())
	switch {
	case host == "login.salesforce.com" || host == "test.salesforce.com":
		return cfg.LoginURL
	case strings.HasSuffix(host, ".sandbox.my.salesforce.com"):
		return "https://test.salesforce.com"
	case strings.HasSuffix(host, ".my.salesforce.com"):
		return "https://login.salesforce.com"
	}
	return cfg.LoginURL
}

// jwtBearer runs the JWT bearer flow.
func (cl *call) jwtBearer(ctx context.Context) (token, error) {
	assertion, err := cl.jwtAssertion()
	if err != nil {
		return token{}, err
	}
	form := url.Values{"grant_type": {jwtGrant}, "assertion": {assertion}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cl.tokenURL(), strings.NewReader(form.Encode()))
	if err != nil {
		return token{}, connector.Errorf(connector.KindInvalid, "salesforce token request: %v", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := cl.c.http.Do(req)
	if err != nil {
		return token{}, tokenError(ctx, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return token{}, tokenError(ctx, err)
	}
	var tr struct {
		AccessToken      string `json:"access_token"`
		InstanceURL      string `json:"instance_url"`
		ID               string `json:"id"`
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	jsonErr := json.Unmarshal(body, &tr)
	if resp.StatusCode/100 != 2 || tr.Error != "" {
		return token{}, oauthError(resp.StatusCode, tr.Error, tr.ErrorDescription)
	}
	if jsonErr != nil || tr.AccessToken == "" {
		return token{}, connector.Errorf(connector.KindUnavailable, "salesforce token endpoint: unreadable answer (HTTP %d)", resp.StatusCode)
	}
	return token{AccessToken: tr.AccessToken, InstanceURL: tr.InstanceURL, IdentityURL: tr.ID}, nil
}
