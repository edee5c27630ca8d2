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
	cl, err := c.begin(ctx, req.Session)
	if err != nil {
		return nil, err
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
	var resp *response
	if cur.Next != "" {
		resp, err = cl.nextPage(ctx, o.Name, cur.Next)
		if err == nil && resp.status != http.StatusOK && parseErrors(resp.body)[0].code() == "INVALID_QUERY_LOCATOR" {
			c.logger.InfoContext(ctx, "salesforce query locator expired, querying again", "object", o.Name)
			resp, err = nil, nil
		}
		if err != nil {
			return nil, err
		}
	}
	if resp == nil {
		switch {
		case cur.Next != "":
			// run the expired query again from its start
		case !cur.Watermark.IsZero():
			cur.From = cur.Watermark.Add(-c.lookBack).Truncate(time.Second)
		case req.Cursor == "" && !req.Since.IsZero():
			cur.From = req.Since.Truncate(time.Second)
		default:
			cur.From = time.Time{}
		}
		if resp, err = cl.changesQuery(ctx, o, fields, cur.From, req.PageSize); err != nil {
			return nil, err
		}
	}
	p, err := cl.readPage(o.Name, resp)
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
			cur.Watermark = cur.From.Add(c.lookBack) // nothing yet: keep the start
		}
		cur.Next, cur.From = "", time.Time{}
	} else {
		cur.Next, out.More = p.next, true
	}
	out.NextCursor = cur.String()
	out.Meta = cl.meta()
	return out, nil
}

// changesQuery starts the changes query of object o from from (zero: all).
func (cl *call) changesQuery(ctx context.Context, o *sfObject, fields []string, from time.Time, pageSize int) (*response, error) {
	if _, ok := o.field("SystemModstamp"); !ok {
		return nil, connector.Errorf(connector.KindUnsupported, "salesforce fetch changes: %s has no SystemModstamp", o.Name)
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
	resp, err := cl.send(ctx, "query changes "+o.Name, queryRequest(soql, true, header))
	if err != nil {
		return nil, err
	}
	return resp, nil
}
