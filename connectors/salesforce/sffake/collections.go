package sffake

import (
	"net/http"
	"strings"
)

const (
	maxWriteRecords    = 200
	maxRetrieveRecords = 2000
	maxChunks          = 10
)

type collectionBody struct {
	AllOrNone bool             `json:"allOrNone"`
	Records   []map[string]any `json:"records"`
	IDs       []string         `json:"ids"`
	Fields    []string         `json:"fields"`
}

var errTooManyRecords = apiError{Code: "EXCEEDED_ID_LIMIT", Message: "record limit reached. cannot submit more than 200 records into this call"}

// collections routes /composite/sobjects[/{T}[/{ExtField}]].
func (s *Server) collections(c *call, parts []string) response {
	switch len(parts) {
	case 0:
		switch c.method {
		case http.MethodPost:
			return s.collectionWrite(c, nil, nil)
		case http.MethodPatch:
			return s.collectionWrite(c, nil, nil)
		case http.MethodDelete:
			return s.collectionDelete(c)
		}
		return methodNotAllowed(c.method, "POST,PATCH,DELETE")
	case 1:
		obj := s.st.object(parts[0])
		if obj == nil {
			return errResp(400, apiError{Code: "INVALID_TYPE", Message: "sObject type '" + parts[0] + "' is not supported."})
		}
		if c.method != http.MethodGet && c.method != http.MethodPost {
			return methodNotAllowed(c.method, "GET,POST")
		}
		return s.collectionRetrieve(c, obj)
	case 2:
		obj := s.st.object(parts[0])
		if obj == nil {
			return errResp(400, apiError{Code: "INVALID_TYPE", Message: "sObject type '" + parts[0] + "' is not supported."})
		}
		if c.method != http.MethodPatch {
			return methodNotAllowed(c.method, "PATCH")
		}
		ext := obj.field(parts[1])
		if ext == nil || (!ext.ExternalID && ext.Name != "Id") {
			return errResp(404, apiError{Code: "NOT_FOUND", Message: "Provided external ID field does not exist or is not accessible: " + parts[1]})
		}
		return s.collectionWrite(c, obj, ext)
	}
	return notFound()
}

// itemResult renders one SaveResult/UpsertResult/DeleteResult.
func itemResult(id string, res saveResult, withCreated bool) *ordered {
	o := &ordered{}
	if id != "" {
		o.add("id", id)
	}
	o.add("success", res.errs == nil)
	errs := make([]any, len(res.errs))
	for i, e := range res.errs {
		errs[i] = e.item()
	}
	o.add("errors", errs)
	if withCreated && res.errs == nil {
		o.add("created", res.created)
	}
	return o
}

var rolledBack = apiError{Code: "ALL_OR_NONE_OPERATION_ROLLED_BACK", Message: "Record rolled back because not all records were valid and the request was using AllOrNone header"}

// collectionWrite serves create (POST), update (PATCH) and upsert (PATCH
// with an external id field).
func (s *Server) collectionWrite(c *call, upsertObj *sobject, ext *Field) response {
	var body collectionBody
	if err := decodeJSON(c.body, &body); err != nil {
		return errResp(400, *err)
	}
	if body.Records == nil {
		return errResp(400, apiError{Code: "INVALID_FIELD", Message: "The 'records' field is required"}) //nolint:misspell
	}
	if len(body.Records) > maxWriteRecords {
		return errResp(400, errTooManyRecords)
	}
	objs := make([]*sobject, len(body.Records))
	fields := make([]map[string]any, len(body.Records))
	chunks, prev := 0, ""
	for i, rec := range body.Records {
		attrs, _ := rec["attributes"].(map[string]any)
		typ, _ := attrs["type"].(string)
		if typ == "" && upsertObj != nil {
			typ = upsertObj.Name
		}
		if typ == "" {
			return errResp(400, apiError{Code: "INVALID_FIELD", Message: "No SObject Type defined in the attributes for record at index " + itoa(i)})
		}
		obj := s.st.object(typ)
		if obj == nil {
			return errResp(400, apiError{Code: "INVALID_TYPE", Message: "sObject type '" + typ + "' is not supported."})
		}
		if upsertObj != nil && obj != upsertObj {
			return errResp(400, apiError{Code: "INVALID_FIELD", Message: "All records must be of type " + upsertObj.Name + " in an upsert"})
		}
		if obj.Name != prev {
			chunks++
			prev = obj.Name
		}
		f := make(map[string]any, len(rec))
		for k, v := range rec {
			if k != "attributes" {
				f[k] = v
			}
		}
		if e := shapeError(obj, f); e != nil {
			return errResp(400, *e)
		}
		objs[i], fields[i] = obj, f
	}
	if chunks > maxChunks {
		return errResp(400, apiError{Code: "INVALID_BATCH_REQUEST", Message: "Cannot have more than 10 chunks in a single operation. Please rearrange the data to reduce chunking."})
	}
	op := c.op(s.clock.Now())
	savepoint := s.st.begin()
	results := make([]saveResult, len(body.Records))
	ids := make([]string, len(body.Records))
	anyFailed := false
	for i := range body.Records {
		switch {
		case ext != nil:
			v := lookupFold(fields[i], ext.Name)
			sv, _ := v.(string)
			if sv == "" {
				results[i] = failed(400, apiError{Code: "MISSING_ARGUMENT", Message: ext.Name + " not specified", Fields: []string{}})
				break
			}
			var matches []string
			results[i], matches = s.st.upsert(objs[i], ext, sv, fields[i], op)
			if matches != nil {
				results[i] = failed(400, apiError{Code: "DUPLICATE_EXTERNAL_ID", Message: ext.Name + ": more than one record found for external id field: [" + strings.Join(matches, ", ") + "]", Fields: []string{ext.Name}})
			}
			ids[i] = results[i].id
		case c.method == http.MethodPost:
			results[i] = s.st.create(objs[i], fields[i], op)
			ids[i] = results[i].id
		default:
			results[i], ids[i] = s.collectionUpdateOne(objs[i], fields[i], op)
		}
		if results[i].errs != nil {
			anyFailed = true
			if c.method == http.MethodPost && ext == nil {
				ids[i] = ""
			}
		}
	}
	if body.AllOrNone && anyFailed {
		s.st.rollback(savepoint)
		for i := range results {
			if results[i].errs == nil {
				results[i] = failed(400, rolledBack)
				if c.method == http.MethodPost || ext != nil && results[i].created {
					ids[i] = ""
				}
			}
		}
	} else {
		s.st.commit()
	}
	out := make([]any, len(results))
	for i, res := range results {
		out[i] = itemResult(ids[i], res, ext != nil)
	}
	return jsonResp(200, out)
}

// collectionUpdateOne updates one record of an update collection and
// returns its result and the id to echo.
func (s *Server) collectionUpdateOne(obj *sobject, fields map[string]any, op writeOp) (saveResult, string) {
	raw, _ := lookupFold(fields, "Id").(string)
	if raw == "" {
		return failed(400, apiError{Code: "MISSING_ARGUMENT", Message: "Id not specified in an update call", Fields: []string{}}), ""
	}
	id, ok := NormalizeID(raw)
	if !ok || objectOfID(id) != obj.Name {
		return failed(400, apiError{Code: "MALFORMED_ID", Message: obj.Label + " ID: id value of incorrect type: " + raw, Fields: []string{"Id"}}), raw
	}
	r := s.st.get(id)
	switch {
	case r == nil:
		return failed(400, apiError{Code: "INVALID_CROSS_REFERENCE_KEY", Message: "invalid cross reference id", Fields: []string{}}), id
	case r.deleted():
		return failed(400, apiError{Code: "ENTITY_IS_DELETED", Message: "entity is deleted", Fields: []string{}}), id
	case obj.Setup:
		return failed(400, apiError{Code: "INVALID_TYPE_FOR_OPERATION", Message: "entity type cannot be updated: " + obj.Name, Fields: []string{}}), id
	}
	return s.st.updateRecord(r, fields, op), id
}

// collectionDelete serves DELETE /composite/sobjects?ids=&allOrNone=.
func (s *Server) collectionDelete(c *call) response {
	raw := c.query.Get("ids")
	if raw == "" {
		return errResp(400, apiError{Code: "MISSING_ARGUMENT", Message: "ids parameter is required"})
	}
	ids := strings.Split(raw, ",")
	if len(ids) > maxWriteRecords {
		return errResp(400, errTooManyRecords)
	}
	allOrNone := strings.EqualFold(c.query.Get("allOrNone"), "true")
	op := c.op(s.clock.Now())
	savepoint := s.st.begin()
	results := make([]saveResult, len(ids))
	anyFailed := false
	for i, id := range ids {
		results[i] = s.st.remove(strings.TrimSpace(id), op)
		if results[i].errs != nil {
			anyFailed = true
		}
		if results[i].id == "" {
			results[i].id = strings.TrimSpace(id)
		}
	}
	if allOrNone && anyFailed {
		s.st.rollback(savepoint)
		for i := range results {
			if results[i].errs == nil {
				results[i] = saveResult{id: results[i].id, errs: []apiError{rolledBack}}
			}
		}
	} else {
		s.st.commit()
	}
	out := make([]any, len(results))
	for i, res := range results {
		out[i] = itemResult(res.id, res, false)
	}
	return jsonResp(200, out)
}

// collectionRetrieve serves GET /composite/sobjects/{T}?ids=&fields= and
// the POST form with {"ids":[...],"fields":[...]}.
func (s *Server) collectionRetrieve(c *call, obj *sobject) response {
	var ids, names []string
	if c.method == http.MethodGet {
		if v := c.query.Get("ids"); v != "" {
			ids = strings.Split(v, ",")
		}
		if v := c.query.Get("fields"); v != "" {
			names = strings.Split(v, ",")
		}
	} else {
		var body collectionBody
		if err := decodeJSON(c.body, &body); err != nil {
			return errResp(400, *err)
		}
		ids, names = body.IDs, body.Fields
	}
	if len(ids) == 0 {
		return errResp(400, apiError{Code: "MISSING_ARGUMENT", Message: "ids is required"})
	}
	if len(names) == 0 {
		return errResp(400, apiError{Code: "MISSING_ARGUMENT", Message: "fields is required"})
	}
	if len(ids) > maxRetrieveRecords {
		return errResp(400, apiError{Code: "EXCEEDED_ID_LIMIT", Message: "record limit reached. cannot submit more than 2000 records into this call"})
	}
	fields := make([]*Field, 0, len(names))
	for _, n := range names {
		f := obj.field(strings.TrimSpace(n))
		if f == nil {
			return errResp(400, apiError{Code: "INVALID_FIELD", Message: "No such column '" + strings.TrimSpace(n) + "' on entity '" + obj.Name + "'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."})
		}
		fields = append(fields, f)
	}
	s.st.charge(obj.Name, costRead, len(ids))
	out := make([]any, len(ids))
	for i, raw := range ids {
		id, ok := NormalizeID(strings.TrimSpace(raw))
		if !ok {
			return errResp(400, apiError{Code: "MALFORMED_ID", Message: "malformed id " + raw})
		}
		r := visible(s.st.get(id), s.clock.Now())
		if r == nil || r.deleted() || r.obj != obj {
			out[i] = nil
			continue
		}
		out[i] = c.render(r, fields)
	}
	return jsonResp(200, out)
}
