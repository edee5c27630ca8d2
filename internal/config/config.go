// Package config is crmsync's typed configuration, read once from flags and
// environment variables (through kong, see Resolver) and passed down.
//
// Every setting is a flag and an environment variable; the flag wins. The
// structs below carry the kong tags, so `crmsync <command> --help` and
// docs/configuration.md document the same names. Secrets (the database
// password, the admin token, the secret key) are masked when a config is
// logged (LogValue).
package config

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/alecthomas/kong"
	"golang.org/x/term"

	"github.com/crmsync/crmsync/internal/replica"
	"github.com/crmsync/crmsync/internal/secret"
)

// Global settings, shared by every command.
type Global struct {
	DatabaseURL string `name:"database-url" envs:"DATABASE_URL,CRMSYNC_DATABASE_URL" placeholder:"URL" help:"PostgreSQL URL (postgres://user:pass@host:5432/db). Empty: a SQLite file in the data directory. Env: DATABASE_URL or CRMSYNC_DATABASE_URL."`
	DataDir     string `name:"data-dir" envs:"CRMSYNC_DATA_DIR" default:".data" placeholder:"DIR" help:"Directory for the SQLite database and the generated secret key, created if missing (default: .data, relative to the working directory). Env: CRMSYNC_DATA_DIR."`
	LogLevel    string `name:"log-level" envs:"CRMSYNC_LOG_LEVEL" default:"info" enum:"debug,info,warn,error" help:"Log level: debug, info, warn or error. Env: CRMSYNC_LOG_LEVEL."`
	LogFormat   string `name:"log-format" envs:"CRMSYNC_LOG_FORMAT" default:"auto" enum:"auto,json,text" help:"Log format: text (human-readable), json (one object per line), or auto: text when stderr is a terminal, json otherwise. Env: CRMSYNC_LOG_FORMAT."`
}

// Server settings of `crmsync serve`.
type Server struct {
	Listen           string        `name:"listen" envs:"CRMSYNC_LISTEN" default:"127.0.0.1:8080" placeholder:"HOST:PORT" help:"Address the HTTP server listens on (default: 127.0.0.1:8080). Env: CRMSYNC_LISTEN."`
	OpsListen        string        `name:"ops-listen" envs:"CRMSYNC_OPS_LISTEN" placeholder:"HOST:PORT" help:"Address of the operational listener serving /metrics, /healthz and /readyz (for example 10.0.0.5:9090; keep it off the public network: /metrics labels every workspace). Empty: /metrics is not served; /healthz and /readyz stay on --listen. Env: CRMSYNC_OPS_LISTEN."`
	AdminToken       secret.String `name:"admin-token" envs:"CRMSYNC_ADMIN_TOKEN" placeholder:"TOKEN" help:"Token for admin operations (createWorkspace). Empty: admin operations are disabled. Env: CRMSYNC_ADMIN_TOKEN."`
	SecretKey        secret.String `name:"secret-key" envs:"CRMSYNC_SECRET_KEY" placeholder:"BASE64" help:"Key encrypting CRM credentials at rest: 32 random bytes in base64 (openssl rand -base64 32). Empty: read from, or generated into, <data-dir>/secret.key. Replicas on one PostgreSQL must share it. Env: CRMSYNC_SECRET_KEY."`
	NoMigrate        bool          `name:"no-migrate" envs:"CRMSYNC_NO_MIGRATE" help:"Do not migrate the database on start (run crmsync migrate up yourself). Env: CRMSYNC_NO_MIGRATE=true."`
	GraphiQL         bool          `name:"graphiql" envs:"CRMSYNC_GRAPHIQL" default:"true" negatable:"" help:"Serve the GraphiQL page at / (--no-graphiql to turn off). Env: CRMSYNC_GRAPHIQL=false."`
	Introspection    bool          `name:"introspection" envs:"CRMSYNC_INTROSPECTION" default:"true" negatable:"" help:"Allow GraphQL schema introspection (GraphiQL needs it). Env: CRMSYNC_INTROSPECTION=false."`
	AllowedOrigins   []string      `name:"allowed-origins" envs:"CRMSYNC_ALLOWED_ORIGINS" placeholder:"ORIGIN" help:"Origins besides the server's own whose pages may call the API and open websockets, comma separated (https://app.example.com). Env: CRMSYNC_ALLOWED_ORIGINS."`
	ReplicaID        string        `name:"replica-id" envs:"CRMSYNC_REPLICA_ID" placeholder:"ID" help:"This replica's name, the same across its restarts and unique among running replicas (a StatefulSet pod name): a restarted replica takes over the sync leases its killed predecessor held instead of waiting for them to expire. Empty: generated once into <data-dir>/replica.id. Env: CRMSYNC_REPLICA_ID."`
	RequestRate      int64         `name:"request-rate" envs:"CRMSYNC_REQUEST_RATE" default:"8192" placeholder:"KIB" help:"How many KiB of GraphQL request bodies one API token may send per second, sustained (bursts up to twice the 2 MiB body limit); more is refused with 429 and Retry-After. Env: CRMSYNC_REQUEST_RATE."`   // 0 (a literal without it): the default
	RequestCountRate int64         `name:"request-count-rate" envs:"CRMSYNC_REQUEST_COUNT_RATE" default:"5000" placeholder:"N" help:"How many GraphQL requests one API token may send per second, sustained (bursts up to twice that), however small; more is refused with 429 and Retry-After. Env: CRMSYNC_REQUEST_COUNT_RATE."` // 0 (a literal without it): the default
	ShutdownTimeout  time.Duration `name:"shutdown-timeout" envs:"CRMSYNC_SHUTDOWN_TIMEOUT" default:"8s" help:"How long a shutdown waits for requests and jobs in flight before cancelling them. Env: CRMSYNC_SHUTDOWN_TIMEOUT."`

	Sync            `embed:""`
	SalesforceOAuth `embed:""`
}

// SalesforceOAuth configures the Salesforce web flow (GET
// /oauth/salesforce/start, docs/limits.md): the connected app crmsync
// sends users to. Unset client id: the routes are not served.
type SalesforceOAuth struct {
	SalesforceClientID     string        `name:"salesforce-client-id" envs:"CRMSYNC_SALESFORCE_CLIENT_ID" placeholder:"KEY" help:"Consumer key of the Salesforce connected app used by the web flow at /oauth/salesforce/start. Empty: the web flow is off (connectCrm still works). Env: CRMSYNC_SALESFORCE_CLIENT_ID."`
	SalesforceClientSecret secret.String `name:"salesforce-client-secret" envs:"CRMSYNC_SALESFORCE_CLIENT_SECRET" placeholder:"SECRET" help:"Consumer secret of that connected app (stored with each connection, encrypted). Env: CRMSYNC_SALESFORCE_CLIENT_SECRET."`
	SalesforceLoginURL     string        `name:"salesforce-login-url" envs:"CRMSYNC_SALESFORCE_LOGIN_URL" default:"https://login.salesforce.com" placeholder:"URL" help:"Default OAuth host of the web flow (https://test.salesforce.com for sandboxes, or a My Domain URL); a start request may ask for another host under salesforce.com with ?login_url=. Env: CRMSYNC_SALESFORCE_LOGIN_URL."`
	SalesforceRedirectURL  string        `name:"salesforce-redirect-url" envs:"CRMSYNC_SALESFORCE_REDIRECT_URL" placeholder:"URL" help:"This server's callback URL as registered on the connected app, ending in /oauth/salesforce/callback (https://crmsync.example.com/oauth/salesforce/callback). Required with the client id. Env: CRMSYNC_SALESFORCE_REDIRECT_URL."`
	SalesforceReturnURL    string        `name:"salesforce-return-url" envs:"CRMSYNC_SALESFORCE_RETURN_URL" placeholder:"URL" help:"Where the browser goes after the callback, with ?salesforce=connected or ?salesforce=error&error=CODE (the app's settings page). Empty: a short text page. Env: CRMSYNC_SALESFORCE_RETURN_URL."`
}

// Validate checks the web-flow settings.
func (s SalesforceOAuth) Validate() error {
	if s.SalesforceClientID == "" {
		return nil
	}
	if s.SalesforceRedirectURL == "" {
		return errors.New("CRMSYNC_SALESFORCE_REDIRECT_URL is required with CRMSYNC_SALESFORCE_CLIENT_ID (this server's /oauth/salesforce/callback URL)")
	}
	for name, raw := range map[string]string{"CRMSYNC_SALESFORCE_LOGIN_URL": s.SalesforceLoginURL,
		"CRMSYNC_SALESFORCE_REDIRECT_URL": s.SalesforceRedirectURL, "CRMSYNC_SALESFORCE_RETURN_URL": s.SalesforceReturnURL} {
		if raw == "" {
			continue
		}
		if u, err := url.Parse(raw); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("%s %q: want an http(s) URL", name, raw)
		}
	}
	return nil
}

// Sync holds the sync engine's settings, shared by serve and demo.
type Sync struct {
	// FlushSchedule is how outbound flushes are paced: "budget" (or empty,
	// a Sync built in code) spends calls from a per-connection token bucket
	// filled from the daily budget; "fixed" flushes at most once per
	// FlushInterval window.
	FlushSchedule string        `name:"flush-schedule" envs:"CRMSYNC_FLUSH_SCHEDULE" enum:"budget,fixed" default:"budget" help:"budget: a change is flushed after --flush-settle while the connection's API budget allows, and waits and coalesces as the budget tightens; fixed: at most one flush per --flush-interval window. Env: CRMSYNC_FLUSH_SCHEDULE."`
	FlushSettle   time.Duration `name:"flush-settle" envs:"CRMSYNC_FLUSH_SETTLE" default:"250ms" help:"Budget schedule: how long a change waits for others (the fields of one form save) before its flush starts. Env: CRMSYNC_FLUSH_SETTLE."`
	BudgetShare   float64       `name:"budget-share" envs:"CRMSYNC_BUDGET_SHARE" default:"50" help:"Budget schedule, connections without a crmsync daily limit: the percentage of the Salesforce daily allowance left after other clients' usage that crmsync spends. Env: CRMSYNC_BUDGET_SHARE."`
	PaceBurst     int           `name:"pace-burst" envs:"CRMSYNC_PACE_BURST" default:"6" help:"Budget schedule: how many API calls may go back to back after a quiet spell (the token bucket's capacity). Env: CRMSYNC_PACE_BURST."`
	FlushInterval time.Duration `name:"flush-interval" envs:"CRMSYNC_FLUSH_INTERVAL" default:"10s" help:"Fixed schedule: under a steady trickle of changes, a connection is flushed at most once per interval (a change after a quiet spell is flushed at once). Budget schedule: how often a connection whose flushes found nothing due checks again. Env: CRMSYNC_FLUSH_INTERVAL."`
	PullInterval  time.Duration `name:"pull-interval" envs:"CRMSYNC_PULL_INTERVAL" default:"5m" help:"How often each connection's CRM changes are pulled (while it streams, pulls are skipped; this is then the fallback). Env: CRMSYNC_PULL_INTERVAL."`
	Streaming     bool          `name:"streaming" envs:"CRMSYNC_STREAMING" default:"true" negatable:"" help:"Stream Salesforce changes (Change Data Capture over the Pub/Sub API) where the connector and org allow it; --pull-interval then only governs the fallback pulls. Env: CRMSYNC_STREAMING."`
	Lease         time.Duration `name:"sync-lease" envs:"CRMSYNC_SYNC_LEASE" default:"30s" help:"A running flush or pull holds its connection's lease for this long and renews it every third of it; a replica that dies mid-sync blocks the connection at most this long. Env: CRMSYNC_SYNC_LEASE."`
	// SweepInterval is how often the safety-net sweep flushes workspaces
	// with queued items; zero (a Sync built in code) means one minute. The
	// bench raises it so the sweep does not help its fixed schedule.
	SweepInterval time.Duration `name:"sweep-interval" envs:"CRMSYNC_SWEEP_INTERVAL" default:"1m" help:"How often the safety net gives every connection with queued changes a flush, in case the job that should have flushed them was lost. Env: CRMSYNC_SWEEP_INTERVAL."`
	// IngestMaxWaiting and IngestMaxGroupChanges tune ingest group commit
	// (docs/sync.md); zero (a Sync built in code) means the default.
	IngestMaxWaiting      int           `name:"ingest-max-waiting" envs:"CRMSYNC_INGEST_MAX_WAITING" default:"1000" help:"Most ingest calls (recordChanges) one replica lets wait for the database; beyond it a call is refused with an OVERLOADED error carrying retryAfterMs. Env: CRMSYNC_INGEST_MAX_WAITING."`
	IngestMaxGroupChanges int           `name:"ingest-max-group-changes" envs:"CRMSYNC_INGEST_MAX_GROUP_CHANGES" default:"5000" help:"Most changes one group-commit transaction holds (concurrent ingest calls of a workspace share a transaction). Env: CRMSYNC_INGEST_MAX_GROUP_CHANGES."`
	AllowCRMHosts         []string      `name:"allow-crm-host" envs:"CRMSYNC_ALLOW_CRM_HOSTS" placeholder:"HOST[:PORT]" help:"Hosts a CRM connection may reach besides Salesforce's own (login.salesforce.com, test.salesforce.com, *.my.salesforce.com, *.force.com), comma separated, each HOST (any port) or HOST:PORT: a fake Salesforce or a proxy. Such a host may be private or loopback and use http on loopback; any other host must be Salesforce's, over https, at a public address. Env: CRMSYNC_ALLOW_CRM_HOSTS."`
	PluginStartBackoff    time.Duration `name:"plugin-start-backoff" envs:"CRMSYNC_PLUGIN_START_BACKOFF" default:"5s" help:"How long crmsync waits after a connector plugin failed to start (or crashed in a loop) before it starts it again; doubled after each further failure, up to 5 minutes. Meanwhile the connection shows CONNECTOR_UNAVAILABLE. Env: CRMSYNC_PLUGIN_START_BACKOFF."`
	Connectors            []string      `name:"connector-plugin" envs:"CRMSYNC_CONNECTORS" placeholder:"NAME=PATH[@SHA256]" help:"Third-party connector executables, comma separated, each NAME=PATH, optionally pinned with @ and the hex sha256 of the file. Built in: salesforce, memcrm. Env: CRMSYNC_CONNECTORS."`
}

// Schedule is the flush schedule, "budget" unless "fixed" was chosen.
func (s Sync) Schedule() string {
	if s.FlushSchedule == "fixed" {
		return "fixed"
	}
	return "budget"
}

// Settle is the settle delay of the budget schedule (default 250 ms).
func (s Sync) Settle() time.Duration {
	if s.FlushSettle <= 0 {
		return 250 * time.Millisecond
	}
	return s.FlushSettle
}

// Sweep is the safety-net sweep's interval (default one minute).
func (s Sync) Sweep() time.Duration {
	if s.SweepInterval <= 0 {
		return time.Minute
	}
	return s.SweepInterval
}

// External parses the third-party connector settings.
func (s Sync) External() (map[string]ExternalConnector, error) {
	out := map[string]ExternalConnector{}
	for _, spec := range s.Connectors {
		name, rest, ok := strings.Cut(strings.TrimSpace(spec), "=")
		if !ok || name == "" || rest == "" {
			return nil, fmt.Errorf("connector plugin %q: want NAME=PATH[@SHA256]", spec)
		}
		path, sum, _ := strings.Cut(rest, "@")
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("connector plugin %q named twice", name)
		}
		out[name] = ExternalConnector{Path: path, SHA256: sum}
	}
	return out, nil
}

// ExternalConnector is a third-party connector executable.
type ExternalConnector struct {
	Path   string
	SHA256 string
}

// Validate checks the sync settings.
func (s Sync) Validate() error {
	if s.FlushInterval < 100*time.Millisecond {
		return fmt.Errorf("flush interval must be at least 100ms, got %s", s.FlushInterval)
	}
	switch s.FlushSchedule {
	case "", "budget", "fixed":
	default:
		return fmt.Errorf("flush schedule must be budget or fixed, got %q", s.FlushSchedule)
	}
	if s.FlushSettle != 0 && (s.FlushSettle < 10*time.Millisecond || s.FlushSettle > 10*time.Second) {
		return fmt.Errorf("flush settle must be between 10ms and 10s, got %s", s.FlushSettle)
	}
	if s.BudgetShare < 0 || s.BudgetShare > 100 {
		return fmt.Errorf("budget share must be a percentage between 0 and 100, got %g", s.BudgetShare)
	}
	if s.PaceBurst < 0 {
		return fmt.Errorf("pace burst must be at least 1 call, got %d", s.PaceBurst)
	}
	if s.PullInterval < time.Second {
		return fmt.Errorf("pull interval must be at least 1s, got %s", s.PullInterval)
	}
	if s.Lease != 0 && s.Lease < time.Second {
		return fmt.Errorf("sync lease must be at least 1s, got %s", s.Lease)
	}
	if s.SweepInterval != 0 && s.SweepInterval < time.Second {
		return fmt.Errorf("sweep interval must be at least 1s, got %s", s.SweepInterval)
	}
	if s.IngestMaxWaiting < 0 || s.IngestMaxGroupChanges < 0 {
		return fmt.Errorf("ingest limits must not be negative, got max waiting %d, max group changes %d", s.IngestMaxWaiting, s.IngestMaxGroupChanges)
	}
	for _, h := range s.AllowCRMHosts {
		if !validCRMHost(h) {
			return fmt.Errorf("allowed CRM host %q: want HOST or HOST:PORT, no scheme (for example 127.0.0.1 or sf.internal:8443)", h)
		}
	}
	_, err := s.External()
	return err
}

// validCRMHost reports whether h is HOST or HOST:PORT.
func validCRMHost(h string) bool {
	if h == "" || strings.ContainsAny(h, "/@ ") {
		return false
	}
	if host, port, err := net.SplitHostPort(h); err == nil {
		return host != "" && port != ""
	}
	return !strings.Contains(strings.Trim(h, "[]"), ":") || net.ParseIP(h) != nil
}

// AllowCRMHostArgs are the AllowCRMHosts as arguments of a built-in
// connector plugin (crmsync connector NAME --allow-crm-host=HOST...).
func (s Sync) AllowCRMHostArgs() []string {
	out := make([]string, 0, len(s.AllowCRMHosts))
	for _, h := range s.AllowCRMHosts {
		out = append(out, "--allow-crm-host="+h)
	}
	return out
}

// Resolver makes kong read each flag's environment variables (the envs
// tag, first non-empty wins) through getenv instead of the process
// environment, so tests pass their own environment.
func Resolver(getenv func(string) string) kong.Resolver {
	return kong.ResolverFunc(func(_ *kong.Context, _ *kong.Path, flag *kong.Flag) (any, error) {
		for _, name := range strings.Split(flag.Tag.Get("envs"), ",") {
			if name = strings.TrimSpace(name); name == "" {
				continue
			}
			if v := getenv(name); v != "" {
				return v, nil
			}
		}
		return nil, nil
	})
}

// Validate checks the global settings.
func (g Global) Validate() error {
	if g.DatabaseURL != "" {
		u, err := url.Parse(g.DatabaseURL)
		if err != nil {
			return fmt.Errorf("DATABASE_URL is not a valid URL: %s", redactURLError(err, g.DatabaseURL))
		}
		if u.Scheme != "postgres" && u.Scheme != "postgresql" {
			return fmt.Errorf("DATABASE_URL must start with postgres:// or postgresql:// (got scheme %q); leave it empty for SQLite", u.Scheme)
		}
	}
	if g.DatabaseURL == "" && g.DataDir == "" {
		return errors.New("data directory is empty: set --data-dir or CRMSYNC_DATA_DIR")
	}
	return nil
}

// redactURLError keeps a password out of a url.Parse error.
func redactURLError(err error, raw string) string {
	msg := err.Error()
	if i := strings.Index(raw, "://"); i >= 0 {
		rest := raw[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if _, pw, ok := strings.Cut(rest[:at], ":"); ok && pw != "" {
				msg = strings.ReplaceAll(msg, pw, "*****")
			}
		}
	}
	return msg
}

// Validate checks the server settings.
func (s Server) Validate() error {
	if _, _, err := net.SplitHostPort(s.Listen); err != nil {
		return fmt.Errorf("listen address %q: want host:port (for example 127.0.0.1:8080): %w", s.Listen, err)
	}
	if s.OpsListen != "" {
		if _, _, err := net.SplitHostPort(s.OpsListen); err != nil {
			return fmt.Errorf("ops listen address %q: want host:port (for example 127.0.0.1:9090): %w", s.OpsListen, err)
		}
		if s.OpsListen == s.Listen {
			return fmt.Errorf("ops listen address %q is the API's (--listen): choose another, private address", s.OpsListen)
		}
	}
	if s.SecretKey != "" {
		if _, err := secret.ParseKey(s.SecretKey.Reveal()); err != nil {
			return fmt.Errorf("CRMSYNC_SECRET_KEY: %w (generate one with: openssl rand -base64 32)", err)
		}
	}
	for _, o := range s.AllowedOrigins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return fmt.Errorf("allowed origin %q: want scheme://host[:port], for example https://app.example.com", o)
		}
	}
	if s.RequestRate < 0 || s.RequestRate > 1<<30 {
		return fmt.Errorf("request rate %d KiB/s: want 1 to %d (the default is 8192, 8 MiB a second per API token)", s.RequestRate, 1<<30)
	}
	if s.RequestCountRate < 0 || s.RequestCountRate > 1<<30 {
		return fmt.Errorf("request count rate %d a second: want 1 to %d (the default is 5000 requests a second per API token)", s.RequestCountRate, 1<<30)
	}
	if s.ReplicaID != "" && !replica.ValidID(s.ReplicaID) {
		return fmt.Errorf("replica id %q: want 1 to 64 letters, digits, '.', '-' or '_'", s.ReplicaID)
	}
	if s.ShutdownTimeout <= 0 {
		return fmt.Errorf("shutdown timeout must be positive, got %s", s.ShutdownTimeout)
	}
	if err := s.SalesforceOAuth.Validate(); err != nil {
		return err
	}
	return s.Sync.Validate()
}

// Origins returns the allowed origins without a trailing slash.
func (s Server) Origins() []string {
	out := make([]string, 0, len(s.AllowedOrigins))
	for _, o := range s.AllowedOrigins {
		out = append(out, strings.TrimSuffix(o, "/"))
	}
	return out
}

// Logger returns the logger the global settings ask for, writing to w:
// text or JSON as LogFormat says, where "auto" (the default) means text
// when w is a terminal and JSON otherwise (a file, a pipe, a log
// collector).
func (g Global) Logger(w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(g.LogLevel)) // validated by kong's enum; info otherwise
	opts := &slog.HandlerOptions{Level: lvl}
	if g.LogFormat == "text" || (g.LogFormat == "auto" && IsTerminal(w)) {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// IsTerminal reports whether w is a terminal (an *os.File on a TTY).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd())) //nolint:gosec // a file descriptor fits an int
}

// LogValue implements slog.LogValuer: the settings with secrets masked.
func (g Global) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("database_url", maskURL(g.DatabaseURL)),
		slog.String("data_dir", g.DataDir),
		slog.String("log_level", g.LogLevel),
		slog.String("log_format", g.LogFormat),
	)
}

// LogValue implements slog.LogValuer: the settings with secrets masked.
func (s Server) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("listen", s.Listen),
		slog.String("ops_listen", s.OpsListen),
		slog.Any("admin_token", s.AdminToken),
		slog.Any("secret_key", s.SecretKey),
		slog.Bool("no_migrate", s.NoMigrate),
		slog.Bool("graphiql", s.GraphiQL),
		slog.Bool("introspection", s.Introspection),
		slog.Any("allowed_origins", s.AllowedOrigins),
		slog.String("replica_id", s.ReplicaID),
		slog.String("shutdown_timeout", s.ShutdownTimeout.String()),
		slog.String("flush_schedule", s.Schedule()),
		slog.String("flush_settle", s.Settle().String()),
		slog.Float64("budget_share", s.BudgetShare),
		slog.Int("pace_burst", s.PaceBurst),
		slog.String("flush_interval", s.FlushInterval.String()),
		slog.String("pull_interval", s.PullInterval.String()),
		slog.Bool("streaming", s.Streaming),
		slog.String("sync_lease", s.Lease.String()),
		slog.String("sweep_interval", s.SweepInterval.String()),
		slog.Int("ingest_max_waiting", s.IngestMaxWaiting),
		slog.Int("ingest_max_group_changes", s.IngestMaxGroupChanges),
		slog.Any("connector_plugins", s.Connectors),
		slog.Any("allow_crm_hosts", s.AllowCRMHosts),
		slog.String("salesforce_client_id", s.SalesforceClientID),
		slog.Any("salesforce_client_secret", s.SalesforceClientSecret),
		slog.String("salesforce_login_url", s.SalesforceLoginURL),
		slog.String("salesforce_redirect_url", s.SalesforceRedirectURL),
		slog.String("salesforce_return_url", s.SalesforceReturnURL),
	)
}

func mask(s string) string {
	if s == "" {
		return ""
	}
	return "*****"
}

func maskURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return mask(raw)
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "*****")
	}
	return u.Redacted()
}

// SecretKeyFile is the file in the data directory holding the generated
// secret key when none is configured.
const SecretKeyFile = "secret.key"

// SecretKeyBytes returns the 32-byte credential encryption key: the configured
// one, or the one in <dataDir>/secret.key, generated (mode 0600) on first
// use. generated reports a new key.
func (s Server) SecretKeyBytes(dataDir string) (key []byte, generated bool, err error) {
	if s.SecretKey != "" {
		key, err := secret.ParseKey(s.SecretKey.Reveal())
		return key, false, err
	}
	path := filepath.Join(dataDir, SecretKeyFile)
	b, err := os.ReadFile(path)
	if err == nil {
		key, err := secret.ParseKey(strings.TrimSpace(string(b)))
		if err != nil {
			return nil, false, fmt.Errorf("secret key file %s: %w", path, err)
		}
		return key, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("read secret key file: %w", err)
	}
	key = make([]byte, secret.KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, false, fmt.Errorf("generate secret key: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, false, fmt.Errorf("data directory %s: %w", dataDir, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("write secret key file: %w", err)
	}
	_, err = f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, false, fmt.Errorf("write secret key file %s: %w", path, err)
	}
	return key, true, nil
}
