package sffake

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// ordered is a JSON object that keeps its key order, so records render
// attributes first and then fields in the order asked for, as Salesforce does.
type ordered struct {
	keys []string
	vals []any
}

func (o *ordered) add(k string, v any) { o.keys = append(o.keys, k); o.vals = append(o.vals, v) }

func (o *ordered) get(k string) (any, bool) {
	for i, x := range o.keys {
		if x == k {
			return o.vals[i], true
		}
	}
	return nil, false
}

func (o *ordered) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		vb, err := json.Marshal(o.vals[i])
		if err != nil {
			return nil, err
		}
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// wireValue renders a stored value as Salesforce puts it on the wire.
func wireValue(v any) any {
	if t, ok := v.(time.Time); ok {
		return FormatTime(t)
	}
	return v
}

// render returns a record with attributes and the given fields (all when
// fields is nil).
func (c *call) render(r *record, fields []*Field) *ordered {
	o := &ordered{}
	o.add("attributes", map[string]string{"type": r.obj.Name, "url": c.prefix() + "/sobjects/" + r.obj.Name + "/" + r.id()})
	if fields == nil {
		fields = r.obj.Fields
	}
	for _, f := range fields {
		o.add(f.Name, wireValue(r.f[f.Name]))
	}
	return o
}

// dispatch routes a data API call. Guarded by s.mu.
func (s *Server) dispatch(c *call) response {
	parts := strings.Split(strings.Trim(c.path, "/"), "/")
	if c.path == "" {
		parts = nil
	}
	head := ""
	if len(parts) > 0 {
		head = parts[0]
	}
	switch head {
	case "":
		if c.method != http.MethodGet {
			return methodNotAllowed(c.method, "GET")
		}
		res := map[string]string{}
		for _, r := range []string{"sobjects", "query", "queryAll", "composite", "limits"} {
			res[r] = c.prefix() + "/" + r
		}
		return jsonResp(200, res)
	case "limits":
		if len(parts) != 1 {
			return notFound()
		}
		if c.method != http.MethodGet {
			return methodNotAllowed(c.method, "GET")
		}
		return s.limits()
	case "sobjects":
		return s.sobjects(c, parts[1:])
	case "jobs":
		if len(parts) >= 2 && parts[1] == "ingest" && !c.inComposite {
			return s.ingest(c, parts[2:])
		}
	case "query", "queryAll":
		if c.method != http.MethodGet {
			return methodNotAllowed(c.method, "GET")
		}
		if len(parts) == 2 {
			return s.queryMore(c, parts[1])
		}
		if len(parts) != 1 {
			return notFound()
		}
		return s.query(c, head == "queryAll")
	case "composite":
		if len(parts) == 1 {
			if c.inComposite {
				return errResp(400, apiError{Code: "INVALID_URL", Message: "composite requests cannot be nested"})
			}
			if c.method != http.MethodPost {
				return methodNotAllowed(c.method, "POST")
			}
			return s.composite(c)
		}
		if parts[1] == "sobjects" {
			return s.collections(c, parts[2:])
		}
		if parts[1] == "batch" && len(parts) == 2 && !c.inComposite {
			return s.compositeBatch(c)
		}
	}
	return notFound()
}

func methodNotAllowed(method, allowed string) response {
	resp := errResp(405, apiError{Code: "METHOD_NOT_ALLOWED", Message: "HTTP Method '" + method + "' not allowed. Allowed are " + allowed})
	resp.header = http.Header{"Allow": {allowed}}
	return resp
}

func (s *Server) limits() response {
	lim := func(max, remaining int) map[string]int { return map[string]int{"Max": max, "Remaining": remaining} }
	remaining := s.max - s.used
	if remaining < 0 {
		remaining = 0
	}
	return jsonResp(200, map[string]any{
		"DailyApiRequests":               lim(s.max, remaining),
		"DailyBulkApiBatches":            lim(bulkBatchesMax, max(bulkBatchesMax-s.bulkBatches, 0)),
		"DailyBulkV2QueryJobs":           lim(10000, 10000),
		"DailyBulkV2QueryFileStorageMB":  lim(976562, 976562),
		"DailyDurableStreamingApiEvents": lim(10000, 10000),
		"DataStorageMB":                  lim(5, 5),
		"SingleEmail":                    lim(15, 15),
	})
}

// sobjects routes /sobjects/...
func (s *Server) sobjects(c *call, parts []string) response {
	if len(parts) == 0 {
		if c.method != http.MethodGet {
			return methodNotAllowed(c.method, "GET")
		}
		return s.describeGlobal(c)
	}
	obj := s.st.object(parts[0])
	if obj == nil {
		return notFound()
	}
	switch len(parts) {
	case 1:
		switch c.method {
		case http.MethodGet:
			return jsonResp(200, map[string]any{"objectDescribe": s.objectSummary(c, obj), "recentItems": []any{}})
		case http.MethodPost:
			return s.createOne(c, obj)
		}
		return methodNotAllowed(c.method, "GET,POST")
	case 2:
		if parts[1] == "updated" || parts[1] == "deleted" {
			return s.replication(c, obj, parts[1])
		}
		if parts[1] == "describe" {
			if c.method != http.MethodGet {
				return methodNotAllowed(c.method, "GET")
			}
			if since, err := http.ParseTime(c.header.Get("If-Modified-Since")); err == nil && !s.schemaTime.After(since) {
				return response{status: http.StatusNotModified}
			}
			resp := jsonResp(200, s.describe(c, obj))
			resp.header = http.Header{"Last-Modified": {s.schemaTime.Format(http.TimeFormat)}}
			return resp
		}
		switch c.method {
		case http.MethodGet:
			return s.getOne(c, obj, parts[1])
		case http.MethodPatch:
			return s.updateOne(c, obj, parts[1])
		case http.MethodDelete:
			return s.deleteOne(c, obj, parts[1])
		}
		return methodNotAllowed(c.method, "GET,PATCH,DELETE")
	case 3:
		ext := obj.field(parts[1])
		if ext == nil || !(ext.ExternalID || ext.Name == "Id") {
			return errResp(404, apiError{Code: "NOT_FOUND", Message: "Provided external ID field does not exist or is not accessible: " + parts[1]})
		}
		switch c.method {
		case http.MethodPatch:
			return s.upsertOne(c, obj, ext, parts[2])
		case http.MethodGet:
			found := s.st.findByField(obj, ext, parts[2])
			if len(found) == 0 {
				return notFound()
			}
			if len(found) > 1 {
				return multipleChoices(c, found)
			}
			return jsonResp(200, c.render(found[0], nil))
		}
		return methodNotAllowed(c.method, "GET,PATCH")
	}
	return notFound()
}

func multipleChoices(c *call, found []*record) response {
	urls := make([]string, len(found))
	for i, r := range found {
		urls[i] = c.prefix() + "/sobjects/" + r.obj.Name + "/" + r.id()
	}
	return jsonResp(300, urls)
}

func (s *Server) objectSummary(c *call, obj *sobject) map[string]any {
	u := c.prefix() + "/sobjects/" + obj.Name
	return map[string]any{
		"name": obj.Name, "label": obj.Label, "labelPlural": obj.Label + "s", "keyPrefix": obj.KeyPrefix,
		"custom": false, "queryable": true, "createable": !obj.Setup, "updateable": !obj.Setup, "deletable": !obj.Setup,
		"retrieveable": true, "searchable": true, "replicateable": true, "triggerable": true, "layoutable": true,
		"urls": map[string]string{"sobject": u, "describe": u + "/describe", "rowTemplate": u + "/{ID}"},
	}
}

func (s *Server) describeGlobal(c *call) response {
	names := []string{"Account", "Campaign", "CampaignMember", "Contact", "Group", "Lead", "Task", "User"}
	out := make([]map[string]any, len(names))
	for i, n := range names {
		out[i] = s.objectSummary(c, s.st.objects[n])
	}
	return jsonResp(200, map[string]any{"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": out})
}

func (s *Server) describe(c *call, obj *sobject) map[string]any {
	d := s.objectSummary(c, obj)
	fields := make([]map[string]any, len(obj.Fields))
	for i, f := range obj.Fields {
		pick := make([]map[string]any, len(f.Picklist))
		for j, v := range f.Picklist {
			pick[j] = map[string]any{"value": v, "label": v, "active": true, "defaultValue": j == 0 && f.DefaultedOnCreate, "validFor": nil}
		}
		ref := f.ReferenceTo
		if ref == nil {
			ref = []string{}
		}
		var rel any
		if f.RelationshipName != "" {
			rel = f.RelationshipName
		}
		byteLength := f.Length * 3
		fields[i] = map[string]any{
			"name": f.Name, "label": f.Label, "type": f.Type, "soapType": f.soapType(),
			"length": f.Length, "byteLength": byteLength, "precision": 0, "scale": 0, "digits": 0,
			"createable": f.Createable, "updateable": f.Updateable, "nillable": f.Nillable,
			"defaultedOnCreate": f.DefaultedOnCreate, "unique": f.Unique, "externalId": f.ExternalID,
			"idLookup": f.IDLookup, "calculated": f.Calculated, "custom": f.Custom,
			"filterable": true, "sortable": f.Type != "textarea", "groupable": f.Type != "textarea",
			"caseSensitive": false, "restrictedPicklist": f.RestrictedPicklist,
			"picklistValues": pick, "referenceTo": ref, "relationshipName": rel,
			"polymorphicForeignKey": len(f.ReferenceTo) > 1,
		}
	}
	d["fields"] = fields
	d["recordTypeInfos"] = []any{}
	d["childRelationships"] = []any{}
	return d
}

// bodyFields decodes a single-record body into its fields.
func bodyFields(b []byte) (map[string]any, *apiError) {
	var m map[string]any
	if err := decodeJSON(b, &m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, &apiError{Code: "JSON_PARSER_ERROR", Message: "The request body is empty"}
	}
	delete(m, "attributes")
	return m, nil
}

func saveErrResp(res saveResult) response {
	status := res.status
	if status == 0 {
		status = 400
	}
	return errResp(status, res.errs...)
}

func (s *Server) createOne(c *call, obj *sobject) response {
	fields, err := bodyFields(c.body)
	if err != nil {
		return errResp(400, *err)
	}
	if e := shapeError(obj, fields); e != nil {
		return errResp(400, *e)
	}
	res := s.st.create(obj, fields, c.op(s.clock.Now()))
	if res.errs != nil {
		return saveErrResp(res)
	}
	resp := jsonResp(201, map[string]any{"id": res.id, "success": true, "errors": []any{}})
	resp.header = http.Header{"Location": {c.prefix() + "/sobjects/" + obj.Name + "/" + res.id}}
	return resp
}

func (s *Server) getOne(c *call, obj *sobject, rawID string) response {
	id, ok := NormalizeID(rawID)
	if !ok || objectOfID(id) != obj.Name {
		return notFound()
	}
	r := visible(s.st.get(id), s.clock.Now())
	if r == nil {
		return notFound()
	}
	if r.deleted() {
		return errResp(404, apiError{Code: "ENTITY_IS_DELETED", Message: "entity is deleted", Fields: []string{}})
	}
	s.st.charge(obj.Name, costRead, 1)
	var fields []*Field
	if fl := c.query.Get("fields"); fl != "" {
		for _, name := range strings.Split(fl, ",") {
			f := obj.field(strings.TrimSpace(name))
			if f == nil {
				return errResp(400, apiError{Code: "INVALID_FIELD", Message: "No such column '" + strings.TrimSpace(name) + "' on entity '" + obj.Name + "'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."})
			}
			fields = append(fields, f)
		}
	}
	return jsonResp(200, c.render(r, fields))
}

func (s *Server) updateOne(c *call, obj *sobject, rawID string) response {
	fields, err := bodyFields(c.body)
	if err != nil {
		return errResp(400, *err)
	}
	if e := shapeError(obj, fields); e != nil {
		return errResp(400, *e)
	}
	id, ok := NormalizeID(rawID)
	if !ok || objectOfID(id) != obj.Name {
		return notFound()
	}
	if resp, failed := s.preconditionFailed(c, id); failed {
		return resp
	}
	res := s.st.update(obj, id, fields, c.op(s.clock.Now()))
	if res.errs != nil {
		return saveErrResp(res)
	}
	return response{status: 204}
}

func (s *Server) deleteOne(c *call, obj *sobject, rawID string) response {
	id, ok := NormalizeID(rawID)
	if !ok || objectOfID(id) != obj.Name || s.st.get(id) == nil {
		return notFound()
	}
	res := s.st.remove(id, c.op(s.clock.Now()))
	if res.errs != nil {
		return saveErrResp(res)
	}
	return response{status: 204}
}

func (s *Server) upsertOne(c *call, obj *sobject, ext *Field, value string) response {
	fields, err := bodyFields(c.body)
	if err != nil {
		return errResp(400, *err)
	}
	if e := shapeError(obj, fields); e != nil {
		return errResp(400, *e)
	}
	res, matches := s.st.upsert(obj, ext, value, fields, c.op(s.clock.Now()))
	if matches != nil {
		found := make([]*record, len(matches))
		for i, id := range matches {
			found[i] = s.st.get(id)
		}
		return multipleChoices(c, found)
	}
	if res.errs != nil {
		return saveErrResp(res)
	}
	body := map[string]any{"id": res.id, "success": true, "errors": []any{}, "created": res.created}
	if res.created {
		resp := jsonResp(201, body)
		resp.header = http.Header{"Location": {c.prefix() + "/sobjects/" + obj.Name + "/" + res.id}}
		return resp
	}
	return jsonResp(200, body)
}

// preconditionFailed applies a single-record PATCH's If-Unmodified-Since
// (an HTTP date): a record modified after it (LastModifiedDate, second
// precision, so a change in that very second passes) is not written, and
// the answer is 412. Sent directly or in a /composite subrequest's
// httpHeaders alike. A header that is not an HTTP date is ignored, as HTTP
// servers do.
func (s *Server) preconditionFailed(c *call, id string) (response, bool) {
	raw := c.header.Get("If-Unmodified-Since")
	if raw == "" {
		return response{}, false
	}
	since, err := http.ParseTime(raw)
	if err != nil {
		return response{}, false
	}
	r := s.st.get(id)
	if r == nil || r.deleted() {
		return response{}, false // the update answers not found
	}
	modified, _ := r.f["LastModifiedDate"].(time.Time)
	if !modified.After(since) {
		return response{}, false
	}
	return errResp(http.StatusPreconditionFailed, apiError{Code: "PRECONDITION_FAILED",
		Message: "The requested entity has been modified since " + since.UTC().Format(http.TimeFormat) + "."}), true
}
