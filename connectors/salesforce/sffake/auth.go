package sffake

import (
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// App is a connected app.
type App struct {
	ClientID     string
	ClientSecret string
	// PublicKey verifies JWT bearer assertions (the certificate uploaded to
	// the app). Nil: the JWT bearer flow fails with invalid_grant.
	PublicKey *rsa.PublicKey
	// RedirectURIs allowed in the web-server flow; empty allows any.
	RedirectURIs []string
	// RunAsUser is the user id of the client credentials flow; empty
	// disables that flow.
	RunAsUser string
	// RefreshWithoutSecret turns off "Require Secret for Refresh Token
	// Flow" (on by default in Salesforce): the refresh-token grant then
	// accepts a request without client_secret.
	RefreshWithoutSecret bool
}

// User is an org user.
type User struct {
	ID        string // set by AddUser
	Username  string
	FirstName string
	LastName  string
	Email     string
	Inactive  bool
}

type accessToken struct {
	user, client string
	expires      time.Time
}

type refreshToken struct {
	user, client string
	revoked      bool
}

type authCode struct {
	user, client, redirect, challenge string
	expires                           time.Time
	used                              bool
}

// RegisterApp adds or replaces a connected app.
func (s *Server) RegisterApp(app App) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := app
	s.apps[app.ClientID] = &a
}

// AddUser creates an active (unless Inactive) user and returns its id.
func (s *Server) AddUser(u User) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addUser(u)
}

func (s *Server) mustAddUser(u User) string {
	id, err := s.addUser(u)
	if err != nil {
		panic(err)
	}
	return id
}

func (s *Server) addUser(u User) (string, error) {
	obj := s.st.objects["User"]
	alias := u.FirstName + u.LastName
	if len(alias) > 8 {
		alias = alias[:8]
	}
	r, errs := s.st.assign(obj, nil, map[string]any{"Username": u.Username, "FirstName": u.FirstName, "LastName": u.LastName, "Email": u.Email, "Alias": alias}, writeOp{now: s.clock.Now().Truncate(time.Second)})
	if errs != nil {
		return "", fmt.Errorf("add user %s: %w", u.Username, errs[0])
	}
	r.f["IsActive"] = !u.Inactive
	r.f["UserType"] = "Standard"
	r.f["CreatedById"], r.f["LastModifiedById"] = r.id(), r.id()
	s.st.put(r)
	return r.id(), nil
}

// SetUserActive activates or deactivates a user. Tokens of inactive users
// stop working (invalid_grant "inactive user" on refresh).
func (s *Server) SetUserActive(userID string, active bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.st.get(userID)
	if r == nil || r.obj.Name != "User" {
		return fmt.Errorf("set user %s active: no such user", userID)
	}
	c := r.clone()
	c.f["IsActive"] = active
	s.st.put(c)
	return nil
}

// IntegrationUserID returns the id of the integration user.
func (s *Server) IntegrationUserID() string { return s.intUser }

// RepUserID returns the id of the sales rep.
func (s *Server) RepUserID() string { return s.repUser }

// OrgID returns the 18-character organization id.
func (s *Server) OrgID() string { return s.orgID }

// ClientID and ClientSecret return the default connected app's credentials.
func (s *Server) ClientID() string     { return s.opts.ClientID }
func (s *Server) ClientSecret() string { return s.opts.ClientSecret }

// IssueRefreshToken issues a refresh token of the default connected app
// for userID, as if the user had approved the app.
func (s *Server) IssueRefreshToken(userID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.newRefresh(userID, s.opts.ClientID)
}

// IssueRefreshTokenFor issues a refresh token of connected app clientID
// for userID.
func (s *Server) IssueRefreshTokenFor(clientID, userID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.newRefresh(userID, clientID)
}

// IssueAccessToken issues an access token of the default app for userID.
func (s *Server) IssueAccessToken(userID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.newAccess(userID, s.opts.ClientID)
}

// RevokeRefreshToken makes a refresh token fail with invalid_grant, and
// ends the access tokens it issued, as revoking in Setup does.
func (s *Server) RevokeRefreshToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rt, ok := s.refresh[token]; ok {
		rt.revoked = true
	}
}

// ExpireAccessTokens ends every access token issued so far (session timeout).
func (s *Server) ExpireAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.access {
		t.expires = time.Time{}
	}
}

// SetTokenTTL sets the lifetime of access tokens issued from now on.
func (s *Server) SetTokenTTL(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ttl = d
}

func (s *Server) newRefresh(user, client string) string {
	tok := "5Aep861" + randomToken(80)
	s.refresh[tok] = &refreshToken{user: user, client: client}
	return tok
}

func (s *Server) newAccess(user, client string) string {
	tok := s.orgID[:15] + "!" + randomToken(96)
	s.access[tok] = &accessToken{user: user, client: client, expires: s.clock.Now().Add(s.ttl)}
	return tok
}

// authenticate returns the acting user of a data call. Guarded by s.mu.
func (s *Server) authenticate(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	var tok string
	switch {
	case strings.HasPrefix(h, "Bearer "):
		tok = strings.TrimPrefix(h, "Bearer ")
	case strings.HasPrefix(h, "OAuth "):
		tok = strings.TrimPrefix(h, "OAuth ")
	default:
		return "", false
	}
	at, ok := s.access[strings.TrimSpace(tok)]
	if !ok || !s.clock.Now().Before(at.expires) {
		return "", false
	}
	if u := s.st.get(at.user); u == nil || u.f["IsActive"] != true {
		return "", false
	}
	return at.user, true
}

func oauthError(status int, code, desc string) response {
	return jsonResp(status, map[string]string{"error": code, "error_description": desc})
}

// token serves POST /services/oauth2/token.
func (s *Server) token(r *http.Request, body []byte) response {
	if r.Method != http.MethodPost {
		return oauthError(400, "invalid_request", "must use HTTP POST")
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		return oauthError(400, "invalid_request", "invalid content type")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return oauthError(400, "invalid_request", "malformed request body")
	}
	clientID, secret := form.Get("client_id"), form.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok {
		clientID, secret = u, p
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	grant := form.Get("grant_type")
	var user, client string
	var withRefresh bool
	var errResp *response
	switch grant {
	case "refresh_token":
		user, client, errResp = s.refreshGrant(form.Get("refresh_token"), clientID, secret)
	case "urn:ietf:params:oauth:grant-type:jwt-bearer":
		user, client, errResp = s.jwtGrant(form.Get("assertion"))
	case "authorization_code":
		user, client, errResp = s.codeGrant(form, clientID, secret)
		withRefresh = true
	case "client_credentials":
		user, client, errResp = s.clientCredentialsGrant(clientID, secret)
	case "":
		return oauthError(400, "invalid_request", "grant type not supported") // what Salesforce says for a missing grant_type
	default:
		return oauthError(400, "unsupported_grant_type", "grant type not supported")
	}
	if errResp != nil {
		return *errResp
	}
	if u := s.st.get(user); u == nil || u.f["IsActive"] != true {
		return oauthError(400, "invalid_grant", "inactive user")
	}
	base := s.baseURL(r)
	issued := strconv.FormatInt(s.clock.Now().UnixMilli(), 10)
	id := base + "/id/" + s.orgID + "/" + user
	app := s.apps[client]
	mac := hmac.New(sha256.New, []byte(app.ClientSecret))
	mac.Write([]byte(id + issued))
	out := map[string]string{
		"access_token": s.newAccess(user, client),
		"signature":    base64.StdEncoding.EncodeToString(mac.Sum(nil)),
		"scope":        "api refresh_token id",
		"instance_url": base,
		"id":           id,
		"token_type":   "Bearer",
		"issued_at":    issued,
	}
	if withRefresh || grant == "refresh_token" && s.opts.RotateRefreshTokens {
		out["refresh_token"] = s.newRefresh(user, client)
	}
	if grant == "refresh_token" && s.opts.RotateRefreshTokens {
		s.refresh[form.Get("refresh_token")].revoked = true
	}
	return jsonResp(200, out)
}

func (s *Server) checkClient(clientID, secret string, needSecret bool) (*App, *response) {
	app, ok := s.apps[clientID]
	if !ok {
		e := oauthError(400, "invalid_client_id", "client identifier invalid")
		return nil, &e
	}
	if (needSecret || secret != "") && secret != app.ClientSecret {
		e := oauthError(400, "invalid_client", "invalid client credentials")
		return nil, &e
	}
	return app, nil
}

func (s *Server) refreshGrant(tok, clientID, secret string) (string, string, *response) {
	app, e := s.checkClient(clientID, secret, false)
	if e != nil {
		return "", "", e
	}
	if secret == "" && !app.RefreshWithoutSecret {
		e := oauthError(400, "invalid_client", "invalid client credentials")
		return "", "", &e
	}
	rt, ok := s.refresh[tok]
	if !ok || rt.revoked || rt.client != clientID {
		e := oauthError(400, "invalid_grant", "expired access/refresh token")
		return "", "", &e
	}
	return rt.user, rt.client, nil
}

func (s *Server) clientCredentialsGrant(clientID, secret string) (string, string, *response) {
	app, e := s.checkClient(clientID, secret, true)
	if e != nil {
		return "", "", e
	}
	if app.RunAsUser == "" {
		e := oauthError(400, "invalid_grant", "no client credentials user enabled")
		return "", "", &e
	}
	return app.RunAsUser, clientID, nil
}

func (s *Server) jwtGrant(assertion string) (string, string, *response) {
	fail := func(desc string) (string, string, *response) {
		e := oauthError(400, "invalid_grant", desc)
		return "", "", &e
	}
	var claims jwt.RegisteredClaims
	var app *App
	_, err := jwt.ParseWithClaims(assertion, &claims, func(t *jwt.Token) (any, error) {
		iss, _ := t.Claims.GetIssuer()
		a, ok := s.apps[iss]
		if !ok || a.PublicKey == nil {
			return nil, errors.New("unknown client")
		}
		app = a
		return a.PublicKey, nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(s.clock.Now), jwt.WithExpirationRequired())
	switch {
	case app == nil && claims.Issuer != "":
		e := oauthError(400, "invalid_client_id", "client identifier invalid")
		return "", "", &e
	case err != nil:
		return fail("invalid assertion")
	}
	aud := false
	for _, a := range claims.Audience {
		if a == s.opts.LoginURL || a == "https://login.salesforce.com" || a == "https://test.salesforce.com" || a == s.opts.BaseURL {
			aud = true
		}
	}
	if !aud {
		return fail("audience is invalid")
	}
	for _, u := range s.st.recs["User"] {
		if strings.EqualFold(u.str("Username"), claims.Subject) {
			return u.id(), app.ClientID, nil
		}
	}
	return fail("user hasn't approved this consumer")
}

func (s *Server) codeGrant(form url.Values, clientID, secret string) (string, string, *response) {
	fail := func(code, desc string) (string, string, *response) {
		e := oauthError(400, code, desc)
		return "", "", &e
	}
	if _, e := s.checkClient(clientID, secret, false); e != nil {
		return "", "", e
	}
	ac, ok := s.codes[form.Get("code")]
	if !ok || ac.used || !s.clock.Now().Before(ac.expires) || ac.client != clientID {
		return fail("invalid_grant", "invalid authorization code")
	}
	ac.used = true
	if form.Get("redirect_uri") != ac.redirect {
		return fail("redirect_uri_mismatch", "redirect_uri must match configuration")
	}
	if ac.challenge != "" {
		sum := sha256.Sum256([]byte(form.Get("code_verifier")))
		if base64.RawURLEncoding.EncodeToString(sum[:]) != ac.challenge {
			return fail("invalid_grant", "invalid code verifier")
		}
	} else if secret == "" {
		return fail("invalid_client", "invalid client credentials")
	}
	return ac.user, ac.client, nil
}

// authorize serves GET /services/oauth2/authorize, approving at once as the
// integration user (or the user named by login_hint).
func (s *Server) authorize(r *http.Request) response {
	q := r.URL.Query()
	s.mu.Lock()
	defer s.mu.Unlock()
	app, ok := s.apps[q.Get("client_id")]
	if !ok {
		return oauthError(400, "invalid_client_id", "client identifier invalid")
	}
	redirect := q.Get("redirect_uri")
	if len(app.RedirectURIs) > 0 && !contains(app.RedirectURIs, redirect) || redirect == "" {
		return oauthError(400, "redirect_uri_mismatch", "redirect_uri must match configuration")
	}
	target, err := url.Parse(redirect)
	if err != nil {
		return oauthError(400, "redirect_uri_mismatch", "redirect_uri must match configuration")
	}
	out := target.Query()
	if st := q.Get("state"); st != "" {
		out.Set("state", st)
	}
	switch {
	case q.Get("response_type") != "code":
		out.Set("error", "unsupported_response_type")
		out.Set("error_description", "response type not supported")
	case q.Get("code_challenge") != "" && q.Get("code_challenge_method") != "" && q.Get("code_challenge_method") != "S256":
		out.Set("error", "invalid_request")
		out.Set("error_description", "invalid code_challenge_method")
	default:
		user := s.intUser
		if hint := q.Get("login_hint"); hint != "" {
			for _, u := range s.st.recs["User"] {
				if strings.EqualFold(u.str("Username"), hint) {
					user = u.id()
				}
			}
		}
		code := "aPrx" + randomToken(60)
		s.codes[code] = &authCode{user: user, client: app.ClientID, redirect: redirect, challenge: q.Get("code_challenge"), expires: s.clock.Now().Add(15 * time.Minute)}
		out.Set("code", code)
	}
	target.RawQuery = out.Encode()
	return response{status: http.StatusFound, header: http.Header{"Location": {target.String()}}}
}

// revoke serves POST /services/oauth2/revoke (token=...).
func (s *Server) revoke(r *http.Request, body []byte) response {
	form, _ := url.ParseQuery(string(body))
	tok := form.Get("token")
	if tok == "" {
		tok = r.URL.Query().Get("token")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if rt, ok := s.refresh[tok]; ok {
		rt.revoked = true
		return response{status: 200}
	}
	if at, ok := s.access[tok]; ok {
		at.expires = time.Time{}
		return response{status: 200}
	}
	return oauthError(400, "unsupported_token_type", "this token type is not supported")
}

// identity serves GET /id/{orgId}/{userId}.
func (s *Server) identity(r *http.Request) response {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.authenticate(r); !ok {
		return response{status: 403, raw: []byte("Bad_OAuth_Token"), contentType: "text/plain"}
	}
	if len(parts) != 3 || parts[1] != s.orgID {
		return response{status: 404, raw: []byte("Bad_Id"), contentType: "text/plain"}
	}
	u := s.st.get(parts[2])
	if u == nil || u.obj.Name != "User" {
		return response{status: 404, raw: []byte("Bad_Id"), contentType: "text/plain"}
	}
	base := s.baseURL(r)
	return jsonResp(200, map[string]any{
		"id": base + "/id/" + s.orgID + "/" + u.id(), "asserted_user": true,
		"user_id": u.id(), "organization_id": s.orgID, "username": u.str("Username"),
		"nick_name": strings.Split(u.str("Username"), "@")[0], "display_name": u.str("Name"),
		"email": u.str("Email"), "first_name": u.str("FirstName"), "last_name": u.str("LastName"),
		"active": u.f["IsActive"], "user_type": "STANDARD", "language": "en_US", "locale": "en_US", "utcOffset": 0,
		"last_modified_date": FormatTime(u.f["LastModifiedDate"].(time.Time)),
		"urls": map[string]string{
			"rest":     base + "/services/data/v{version}/",
			"sobjects": base + "/services/data/v{version}/sobjects/",
			"query":    base + "/services/data/v{version}/query/",
			"profile":  base + "/" + u.id(),
		},
	})
}
