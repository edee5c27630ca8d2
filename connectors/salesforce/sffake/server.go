package sffake

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configure a Server. The zero value is usable.
type Options struct {
	// BaseURL is the instance URL the fake reports (instance_url, identity
	// URLs). Empty: derived from each request's Host.
	BaseURL string
	// LoginURL is the audience JWT bearer assertions must carry. Default
	// https://login.salesforce.com (https://test.salesforce.com is also
	// accepted, as for a sandbox).
	LoginURL string
	// Clock is the org's time. Default: a running clock.
	Clock *Clock
	// TokenTTL is the access-token lifetime (the org session timeout).
	// Default 2h.
	TokenTTL time.Duration
	// DailyMax is the DailyApiRequests allocation. Default 15,000.
	DailyMax int
	// Latency is added to every call.
	Latency time.Duration
	// Cost is the model of the time the org spends per call and per
	// record, its cap on long-running requests and its row locks (see
	// Cost; benchmarks use RealisticCost). Nil: none.
	Cost *Cost
	// Seed seeds the org's random choices (the cost model's lock errors).
	Seed uint64
	// QueryPageSize caps rows per query page below Salesforce's 2,000
	// (Salesforce may return fewer rows than asked). Default 2,000.
	QueryPageSize int
	// ClientID and ClientSecret of the connected app registered at start.
	// Defaults DefaultClientID and DefaultClientSecret.
	ClientID, ClientSecret string
	// RotateRefreshTokens makes the refresh-token grant return a new
	// refresh_token and revoke the one used (refresh token rotation).
	RotateRefreshTokens bool
	// GzipResponses compresses response bodies when the request accepts
	// gzip, as Salesforce may.
	GzipResponses bool
	// LogLimit is the number of requests the request log keeps (the
	// latest). Default 10,000.
	LogLimit int
	// EventRetention is how long Change Data Capture events stay
	// replayable over the Pub/Sub API (org clock). Default 72h.
	EventRetention time.Duration
	// PubSubKeepalive is how often an idle Subscribe stream gets an empty
	// FetchResponse (wall clock). Default 270s, as Salesforce.
	PubSubKeepalive time.Duration
}

// Default credentials of the connected app every Server starts with.
const (
	DefaultClientID     = "3MVG9sffake.ConsumerKey.crmsync"
	DefaultClientSecret = "sffake-consumer-secret"
)

// Usernames of the two users every Server starts with.
const (
	IntegrationUsername = "integration@crmsync.example"
	RepUsername         = "rep@crmsync.example"
)

// Versions are the API versions the fake serves, oldest first.
var Versions = []struct{ Label, Version string }{
	{"Winter '24", "59.0"}, {"Spring '24", "60.0"}, {"Summer '24", "61.0"},
	{"Winter '25", "62.0"}, {"Spring '25", "63.0"},
}

// Server is a fake Salesforce org speaking the REST API. It is an
// http.Handler; every exported method is safe for concurrent use.
type Server struct {
	mu       sync.Mutex
	opts     Options
	clock    *Clock
	st       *store
	faults   *faults
	orgID    string
	intUser  string
	repUser  string
	apps     map[string]*App
	access   map[string]*accessToken
	refresh  map[string]*refreshToken
	codes    map[string]*authCode
	cursors  map[string]*cursor
	used     int
	max      int
	latency  time.Duration
	pageSize int
	ttl      time.Duration
	log      []Request
	calls    CallCounts
	logLimit int
	openLocs []string   // open query locators, oldest first
	cost     *costState // nil without a cost model
	// sleep spends the cost model's time (tests replace it).
	sleep func(ctx context.Context, d time.Duration)
	bus   *eventBus
	// schemaTime is when the org's metadata last changed (its creation):
	// describe answers If-Modified-Since with 304 after it.
	schemaTime time.Time
	// jobs are the Bulk API 2.0 ingest jobs by id; bulkBatches and
	// bulkRecords count their internal batches and records against the
	// daily Bulk allocations (see bulk.go).
	jobs                     map[string]*bulkJob
	bulkBatches, bulkRecords int
	bulkFailAfter            int
	bulkFailMsg              string
}

// Request is one entry of the request log.
type Request struct {
	Time   time.Time // the org clock when the call arrived
	Method string
	Path   string
	Query  string      // raw query string
	Header http.Header // Sforce-* headers, Content-Type, Content-Encoding, If-Unmodified-Since
	Body   []byte      // the request body (decompressed)
	Status int         // 0 when the connection was reset
	Kind   string      // "auth", "read", "write" or "free" (not counted)
	UserID string      // the acting user of an authenticated call

	acceptEncoding string
}

// AutoAssign returns the Sforce-Auto-Assign header of the request ("" when absent).
func (r Request) AutoAssign() string { return r.Header.Get("Sforce-Auto-Assign") }

// CallCounts splits the HTTP requests served by kind. Read and Write
// requests count against the daily allocation (see Usage, where a
// /composite/batch request counts once per subrequest); Auth requests
// (token, authorize, revoke, identity) do not. Requests refused before
// they ran (401, 403 at the limit, injected faults) are not counted here.
type CallCounts struct {
	Auth, Read, Write int
}

// New returns a Server with the default connected app, an integration user
// and a sales rep.
func New(opts Options) *Server {
	if opts.Clock == nil {
		opts.Clock = RunningClock()
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = 2 * time.Hour
	}
	if opts.DailyMax <= 0 {
		opts.DailyMax = 15000
	}
	if opts.QueryPageSize <= 0 || opts.QueryPageSize > 2000 {
		opts.QueryPageSize = 2000
	}
	if opts.LogLimit <= 0 {
		opts.LogLimit = 10000
	}
	if opts.LoginURL == "" {
		opts.LoginURL = "https://login.salesforce.com"
	}
	if opts.ClientID == "" {
		opts.ClientID = DefaultClientID
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = DefaultClientSecret
	}
	s := &Server{
		opts: opts, clock: opts.Clock, st: newStore("5g"), faults: &faults{},
		apps: map[string]*App{}, access: map[string]*accessToken{}, refresh: map[string]*refreshToken{},
		codes: map[string]*authCode{}, cursors: map[string]*cursor{},
		logLimit: opts.LogLimit, max: opts.DailyMax, latency: opts.Latency, pageSize: opts.QueryPageSize, ttl: opts.TokenTTL,
		sleep: wallSleep,
	}
	if opts.Cost != nil {
		s.cost = newCostState(*opts.Cost, opts.Seed)
		s.st.cost = s.cost
	}
	s.st.faults = s.faults
	s.bus = newBus(opts)
	s.st.onCommit = s.publishChanges
	s.st.now = s.clock.Now
	s.schemaTime = s.clock.Now().Truncate(time.Second)
	s.orgID = makeID(keyPrefixes["Organization"], "5g", 1)
	s.apps[opts.ClientID] = &App{ClientID: opts.ClientID, ClientSecret: opts.ClientSecret}
	s.intUser = s.mustAddUser(User{Username: IntegrationUsername, FirstName: "Integration", LastName: "User", Email: IntegrationUsername})
	s.repUser = s.mustAddUser(User{Username: RepUsername, FirstName: "Sam", LastName: "Rep", Email: RepUsername})
	return s
}

// URL returns the base URL (instance URL) when it is known: set in
// Options or by SetBaseURL (sffaketest.Start sets its server's URL).
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts.BaseURL
}

// SetBaseURL fixes the instance URL the fake reports.
func (s *Server) SetBaseURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.BaseURL = strings.TrimRight(u, "/")
}

func (s *Server) baseURL(r *http.Request) string {
	if s.opts.BaseURL != "" {
		return s.opts.BaseURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// response is what a handler produces before it is written.
type response struct {
	status      int
	body        any // encoded as JSON unless raw is set; nil with raw nil means no body
	raw         []byte
	contentType string
	header      http.Header
	kind        string
	user        string
}

func jsonResp(status int, body any) response { return response{status: status, body: body} }

func errResp(status int, errs ...apiError) response {
	out := make([]map[string]any, len(errs))
	for i, e := range errs {
		out[i] = e.envelope()
	}
	return response{status: status, body: out}
}

func notFound() response {
	return errResp(404, apiError{Code: "NOT_FOUND", Message: "The requested resource does not exist"})
}

var versionRE = regexp.MustCompile(`^/services/data/v(\d+\.\d)(/.*)?$`)

// splitVersion returns the API version and the path below it.
func splitVersion(p string) (version, rest string, ok bool) {
	m := versionRE.FindStringSubmatch(p)
	if m == nil {
		return "", p, false
	}
	rest = strings.TrimRight(m[2], "/")
	return m[1], rest, true
}

const maxURI = 16384

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := s.clock.Now()
	body, err := readBody(r)
	entry := Request{Time: now, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: interestingHeaders(r.Header), Body: body, acceptEncoding: r.Header.Get("Accept-Encoding")}
	if err != nil {
		s.finish(w, entry, errResp(400, apiError{Code: "JSON_PARSER_ERROR", Message: "could not read the request body: " + err.Error()}), false)
		return
	}
	_, rest, data := splitVersion(r.URL.Path)
	fired := s.faults.match(r.Method, rest)
	s.mu.Lock()
	delay := s.latency
	s.mu.Unlock()
	var status, truncate, reset *Fault
	for i := range fired {
		switch f := &fired[i]; f.Kind {
		case FaultLatency:
			delay += f.Latency
		case FaultStatus:
			status = f
		case FaultTruncate:
			truncate = f
		case FaultReset:
			reset = f
		}
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
	}
	switch {
	case reset != nil:
		s.record(entry)
		resetConn(w, true)
		return
	case status != nil:
		ct, b := statusBody(*status)
		resp := response{status: status.Status, raw: []byte(b), contentType: ct, kind: "free"}
		if status.Status == 401 {
			resp.header = http.Header{"Www-Authenticate": {"Token"}}
		}
		s.finish(w, entry, resp, false)
		return
	}
	if len(r.RequestURI) > maxURI {
		s.finish(w, entry, response{status: 414, raw: []byte("<html><body>414 Request-URI Too Large</body></html>"), contentType: "text/html", kind: "free"}, false)
		return
	}
	work, ok := s.arrive(now, data)
	if !ok {
		s.finish(w, entry, errResp(403, apiError{Code: "REQUEST_LIMIT_EXCEEDED", Message: "ConcurrentPerOrgLongTxn Limit exceeded."}), false)
		return
	}
	resp := s.handle(r, body, work)
	s.spend(r.Context(), work)
	s.finish(w, entry, resp, truncate != nil)
}

// arrive registers a request with the cost model (nil work without one);
// false: the cap on concurrent long-running requests refuses a data API
// request (data: under /services/data/vNN.N).
func (s *Server) arrive(now time.Time, data bool) (*work, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cost == nil {
		return nil, true
	}
	return s.cost.arrive(now, data)
}

// spend waits out the time the cost model charges a request that has run,
// then releases its row locks.
func (s *Server) spend(ctx context.Context, w *work) {
	if w == nil {
		return
	}
	s.mu.Lock()
	sleep, d := s.sleep, s.cost.model.Base+w.d
	s.mu.Unlock()
	sleep(ctx, d)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cost.leave(w)
}

// finish appends the log entry and writes resp.
func (s *Server) finish(w http.ResponseWriter, entry Request, resp response, truncate bool) {
	b := resp.raw
	if b == nil && resp.body != nil {
		b, _ = json.Marshal(resp.body)
	}
	for k, v := range resp.header {
		w.Header()[k] = v
	}
	// Every answer carries the org's clock, as Salesforce's do: a client
	// proves how current a record it read is against it (second precision).
	w.Header().Set("Date", s.clock.Now().UTC().Format(http.TimeFormat))
	if b != nil && s.opts.GzipResponses && strings.Contains(entry.acceptEncoding, "gzip") {
		var buf bytes.Buffer
		gz := gzip.NewWriter(&buf)
		gz.Write(b) //nolint:errcheck // writes to memory
		gz.Close()  //nolint:errcheck // writes to memory
		b = buf.Bytes()
		w.Header().Set("Content-Encoding", "gzip")
	}
	if b != nil {
		ct := resp.contentType
		if ct == "" {
			ct = "application/json;charset=UTF-8"
		}
		w.Header().Set("Content-Type", ct)
		w.Header().Set("Content-Length", itoa(len(b)))
	}
	// Logged before the answer leaves, so a client that has its answer (even
	// a cut one) finds the request in the log, in the order it sent them.
	entry.Status, entry.Kind, entry.UserID = resp.status, resp.kind, resp.user
	s.record(entry)
	w.WriteHeader(resp.status)
	if truncate && len(b) > 1 {
		b = b[:len(b)/2]
	}
	w.Write(b) //nolint:errcheck // the client may be gone
	if truncate {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		resetConn(w, false)
	}
}

func (s *Server) record(entry Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if entry.Kind == "" {
		entry.Kind = "free"
	}
	s.log = append(s.log, entry)
	if len(s.log) >= 2*s.logLimit { // drop old entries in bulk, amortized
		s.log = append([]Request(nil), s.log[len(s.log)-s.logLimit:]...)
	}
}

// resetConn drops the connection: with rst, abortively (TCP RST);
// otherwise with a plain close, which cuts a response short.
func resetConn(w http.ResponseWriter, rst bool) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tcp, ok := conn.(*net.TCPConn); ok && rst {
		tcp.SetLinger(0) //nolint:errcheck // best effort: send RST
	}
	conn.Close()
}

func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	var rd io.Reader = r.Body
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		gz, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, err
		}
		rd = gz
	}
	return io.ReadAll(io.LimitReader(rd, 64<<20))
}

func interestingHeaders(h http.Header) http.Header {
	out := http.Header{}
	for k, v := range h {
		if strings.HasPrefix(k, "Sforce-") || k == "Content-Type" || k == "Content-Encoding" || k == "If-Unmodified-Since" || k == "If-Modified-Since" {
			out[k] = append([]string(nil), v...)
		}
	}
	return out
}

// handle routes one request.
func (s *Server) handle(r *http.Request, body []byte, w *work) response {
	p := r.URL.Path
	switch {
	case p == "/services/oauth2/token":
		return s.withKind("auth", s.token(r, body))
	case p == "/services/oauth2/authorize":
		return s.withKind("auth", s.authorize(r))
	case p == "/services/oauth2/revoke":
		return s.withKind("auth", s.revoke(r, body))
	case strings.HasPrefix(p, "/id/"):
		return s.withKind("auth", s.identity(r))
	case p == "/services/data" || p == "/services/data/":
		return s.versions()
	}
	version, rest, ok := splitVersion(p)
	if !ok || !knownVersion(version) {
		return notFound()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	user, ok := s.authenticate(r)
	if !ok {
		resp := errResp(401, apiError{Code: "INVALID_SESSION_ID", Message: "Session expired or invalid"})
		resp.header = http.Header{"Www-Authenticate": {"Token"}}
		return resp
	}
	kind := "write"
	if r.Method == http.MethodGet || r.Method == http.MethodPost && (isRetrieve(rest) || readOnlyComposite(rest, body)) {
		kind = "read"
	}
	if s.used >= s.max {
		resp := errResp(403, apiError{Code: "REQUEST_LIMIT_EXCEEDED", Message: "TotalRequests Limit exceeded."})
		resp.kind, resp.user = "free", user
		s.limitHeader(&resp)
		return resp
	}
	s.used++
	if kind == "read" {
		s.calls.Read++
	} else {
		s.calls.Write++
	}
	c := &call{method: r.Method, path: rest, version: version, query: r.URL.Query(), body: body, header: r.Header, actor: user, base: s.baseURL(r)}
	s.st.origin, s.st.work = changeOrigin(version, r.Header.Get("Sforce-Call-Options")), w
	resp := s.dispatch(c)
	s.st.origin, s.st.work = "", nil
	resp.kind, resp.user = kind, user
	s.limitHeader(&resp)
	return resp
}

func (s *Server) withKind(kind string, resp response) response {
	resp.kind = kind
	s.mu.Lock()
	s.calls.Auth++
	s.mu.Unlock()
	return resp
}

func (s *Server) limitHeader(resp *response) {
	if resp.header == nil {
		resp.header = http.Header{}
	}
	resp.header.Set("Sforce-Limit-Info", "api-usage="+itoa(s.used)+"/"+itoa(s.max))
}

func isRetrieve(rest string) bool {
	parts := strings.Split(strings.Trim(rest, "/"), "/")
	return len(parts) == 3 && parts[0] == "composite" && parts[1] == "sobjects"
}

// readOnlyComposite reports a /composite request whose subrequests only
// read (GETs and collection retrieves): counted as a read, like the calls it
// packs. Salesforce itself counts it once against the allowance either way.
func readOnlyComposite(rest string, body []byte) bool {
	if strings.Trim(rest, "/") != "composite" {
		return false
	}
	var req compositeRequest
	if json.Unmarshal(body, &req) != nil || len(req.CompositeRequest) == 0 {
		return false
	}
	for _, sub := range req.CompositeRequest {
		subRest, ok := subrequestPath(sub.URL)
		if !ok || !(sub.Method == http.MethodGet || sub.Method == http.MethodPost && isRetrieve(subRest)) {
			return false
		}
	}
	return true
}

func knownVersion(v string) bool {
	for _, x := range Versions {
		if x.Version == v {
			return true
		}
	}
	return false
}

func (s *Server) versions() response {
	out := make([]map[string]string, len(Versions))
	for i, v := range Versions {
		out[i] = map[string]string{"label": v.Label, "url": "/services/data/v" + v.Version, "version": v.Version}
	}
	return response{status: 200, body: out, kind: "free"}
}

// call is one data API request (or /composite subrequest) being served.
type call struct {
	method      string
	path        string // below /services/data/vNN.N, no trailing slash
	version     string
	query       url.Values
	body        []byte
	header      http.Header
	actor       string
	base        string
	inComposite bool
}

func (c *call) prefix() string { return "/services/data/v" + c.version }

func (c *call) op(now time.Time) writeOp {
	return writeOp{actor: c.actor, now: now.Truncate(time.Second), autoAssign: !strings.EqualFold(c.header.Get("Sforce-Auto-Assign"), "FALSE")}
}

// decodeJSON decodes a request body keeping numbers exact.
func decodeJSON(b []byte, v any) *apiError {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return &apiError{Code: "JSON_PARSER_ERROR", Message: "Unexpected character or end of input: " + err.Error()}
	}
	return nil
}

func itoa(n int) string { return strconv.Itoa(n) }

func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b) //nolint:errcheck // crypto/rand never fails on supported platforms
	out := make([]byte, n)
	for i, x := range b {
		out[i] = base62[int(x)%62]
	}
	return string(out)
}
