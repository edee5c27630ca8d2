package sffake

import (
	"fmt"
	"strings"
)

// saveResult is the outcome of one record write.
type saveResult struct {
	id      string
	created bool
	errs    []apiError
	status  int // HTTP status for single-record endpoints when errs is set
}

func failed(status int, errs ...apiError) saveResult { return saveResult{errs: errs, status: status} }

// create inserts one record of obj.
func (st *store) create(obj *sobject, fields map[string]any, op writeOp) saveResult {
	if obj.Setup {
		return failed(400, apiError{Code: "INVALID_TYPE_FOR_OPERATION", Message: "entity type cannot be inserted: " + obj.Name, Fields: []string{}})
	}
	st.charge(obj.Name, chargeOf(op, costCreate), 1)
	r, errs := st.assign(obj, nil, fields, op)
	if errs != nil {
		return failed(400, errs...)
	}
	if err := st.recordFault(op, obj.Name, "", fields); err != nil {
		return failed(400, *err)
	}
	if err := st.lockError(r, nil); err != nil {
		return failed(400, *err)
	}
	if err := st.uniqueError(r); err != nil {
		return failed(400, *err)
	}
	st.put(r)
	return saveResult{id: r.id(), created: true}
}

// lookupLive returns the record id names, or the single-record error
// Salesforce gives for it.
func (st *store) lookupLive(obj *sobject, rawID string) (*record, saveResult) {
	id, ok := NormalizeID(rawID)
	if !ok {
		return nil, failed(400, apiError{Code: "MALFORMED_ID", Message: fmt.Sprintf("%s ID: id value of incorrect type: %s", obj.Label, rawID), Fields: []string{"Id"}})
	}
	if obj != nil && objectOfID(id) != obj.Name {
		return nil, failed(400, apiError{Code: "MALFORMED_ID", Message: fmt.Sprintf("%s ID: id value of incorrect type: %s", obj.Label, rawID), Fields: []string{"Id"}})
	}
	r := st.get(id)
	if r == nil {
		return nil, failed(404, apiError{Code: "NOT_FOUND", Message: "The requested resource does not exist"})
	}
	if r.deleted() {
		return nil, failed(404, apiError{Code: "ENTITY_IS_DELETED", Message: "entity is deleted", Fields: []string{}})
	}
	return r, saveResult{}
}

// update changes one existing record.
func (st *store) update(obj *sobject, rawID string, fields map[string]any, op writeOp) saveResult {
	if obj.Setup {
		return failed(400, apiError{Code: "INVALID_TYPE_FOR_OPERATION", Message: "entity type cannot be updated: " + obj.Name, Fields: []string{}})
	}
	prev, res := st.lookupLive(obj, rawID)
	if prev == nil {
		return res
	}
	res = st.updateRecord(prev, fields, op)
	return res
}

func (st *store) updateRecord(prev *record, fields map[string]any, op writeOp) saveResult {
	if prev.obj.Name == "Lead" && prev.f["IsConverted"] == true {
		return saveResult{id: prev.id(), errs: []apiError{{Code: "CANNOT_UPDATE_CONVERTED_LEAD", Message: "cannot reference converted lead", Fields: []string{}}}, status: 400}
	}
	st.charge(prev.obj.Name, chargeOf(op, costUpdate), 1)
	r, errs := st.assign(prev.obj, prev, fields, op)
	if errs != nil {
		return saveResult{id: prev.id(), errs: errs, status: 400}
	}
	if err := st.recordFault(op, prev.obj.Name, prev.id(), fields); err != nil {
		return saveResult{id: prev.id(), errs: []apiError{*err}, status: 400}
	}
	if err := st.lockError(r, prev); err != nil {
		return saveResult{id: prev.id(), errs: []apiError{*err}, status: 400}
	}
	if err := st.uniqueError(r); err != nil {
		return saveResult{id: prev.id(), errs: []apiError{*err}, status: 400}
	}
	st.put(r)
	return saveResult{id: r.id()}
}

// upsert creates or updates the record whose extField equals value.
// matches holds the ids when several records match (HTTP 300).
func (st *store) upsert(obj *sobject, ext *Field, value string, fields map[string]any, op writeOp) (res saveResult, matches []string) {
	op.upsert = true
	found := st.findByField(obj, ext, value)
	switch len(found) {
	case 0:
		if ext.Name == "Id" {
			return failed(404, apiError{Code: "NOT_FOUND", Message: "The requested resource does not exist"}), nil
		}
		withExt := make(map[string]any, len(fields)+1)
		for k, v := range fields {
			withExt[k] = v
		}
		withExt[ext.Name] = value
		return st.create(obj, withExt, op), nil
	case 1:
		upd := make(map[string]any, len(fields))
		for k, v := range fields {
			if !strings.EqualFold(k, ext.Name) && !strings.EqualFold(k, "Id") {
				upd[k] = v
			}
		}
		return st.updateRecord(found[0], upd, op), nil
	}
	for _, r := range found {
		matches = append(matches, r.id())
	}
	return failed(300, apiError{Code: "DUPLICATE_EXTERNAL_ID", Message: fmt.Sprintf("%s: more than one record found for external id field: %v", ext.Name, matches), Fields: []string{ext.Name}}), matches
}

// remove soft-deletes one record, as the recycle bin does.
func (st *store) remove(rawID string, op writeOp) saveResult {
	id, ok := NormalizeID(rawID)
	if !ok || objectOfID(id) == "" {
		return failed(400, apiError{Code: "MALFORMED_ID", Message: "malformed id " + rawID, Fields: []string{}})
	}
	r := st.get(id)
	if r == nil {
		return failed(404, apiError{Code: "INVALID_CROSS_REFERENCE_KEY", Message: "invalid cross reference id", Fields: []string{}})
	}
	if r.deleted() {
		return saveResult{id: id, errs: []apiError{{Code: "ENTITY_IS_DELETED", Message: "entity is deleted", Fields: []string{}}}, status: 404}
	}
	if r.obj.Setup {
		return saveResult{id: id, errs: []apiError{{Code: "INVALID_TYPE_FOR_OPERATION", Message: "entity type cannot be deleted: " + r.obj.Name, Fields: []string{}}}, status: 400}
	}
	st.charge(r.obj.Name, costDelete, 1)
	if err := st.recordFault(op, r.obj.Name, id, nil); err != nil {
		return saveResult{id: id, errs: []apiError{*err}, status: 400}
	}
	if err := st.lockError(r, nil); err != nil {
		return saveResult{id: id, errs: []apiError{*err}, status: 400}
	}
	d := r.clone()
	d.f["IsDeleted"] = true
	d.f["LastModifiedDate"] = op.now
	d.f["LastModifiedById"] = op.actor
	d.f["SystemModstamp"] = op.now
	st.put(d)
	return saveResult{id: id}
}

// chargeOf is the operation a write is charged as: an upsert's create or
// update as the upsert.
func chargeOf(op writeOp, kind int) int {
	if op.upsert {
		return costUpsert
	}
	return kind
}

func (st *store) recordFault(op writeOp, object, id string, fields map[string]any) *apiError {
	if op.hook {
		return nil
	}
	return st.faults.recordError(object, id, fields)
}
