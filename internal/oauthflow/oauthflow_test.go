package oauthflow

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/salesforce"
	"github.com/crmsync/crmsync/connectors/salesforce/sffake"
	"github.com/crmsync/crmsync/connectors/salesforce/sffake/sffaketest"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/db"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/secret"
	"github.com/crmsync/crmsync/internal/workspace"
)

type connectorsFunc func(ctx context.Context, name string) (connector.Connector, error)

func (f connectorsFunc) Connector(ctx context.Context, name string) (connector.Connector, error) {
	return f(ctx, name)
}

type scheduler struct {
	mu  sync.Mutex
	got []int64
}

func (s *scheduler) ScheduleNow(_ context.Context, ws int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, ws)
	return nil
}

type testBundle struct {
	sf        *sffake.Server
	flow      *Flow
	url       string // crmsync's base URL
	store     *connection.Store
	sched     *scheduler
	ws        *workspace.Service
	logs      *bytes.Buffer
	connected chan int64
}

func setup(t *testing.T, bdb *bun.DB) *testBundle {
	t.Helper()
	b := &testBundle{sf: sffaketest.Start(t), sched: &scheduler{}, ws: workspace.NewService(bdb), logs: &bytes.Buffer{}, connected: make(chan int64, 4)}
	key := make([]byte, secret.KeySize)
	_, _ = rand.Read(key)
	box, err := secret.NewBox(key)
	require.NoError(t, err)
	b.store = connection.NewStore(bdb, box)
	sf := salesforce.New(salesforce.WithAllowedHosts("127.0.0.1"))
	svc := connection.NewService(b.store, connectorsFunc(func(_ context.Context, name string) (connector.Connector, error) {
		require.Equal(t, "salesforce", name)
		return sf, nil
	}), b.sched)

	mux := http.NewServeMux()
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	b.url = ts.URL
	auth := workspace.NewAuthenticator(b.ws, "admin-token")
	b.flow, err = New(Config{
		ClientID: sffake.DefaultClientID, ClientSecret: sffake.DefaultClientSecret,
		LoginURL: b.sf.URL(), RedirectURL: ts.URL + CallbackPath,
	}, Deps{
		Logger:       slog.New(slog.NewTextHandler(b.logs, nil)),
		SecretKey:    key,
		Authenticate: auth.Authenticate,
		Connections:  svc,
		Connected:    func(_ context.Context, ws int64) { b.connected <- ws },
	})
	require.NoError(t, err)
	b.flow.Mount(mux)
	return b
}

// browse follows redirects like a browser, returning the final response
// and every URL visited.
func browse(t *testing.T, start string, header http.Header) (*http.Response, string, []*url.URL) {
	t.Helper()
	var visited []*url.URL
	client := &http.Client{CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		visited = append(visited, req.URL)
		return nil
	}}
	req, err := http.NewRequest(http.MethodGet, start, nil)
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(body), visited
}

func TestWebFlowConnectsAgainstSffake(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		b := setup(t, bdb)
		acme, issued, err := b.ws.Create(ctx, "Acme")
		require.NoError(t, err)
		other, _, err := b.ws.Create(ctx, "Other")
		require.NoError(t, err)

		resp, body, visited := browse(t, b.url+StartPath+"?token="+url.QueryEscape(issued.Token), nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Contains(t, body, "Salesforce connected")
		require.Len(t, visited, 2, "start → authorize → callback")

		// The authorize request: code flow, the app, the callback, a state
		// and a PKCE S256 challenge; the token is not passed on.
		authz := visited[0]
		require.Equal(t, b.sf.URL()+"/services/oauth2/authorize", authz.Scheme+"://"+authz.Host+authz.Path)
		q := authz.Query()
		require.Equal(t, "code", q.Get("response_type"))
		require.Equal(t, sffake.DefaultClientID, q.Get("client_id"))
		require.Equal(t, b.url+CallbackPath, q.Get("redirect_uri"))
		require.Equal(t, "S256", q.Get("code_challenge_method"))
		require.NotEmpty(t, q.Get("code_challenge"))
		require.NotEmpty(t, q.Get("state"))
		require.NotContains(t, authz.String(), issued.Token)

		// The code was exchanged with the verifier (sffake checks it
		// against the challenge).
		var exchanged bool
		for _, r := range b.sf.RequestLog() {
			if r.Path == "/services/oauth2/token" {
				form, err := url.ParseQuery(string(r.Body))
				require.NoError(t, err)
				if form.Get("grant_type") == "authorization_code" {
					exchanged = true
					require.NotEmpty(t, form.Get("code_verifier"))
					require.Equal(t, b.url+CallbackPath, form.Get("redirect_uri"))
				}
			}
		}
		require.True(t, exchanged)

		// The connection is stored for the token's workspace only, checked
		// by the connector as the integration user.
		c, err := b.store.Get(ctx, acme.ID)
		require.NoError(t, err)
		require.Equal(t, "salesforce", c.Connector)
		require.Equal(t, connection.StatusConnected, c.Status)
		require.Equal(t, b.sf.IntegrationUserID(), c.IdentityUserID)
		require.Equal(t, b.sf.OrgID(), c.IdentityOrgID)
		var cfg map[string]any
		require.NoError(t, json.Unmarshal(c.Config, &cfg))
		require.Equal(t, map[string]any{"loginUrl": b.sf.URL(), "clientId": sffake.DefaultClientID}, cfg)
		creds, err := b.store.Credentials(c)
		require.NoError(t, err)
		var cr map[string]string
		require.NoError(t, json.Unmarshal(creds, &cr))
		require.Equal(t, sffake.DefaultClientSecret, cr["clientSecret"])
		require.NotEmpty(t, cr["refreshToken"])
		_, err = b.store.Get(ctx, other.ID)
		require.ErrorIs(t, err, connection.ErrNotConnected)
		require.Equal(t, []int64{acme.ID}, b.sched.got, "connecting schedules a flush")
		require.Equal(t, acme.ID, <-b.connected)

		// The stored refresh token works: a connector call with it succeeds.
		_, err = salesforce.New(salesforce.WithAllowedHosts("127.0.0.1")).Limits(ctx, connector.LimitsRequest{Session: connector.Session{Config: c.Config,
			Credentials: json.RawMessage(`{"clientSecret":"` + cr["clientSecret"] + `","refreshToken":"` + cr["refreshToken"] + `"}`)}})
		require.NoError(t, err)

		// The header works as well as the query parameter; nothing logged
		// carries the token.
		resp, body, _ = browse(t, b.url+StartPath, http.Header{"Authorization": {"Bearer " + issued.Token}})
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.NotContains(t, b.logs.String(), issued.Token)
		require.NotContains(t, b.logs.String(), cr["refreshToken"])
	})
}

func TestWebFlowRefusals(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		b := setup(t, bdb)
		acme, issued, err := b.ws.Create(ctx, "Acme")
		require.NoError(t, err)
		noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		get := func(u string) (*http.Response, string) {
			t.Helper()
			resp, err := noRedirect.Get(u)
			require.NoError(t, err)
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return resp, string(body)
		}

		for name, tok := range map[string]string{"missing": "", "bad": "cs_nope", "admin": "admin-token"} {
			resp, body := get(b.url + StartPath + "?token=" + url.QueryEscape(tok))
			require.Contains(t, []int{http.StatusUnauthorized, http.StatusForbidden}, resp.StatusCode, "%s: %s", name, body)
		}
		resp, body := get(b.url + StartPath + "?token=" + issued.Token + "&login_url=" + url.QueryEscape("https://evil.example.com"))
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, body)

		// A state this server issued, for the callback tests.
		resp, _ = get(b.url + StartPath + "?token=" + issued.Token)
		require.Equal(t, http.StatusFound, resp.StatusCode)
		authz, err := url.Parse(resp.Header.Get("Location"))
		require.NoError(t, err)
		issuedState := authz.Query().Get("state")

		// Forged, tampered, foreign and expired states are refused.
		otherKey := make([]byte, secret.KeySize)
		_, _ = rand.Read(otherKey)
		foreignBox, err := secret.NewBox(otherKey)
		require.NoError(t, err)
		plain, err := json.Marshal(state{WorkspaceID: acme.ID, LoginURL: b.sf.URL(), Verifier: "v", Expires: time.Now().Add(time.Minute).Unix()})
		require.NoError(t, err)
		foreign := base64.RawURLEncoding.EncodeToString(foreignBox.Seal(plain, stateBinding))
		tampered := []byte(issuedState)
		tampered[len(tampered)/2] ^= 1
		for name, st := range map[string]string{
			"missing":  "",
			"garbage":  "not-a-state",
			"tampered": string(tampered),
			"foreign":  foreign,
		} {
			resp, body := get(b.url + CallbackPath + "?code=x&state=" + url.QueryEscape(st))
			require.Equal(t, http.StatusBadRequest, resp.StatusCode, "%s: %s", name, body)
			require.Contains(t, body, "failed")
		}
		b.flow.now = func() time.Time { return time.Now().Add(DefaultStateTTL + time.Minute) }
		resp, body = get(b.url + CallbackPath + "?code=x&state=" + url.QueryEscape(issuedState))
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Contains(t, body, "expired")
		b.flow.now = time.Now

		// The user denies access at Salesforce.
		resp, body = get(b.url + CallbackPath + "?error=access_denied&error_description=end-user+denied+authorization&state=" + url.QueryEscape(issuedState))
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Contains(t, body, "access_denied")

		// A code Salesforce does not know (or one already used) fails the
		// exchange; nothing is stored.
		resp, body = get(b.url + CallbackPath + "?code=aPrxbogus&state=" + url.QueryEscape(issuedState))
		require.Equal(t, http.StatusBadGateway, resp.StatusCode)
		require.Contains(t, body, "invalid_grant")
		_, err = b.store.Get(ctx, acme.ID)
		require.ErrorIs(t, err, connection.ErrNotConnected)

		// A code exchanged without the state's verifier is refused by
		// Salesforce: take the code of the real authorize redirect, but a
		// state of another start (another verifier).
		resp, _ = get(authz.String())
		require.Equal(t, http.StatusFound, resp.StatusCode)
		back, err := url.Parse(resp.Header.Get("Location"))
		require.NoError(t, err)
		resp, _ = get(b.url + StartPath + "?token=" + issued.Token)
		authz2, err := url.Parse(resp.Header.Get("Location"))
		require.NoError(t, err)
		resp, body = get(b.url + CallbackPath + "?code=" + url.QueryEscape(back.Query().Get("code")) + "&state=" + url.QueryEscape(authz2.Query().Get("state")))
		require.Equal(t, http.StatusBadGateway, resp.StatusCode, body)
		require.Contains(t, body, "invalid code verifier")
		require.False(t, strings.Contains(b.logs.String(), issued.Token))
	})
}

func TestReturnURLAndLoginURLs(t *testing.T) {
	t.Parallel()
	f := &Flow{cfg: Config{LoginURL: "https://login.salesforce.com", ReturnURL: "https://app.example.com/settings?tab=sync"}}
	for asked, want := range map[string]string{
		"":                                "https://login.salesforce.com",
		"https://test.salesforce.com":     "https://test.salesforce.com",
		"https://acme.my.salesforce.com/": "https://acme.my.salesforce.com",
		"https://acme--uat.sandbox.my.salesforce.com": "https://acme--uat.sandbox.my.salesforce.com",
	} {
		got, err := f.loginURL(asked)
		require.NoError(t, err, asked)
		require.Equal(t, want, got)
	}
	for _, bad := range []string{"http://test.salesforce.com", "https://salesforce.com.evil.example", "https://evil.example/x.salesforce.com", "https://u@acme.my.salesforce.com"} {
		_, err := f.loginURL(bad)
		require.Error(t, err, bad)
	}
	rec := httptest.NewRecorder()
	f.finish(rec, httptest.NewRequest("GET", CallbackPath, nil), http.StatusBadRequest, "access_denied", "no")
	require.Equal(t, http.StatusFound, rec.Code)
	require.Equal(t, "https://app.example.com/settings?error=access_denied&salesforce=error&tab=sync", rec.Header().Get("Location"))
}

// A page that holds the token (the console) asks for the authorize URL as
// JSON and navigates there itself, so the token is never in a URL.
func TestStartAnswersJSONWhenAsked(t *testing.T) {
	t.Parallel()
	bdb := dbtest.Open(t, db.SQLite)
	ctx := context.Background()
	b := setup(t, bdb)
	acme, issued, err := b.ws.Create(ctx, "Acme")
	require.NoError(t, err)

	req, err := http.NewRequest(http.MethodGet, b.url+StartPath, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+issued.Token)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var out struct{ AuthorizeURL string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	require.True(t, strings.HasPrefix(out.AuthorizeURL, b.sf.URL()+"/services/oauth2/authorize?"), out.AuthorizeURL)
	require.NotContains(t, out.AuthorizeURL, issued.Token)

	// Following it finishes the flow like the redirect would.
	resp2, body, _ := browse(t, out.AuthorizeURL, nil)
	require.Equal(t, http.StatusOK, resp2.StatusCode, body)
	require.Contains(t, body, "Salesforce connected")
	c, err := b.store.Get(ctx, acme.ID)
	require.NoError(t, err)
	require.Equal(t, "salesforce", c.Connector)
}
