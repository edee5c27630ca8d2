package salesforce

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/crmsync/crmsync/connectors/connector"
)

// maxCollectionRecords is the number of records one sObject Collections
// create, update, upsert or delete accepts.
const maxCollectionRecords = 200

// sobjectRecord is a record in an sObject Collections body:
// {"attributes": {"type": T}, "id": ..., fields...}.
type sobjectRecord struct {
	typ    string
	id     string
	fields map[string]any
}

func (r sobjectRecord) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"attributes":{"type":`)
	t, _ := json.Marshal(r.typ) // a string: cannot fail
	b.Write(t)
	b.WriteByte('}')
	if r.id != "" {
		b.WriteString(`,"id":"` + r.id + `"`) // a validated id: alphanumeric
	}
	for _, k := range slices.Sorted(maps.Keys(r.fields)) {
		kb, _ := json.Marshal(k) // a string: cannot fail
		vb, err := json.Marshal(r.fields[k])
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", k, err)
		}
		b.WriteByte(',')
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// saveResult is one item of an sObject Collections answer.
type saveResult struct {
	ID      string    `json:"id"`
	Success bool      `json:"success"`
	Created *bool     `json:"created"`
	Errors  []sfError `json:"errors"`
}

// group is the operations of one kind on one object (and external-id field)
// that go into the same collection requests.
type group struct {
	kind   connector.OpKind
	object string
	ext    string
	idx    []int
}

// unit is one collection request and the operations it carries.
type unit struct {
	g   *group
	idx []int
	req request
}

// BulkUpdate groups the operations by kind and object, sends each group as
// sObject Collections requests of up to 200 records (allOrNone false) and
// packs up to five such requests into one /composite call; a group of more
// than the connection's bulk threshold goes as one Bulk API 2.0 ingest job
// instead (bulk.go). It answers one Result per operation, in order.
func (c *Connector) BulkUpdate(ctx context.Context, req connector.BulkUpdateRequest) (*connector.BulkUpdateResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr("salesforce bulk update", err)
	}
	ops := req.Operations
	results := make([]connector.Result, len(ops))
	if len(ops) == 0 {
		return &connector.BulkUpdateResponse{Results: results}, nil
	}
	cl, err := c.begin(ctx, req.Session)
	if err != nil {
		return nil, err
	}
	groups, err := cl.plan(ctx, ops, results)
	if err != nil {
		return nil, err
	}
	// Large groups go to Bulk API 2.0 jobs, started first so the org works
	// them while the rest go by REST.
	groups, big := cl.splitBulk(groups)
	var jobs []*ingestJob
	for _, g := range big {
		job, ok, err := cl.startJob(ctx, g, ops)
		if err != nil {
			cl.abortJobs(ctx, jobs)
			return nil, err
		}
		if !ok {
			groups = append(groups, g)
			continue
		}
		jobs = append(jobs, job)
	}
	var dups []int
	var units []unit
	for _, g := range mixGroups(groups) {
		for _, idx := range collectionChunks(g.idx, ops) {
			units = append(units, unit{g: g, idx: idx, req: cl.collectionRequest(g, idx, ops)})
		}
	}
	if len(units) > 0 {
		reqs := make([]request, len(units))
		for i, u := range units {
			reqs[i] = u.req
		}
		resps, err := cl.batch(ctx, "write", reqs)
		if err != nil {
			cl.abortJobs(ctx, jobs)
			return nil, err
		}
		for i, u := range units {
			d, err := cl.apply(u, resps[i], ops, results)
			if err != nil {
				cl.abortJobs(ctx, jobs)
				return nil, err
			}
			dups = append(dups, d...)
		}
	}
	for i, job := range jobs {
		info, err := cl.waitJob(ctx, job)
		if err == nil {
			var d []int
			d, err = cl.finishJob(ctx, job, info, ops, results)
			dups = append(dups, d...)
		}
		if err != nil {
			cl.abortJobs(ctx, jobs[i+1:])
			return nil, err
		}
	}
	cl.resolveMembers(ctx, dups, ops, results)
	return &connector.BulkUpdateResponse{Results: results, Meta: cl.meta()}, nil
}

// mixGroups merges the create groups of every object into one group, and
// the update groups likewise: sObject Collections accept mixed types in one
// request, so R records cost ⌈R/200⌉ requests whatever their objects, not
// one partial request per object. Upserts (one object and field per URL)
// and deletes keep their groups. Objects stay consecutive within a merged
// group.
func mixGroups(groups []*group) []*group {
	var out []*group
	merged := map[connector.OpKind]*group{}
	for _, g := range groups {
		if g.kind != connector.OpCreate && g.kind != connector.OpUpdate {
			out = append(out, g)
			continue
		}
		m := merged[g.kind]
		if m == nil {
			m = &group{kind: g.kind, object: g.object}
			merged[g.kind] = m
			out = append(out, m)
		} else if m.object != g.object {
			m.object = "" // several objects
		}
		m.idx = append(m.idx, g.idx...)
	}
	return out
}

// maxCollectionChunks is how many runs of one type a collection request may
// hold ({A,A,C,A} is three).
const maxCollectionChunks = 10

// collectionChunks splits a group's operations into requests of at most 200
// records and 10 type runs.
func collectionChunks(idx []int, ops []connector.Operation) [][]int {
	var out [][]int
	start, runs := 0, 0
	for i, j := range idx {
		newRun := i == start || ops[j].Object != ops[idx[i-1]].Object
		if i-start == maxCollectionRecords || (newRun && runs == maxCollectionChunks) {
			out = append(out, idx[start:i])
			start, runs, newRun = i, 0, true
		}
		if newRun {
			runs++
		}
	}
	if start < len(idx) {
		out = append(out, idx[start:])
	}
	return out
}

// plan validates every operation against its object's describe, records
// the failures in results and groups the rest.
func (cl *call) plan(ctx context.Context, ops []connector.Operation, results []connector.Result) ([]*group, error) {
	type key struct {
		kind        connector.OpKind
		object, ext string
	}
	byKey := map[key]*group{}
	var groups []*group
	for i, op := range ops {
		rerr, err := cl.check(ctx, op)
		if err != nil {
			return nil, err
		}
		if rerr != nil {
			results[i].Error = rerr
			continue
		}
		k := key{op.Kind, op.Object, op.ExternalIDField}
		g, ok := byKey[k]
		if !ok {
			g = &group{kind: op.Kind, object: op.Object, ext: op.ExternalIDField}
			byKey[k] = g
			groups = append(groups, g)
		}
		g.idx = append(g.idx, i)
	}
	return groups, nil
}

func recordError(code, format string, args ...any) *connector.RecordError {
	return &connector.RecordError{Code: code, Message: fmt.Sprintf(format, args...), Retryable: retryableCodes[code]}
}

// check validates one operation; a describe that fails for another reason
// than an unknown object fails the whole call.
func (cl *call) check(ctx context.Context, op connector.Operation) (*connector.RecordError, error) {
	switch op.Kind {
	case connector.OpCreate, connector.OpUpdate, connector.OpUpsert, connector.OpDelete:
	default:
		return recordError("UNSUPPORTED_OPERATION", "unknown operation kind %q", op.Kind), nil
	}
	o, err := cl.describe(ctx, op.Object)
	if err != nil {
		if connector.KindOf(err) == connector.KindInvalid {
			return recordError("INVALID_TYPE", "sObject type %q is not supported: %v", op.Object, err), nil
		}
		return nil, err
	}
	if op.Kind == connector.OpUpdate || op.Kind == connector.OpDelete {
		if !ValidID(op.ID) {
			return recordError("MALFORMED_ID", "malformed id %q", op.ID), nil
		}
	}
	if op.Kind == connector.OpUpsert {
		f, ok := o.field(op.ExternalIDField)
		if !ok || !validIdent(f.Name) || (!f.ExternalID && f.Name != "Id") {
			return recordError("INVALID_FIELD", "%q is not an external-id field of %s", op.ExternalIDField, op.Object), nil
		}
		if op.ExternalID == "" {
			return recordError("REQUIRED_FIELD_MISSING", "upsert on %s.%s without an external id", op.Object, op.ExternalIDField), nil
		}
	}
	if op.Kind == connector.OpDelete {
		return nil, nil
	}
	for name := range op.Fields {
		if name == "Id" {
			continue
		}
		if _, ok := o.field(name); !ok {
			return &connector.RecordError{Code: "INVALID_FIELD", Fields: []string{name},
				Message: fmt.Sprintf("No such column '%s' on sobject of type %s", name, op.Object)}, nil
		}
	}
	return nil, nil
}

// collectionRequest builds the sObject Collections request for operations
// idx of group g.
func (cl *call) collectionRequest(g *group, idx []int, ops []connector.Operation) request {
	if g.kind == connector.OpDelete {
		ids := make([]string, len(idx))
		for i, j := range idx {
			ids[i] = ID18(ops[j].ID)
		}
		return request{method: "DELETE", path: "/composite/sobjects", query: "ids=" + strings.Join(ids, ",") + "&allOrNone=false"}
	}
	records := make([]sobjectRecord, len(idx))
	ownerSet := false
	for i, j := range idx {
		op := ops[j]
		fields := make(map[string]any, len(op.Fields)+1)
		for k, v := range op.Fields {
			if k != "Id" {
				fields[k] = v
			}
		}
		if _, ok := fields["OwnerId"]; ok {
			ownerSet = true
		}
		r := sobjectRecord{typ: op.Object, fields: fields}
		switch g.kind {
		case connector.OpUpdate:
			r.id = ID18(ops[j].ID)
		case connector.OpUpsert:
			fields[g.ext] = op.ExternalID
		}
		records[i] = r
	}
	req := request{body: map[string]any{"allOrNone": false, "records": records}}
	switch g.kind {
	case connector.OpCreate:
		req.method, req.path = "POST", "/composite/sobjects"
	case connector.OpUpdate:
		req.method, req.path = "PATCH", "/composite/sobjects"
	case connector.OpUpsert:
		req.method, req.path = "PATCH", "/composite/sobjects/"+g.object+"/"+g.ext
	}
	if ownerSet {
		// Keep assignment rules (on by default over REST) from replacing
		// the owner crmsync sets.
		req.header = http.Header{"Sforce-Auto-Assign": {"FALSE"}}
	}
	return req
}

// apply turns one collection answer into results, and returns the
// operations that created an existing CampaignMember (DUPLICATE_VALUE:
// already done) so their ids can be looked up.
func (cl *call) apply(u unit, resp *response, ops []connector.Operation, results []connector.Result) ([]int, error) {
	if resp.status != http.StatusOK {
		errs := parseErrors(resp.body)
		e := toRecordError(errs)
		e.Retryable = e.Retryable || transientStatus(resp.status)
		if e.Code == "" {
			e.Code = fmt.Sprintf("HTTP_%d", resp.status)
		}
		if e.Code == "INVALID_FIELD" {
			for _, j := range u.idx {
				cl.forgetDescribe(ops[j].Object)
			}
		}
		for _, j := range u.idx {
			ee := *e
			results[j].Error = &ee
		}
		return nil, nil
	}
	var items []saveResult
	if err := json.Unmarshal(resp.body, &items); err != nil {
		return nil, connector.Errorf(connector.KindUnavailable, "salesforce %s %s: unreadable answer: %v", u.g.kind, u.g.object, err)
	}
	if len(items) != len(u.idx) {
		return nil, connector.Errorf(connector.KindUnavailable, "salesforce %s %s: %d results for %d records", u.g.kind, u.g.object, len(items), len(u.idx))
	}
	var dups []int
	for i, it := range items {
		j := u.idx[i]
		if it.Success {
			res := connector.Result{ID: it.ID}
			switch u.g.kind {
			case connector.OpCreate:
				res.Created = true
			case connector.OpUpsert:
				res.Created = it.Created != nil && *it.Created
			default:
				if res.ID == "" {
					res.ID = ID18(ops[j].ID)
				}
			}
			results[j] = res
			continue
		}
		e := toRecordError(it.Errors)
		if u.g.kind == connector.OpCreate && ops[j].Object == "CampaignMember" && e.Code == connector.CodeDuplicate {
			dups = append(dups, j) // the contact or lead is already a member: done
			continue
		}
		results[j].Error = e
	}
	return dups, nil
}

// toRecordError maps Salesforce's errors for one record: the first error's
// code, every message, every field.
func toRecordError(errs []sfError) *connector.RecordError {
	if len(errs) == 0 {
		return &connector.RecordError{Code: "UNKNOWN_EXCEPTION", Message: "Salesforce reported a failure without an error", Retryable: true}
	}
	// Retryable only when every error is: a permanent one stays permanent.
	e := &connector.RecordError{Code: errs[0].code(), Retryable: true}
	var msgs []string
	for _, x := range errs {
		if x.Message != "" {
			msgs = append(msgs, x.Message)
		}
		for _, f := range x.Fields {
			if !slices.Contains(e.Fields, f) {
				e.Fields = append(e.Fields, f)
			}
		}
		e.Retryable = e.Retryable && retryableCodes[x.code()]
	}
	e.Message = strings.Join(msgs, "; ")
	return e
}

// resolveMembers looks up the ids of CampaignMembers that already existed
// (one query per 100), so the results of those creates carry the member id.
// A failed lookup leaves the id empty: the writes are done either way.
func (cl *call) resolveMembers(ctx context.Context, dups []int, ops []connector.Operation, results []connector.Result) {
	for chunk := range slices.Chunk(dups, 100) {
		var camps, people []string
		for _, j := range chunk {
			c, p := memberKey(ops[j].Fields)
			if c != "" && p != "" {
				camps = append(camps, "'"+c+"'")
				people = append(people, "'"+p+"'")
			}
		}
		if len(camps) == 0 {
			continue
		}
		in := strings.Join(people, ",")
		soql := "SELECT Id,CampaignId,LeadId,ContactId FROM CampaignMember WHERE CampaignId IN (" + strings.Join(camps, ",") +
			") AND (LeadId IN (" + in + ") OR ContactId IN (" + in + "))"
		recs, err := cl.queries(ctx, "CampaignMember", []string{soql})
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				cl.c.logger.WarnContext(ctx, "salesforce: looking up existing campaign members failed", "err", err)
			}
			continue
		}
		for _, j := range chunk {
			c, p := memberKey(ops[j].Fields)
			for _, r := range recs {
				if sameID(r.Fields["CampaignId"], c) && (sameID(r.Fields["LeadId"], p) || sameID(r.Fields["ContactId"], p)) {
					results[j].ID = r.ID
					break
				}
			}
		}
	}
}

// memberKey returns a CampaignMember create's campaign and lead/contact ids
// (ContactId wins when both are set, as in Salesforce), or "" when invalid.
func memberKey(fields map[string]any) (campaign, person string) {
	c, _ := fields["CampaignId"].(string)
	p, _ := fields["ContactId"].(string)
	if p == "" {
		p, _ = fields["LeadId"].(string)
	}
	if !ValidID(c) || !ValidID(p) {
		return "", ""
	}
	return ID18(c), ID18(p)
}

func sameID(v any, id string) bool {
	s, _ := v.(string)
	return s != "" && ValidID(s) && strings.EqualFold(ID18(s), id)
}
