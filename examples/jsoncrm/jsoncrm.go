package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crmsync/crmsync/connectors/connector"
)

const (
	name    = "jsoncrm"
	version = "1.0.0"
	// userID is the integration user: every write through the connector
	// is by this user.
	userID = "jsoncrm-integration"
	// dailyMax is the allowance Limits reports: the file has no API
	// limit, but crmsync paces itself by one.
	dailyMax = 100_000
)

// CRM is the connector. It is safe for concurrent use: one lock
// serializes every read and write of the store files.
type CRM struct {
	logger *slog.Logger
	mu     sync.Mutex
	calls  atomic.Int64
}

// New returns the connector, logging to logger.
func New(logger *slog.Logger) *CRM { return &CRM{logger: logger} }

// config and credentials are the shapes of Session.Config and
// Session.Credentials (documented in Describe's ConfigFields).
type config struct {
	Path string `json:"path"`
}

type credentials struct {
	APIKey string `json:"apiKey"`
}

// open checks the session and loads its store; the caller holds c.mu.
func (c *CRM) open(ctx context.Context, op string, s connector.Session) (string, *store, error) {
	if err := ctx.Err(); err != nil {
		return "", nil, fmt.Errorf("jsoncrm %s: %w", op, err)
	}
	var cfg config
	if err := json.Unmarshal(orEmpty(s.Config), &cfg); err != nil || cfg.Path == "" {
		return "", nil, connector.Errorf(connector.KindInvalid, "jsoncrm %s: config needs a path: {\"path\": \"/var/lib/jsoncrm/crm.json\"}", op)
	}
	var cred credentials
	if err := json.Unmarshal(orEmpty(s.Credentials), &cred); err != nil || cred.APIKey == "" {
		return "", nil, connector.Errorf(connector.KindCredentials, "jsoncrm %s: credentials need an apiKey", op)
	}
	st, err := load(cfg.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil, connector.Errorf(connector.KindInvalid, "jsoncrm %s: no store at %s (create it with `jsoncrm init %s APIKEY`)", op, cfg.Path, cfg.Path)
	}
	if err != nil {
		return "", nil, connector.Errorf(connector.KindUnavailable, "jsoncrm %s: %v", op, err)
	}
	if st.APIKey != cred.APIKey {
		return "", nil, connector.Errorf(connector.KindCredentials, "jsoncrm %s: the API key is not the store's", op)
	}
	c.calls.Add(1)
	return cfg.Path, st, nil
}

func orEmpty(b json.RawMessage) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("{}")
	}
	return b
}

// Describe implements connector.Connector.
func (c *CRM) Describe(ctx context.Context, req connector.DescribeRequest) (*connector.Description, error) {
	d := &connector.Description{
		Name: name, Version: version,
		ConfigFields: []connector.ConfigField{
			{Name: "path", Description: "The store: a JSON file made by `jsoncrm init PATH APIKEY`.", Required: true},
			{Name: "apiKey", Description: "The store's API key.", Required: true, Secret: true},
		},
		Contract: contract,
	}
	if len(req.Session.Credentials) == 0 {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("jsoncrm describe: %w", err)
		}
		return d, nil // the static part: no objects without credentials
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, _, err := c.open(ctx, "describe", req.Session); err != nil {
		return nil, err
	}
	names := req.Objects
	if names == nil {
		names = []string{"Person", "Organization"}
	}
	for _, n := range names {
		o, ok := describe(n)
		if !ok {
			return nil, connector.Errorf(connector.KindInvalid, "jsoncrm describe: no object %q", n)
		}
		d.Objects = append(d.Objects, o)
	}
	d.Calls = 1
	return d, nil
}

// Check implements connector.Connector.
func (c *CRM) Check(ctx context.Context, req connector.CheckRequest) (*connector.CheckResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	path, _, err := c.open(ctx, "check", req.Session)
	if err != nil {
		return nil, err
	}
	return &connector.CheckResponse{Identity: connector.Identity{UserID: userID, Username: "crmsync", OrgID: path},
		Meta: connector.Meta{Calls: 1}}, nil
}

// Limits implements connector.Connector: the calls this process made, of a
// nominal daily allowance.
func (c *CRM) Limits(ctx context.Context, req connector.LimitsRequest) (*connector.LimitsResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, _, err := c.open(ctx, "limits", req.Session); err != nil {
		return nil, err
	}
	u := connector.Usage{Used: c.calls.Load(), Max: dailyMax, ObservedAt: time.Now()}
	return &connector.LimitsResponse{Usage: u, Meta: connector.Meta{Calls: 1, Usage: &u}}, nil
}

// FetchCurrent implements connector.Connector.
func (c *CRM) FetchCurrent(ctx context.Context, req connector.FetchCurrentRequest) (*connector.FetchCurrentResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, st, err := c.open(ctx, "fetch", req.Session)
	if err != nil {
		return nil, err
	}
	o, ok := describe(req.Object)
	if !ok {
		return nil, connector.Errorf(connector.KindInvalid, "jsoncrm fetch: no object %q", req.Object)
	}
	for _, f := range req.Fields {
		if _, ok := o.Field(f); !ok {
			return nil, connector.Errorf(connector.KindInvalid, "jsoncrm fetch: %s has no field %q", req.Object, f)
		}
	}
	var ids []string
	switch {
	case req.Match != nil:
		if _, ok := o.Field(req.Match.Field); !ok {
			return nil, connector.Errorf(connector.KindInvalid, "jsoncrm fetch: %s has no field %q", req.Object, req.Match.Field)
		}
		for id, r := range st.Objects[req.Object] {
			if matches(r.Fields[req.Match.Field], req.Match.Values) {
				ids = append(ids, id)
			}
		}
	default:
		ids = req.IDs
	}
	resp := &connector.FetchCurrentResponse{Meta: connector.Meta{Calls: 1}}
	for _, id := range ids {
		if r, ok := st.Objects[req.Object][id]; ok {
			resp.Records = append(resp.Records, r.public(req.Object, id, req.Fields))
		}
	}
	return resp, nil
}

// matches reports whether v is one of values, ignoring case as people
// type emails and domains in any case.
func matches(v any, values []string) bool {
	s, ok := v.(string)
	for _, want := range values {
		if ok && strings.EqualFold(s, want) {
			return true
		}
	}
	return false
}

func (r *record) public(object, id string, fields []string) connector.Record {
	out := connector.Record{ID: id, Object: object, Fields: map[string]any{}, LastModified: r.LastModified,
		LastModifiedByID: r.ModifiedBy, SystemModstamp: r.LastModified}
	for _, f := range fields {
		if f == "Id" {
			out.Fields[f] = id
			continue
		}
		out.Fields[f] = r.Fields[f]
	}
	return out
}

// BulkUpdate implements connector.Connector: every operation applies to
// the store in memory, then the store is saved once. A failed save fails
// the whole call: no operation's outcome is known to have stuck.
func (c *CRM) BulkUpdate(ctx context.Context, req connector.BulkUpdateRequest) (*connector.BulkUpdateResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	path, st, err := c.open(ctx, "write", req.Session)
	if err != nil {
		return nil, err
	}
	resp := &connector.BulkUpdateResponse{Meta: connector.Meta{Calls: 1}}
	now := time.Now().UTC()
	for _, op := range req.Operations {
		resp.Results = append(resp.Results, st.apply(op, now))
	}
	if err := save(path, st); err != nil {
		return nil, connector.Errorf(connector.KindUnavailable, "jsoncrm write: save %s: %v", path, err)
	}
	c.logger.DebugContext(ctx, "jsoncrm: wrote", slog.Int("operations", len(req.Operations)), slog.String("path", path))
	return resp, nil
}

// apply applies one operation to the store, answering its Result.
func (s *store) apply(op connector.Operation, now time.Time) connector.Result {
	o, ok := describe(op.Object)
	if !ok {
		return failed("INVALID_TYPE", fmt.Sprintf("no object %q", op.Object))
	}
	if res, ok := s.check(o, op); !ok {
		return res
	}
	recs := s.Objects[op.Object]
	if recs == nil {
		recs = map[string]*record{}
		s.Objects[op.Object] = recs
	}
	switch op.Kind {
	case connector.OpCreate:
		id := s.newID(op.Object)
		recs[id] = &record{Fields: map[string]any{}}
		recs[id].write(op.Fields, now)
		return connector.Result{ID: id, Created: true}
	case connector.OpUpdate:
		r, ok := recs[op.ID]
		if !ok {
			return failed(connector.CodeNotFound, fmt.Sprintf("no %s %q", op.Object, op.ID))
		}
		r.write(op.Fields, now)
		return connector.Result{ID: op.ID}
	case connector.OpDelete:
		if _, ok := recs[op.ID]; !ok {
			return failed(connector.CodeNotFound, fmt.Sprintf("no %s %q", op.Object, op.ID))
		}
		delete(recs, op.ID)
		return connector.Result{ID: op.ID}
	default: // upserts need an external-id field, which this CRM has not
		return failed("INVALID_OPERATION", fmt.Sprintf("jsoncrm does not support %s operations", op.Kind))
	}
}

// check refuses an operation's fields that o does not have or cannot
// take: unknown or read-only fields, a required field cleared or missing
// from a create, a reference to a record that does not exist.
func (s *store) check(o connector.Object, op connector.Operation) (connector.Result, bool) {
	for f, v := range op.Fields {
		def, ok := o.Field(f)
		switch {
		case !ok || !def.Createable:
			return failed("INVALID_FIELD", fmt.Sprintf("%s has no writable field %q", o.Name, f), f), false
		case v == nil && !def.Nillable:
			return failed("REQUIRED_FIELD_MISSING", fmt.Sprintf("%s.%s cannot be cleared", o.Name, f), f), false
		case v != nil && def.Type == "reference" && s.Objects[def.ReferenceTo[0]][fmt.Sprint(v)] == nil:
			return failed("INVALID_CROSS_REFERENCE_KEY", fmt.Sprintf("%s.%s: no %s %v", o.Name, f, def.ReferenceTo[0], v), f), false
		}
	}
	if op.Kind == connector.OpCreate {
		for _, def := range o.Fields {
			if def.Createable && !def.Nillable && op.Fields[def.Name] == nil {
				return failed("REQUIRED_FIELD_MISSING", fmt.Sprintf("a %s needs a %s", o.Name, def.Name), def.Name), false
			}
		}
	}
	return connector.Result{}, true
}

func (r *record) write(fields map[string]any, now time.Time) {
	for f, v := range fields {
		r.Fields[f] = v
	}
	r.LastModified, r.ModifiedBy = now, userID
}

func failed(code, msg string, fields ...string) connector.Result {
	return connector.Result{Error: &connector.RecordError{Code: code, Message: msg, Fields: fields}}
}
