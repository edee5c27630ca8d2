package salesforce

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/crmsync/crmsync/connectors/connector"
)

// Query page sizes Salesforce accepts in Sforce-Query-Options.
const (
	minBatchSize = 200
	maxBatchSize = 2000
)

// changeCursor is the state FetchChanges hands out as an opaque string.
type changeCursor struct {
	// Object the cursor belongs to.
	Object string `json:"o"`
	// Watermark is the highest SystemModstamp read so far; the next query
	// starts a look-back before it (>=, so ties on that second are read
	// again rather than skipped).
	Watermark time.Time `json:"w,omitzero"`
	// From is the lower bound of the query being paged (zero: none), to run
	// it again if its locator expires.
	From time.Time `json:"f,omitzero"`
	// Next is the nextRecordsUrl of the query being paged.
	Next string `json:"n,omitempty"`
}

const cursorPrefix = "sf1."

func (c changeCursor) String() string {
	b, _ := json.Marshal(c) // strings and times: cannot fail
	return cursorPrefix + base64.RawURLEncoding.EncodeToString(b)
}

func parseCursor(s string) (changeCursor, error) {
	var c changeCursor
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(s, cursorPrefix))
	if err != nil || !strings.HasPrefix(s, cursorPrefix) || json.Unmarshal(b, &c) != nil ||
		(c.Next != "" && !validLocatorPath(c.Next)) {
		return c, connector.Errorf(connector.KindInvalid, "salesforce fetch changes: malformed cursor %q", s)
	}
	return c, nil
}

// FetchChanges pages through the records of one object changed since the
// cursor: queryAll (deleted records come back with Deleted set)
//
//	SELECT fields FROM T WHERE SystemModstamp >= watermark-lookBack ORDER BY SystemModstamp ASC, Id ASC
//
// then the query's nextRecordsUrl, one page per call. PageSize sets
// Sforce-Query-Options batchSize (Salesforce accepts 200 to 2,000).
func (c *Connector) FetchChanges(ctx context.Context, req connector.FetchChangesRequest) (*connector.FetchChangesResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr("salesforce fetch changes", err)
	}
	cl, err := c.begin(ctx, req.Session)
	if err != nil {
		return nil, err
	}
	f, err := cl.prepareChanges(ctx, req)
	if err != nil {
		return nil, err
	}
	resp, err := cl.send(ctx, f.op(), f.req)
	if err != nil {
		return nil, err
	}
	out, err := cl.finishChanges(ctx, f, resp)
	if err != nil {
		return nil, err
	}
	out.Meta = cl.meta()
	return out, nil
}

// FetchChangesMany reads one page of each request's changes, the queries
// packed five to a POST /composite call: a pull of three objects that finds
// nothing costs one call. Each result is what FetchChanges would answer.
func (c *Connector) FetchChangesMany(ctx context.Context, req connector.FetchChangesManyRequest) (*connector.FetchChangesManyResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr("salesforce fetch changes", err)
	}
	cl, err := c.begin(ctx, req.Session)
	if err != nil {
		return nil, err
	}
	fs := make([]*changesFetch, len(req.Requests))
	reqs := make([]request, len(req.Requests))
	for i, r := range req.Requests {
		if fs[i], err = cl.prepareChanges(ctx, r); err != nil {
			return nil, err
		}
		reqs[i] = fs[i].req
	}
	resps, err := cl.batch(ctx, "query changes", reqs)
	if err != nil {
		return nil, err
	}
	out := &connector.FetchChangesManyResponse{Results: make([]connector.FetchChangesResponse, len(fs))}
	for i, f := range fs {
		r, err := cl.finishChanges(ctx, f, resps[i])
		if err != nil {
			return nil, err
		}
		out.Results[i] = *r
	}
	out.Meta = cl.meta()
	return out, nil
}

// changesFetch is one FetchChanges request made ready to send.
type changesFetch struct {
	cur    changeCursor
	o      *sfObject
	fields []string
	page   int
	fresh  bool // req is a new query (not a locator)
	req    request
}

func (f *changesFetch) op() string {
	if f.fresh {
		return "query changes " + f.o.Name
	}
	return "query more " + f.o.Name
}

// prepareChanges parses a request's cursor and builds its query: the next
// page of the query being paged, or a new query from the watermark.
func (cl *call) prepareChanges(ctx context.Context, req connector.FetchChangesRequest) (*changesFetch, error) {
	var cur changeCursor
	if req.Cursor != "" {
		var err error
		if cur, err = parseCursor(req.Cursor); err != nil {
			return nil, err
		}
		if cur.Object != req.Object {
			return nil, connector.Errorf(connector.KindInvalid, "salesforce fetch changes: cursor is for %s, not %s", cur.Object, req.Object)
		}
	}
	o, err := cl.describe(ctx, req.Object)
	if err != nil {
		return nil, err
	}
	fields, err := selectFields(o, req.Fields, "IsDeleted")
	if err != nil {
		return nil, err
	}
	cur.Object = o.Name
	f := &changesFetch{cur: cur, o: o, fields: fields, page: req.PageSize}
	if cur.Next != "" {
		// A locator path: the part below the version goes through
		// /composite as through a plain call.
		f.req = request{method: "GET", path: locatorBelowVersion(cur.Next)}
		return f, nil
	}
	switch {
	case !cur.Watermark.IsZero():
		f.cur.From = cur.Watermark.Add(-cl.c.lookBack).Truncate(time.Second)
	case req.Cursor == "" && !req.Since.IsZero():
		f.cur.From = req.Since.Truncate(time.Second)
	default:
		f.cur.From = time.Time{}
	}
	f.fresh = true
	f.req, err = changesRequest(o, fields, f.cur.From, req.PageSize)
	return f, err
}

// locatorBelowVersion strips /services/data/vNN.N from a validated
// nextRecordsUrl.
func locatorBelowVersion(next string) string {
	rest := strings.TrimPrefix(next, "/services/data/")
	if i := strings.Index(rest, "/"); i >= 0 {
		return rest[i:]
	}
	return next
}

// finishChanges reads a changes page; an expired query locator runs the
// query again from its start.
func (cl *call) finishChanges(ctx context.Context, f *changesFetch, resp *response) (*connector.FetchChangesResponse, error) {
	cur := f.cur
	if !f.fresh && resp.status != http.StatusOK && parseErrors(resp.body)[0].code() == "INVALID_QUERY_LOCATOR" {
		cl.c.logger.InfoContext(ctx, "salesforce query locator expired, querying again", "object", f.o.Name)
		req, err := changesRequest(f.o, f.fields, cur.From, f.page)
		if err != nil {
			return nil, err
		}
		if resp, err = cl.send(ctx, "query changes "+f.o.Name, req); err != nil {
			return nil, err
		}
	}
	p, err := cl.readPage(f.o.Name, resp)
	if err != nil {
		return nil, err
	}
	out := &connector.FetchChangesResponse{Records: p.records}
	for _, r := range p.records {
		if r.SystemModstamp.After(cur.Watermark) {
			cur.Watermark = r.SystemModstamp
		}
	}
	if p.done {
		if cur.Watermark.IsZero() && !cur.From.IsZero() {
			cur.Watermark = cur.From.Add(cl.c.lookBack) // nothing yet: keep the start
		}
		cur.Next, cur.From = "", time.Time{}
	} else {
		cur.Next, out.More = p.next, true
	}
	out.NextCursor = cur.String()
	return out, nil
}

// changesRequest is the changes query of object o from from (zero: all).
func changesRequest(o *sfObject, fields []string, from time.Time, pageSize int) (request, error) {
	if _, ok := o.field("SystemModstamp"); !ok {
		return request{}, connector.Errorf(connector.KindUnsupported, "salesforce fetch changes: %s has no SystemModstamp", o.Name)
	}
	soql := "SELECT " + strings.Join(fields, ",") + " FROM " + o.Name
	if !from.IsZero() {
		soql += " WHERE SystemModstamp >= " + soqlTime(from)
	}
	soql += " ORDER BY SystemModstamp ASC, Id ASC"
	var header http.Header
	if pageSize > 0 {
		header = http.Header{"Sforce-Query-Options": {"batchSize=" + strconv.Itoa(min(max(pageSize, minBatchSize), maxBatchSize))}}
	}
	return queryRequest(soql, true, header), nil
}
