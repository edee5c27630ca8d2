// Package httpserver is crmsync's HTTP front: it mounts the GraphQL handler
// at /graphql behind bearer-token authentication, a body size limit and
// CORS, serves the operator console at /console and GraphiQL at / (both
// from embedded assets, see internal/console), /healthz and /readyz,
// counts every request by route and status, and lets later features mount
// their own routes (Server.Handle). /metrics is served only by the
// operational handler (Server.Ops), meant for a separate, private listen
// address: it labels every workspace. Serve runs either with graceful
// shutdown.
package httpserver

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/internal/console"
	"github.com/crmsync/crmsync/internal/db"
	"github.com/crmsync/crmsync/internal/workspace"
)

// DefaultMaxBodyBytes is the largest GraphQL request body accepted.
const DefaultMaxBodyBytes = 2 << 20 // 2 MiB

// Deps are what the server serves. Logger, DB, GraphQL, Authenticate and
// Registry are required.
type Deps struct {
	Logger *slog.Logger
	// DB is checked by /readyz: reachable and fully migrated.
	DB *bun.DB
	// GraphQL is the GraphQL handler (graph.NewHandler), mounted at /graphql.
	GraphQL http.Handler
	// Authenticate turns a bearer token into an authenticated context
	// (workspace.Authenticator.Authenticate); it fails with
	// workspace.ErrUnauthenticated for a bad token.
	Authenticate func(ctx context.Context, token string) (context.Context, error)
	// Registry receives the Go runtime, process and HTTP metrics and is
	// served at /metrics by Ops.
	Registry *prometheus.Registry
	// GraphiQL serves the GraphiQL page at /.
	GraphiQL bool
	// AllowedOrigins are the origins, besides the server's own, whose pages
	// may call /graphql (CORS), for example "https://app.example.com".
	AllowedOrigins []string
	// MaxBodyBytes defaults to DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// BodyRate is how many request-body bytes one API token may send to
	// /graphql per second (default DefaultBodyRate); the burst is twice
	// MaxBodyBytes.
	BodyRate int64
	// RequestRate is how many requests one API token may send to /graphql
	// per second (default DefaultRequestRate); the burst is twice that.
	RequestRate int64
}

// Server routes crmsync's HTTP requests.
type Server struct {
	deps     Deps
	mux      *http.ServeMux
	metrics  *metrics
	bodies   *buckets // request-body bytes per token
	requests *buckets // requests per token
	refusals *refusals
}

// New returns a Server with the standard routes mounted.
func New(d Deps) (*Server, error) {
	if d.Logger == nil || d.DB == nil || d.GraphQL == nil || d.Authenticate == nil || d.Registry == nil {
		return nil, errors.New("httpserver: Logger, DB, GraphQL, Authenticate and Registry are required")
	}
	if d.MaxBodyBytes <= 0 {
		d.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if d.BodyRate <= 0 {
		d.BodyRate = DefaultBodyRate
	}
	if d.RequestRate <= 0 {
		d.RequestRate = DefaultRequestRate
	}
	m, err := newMetrics(d.Registry)
	if err != nil {
		return nil, err
	}
	s := &Server{
		deps: d, mux: http.NewServeMux(), metrics: m,
		bodies:   newBuckets(d.BodyRate, 2*d.MaxBodyBytes),
		requests: newBuckets(d.RequestRate, 2*d.RequestRate),
		refusals: newRefusals(d.BodyRate, d.RequestRate),
	}
	s.Handle("/graphql", s.cors(requireJSON(s.limitBody(s.authenticate(s.limitRate(d.GraphQL))))))
	// The console and GraphiQL are served from assets embedded in the
	// binary: they work without internet access.
	console.Mount(s)
	if d.GraphiQL {
		graphiql, err := console.GraphiQL(console.GraphiQLOptions{Title: "crmsync GraphiQL", Tabs: []console.Tab{{
			Query: "# Press the run button (or Ctrl-Enter). The schema is in the Docs pane.\n{\n  viewer { name }\n  syncOverview { queuedBatchItems failedItems paused pauseReason lastBatchAt }\n}\n",
		}}})
		if err != nil {
			return nil, err
		}
		s.Handle("GET /{$}", graphiql)
	} else {
		s.Handle("GET /{$}", http.RedirectHandler("/console", http.StatusFound))
	}
	s.Handle("GET /healthz", http.HandlerFunc(healthz))
	s.Handle("GET /readyz", http.HandlerFunc(s.readyz))
	return s, nil
}

// Ops returns the operational handler: /metrics, /healthz and /readyz.
// /metrics names every workspace in its labels (queue sizes, failures, API
// usage, daily limits), so it is not on the public listener: serve Ops on
// an address only the operator's network reaches (--ops-listen).
func (s *Server) Ops() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.deps.Registry, promhttp.HandlerOpts{}))
	mux.Handle("GET /healthz", http.HandlerFunc(healthz))
	mux.Handle("GET /readyz", http.HandlerFunc(s.readyz))
	return mux
}

// Handle mounts h at pattern (http.ServeMux syntax, for example
// "GET /oauth/callback"), counted in the HTTP metrics under the pattern.
// The handler does its own authentication.
func (s *Server) Handle(pattern string, h http.Handler) {
	s.mux.Handle(pattern, s.metrics.instrument(pattern, h))
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// authenticate requires a valid bearer token on every request but
// websocket upgrades (authenticated in connection_init by the GraphQL
// handler) and CORS preflights.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions || isWebsocket(r) {
			next.ServeHTTP(w, r)
			return
		}
		if len(r.Header.Values("Authorization")) > 1 {
			// Proxies and servers disagree on which of two headers counts.
			WriteError(w, http.StatusBadRequest, "AMBIGUOUS_AUTHORIZATION",
				"more than one Authorization header: send exactly one, Authorization: Bearer <token>")
			return
		}
		ctx, err := s.deps.Authenticate(r.Context(), workspace.BearerToken(r.Header.Get("Authorization")))
		switch {
		case errors.Is(err, workspace.ErrUnauthenticated):
			w.Header().Set("WWW-Authenticate", `Bearer realm="crmsync"`)
			WriteError(w, http.StatusUnauthorized, "UNAUTHENTICATED",
				"missing, unknown or revoked API token: send Authorization: Bearer <token>")
		case err != nil:
			s.deps.Logger.ErrorContext(r.Context(), "authenticate request", slog.Any("error", err))
			WriteError(w, http.StatusInternalServerError, "INTERNAL", "internal error")
		default:
			next.ServeHTTP(w, r.WithContext(ctx))
		}
	})
}

func isWebsocket(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// limitBody refuses a body whose Content-Length is over MaxBodyBytes with
// 413, before reading it and before authentication. A body without a
// length is read, up to the limit, only once the request is authenticated
// and within its token's rate (limitRate).
func (s *Server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > s.deps.MaxBodyBytes {
			s.tooLarge(w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) tooLarge(w http.ResponseWriter) {
	WriteError(w, http.StatusRequestEntityTooLarge, "REQUEST_TOO_LARGE",
		fmt.Sprintf("request body is larger than the limit of %d bytes", s.deps.MaxBodyBytes))
}

// cors lets the allowed origins call /graphql from a browser.
func (s *Server) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin != "" && slices.Contains(s.deps.AllowedOrigins, origin) {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Add("Vary", "Origin")
			if r.Method == http.MethodOptions {
				h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
				h.Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// WriteError writes a GraphQL-shaped error response:
// {"errors":[{"message":...,"extensions":{"code":...}}]}.
func WriteError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(errorBody(code, message))
}

func errorBody(code, message string) []byte {
	type gqlError struct {
		Message    string            `json:"message"`
		Extensions map[string]string `json:"extensions"`
	}
	body, _ := json.Marshal(struct {
		Errors []gqlError `json:"errors"`
	}{[]gqlError{{Message: message, Extensions: map[string]string{"code": code}}}})
	return body
}

func healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz reports ready when the database answers and is fully migrated.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	notReady := func(reason string) {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": reason})
	}
	if err := s.deps.DB.PingContext(ctx); err != nil {
		s.deps.Logger.WarnContext(ctx, "readyz: database unreachable", slog.Any("error", err))
		notReady("database unreachable")
		return
	}
	status, err := db.MigrationStatus(ctx, s.deps.DB)
	if err != nil {
		s.deps.Logger.WarnContext(ctx, "readyz: migration status", slog.Any("error", err))
		notReady("cannot read migration status")
		return
	}
	if pending := db.Pending(status); len(pending) > 0 {
		notReady(strconv.Itoa(len(pending)) + " migrations pending: run crmsync migrate up")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "database": string(db.DialectOf(s.deps.DB))})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// metrics are the HTTP metrics.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg *prometheus.Registry) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crmsync_http_requests_total",
			Help: "HTTP requests by route (mux pattern) and status code.",
		}, []string{"route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "crmsync_http_request_duration_seconds",
			Help:    "HTTP request duration by route (websockets: connection lifetime).",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
	}
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.duration,
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) instrument(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
		m.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

// statusRecorder remembers the status code written through it. It keeps
// the Flusher and Hijacker (websockets) of the writer it wraps.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := s.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("hijacking not supported")
	}
	if s.status == 0 {
		s.status = http.StatusSwitchingProtocols
	}
	return hj.Hijack()
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
