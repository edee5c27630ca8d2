// Package oauthflow connects a workspace to a Salesforce org the way users
// expect: through Salesforce's OAuth 2.0 web-server flow with PKCE, instead
// of pasting a refresh token into connectCrm.
//
//	GET /oauth/salesforce/start     (workspace token: Authorization header or ?token=)
//	  → 302 <loginUrl>/services/oauth2/authorize?response_type=code&client_id=…
//	        &redirect_uri=…&state=…&code_challenge=…&code_challenge_method=S256
//	  (with Accept: application/json: 200 {"authorizeUrl": "…"} instead, for
//	  pages such as the console that navigate themselves)
//	GET /oauth/salesforce/callback?code=…&state=…
//	  → exchanges the code at <loginUrl>/services/oauth2/token, then stores the
//	    connection through connection.Service.Connect (which checks it with the
//	    connector), exactly as connectCrm would.
//
// The state is the workspace id, the login URL, an expiry (StateTTL) and the
// PKCE verifier, sealed (AES-GCM) with a key derived from the server's
// secret key: it cannot be forged, read, or used after it expires, and the
// verifier never leaves the server in the clear. Any replica sharing the
// secret key can finish a flow another started. See docs/limits.md.
package oauthflow

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/secret"
	"github.com/crmsync/crmsync/internal/workspace"
)

// Routes the flow serves.
const (
	StartPath    = "/oauth/salesforce/start"
	CallbackPath = "/oauth/salesforce/callback"
)

// ConnectorName is the connector the flow connects.
const ConnectorName = "salesforce"

// DefaultLoginURL is Salesforce's production login host.
const DefaultLoginURL = "https://login.salesforce.com"

// DefaultStateTTL bounds the time between start and callback.
const DefaultStateTTL = 10 * time.Minute

// stateBinding binds sealed states to their purpose.
const stateBinding = "crmsync/oauth/salesforce/state"

// Config configures the flow: the connected app, and where Salesforce
// sends the browser back.
type Config struct {
	// ClientID and ClientSecret are the connected app's consumer key and
	// secret.
	ClientID     string
	ClientSecret secret.String
	// LoginURL is the default OAuth host (DefaultLoginURL when empty). A
	// start request may name another with ?login_url= (a sandbox or My
	// Domain host under salesforce.com).
	LoginURL string
	// RedirectURL is this server's callback URL as registered on the
	// connected app (https://crmsync.example.com/oauth/salesforce/callback).
	RedirectURL string
	// ReturnURL, when set, is where the browser goes after the callback,
	// with ?salesforce=connected or ?salesforce=error&error=…; otherwise a
	// short text page says what happened.
	ReturnURL string
	// StateTTL defaults to DefaultStateTTL.
	StateTTL time.Duration
}

// Enabled reports whether the flow is configured.
func (c Config) Enabled() bool { return c.ClientID != "" && c.RedirectURL != "" }

// Connector stores a checked connection (connection.Service).
type Connector interface {
	Connect(ctx context.Context, workspaceID int64, name string, config, credentials json.RawMessage) (*connection.Connection, error)
}

// Deps are what the flow needs besides its Config.
type Deps struct {
	Logger *slog.Logger
	// SecretKey is the server's secret key; the state key is derived from it.
	SecretKey []byte
	// Authenticate turns a workspace token into an authenticated context
	// (workspace.Authenticator.Authenticate).
	Authenticate func(ctx context.Context, token string) (context.Context, error)
	// Connections stores the connection.
	Connections Connector
	// HTTPClient calls the token endpoint (default: 30 s timeout).
	HTTPClient *http.Client
	// Connected, if set, runs after a workspace connected (to publish an
	// overview change).
	Connected func(ctx context.Context, workspaceID int64)
}

// Flow serves the two routes.
type Flow struct {
	cfg  Config
	deps Deps
	box  *secret.Box
	now  func() time.Time
}

// New returns a Flow. The configuration must be Enabled.
func New(cfg Config, deps Deps) (*Flow, error) {
	if !cfg.Enabled() {
		return nil, errors.New("salesforce oauth: client id and redirect URL are required")
	}
	if deps.Logger == nil || deps.Authenticate == nil || deps.Connections == nil {
		return nil, errors.New("salesforce oauth: Logger, Authenticate and Connections are required")
	}
	if cfg.LoginURL == "" {
		cfg.LoginURL = DefaultLoginURL
	}
	cfg.LoginURL = strings.TrimSuffix(cfg.LoginURL, "/")
	if cfg.StateTTL <= 0 {
		cfg.StateTTL = DefaultStateTTL
	}
	if deps.HTTPClient == nil {
		deps.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	mac := hmac.New(sha256.New, deps.SecretKey)
	mac.Write([]byte(stateBinding))
	box, err := secret.NewBox(mac.Sum(nil))
	if err != nil {
		return nil, fmt.Errorf("salesforce oauth: %w", err)
	}
	return &Flow{cfg: cfg, deps: deps, box: box, now: time.Now}, nil
}

// Handler mounts routes (httpserver.Server.Handle).
type Handler interface {
	Handle(pattern string, h http.Handler)
}

// Mount adds the start and callback routes to s.
func (f *Flow) Mount(s Handler) {
	s.Handle("GET "+StartPath, http.HandlerFunc(f.Start))
	s.Handle("GET "+CallbackPath, http.HandlerFunc(f.Callback))
}

// state is what the sealed state carries.
type state struct {
	WorkspaceID int64  `json:"w"`
	LoginURL    string `json:"l"`
	Verifier    string `json:"v"`
	Expires     int64  `json:"e"` // unix seconds
}

func (f *Flow) oauthConfig(loginURL string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     f.cfg.ClientID,
		ClientSecret: f.cfg.ClientSecret.Reveal(),
		RedirectURL:  f.cfg.RedirectURL,
		Endpoint: oauth2.Endpoint{
			AuthURL:   loginURL + "/services/oauth2/authorize",
			TokenURL:  loginURL + "/services/oauth2/token",
			AuthStyle: oauth2.AuthStyleInParams,
		},
	}
}

// Start authenticates the workspace token and redirects to the org's
// authorize page.
func (f *Flow) Start(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	token := workspace.BearerToken(r.Header.Get("Authorization"))
	if token == "" {
		token = r.URL.Query().Get("token")
	}
	ctx, err := f.deps.Authenticate(r.Context(), token)
	if err != nil {
		if !errors.Is(err, workspace.ErrUnauthenticated) {
			f.deps.Logger.ErrorContext(r.Context(), "salesforce oauth: authenticate", slog.Any("error", err))
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		http.Error(w, "missing, unknown or revoked API token: send Authorization: Bearer <token> or ?token=<token>", http.StatusUnauthorized)
		return
	}
	ws, ok := workspace.FromContext(ctx)
	if !ok {
		http.Error(w, "a workspace token is required", http.StatusForbidden)
		return
	}
	loginURL, err := f.loginURL(r.URL.Query().Get("login_url"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	st := state{WorkspaceID: ws, LoginURL: loginURL, Verifier: oauth2.GenerateVerifier(),
		Expires: f.now().Add(f.cfg.StateTTL).Unix()}
	plain, err := json.Marshal(st)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	sealed := base64.RawURLEncoding.EncodeToString(f.box.Seal(plain, stateBinding))
	target := f.oauthConfig(loginURL).AuthCodeURL(sealed, oauth2.S256ChallengeOption(st.Verifier))
	f.deps.Logger.InfoContext(r.Context(), "salesforce oauth: start", slog.Int64("workspace_id", ws), slog.String("login_url", loginURL))
	if wantsJSON(r) {
		// A page that sent the token in a header (the console) navigates
		// itself: the token never appears in a URL.
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"authorizeUrl": target})
		return
	}
	http.Redirect(w, r, target, http.StatusFound)
}

// wantsJSON reports whether a start request asks for the authorize URL as
// JSON ({"authorizeUrl": ...}) instead of a redirect.
func wantsJSON(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "application/json")
}

// loginURL returns the OAuth host a start request asks for: the configured
// one, or an https host under salesforce.com (sandbox, My Domain).
func (f *Flow) loginURL(asked string) (string, error) {
	asked = strings.TrimSuffix(asked, "/")
	if asked == "" || asked == f.cfg.LoginURL {
		return f.cfg.LoginURL, nil
	}
	u, err := url.Parse(asked)
	if err == nil && u.Scheme == "https" && u.Path == "" && u.RawQuery == "" && u.User == nil &&
		(u.Hostname() == "salesforce.com" || strings.HasSuffix(u.Hostname(), ".salesforce.com")) {
		return u.Scheme + "://" + u.Host, nil
	}
	return "", fmt.Errorf("login_url %q: want https://login.salesforce.com, https://test.salesforce.com or a My Domain host under salesforce.com", asked)
}

// openState checks and opens a sealed state.
func (f *Flow) openState(raw string) (*state, error) {
	sealed, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		return nil, errors.New("malformed state")
	}
	plain, err := f.box.Open(sealed, stateBinding)
	if err != nil {
		return nil, errors.New("state was not issued by this server")
	}
	var st state
	if err := json.Unmarshal(plain, &st); err != nil {
		return nil, errors.New("malformed state")
	}
	if f.now().Unix() > st.Expires {
		return nil, errors.New("state expired: start again")
	}
	return &st, nil
}

// Callback finishes the flow: it checks the state, exchanges the code and
// stores the connection.
func (f *Flow) Callback(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	q := r.URL.Query()
	st, err := f.openState(q.Get("state"))
	if err != nil {
		f.deps.Logger.WarnContext(r.Context(), "salesforce oauth: refused callback", slog.String("reason", err.Error()))
		f.finish(w, r, http.StatusBadRequest, "invalid_state", "Salesforce connection failed: "+err.Error())
		return
	}
	logger := f.deps.Logger.With(slog.Int64("workspace_id", st.WorkspaceID))
	if e := q.Get("error"); e != "" {
		logger.WarnContext(r.Context(), "salesforce oauth: authorization refused", slog.String("error", e), slog.String("description", q.Get("error_description")))
		f.finish(w, r, http.StatusBadRequest, e, "Salesforce refused the authorization: "+e+" "+q.Get("error_description"))
		return
	}
	code := q.Get("code")
	if code == "" {
		f.finish(w, r, http.StatusBadRequest, "invalid_request", "Salesforce connection failed: the callback has no code")
		return
	}
	ctx := context.WithValue(r.Context(), oauth2.HTTPClient, f.deps.HTTPClient)
	tok, err := f.oauthConfig(st.LoginURL).Exchange(ctx, code, oauth2.VerifierOption(st.Verifier))
	if err != nil {
		logger.WarnContext(r.Context(), "salesforce oauth: code exchange", slog.Any("error", exchangeError(err)))
		f.finish(w, r, http.StatusBadGateway, "token_exchange_failed", "Salesforce connection failed: the authorization code could not be exchanged ("+exchangeError(err)+")")
		return
	}
	if tok.RefreshToken == "" {
		f.finish(w, r, http.StatusBadRequest, "no_refresh_token",
			"Salesforce returned no refresh token: give the connected app the refresh_token (offline access) scope")
		return
	}
	config, creds, err := f.session(st, tok)
	if err != nil {
		f.finish(w, r, http.StatusInternalServerError, "internal", "internal error")
		return
	}
	if _, err := f.deps.Connections.Connect(r.Context(), st.WorkspaceID, ConnectorName, config, creds); err != nil {
		var ie *connection.InputError
		if errors.As(err, &ie) {
			f.finish(w, r, http.StatusBadRequest, "connect_refused", "Salesforce connection failed: "+ie.Message)
			return
		}
		logger.ErrorContext(r.Context(), "salesforce oauth: store connection", slog.Any("error", err))
		f.finish(w, r, http.StatusInternalServerError, "internal", "internal error")
		return
	}
	if f.deps.Connected != nil {
		f.deps.Connected(r.Context(), st.WorkspaceID)
	}
	logger.InfoContext(r.Context(), "salesforce oauth: connected", slog.String("login_url", st.LoginURL))
	f.finish(w, r, http.StatusOK, "", "Salesforce connected. You can close this window.")
}

// session builds the connector configuration and credentials
// (docs/salesforce.md §2) from a token answer.
func (f *Flow) session(st *state, tok *oauth2.Token) (config, creds json.RawMessage, err error) {
	extra := func(k string) string { s, _ := tok.Extra(k).(string); return s }
	config, err = json.Marshal(map[string]string{"loginUrl": st.LoginURL, "clientId": f.cfg.ClientID})
	if err != nil {
		return nil, nil, err
	}
	c := map[string]string{"refreshToken": tok.RefreshToken, "accessToken": tok.AccessToken,
		"instanceUrl": extra("instance_url"), "identityUrl": extra("id")}
	if f.cfg.ClientSecret != "" {
		c["clientSecret"] = f.cfg.ClientSecret.Reveal()
	}
	if id := extra("id"); id != "" {
		c["userId"] = id[strings.LastIndex(id, "/")+1:]
	}
	for k, v := range c {
		if v == "" {
			delete(c, k)
		}
	}
	creds, err = json.Marshal(c)
	return config, creds, err
}

// exchangeError describes a failed exchange without the request's secrets.
func exchangeError(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		if re.ErrorCode != "" {
			return strings.TrimSpace(re.ErrorCode + " " + re.ErrorDescription)
		}
		return fmt.Sprintf("HTTP %d", re.Response.StatusCode)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// finish sends the browser to ReturnURL, or writes a short text page.
func (f *Flow) finish(w http.ResponseWriter, r *http.Request, status int, code, message string) {
	if f.cfg.ReturnURL != "" {
		u, err := url.Parse(f.cfg.ReturnURL)
		if err == nil {
			q := u.Query()
			if code == "" {
				q.Set("salesforce", "connected")
			} else {
				q.Set("salesforce", "error")
				q.Set("error", code)
			}
			u.RawQuery = q.Encode()
			http.Redirect(w, r, u.String(), http.StatusFound)
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(message + "\n"))
}

// noStore keeps the responses (which may carry tokens in the URL) out of
// caches and referrers.
func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
}
