package sffake

import (
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// cursor is the server side of a query locator: the rendered rows of a
// query, served page by page through nextRecordsUrl.
type cursor struct {
	rows     []any
	object   string // the sObject queried, for the cost model
	pageSize int
	expires  time.Time
}

// locatorTTL is how long a query locator lives (about 2 days since v56).
const locatorTTL = 48 * time.Hour

// query serves GET /query?q= and /queryAll?q=.
func (s *Server) query(c *call, all bool) response {
	q := c.query.Get("q")
	if strings.TrimSpace(q) == "" {
		return errResp(400, apiError{Code: "MALFORMED_QUERY", Message: "A query string has to be specified"})
	}
	sq, err := parseSOQL(s.st, q)
	if err != nil {
		return errResp(400, apiError{Code: err.code, Message: err.msg})
	}
	matched := s.run(sq, all)
	if sq.count {
		return jsonResp(200, map[string]any{"totalSize": len(matched), "done": true, "records": []any{}})
	}
	rows := make([]any, len(matched))
	for i, r := range matched {
		rows[i] = s.renderRow(c, sq, r)
	}
	cur := &cursor{rows: rows, object: sq.obj.Name, pageSize: s.batchSize(c.header), expires: s.clock.Now().Add(locatorTTL)}
	loc := ""
	if len(rows) > cur.pageSize {
		loc = s.st.newID(keyPrefixes["QueryLocator"])
		s.openCursor(loc, cur)
	}
	return jsonResp(200, s.page(c, cur, loc, 0))
}

// queryMore serves GET /query/{locator}-{offset}.
func (s *Server) queryMore(c *call, locator string) response {
	bad := errResp(400, apiError{Code: "INVALID_QUERY_LOCATOR", Message: "invalid query locator"})
	loc, off, ok := strings.Cut(locator, "-")
	if !ok {
		return bad
	}
	offset, err := strconv.Atoi(off)
	cur := s.cursors[loc]
	if err != nil || cur == nil || offset < 0 || offset >= len(cur.rows) || !s.clock.Now().Before(cur.expires) {
		return bad
	}
	return jsonResp(200, s.page(c, cur, loc, offset))
}

func (s *Server) page(c *call, cur *cursor, loc string, offset int) map[string]any {
	end := min(offset+cur.pageSize, len(cur.rows))
	s.st.charge(cur.object, costQuery, end-offset)
	out := map[string]any{"totalSize": len(cur.rows), "done": end == len(cur.rows), "records": cur.rows[offset:end]}
	if end < len(cur.rows) {
		out["nextRecordsUrl"] = c.prefix() + "/query/" + loc + "-" + itoa(end)
	}
	return out
}

// batchSize reads Sforce-Query-Options: batchSize=N (200..2,000), capped by
// the server's page size.
func (s *Server) batchSize(h http.Header) int {
	size := 2000
	for _, part := range strings.Split(h.Get("Sforce-Query-Options"), ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		if strings.EqualFold(k, "batchSize") {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
				size = max(200, min(2000, n))
			}
		}
	}
	return min(size, s.pageSize)
}

// run evaluates a query and returns the matching records in order.
func (s *Server) run(sq *soqlQuery, all bool) []*record {
	var keep func(*record) bool
	if sq.where != nil {
		keep = func(r *record) bool { return sq.where.eval(s.st, r) }
	}
	out := s.st.sortedWhere(sq.obj.Name, all, s.clock.Now(), keep)
	if len(sq.orderBy) > 0 {
		sort.SliceStable(out, func(i, j int) bool {
			for _, k := range sq.orderBy {
				a, b := k.path.value(s.st, out[i]), k.path.value(s.st, out[j])
				if (a == nil) != (b == nil) {
					return (a == nil) != k.nullsLast
				}
				c := compare(a, b)
				if c == 0 {
					continue
				}
				return c < 0 != k.desc
			}
			return false
		})
	}
	if sq.offset > 0 {
		out = out[min(sq.offset, len(out)):]
	}
	if sq.limit >= 0 && len(out) > sq.limit {
		out = out[:sq.limit]
	}
	return out
}

// renderRow renders a query row: attributes, then the selected fields;
// relationship fields nest the parent with its own attributes (null when
// the reference is empty).
func (s *Server) renderRow(c *call, sq *soqlQuery, r *record) *ordered {
	o := &ordered{}
	o.add("attributes", map[string]string{"type": r.obj.Name, "url": c.prefix() + "/sobjects/" + r.obj.Name + "/" + r.id()})
	for _, fp := range sq.fields {
		if fp.rel == nil {
			o.add(fp.field.Name, wireValue(r.f[fp.field.Name]))
			continue
		}
		name := fp.rel.RelationshipName
		parent := s.st.get(r.str(fp.rel.Name))
		existing, seen := o.get(name)
		if parent == nil {
			if !seen {
				o.add(name, nil)
			}
			continue
		}
		nested, _ := existing.(*ordered)
		if nested == nil {
			nested = &ordered{}
			nested.add("attributes", map[string]string{"type": parent.obj.Name, "url": c.prefix() + "/sobjects/" + parent.obj.Name + "/" + parent.id()})
			o.add(name, nested)
		}
		var v any
		if f := parent.obj.field(fp.name); f != nil {
			v = wireValue(parent.f[f.Name])
		}
		nested.add(fp.name, v)
	}
	return o
}

// maxOpenCursors bounds the open query locators; opening one more closes
// the oldest, as Salesforce did with its per-user cursor limit.
const maxOpenCursors = 1000

func (s *Server) openCursor(loc string, cur *cursor) {
	for len(s.openLocs) >= maxOpenCursors {
		delete(s.cursors, s.openLocs[0])
		s.openLocs = s.openLocs[1:]
	}
	s.cursors[loc] = cur
	s.openLocs = append(s.openLocs, loc)
}
