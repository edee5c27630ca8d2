package salesforce

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/crmsync/crmsync/connectors/connector"
)

// maxRetrieveIDs is the number of ids one sObject Collections retrieve
// (POST) accepts.
const maxRetrieveIDs = 2000

// stampFields are read with every record.
var stampFields = []string{"LastModifiedDate", "LastModifiedById", "SystemModstamp"}

// extraFields are read with every record of an object, so crmsync can
// follow a converted Lead to its Contact.
var extraFields = map[string][]string{"Lead": {"IsConverted", "ConvertedContactId"}}

// selectFields validates the requested fields against the describe and adds
// Id, the stamps and the object's extra fields.
func selectFields(o *sfObject, requested []string, more ...string) ([]string, error) {
	out := []string{"Id"}
	add := func(name string, must bool) error {
		if slices.Contains(out, name) {
			return nil
		}
		if _, ok := o.field(name); !ok || !validIdent(name) {
			if !must {
				return nil
			}
			return connector.Errorf(connector.KindInvalid, "salesforce: no field %q on %s", name, o.Name)
		}
		out = append(out, name)
		return nil
	}
	for _, f := range requested {
		if err := add(f, true); err != nil {
			return nil, err
		}
	}
	for _, f := range append(append(slices.Clone(stampFields), extraFields[o.Name]...), more...) {
		_ = add(f, false) // absent from this org's describe: not selected
	}
	return out, nil
}

// FetchCurrent reads records by id through sObject Collections retrieve
// (POST /composite/sobjects/{T}, 2,000 ids each, several packed into one
// /composite call), or by match key through SOQL with escaped literals and
// IN lists chunked to keep each URL short.
func (c *Connector) FetchCurrent(ctx context.Context, req connector.FetchCurrentRequest) (*connector.FetchCurrentResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr("salesforce fetch current", err)
	}
	if len(req.IDs) > 0 && req.Match != nil {
		return nil, connector.Errorf(connector.KindInvalid, "salesforce fetch %s: both ids and a match key", req.Object)
	}
	if len(req.IDs) == 0 && (req.Match == nil || len(req.Match.Values) == 0) {
		return &connector.FetchCurrentResponse{}, nil
	}
	cl, err := c.begin(ctx, req.Session)
	if err != nil {
		return nil, err
	}
	o, err := cl.describe(ctx, req.Object)
	if err != nil {
		return nil, err
	}
	fields, err := selectFields(o, req.Fields)
	if err != nil {
		return nil, err
	}
	var recs []connector.Record
	if len(req.IDs) > 0 {
		recs, err = cl.retrieve(ctx, o, req.IDs, fields)
	} else {
		recs, err = cl.match(ctx, o, *req.Match, fields)
	}
	if err != nil {
		return nil, err
	}
	return &connector.FetchCurrentResponse{Records: recs, Meta: cl.meta()}, nil
}

// FetchCurrentMany implements connector.BatchFetcher: the by-id reads of
// every request, 2,000 ids each, go out together, five to a /composite call.
func (c *Connector) FetchCurrentMany(ctx context.Context, req connector.FetchManyRequest) (*connector.FetchManyResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr("salesforce fetch many", err)
	}
	for i, r := range req.Requests {
		if r.Match != nil {
			return nil, connector.Errorf(connector.KindInvalid, "salesforce fetch many: request %d (%s) has a match key; only ids are accepted", i, r.Object)
		}
	}
	out := &connector.FetchManyResponse{Results: make([][]connector.Record, len(req.Requests))}
	cl, err := c.begin(ctx, req.Session)
	if err != nil {
		return nil, err
	}
	objects := make([]*sfObject, len(req.Requests))
	var reqs []request
	spans := make([][2]int, len(req.Requests)) // each request's slice of reqs
	for i, r := range req.Requests {
		if objects[i], err = cl.describe(ctx, r.Object); err != nil {
			return nil, err
		}
		fields, err := selectFields(objects[i], r.Fields)
		if err != nil {
			return nil, err
		}
		spans[i][0] = len(reqs)
		reqs = append(reqs, retrieveRequests(objects[i], r.IDs, fields)...)
		spans[i][1] = len(reqs)
	}
	if len(reqs) > 0 {
		resps, err := cl.batch(ctx, "retrieve", reqs)
		if err != nil {
			return nil, err
		}
		for i, span := range spans {
			if out.Results[i], err = cl.retrieved(objects[i], resps[span[0]:span[1]]); err != nil {
				return nil, err
			}
		}
	}
	out.Meta = cl.meta()
	return out, nil
}

// retrieve reads records by id. Ids that cannot be Salesforce ids are
// absent from the answer, like ids of missing records.
func (cl *call) retrieve(ctx context.Context, o *sfObject, ids []string, fields []string) ([]connector.Record, error) {
	reqs := retrieveRequests(o, ids, fields)
	if len(reqs) == 0 {
		return nil, nil
	}
	resps, err := cl.batch(ctx, "retrieve "+o.Name, reqs)
	if err != nil {
		return nil, err
	}
	return cl.retrieved(o, resps)
}

// retrieveRequests are the sObject Collections retrieves of ids (valid
// Salesforce ids only, deduplicated), 2,000 per request.
func retrieveRequests(o *sfObject, ids []string, fields []string) []request {
	seen := map[string]bool{}
	var valid []string
	for _, id := range ids {
		if !ValidID(id) {
			continue
		}
		id = ID18(id)
		if key := strings.ToLower(id); !seen[key] {
			seen[key] = true
			valid = append(valid, id)
		}
	}
	var reqs []request
	for chunk := range slices.Chunk(valid, maxRetrieveIDs) {
		reqs = append(reqs, request{method: "POST", path: "/composite/sobjects/" + o.Name,
			body: map[string]any{"ids": chunk, "fields": fields}})
	}
	return reqs
}

// retrieved decodes the answers of o's retrieves.
func (cl *call) retrieved(o *sfObject, resps []*response) ([]connector.Record, error) {
	var out []connector.Record
	for _, resp := range resps {
		if resp.status != http.StatusOK {
			cl.onFieldError(o.Name, resp)
			return nil, apiError("retrieve "+o.Name, resp.status, resp.body)
		}
		var rows []map[string]any
		if err := json.Unmarshal(resp.body, &rows); err != nil {
			return nil, connector.Errorf(connector.KindUnavailable, "salesforce retrieve %s: unreadable answer: %v", o.Name, err)
		}
		for _, row := range rows {
			if row == nil {
				continue // no such record, or not visible
			}
			if r, ok := toRecord(o.Name, row); ok {
				out = append(out, r)
			}
		}
	}
	return out, nil
}

// onFieldError forgets a describe that listed a field Salesforce rejects.
func (cl *call) onFieldError(object string, resp *response) {
	if errs := parseErrors(resp.body); errs[0].code() == "INVALID_FIELD" {
		cl.forgetDescribe(object)
	}
}

// match reads the records whose key field equals one of the values.
func (cl *call) match(ctx context.Context, o *sfObject, key connector.MatchKey, fields []string) ([]connector.Record, error) {
	f, ok := o.field(key.Field)
	if !ok || !validIdent(key.Field) {
		return nil, connector.Errorf(connector.KindInvalid, "salesforce: no field %q on %s", key.Field, o.Name)
	}
	if f.Filterable != nil && !*f.Filterable {
		return nil, connector.Errorf(connector.KindInvalid, "salesforce: %s.%s cannot be filtered on", o.Name, f.Name)
	}
	seen := map[string]bool{}
	var lits []string
	for _, v := range key.Values {
		l, ok := literal(f, v)
		if ok && !seen[l] {
			seen[l] = true
			lits = append(lits, l)
		}
	}
	prefix := "SELECT " + strings.Join(fields, ",") + " FROM " + o.Name + " WHERE " + f.Name + " IN ("
	queries := chunkIn(prefix, ")", lits, maxQueryBytes)
	recs, err := cl.queries(ctx, o.Name, queries)
	if err != nil {
		return nil, err
	}
	byID := map[string]bool{}
	out := recs[:0]
	for _, r := range recs {
		if !byID[r.ID] {
			byID[r.ID] = true
			out = append(out, r)
		}
	}
	return out, nil
}

// queryResult is one page of a SOQL query.
type queryResult struct {
	TotalSize      int              `json:"totalSize"`
	Done           bool             `json:"done"`
	NextRecordsURL string           `json:"nextRecordsUrl"`
	Records        []map[string]any `json:"records"`
}

func queryRequest(soql string, all bool, header http.Header) request {
	path := "/query"
	if all {
		path = "/queryAll"
	}
	return request{method: "GET", path: path, query: "q=" + url.QueryEscape(soql), header: header}
}

// queries runs SOQL queries, packed into /composite calls when there are
// several, and follows every query's nextRecordsUrl to its end.
func (cl *call) queries(ctx context.Context, object string, soqls []string) ([]connector.Record, error) {
	if len(soqls) == 0 {
		return nil, nil
	}
	reqs := make([]request, len(soqls))
	for i, q := range soqls {
		reqs[i] = queryRequest(q, false, nil)
	}
	resps, err := cl.batch(ctx, "query "+object, reqs)
	if err != nil {
		return nil, err
	}
	var out []connector.Record
	for _, resp := range resps {
		for {
			page, err := cl.readPage(object, resp)
			if err != nil {
				return nil, err
			}
			out = append(out, page.records...)
			if page.done {
				break
			}
			if resp, err = cl.nextPage(ctx, object, page.next); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

type page struct {
	records []connector.Record
	done    bool
	next    string
}

func (cl *call) readPage(object string, resp *response) (*page, error) {
	if resp.status != http.StatusOK {
		cl.onFieldError(object, resp)
		return nil, apiError("query "+object, resp.status, resp.body)
	}
	var qr queryResult
	if err := json.Unmarshal(resp.body, &qr); err != nil {
		return nil, connector.Errorf(connector.KindUnavailable, "salesforce query %s: unreadable answer: %v", object, err)
	}
	p := &page{done: qr.Done || qr.NextRecordsURL == "", next: qr.NextRecordsURL}
	for _, row := range qr.Records {
		if r, ok := toRecord(object, row); ok {
			p.records = append(p.records, r)
		}
	}
	return p, nil
}

// nextPage follows a nextRecordsUrl, which must be a query locator path on
// the instance (it may come back from a cursor crmsync stored).
func (cl *call) nextPage(ctx context.Context, object, next string) (*response, error) {
	if !validLocatorPath(next) {
		return nil, connector.Errorf(connector.KindInvalid, "salesforce query %s: bad nextRecordsUrl %q", object, next)
	}
	return cl.send(ctx, "query more "+object, request{method: "GET", path: next})
}

func validLocatorPath(p string) bool {
	rest, ok := strings.CutPrefix(p, "/services/data/")
	if !ok || strings.ContainsAny(p, "?#%\\ ") || strings.Contains(p, "..") {
		return false
	}
	parts := strings.Split(rest, "/")
	return len(parts) == 3 && versionRE.MatchString(parts[0]) && (parts[1] == "query" || parts[1] == "queryAll") &&
		parts[2] != ""
}

// toRecord converts a record as Salesforce returns it. Fields holds every
// selected scalar field; nested objects (compound fields) are left out.
func toRecord(object string, row map[string]any) (connector.Record, bool) {
	id, _ := row["Id"].(string)
	if id == "" {
		return connector.Record{}, false
	}
	r := connector.Record{ID: id, Object: object, Fields: make(map[string]any, len(row))}
	if attrs, ok := row["attributes"].(map[string]any); ok {
		if t, ok := attrs["type"].(string); ok && t != "" {
			r.Object = t
		}
	}
	for k, v := range row {
		switch v.(type) {
		case nil, string, float64, bool:
			if k != "attributes" {
				r.Fields[k] = v
			}
		}
	}
	r.LastModified = parseTime(row["LastModifiedDate"])
	r.LastModifiedByID, _ = row["LastModifiedById"].(string)
	r.SystemModstamp = parseTime(row["SystemModstamp"])
	r.Deleted, _ = row["IsDeleted"].(bool)
	return r, true
}

// parseTime reads a Salesforce datetime ("2024-01-02T03:04:05.000+0000",
// or any RFC 3339 form).
func parseTime(v any) time.Time {
	s, _ := v.(string)
	for _, layout := range []string{"2006-01-02T15:04:05.000-0700", "2006-01-02T15:04:05-0700", time.RFC3339Nano} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}
