package memcrm

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/crmsync/crmsync/connectors/connector"
)

const (
	// Name is the connector's name.
	Name = "memcrm"
	// Version is the connector's version, reported by Describe.
	Version = "1.0.0"
	// DefaultToken is the token memcrm accepts unless WithToken says otherwise.
	DefaultToken = "memcrm-token"
	// DefaultDailyMax is an org's daily API allowance unless configured.
	DefaultDailyMax = 100_000
	// CrashExitCode is the exit code of a process crashed by Faults.CrashOn.
	CrashExitCode = 3
)

// CRM is an in-memory CRM holding any number of orgs. It implements
// connector.Connector and its optional interfaces (connector.BulkJobRunner
// only answers WithBulkJobs) and is safe for concurrent use.
type CRM struct {
	logger   *slog.Logger
	now      func() time.Time
	token    string
	dailyMax int64
	faults   Faults
	exit     func(code int)
	objects  map[string]*objectDef
	// bulkThreshold, when positive, turns the bulk path on (WithBulkJobs).
	bulkThreshold int

	mu   sync.Mutex
	orgs map[string]*Org
}

var (
	_ connector.Connector     = (*CRM)(nil)
	_ connector.ChangeFetcher = (*CRM)(nil)
	_ connector.BatchFetcher  = (*CRM)(nil)
	_ connector.BulkJobRunner = (*CRM)(nil)
)

// Option configures a CRM.
type Option func(*CRM)

// WithClock sets the clock stamps are taken from (default time.Now).
func WithClock(now func() time.Time) Option { return func(c *CRM) { c.now = now } }

// WithToken sets the only credentials token the CRM accepts.
func WithToken(token string) Option { return func(c *CRM) { c.token = token } }

// WithDailyMax sets the daily API allowance of orgs created from now on.
func WithDailyMax(n int64) Option { return func(c *CRM) { c.dailyMax = n } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(c *CRM) { c.logger = l } }

// WithFaults sets the faults of orgs created from now on.
func WithFaults(f Faults) Option { return func(c *CRM) { c.faults = f } }

// WithExit replaces os.Exit, called with CrashExitCode when Faults.CrashOn
// fires. In process, tests set it to observe a crash without dying.
func WithExit(exit func(code int)) Option { return func(c *CRM) { c.exit = exit } }

// WithBulkJobs turns on memcrm's bulk path, modelled on Salesforce's Bulk
// API 2.0: Describe announces connector.CapabilityBulk and
// connector.CapabilityBulkJobs with threshold as BulkThreshold, BulkUpdate
// writes each group of more than threshold operations of one kind on one
// object as one job (five API calls whatever its size), and the
// connector.BulkJobRunner methods work. Without it they fail with
// connector.ErrUnsupported and BulkUpdate costs one call per 200
// operations. A threshold below 1 is 1.
func WithBulkJobs(threshold int) Option {
	return func(c *CRM) { c.bulkThreshold = max(threshold, 1) }
}

// WithoutObjects leaves the named objects out of the CRM, as a CRM without,
// say, campaigns: Describe does not list them and calls naming them fail
// with INVALID_TYPE (connector.ErrInvalid).
func WithoutObjects(names ...string) Option {
	return func(c *CRM) {
		for _, n := range names {
			delete(c.objects, n)
		}
	}
}

// New returns an empty CRM.
func New(opts ...Option) *CRM {
	c := &CRM{
		logger:   slog.New(slog.DiscardHandler),
		now:      time.Now,
		token:    DefaultToken,
		dailyMax: DefaultDailyMax,
		exit:     os.Exit,
		objects:  schema(),
		orgs:     map[string]*Org{},
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Config is the session configuration memcrm reads.
type Config struct {
	Org      string  `json:"org"`
	DailyMax int64   `json:"daily_max,omitempty"`
	Faults   *Faults `json:"faults,omitempty"`
}

// Credentials are the session credentials memcrm reads.
type Credentials struct {
	Token string `json:"token"`
}

// Session returns a session for org with the given token, for tests.
func Session(org, token string) connector.Session {
	cfg, _ := json.Marshal(Config{Org: org})
	creds, _ := json.Marshal(Credentials{Token: token})
	return connector.Session{Config: cfg, Credentials: creds}
}

// Org returns the org named name, creating it (with its users and lead
// queue) on first use.
func (c *CRM) Org(name string) *Org {
	c.mu.Lock()
	defer c.mu.Unlock()
	if o, ok := c.orgs[name]; ok {
		return o
	}
	o := newOrg(c, name)
	c.orgs[name] = o
	return o
}

// call is one connector call being served: the org and faults it runs with.
type call struct {
	org    *Org
	faults Faults
}

// begin parses the session, checks credentials, then applies faults (crash,
// latency, random failure) for method.
func (c *CRM) begin(ctx context.Context, method string, s connector.Session) (*call, error) {
	var cfg Config
	if err := json.Unmarshal(orEmpty(s.Config), &cfg); err != nil {
		return nil, connector.Errorf(connector.KindInvalid, "memcrm: parse config: %v", err)
	}
	if cfg.Org == "" {
		return nil, connector.Errorf(connector.KindInvalid, "memcrm: config has no org")
	}
	var creds Credentials
	if err := json.Unmarshal(orEmpty(s.Credentials), &creds); err != nil {
		return nil, connector.Errorf(connector.KindCredentials, "memcrm: parse credentials: %v", err)
	}
	if creds.Token != c.token {
		return nil, connector.Errorf(connector.KindCredentials, "memcrm: INVALID_SESSION_ID: Session expired or invalid")
	}
	c.logger.Debug("memcrm call", "method", method, "org", cfg.Org)
	org := c.Org(cfg.Org)
	if cfg.DailyMax > 0 {
		org.SetDailyMax(cfg.DailyMax)
	}
	cl := &call{org: org, faults: org.Faults()}
	if cfg.Faults != nil {
		cl.faults = *cfg.Faults
	}
	if err := c.inject(ctx, method, cl.faults); err != nil {
		return nil, err
	}
	return cl, nil
}

func (c *CRM) inject(ctx context.Context, method string, f Faults) error {
	if f.CrashOn == method {
		c.logger.Warn("memcrm crashing on purpose", "method", method)
		c.exit(CrashExitCode)
	}
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return fmt.Errorf("memcrm %s: %w", method, ctx.Err())
		case <-t.C:
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memcrm %s: %w", method, err)
	}
	if f.Fail != nil {
		return f.Fail.Err()
	}
	if f.ErrorRate > 0 && rand.Float64() < f.ErrorRate {
		return connector.Errorf(connector.KindUnavailable, "memcrm %s: injected failure (error_rate %v)", method, f.ErrorRate)
	}
	return nil
}

func orEmpty(b json.RawMessage) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("{}")
	}
	return b
}

func (c *CRM) description() *connector.Description {
	d := &connector.Description{
		Name:    Name,
		Version: Version,
		ConfigFields: []connector.ConfigField{
			{Name: "org", Description: "Name of the in-memory org; each name is a separate org.", Required: true},
			{Name: "daily_max", Description: "Daily API allowance of the org (default 100000)."},
			{Name: "faults", Description: "Fault knobs: latency, error_rate, crash_on, records, fail (see memcrm.Faults)."},
			{Name: "token", Description: "API token; must equal the CRM's token.", Required: true, Secret: true},
		},
		Capabilities: []connector.Capability{connector.CapabilityFetchChanges, connector.CapabilityUpsert, connector.CapabilityFetchMany,
			connector.CapabilityConditionalUpdate, connector.CapabilityStreamChanges},
		Contract: c.contract(),
	}
	if c.bulkThreshold > 0 {
		d.Capabilities = append(d.Capabilities, connector.CapabilityBulk, connector.CapabilityBulkJobs)
		d.BulkThreshold = c.bulkThreshold
	}
	return d
}

// contract is Salesforce's shape, declared rather than implied, less the
// record types whose objects the CRM lacks (WithoutObjects): a CRM without
// campaigns does not support campaigns or their members.
func (c *CRM) contract() *connector.DataContract {
	k := connector.SalesforceContract()
	has := func(object string) bool { return c.objects[object] != nil }
	if !has(k.Campaign.Object) {
		k.Campaign = nil
	}
	if k.Campaign == nil || !has(k.CampaignMember.Object) {
		k.CampaignMember = nil
	}
	if !has(k.Task.Object) {
		k.Task = nil
	}
	if !has(k.Company.Object) {
		k.Company = nil
		k.Contact.Person.Company = ""
	}
	return k
}

// Describe implements connector.Connector. Without credentials it returns
// the static description only and costs no API call.
func (c *CRM) Describe(ctx context.Context, req connector.DescribeRequest) (*connector.Description, error) {
	d := c.description()
	if len(req.Session.Credentials) == 0 {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("memcrm describe: %w", err)
		}
		return d, nil
	}
	cl, err := c.begin(ctx, "Describe", req.Session)
	if err != nil {
		return nil, err
	}
	names := req.Objects
	if len(names) == 0 {
		for _, n := range objectOrder {
			if c.objects[n] != nil {
				names = append(names, n)
			}
		}
	}
	for _, name := range names {
		def, ok := c.objects[name]
		if !ok {
			return nil, connector.Errorf(connector.KindInvalid, "memcrm describe: INVALID_TYPE: sObject type %q is not supported", name)
		}
		obj := def.Object
		obj.Fields = slices.Clone(def.Fields)
		d.Objects = append(d.Objects, obj)
	}
	if d.Meta, err = cl.org.charge(1); err != nil {
		return nil, err
	}
	return d, nil
}

// Check implements connector.Connector.
func (c *CRM) Check(ctx context.Context, req connector.CheckRequest) (*connector.CheckResponse, error) {
	cl, err := c.begin(ctx, "Check", req.Session)
	if err != nil {
		return nil, err
	}
	meta, err := cl.org.charge(1)
	if err != nil {
		return nil, err
	}
	return &connector.CheckResponse{Identity: cl.org.identity(), Meta: meta}, nil
}

// Limits implements connector.Connector. It costs no API call and answers
// even when the allowance is spent.
func (c *CRM) Limits(ctx context.Context, req connector.LimitsRequest) (*connector.LimitsResponse, error) {
	cl, err := c.begin(ctx, "Limits", req.Session)
	if err != nil {
		return nil, err
	}
	u := cl.org.Usage()
	return &connector.LimitsResponse{Usage: u, Meta: connector.Meta{Usage: &u}}, nil
}

// FetchCurrent implements connector.Connector. It costs one API call per
// 2,000 ids or match values.
func (c *CRM) FetchCurrent(ctx context.Context, req connector.FetchCurrentRequest) (*connector.FetchCurrentResponse, error) {
	cl, err := c.begin(ctx, "FetchCurrent", req.Session)
	if err != nil {
		return nil, err
	}
	def, err := c.readable(req.Object, req.Fields)
	if err != nil {
		return nil, fmt.Errorf("memcrm fetch current: %w", err)
	}
	n := len(req.IDs)
	switch {
	case (req.Match == nil) == (req.IDs == nil):
		return nil, connector.Errorf(connector.KindInvalid, "memcrm fetch current %s: set exactly one of ids and match", req.Object)
	case req.Match != nil:
		if _, ok := def.Field(req.Match.Field); !ok {
			return nil, connector.Errorf(connector.KindInvalid, "memcrm fetch current %s: INVALID_FIELD: no field %q", req.Object, req.Match.Field)
		}
		n = len(req.Match.Values)
	}
	meta, err := cl.org.charge(int64(max(1, (n+1999)/2000)))
	if err != nil {
		return nil, err
	}
	recs, err := cl.org.fetch(def, req)
	if err != nil {
		return nil, err
	}
	return &connector.FetchCurrentResponse{Records: recs, Meta: meta}, nil
}

// FetchCurrentMany implements connector.BatchFetcher. Like Salesforce's
// retrieves packed into /composite, it costs one API call per five reads of
// up to 2,000 ids each.
func (c *CRM) FetchCurrentMany(ctx context.Context, req connector.FetchManyRequest) (*connector.FetchManyResponse, error) {
	cl, err := c.begin(ctx, "FetchCurrentMany", req.Session)
	if err != nil {
		return nil, err
	}
	defs := make([]*objectDef, len(req.Requests))
	chunks := 0
	for i, r := range req.Requests {
		if r.Match != nil {
			return nil, connector.Errorf(connector.KindInvalid, "memcrm fetch many: request %d has a match key; only ids are accepted", i)
		}
		if defs[i], err = c.readable(r.Object, r.Fields); err != nil {
			return nil, fmt.Errorf("memcrm fetch many: %w", err)
		}
		chunks += (len(r.IDs) + 1999) / 2000
	}
	meta, err := cl.org.charge(int64(max(1, (chunks+4)/5)))
	if err != nil {
		return nil, err
	}
	out := &connector.FetchManyResponse{Results: make([][]connector.Record, len(req.Requests)), Meta: meta}
	for i, r := range req.Requests {
		if r.IDs == nil {
			r.IDs = []string{}
		}
		if out.Results[i], err = cl.org.fetch(defs[i], r); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// BulkUpdate implements connector.Connector. It costs one API call per 200
// operations, like Salesforce's sObject Collections; WithBulkJobs, each
// group of more than the threshold operations of one kind on one object
// costs a bulk job's five calls instead.
func (c *CRM) BulkUpdate(ctx context.Context, req connector.BulkUpdateRequest) (*connector.BulkUpdateResponse, error) {
	cl, err := c.begin(ctx, "BulkUpdate", req.Session)
	if err != nil {
		return nil, err
	}
	meta, err := cl.org.charge(c.bulkUpdateCalls(req.Operations))
	if err != nil {
		return nil, err
	}
	results := make([]connector.Result, len(req.Operations))
	for i, op := range req.Operations {
		results[i] = cl.org.apply(cl.faults, op)
	}
	return &connector.BulkUpdateResponse{Results: results, Meta: meta}, nil
}

// UpdateIfUnmodified implements connector.ConditionalUpdater. Like
// Salesforce's PATCHes and retrieves packed into one /composite call, it
// costs one API call. Its Meta.ServerTime is the org's clock (whole
// seconds) when the call began, before its writes: a read-back is current
// at least as of then.
func (c *CRM) UpdateIfUnmodified(ctx context.Context, req connector.ConditionalUpdateRequest) (*connector.ConditionalUpdateResponse, error) {
	if len(req.Updates) > connector.MaxConditionalUpdates {
		return nil, connector.Errorf(connector.KindInvalid, "memcrm conditional update: %d updates, at most %d", len(req.Updates), connector.MaxConditionalUpdates)
	}
	cl, err := c.begin(ctx, "UpdateIfUnmodified", req.Session)
	if err != nil {
		return nil, err
	}
	if len(req.Reads) > connector.MaxConditionalReads {
		return nil, connector.Errorf(connector.KindInvalid, "memcrm conditional update: %d reads, at most %d", len(req.Reads), connector.MaxConditionalReads)
	}
	defs := make([]*objectDef, len(req.Reads))
	for i, r := range req.Reads {
		if r.Match != nil {
			return nil, connector.Errorf(connector.KindInvalid, "memcrm conditional update: read %d has a match key; only ids are accepted", i)
		}
		if defs[i], err = c.readable(r.Object, r.Fields); err != nil {
			return nil, fmt.Errorf("memcrm conditional update: %w", err)
		}
	}
	meta, err := cl.org.charge(1)
	if err != nil {
		return nil, err
	}
	out := &connector.ConditionalUpdateResponse{Results: make([]connector.ConditionalResult, len(req.Updates)), Meta: meta}
	for i, u := range req.Updates {
		op := connector.Operation{Kind: connector.OpUpdate, Object: u.Object, ID: u.ID, Fields: u.Fields}
		out.Results[i] = cl.org.writeIfUnmodified(cl.faults, op, u.UnmodifiedSince)
	}
	for i, r := range req.Reads {
		if r.IDs == nil {
			r.IDs = []string{}
		}
		recs, err := cl.org.fetch(defs[i], r)
		if err != nil {
			return nil, err
		}
		out.Records = append(out.Records, recs...)
	}
	return out, nil
}

// FetchChanges implements connector.ChangeFetcher: records (deleted ones
// included) in the order they last changed, paged by an opaque cursor that
// never skips a record. It costs one API call per page.
func (c *CRM) FetchChanges(ctx context.Context, req connector.FetchChangesRequest) (*connector.FetchChangesResponse, error) {
	cl, err := c.begin(ctx, "FetchChanges", req.Session)
	if err != nil {
		return nil, err
	}
	def, err := c.readable(req.Object, req.Fields)
	if err != nil {
		return nil, fmt.Errorf("memcrm fetch changes: %w", err)
	}
	after, err := parseCursor(req.Cursor)
	if err != nil {
		return nil, err
	}
	meta, err := cl.org.charge(1)
	if err != nil {
		return nil, err
	}
	resp := cl.org.changes(def, req, after)
	resp.Meta = meta
	return resp, nil
}

// readable checks that object exists and has fields.
func (c *CRM) readable(object string, fields []string) (*objectDef, error) {
	def, ok := c.objects[object]
	if !ok {
		return nil, connector.Errorf(connector.KindInvalid, "INVALID_TYPE: sObject type %q is not supported", object)
	}
	for _, f := range fields {
		if _, ok := def.Field(f); !ok {
			return nil, connector.Errorf(connector.KindInvalid, "INVALID_FIELD: no field %q on %s", f, object)
		}
	}
	return def, nil
}

// pod derives the two instance characters of an org's ids from its name.
func pod(name string) string {
	h := fnv.New32a()
	h.Write([]byte(name))
	v := h.Sum32()
	return string([]byte{base62[v%62], base62[(v/62)%62]})
}
