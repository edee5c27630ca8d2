package salesforce

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/crmsync/crmsync/connectors/connector"
)

const (
	// Name is the connector's name.
	Name = "salesforce"
	// Version is the connector's version, reported by Describe.
	Version = "1.0.0"
	// DefaultAPIVersion is the REST API version the connector speaks unless
	// the configuration pins another.
	DefaultAPIVersion = "v62.0"
	// DefaultLoginURL is the login host used when the configuration names none.
	DefaultLoginURL = "https://login.salesforce.com"
	// DefaultLookBack is how far before its watermark FetchChanges reads
	// again, for transactions that commit with an older SystemModstamp.
	DefaultLookBack = 2 * time.Minute
	// DefaultDescribeTTL is how long an object's describe is cached.
	DefaultDescribeTTL = 15 * time.Minute
)

// syncObjects are the objects Describe reports when no object is named.
var syncObjects = []string{"Lead", "Contact", "Account", "Campaign", "CampaignMember", "Task"}

// Connector is the Salesforce connector. It implements connector.Connector
// and connector.ChangeFetcher, is safe for concurrent use, and keeps no state
// between calls but caches of access tokens and describes.
type Connector struct {
	http        *http.Client
	now         func() time.Time
	logger      *slog.Logger
	lookBack    time.Duration
	describeTTL time.Duration
	hosts       hostPolicy

	tokens    *tokenCache
	describes *describeCache
	schemas   *schemaCache
}

var (
	_ connector.Connector         = (*Connector)(nil)
	_ connector.ChangeFetcher     = (*Connector)(nil)
	_ connector.BatchFetcher      = (*Connector)(nil)
	_ connector.ManyChangeFetcher = (*Connector)(nil)
)

// Option configures a Connector.
type Option func(*Connector)

// WithHTTPClient sets the HTTP client for every Salesforce request (default:
// timeouts of 10 s to connect, 3 min for response headers, 5 min overall,
// and a dial check refusing private, loopback and link-local addresses but
// for hosts allowed by WithAllowedHosts). A client given here dials as it
// likes: the host names of loginUrl and instance URLs are still checked.
func WithHTTPClient(c *http.Client) Option { return func(s *Connector) { s.http = c } }

// WithClock sets the clock used for JWT expiry, usage stamps and cache ages.
func WithClock(now func() time.Time) Option { return func(s *Connector) { s.now = now } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(s *Connector) { s.logger = l } }

// WithLookBack sets the FetchChanges look-back (default [DefaultLookBack]).
func WithLookBack(d time.Duration) Option { return func(s *Connector) { s.lookBack = d } }

// WithDescribeTTL sets how long describes are cached (default
// [DefaultDescribeTTL]).
func WithDescribeTTL(d time.Duration) Option { return func(s *Connector) { s.describeTTL = d } }

// New returns a Salesforce connector.
func New(opts ...Option) *Connector {
	c := &Connector{
		now:         time.Now,
		logger:      slog.New(slog.DiscardHandler),
		lookBack:    DefaultLookBack,
		describeTTL: DefaultDescribeTTL,
		tokens:      &tokenCache{slots: map[string]*tokenSlot{}},
		describes:   &describeCache{m: map[string]describeEntry{}},
		schemas:     &schemaCache{m: map[string]*eventSchema{}},
	}
	for _, o := range opts {
		o(c)
	}
	if c.http == nil {
		c.http = defaultHTTPClient(c.hosts)
	}
	return c
}

func defaultHTTPClient(hosts hostPolicy) *http.Client {
	return &http.Client{
		Timeout: 5 * time.Minute,
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           hosts.dialer(&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}),
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 3 * time.Minute,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   8,
			ForceAttemptHTTP2:     true,
			TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		},
		// Never follow a redirect: not with a bearer token in hand, and not
		// to a host the loginUrl check did not see.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Config is the session configuration (Session.Config).
type Config struct {
	// LoginURL is the OAuth host: https://login.salesforce.com,
	// https://test.salesforce.com or the org's My Domain. Default
	// DefaultLoginURL.
	LoginURL string `json:"loginUrl,omitempty"`
	// ClientID is the connected app's consumer key.
	ClientID string `json:"clientId"`
	// APIVersion pins the REST API version ("v62.0" or "62.0"). Default
	// DefaultAPIVersion.
	APIVersion string `json:"apiVersion,omitempty"`
	// ExternalIDField names, per object, the external-id field crmsync
	// upserts on (for example {"Contact": "Conversion_Id__c"}).
	ExternalIDField map[string]string `json:"externalIdField,omitempty"`
	// JWTAudience overrides the JWT bearer assertion's aud claim. Default:
	// LoginURL, or https://login.salesforce.com (https://test.salesforce.com
	// for a sandbox) when LoginURL is a My Domain host.
	JWTAudience string `json:"jwtAudience,omitempty"`
	// PubSubEndpoint is the Pub/Sub API that streams Change Data Capture
	// events: https://host:port, or http://127.0.0.1:port for a local
	// fake. Default DefaultPubSubEndpoint.
	PubSubEndpoint string `json:"pubsubEndpoint,omitempty"`
	// ChangeChannels names, per object, the channel its changes are
	// streamed from instead of /data/<Object>ChangeEvent (for example a
	// custom channel {"Lead": "/data/Crmsync__chn"}).
	ChangeChannels map[string]string `json:"changeChannels,omitempty"`
	// BulkThreshold is how many operations of one kind on one object a
	// BulkUpdate must exceed to write them with Bulk API 2.0 instead of
	// sObject Collections. 0: DefaultBulkThreshold.
	BulkThreshold int `json:"bulkThreshold,omitempty"`
}

// Credentials are the session credentials (Session.Credentials). Either
// ClientSecret+RefreshToken or PrivateKey+Username authenticate; the other
// fields cache the current session and are filled in by the connector.
type Credentials struct {
	ClientSecret string `json:"clientSecret,omitempty"`
	RefreshToken string `json:"refreshToken,omitempty"`
	// PrivateKey is the PEM (PKCS #1 or #8) RSA key whose certificate is
	// uploaded to the connected app, for the JWT bearer flow.
	PrivateKey string `json:"privateKey,omitempty"`
	Username   string `json:"username,omitempty"`

	AccessToken string `json:"accessToken,omitempty"`
	InstanceURL string `json:"instanceUrl,omitempty"`
	IdentityURL string `json:"identityUrl,omitempty"`
	UserID      string `json:"userId,omitempty"`
}

// NewSession returns a session carrying cfg and creds.
func NewSession(cfg Config, creds Credentials) connector.Session {
	c, _ := json.Marshal(cfg)   // plain strings and maps: cannot fail
	k, _ := json.Marshal(creds) // plain strings: cannot fail
	return connector.Session{Config: c, Credentials: k}
}

var versionRE = regexp.MustCompile(`^v?([0-9]{2,3}\.0)$`)

// parseConfig reads and validates a session's configuration; hosts decides
// which loginUrl hosts are allowed.
func parseConfig(raw json.RawMessage, hosts hostPolicy) (Config, string, error) {
	var cfg Config
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return cfg, "", connector.Errorf(connector.KindInvalid, "salesforce config: %v", err)
		}
	}
	if cfg.LoginURL == "" {
		cfg.LoginURL = DefaultLoginURL
	}
	cfg.LoginURL = strings.TrimRight(cfg.LoginURL, "/")
	// The host first: every refused host gets the same error, whatever
	// else is wrong with the URL.
	if err := hosts.checkURL(cfg.LoginURL, true); err != nil {
		return cfg, "", err
	}
	if err := checkBaseURL(cfg.LoginURL); err != nil {
		return cfg, "", connector.Errorf(connector.KindInvalid, "salesforce config loginUrl: %v", err)
	}
	version := DefaultAPIVersion
	if cfg.APIVersion != "" {
		m := versionRE.FindStringSubmatch(cfg.APIVersion)
		if m == nil {
			return cfg, "", connector.Errorf(connector.KindInvalid, "salesforce config apiVersion %q: want vNN.0", cfg.APIVersion)
		}
		version = "v" + m[1]
	}
	if cfg.PubSubEndpoint != "" {
		if err := checkBaseURL(cfg.PubSubEndpoint); err != nil {
			return cfg, "", connector.Errorf(connector.KindInvalid, "salesforce config pubsubEndpoint: %v", err)
		}
	}
	for obj, ch := range cfg.ChangeChannels {
		if !validIdent(obj) || !strings.HasPrefix(ch, "/data/") || !validIdent(strings.TrimPrefix(ch, "/data/")) {
			return cfg, "", connector.Errorf(connector.KindInvalid, "salesforce config changeChannels: %q: %q is not a /data/ channel", obj, ch)
		}
	}
	if cfg.BulkThreshold < 0 {
		return cfg, "", connector.Errorf(connector.KindInvalid, "salesforce config bulkThreshold: %d is negative", cfg.BulkThreshold)
	}
	for obj, field := range cfg.ExternalIDField {
		if !validIdent(obj) || !validIdent(field) {
			return cfg, "", connector.Errorf(connector.KindInvalid, "salesforce config externalIdField: %q: %q is not an API name", obj, field)
		}
	}
	return cfg, version, nil
}

// checkBaseURL accepts https URLs, and http only on loopback (tests, the
// local fake), so tokens never travel in clear over a network.
func checkBaseURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return fmt.Errorf("%q is not a base URL", s)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
	}
	return fmt.Errorf("%q: https required", s)
}

// hasCredentials reports whether a session carries credentials at all.
func hasCredentials(s connector.Session) bool {
	b := bytes.TrimSpace(s.Credentials)
	return len(b) > 0 && !bytes.Equal(b, []byte("null")) && !bytes.Equal(b, []byte("{}"))
}

// call is the state of one connector call: the session, the access token in
// use, and the Meta collected along the way.
type call struct {
	c       *Connector
	cfg     Config
	version string
	creds   Credentials
	raw     map[string]json.RawMessage // the credentials as given, to keep unknown keys

	tok     token
	changed bool // tok differs from the session's: hand credentials back
	calls   int
	usage   *connector.Usage
	// serverTime is the Date of the last answer (Salesforce's clock).
	serverTime time.Time
}

// begin parses the session for one call.
func (c *Connector) begin(ctx context.Context, s connector.Session) (*call, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr("salesforce", err)
	}
	cfg, version, err := parseConfig(s.Config, c.hosts)
	if err != nil {
		return nil, err
	}
	cl := &call{c: c, cfg: cfg, version: version, raw: map[string]json.RawMessage{}}
	if len(bytes.TrimSpace(s.Credentials)) > 0 {
		if err := json.Unmarshal(s.Credentials, &cl.raw); err != nil {
			return nil, connector.Errorf(connector.KindCredentials, "salesforce credentials: %v", err)
		}
		if err := json.Unmarshal(s.Credentials, &cl.creds); err != nil {
			return nil, connector.Errorf(connector.KindCredentials, "salesforce credentials: %v", err)
		}
	}
	if cl.creds.AccessToken != "" && cl.creds.InstanceURL != "" {
		cl.tok = token{AccessToken: cl.creds.AccessToken, InstanceURL: strings.TrimRight(cl.creds.InstanceURL, "/"),
			IdentityURL: cl.creds.IdentityURL, RefreshToken: cl.creds.RefreshToken}
		if err := checkBaseURL(cl.tok.InstanceURL); err != nil {
			return nil, connector.Errorf(connector.KindCredentials, "salesforce credentials instanceUrl: %v", err)
		}
		if err := c.hosts.checkURL(cl.tok.InstanceURL, false); err != nil {
			return nil, err
		}
	}
	return cl, nil
}

// meta is the Meta of the call so far.
func (cl *call) meta() connector.Meta {
	m := connector.Meta{Calls: cl.calls, Usage: cl.usage, ServerTime: cl.serverTime}
	if cl.changed {
		m.Credentials = cl.credentials()
	}
	return m
}

// credentials returns the session's credentials with the current token.
func (cl *call) credentials() json.RawMessage {
	out := make(map[string]json.RawMessage, len(cl.raw)+4)
	for k, v := range cl.raw {
		out[k] = v
	}
	set := func(k, v string) {
		if v == "" {
			delete(out, k)
			return
		}
		b, _ := json.Marshal(v) // a string: cannot fail
		out[k] = b
	}
	set("accessToken", cl.tok.AccessToken)
	set("instanceUrl", cl.tok.InstanceURL)
	set("identityUrl", cl.tok.IdentityURL)
	set("userId", cl.tok.userID())
	if cl.tok.RefreshToken != "" {
		set("refreshToken", cl.tok.RefreshToken)
	}
	b, _ := json.Marshal(out) // raw JSON values: cannot fail
	return b
}

// ctxErr wraps a context error. It is deliberately a plain error, not a
// connector.Error: errors.Is(err, context.Canceled) or DeadlineExceeded
// holds in process, and the plugin boundary carries it as the gRPC
// cancellation code it is (connector.Retryable treats it as retryable).
func ctxErr(op string, err error) error {
	return fmt.Errorf("%s: %w", op, err)
}
