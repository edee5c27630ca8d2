package sffake

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// record is one stored sObject row. Values are string, bool, float64,
// time.Time (datetime) or nil; dates are "YYYY-MM-DD" strings; ids are
// 18-character strings.
type record struct {
	obj *sobject
	f   map[string]any
	// visibleAt and committed simulate commit lag: until visibleAt, reads
	// (queries, retrieves) see committed, the version before this write
	// (nil: the record did not exist yet).
	visibleAt time.Time
	committed *record
}

func (r *record) id() string          { s, _ := r.f["Id"].(string); return s }
func (r *record) deleted() bool       { b, _ := r.f["IsDeleted"].(bool); return b }
func (r *record) str(f string) string { s, _ := r.f[f].(string); return s }

func (r *record) clone() *record {
	f := make(map[string]any, len(r.f))
	for k, v := range r.f {
		f[k] = v
	}
	return &record{obj: r.obj, f: f}
}

// apiError is one Salesforce error: errorCode (statusCode inside
// per-record results), message and fields.
type apiError struct {
	Code    string
	Message string
	Fields  []string
}

func (e apiError) Error() string { return e.Code + ": " + e.Message }

// envelope renders the top-level error form [{"message","errorCode","fields"}].
func (e apiError) envelope() map[string]any {
	m := map[string]any{"message": e.Message, "errorCode": e.Code}
	if e.Fields != nil {
		m["fields"] = e.Fields
	}
	return m
}

// item renders the per-record form {"statusCode","message","fields"}.
func (e apiError) item() map[string]any {
	f := e.Fields
	if f == nil {
		f = []string{}
	}
	return map[string]any{"statusCode": e.Code, "message": e.Message, "fields": f}
}

type undoEntry struct {
	object, id string
	prev       *record // nil: the record did not exist
	changes    int     // len(store.changes) before the write
}

// storeChange is one committed write, for Change Data Capture.
type storeChange struct {
	prev, next *record // prev nil: a create
	origin     string
}

// store holds the org's records. It is guarded by Server.mu.
type store struct {
	objects map[string]*sobject
	recs    map[string]map[string]*record // object → id → record
	// unique indexes the records in recs by the folded value of each
	// unique field (external ids): an upsert or a create checks one bucket
	// instead of every record of the object. Only set keeps it.
	unique map[uniqueKey]map[string]struct{}
	seq    uint64
	pod    string
	undo   []undoEntry
	inTx   int

	assignOwner string // owner set by the simulated lead assignment rule, "" for none
	commitLag   time.Duration
	now         func() time.Time
	faults      *faults

	// changes are the writes of the open transaction; onCommit receives
	// them when it commits (a write outside a transaction at once).
	// origin is the changeOrigin of the request being served.
	changes  []storeChange
	onCommit func([]storeChange)
	origin   string
	// cost is the org's cost model (nil: none); work is the charge of the
	// request being served (nil outside one).
	cost *costState
	work *work
}

func newStore(pod string) *store {
	st := &store{objects: defaultSchema(), recs: map[string]map[string]*record{}, unique: map[uniqueKey]map[string]struct{}{}, pod: pod}
	for name := range st.objects {
		st.recs[name] = map[string]*record{}
	}
	return st
}

// object looks an sObject up case-insensitively.
func (st *store) object(name string) *sobject {
	if o, ok := st.objects[name]; ok {
		return o
	}
	for n, o := range st.objects {
		if strings.EqualFold(n, name) {
			return o
		}
	}
	return nil
}

func (st *store) newID(prefix string) string {
	st.seq++
	return makeID(prefix, st.pod, st.seq)
}

func (st *store) get(id string) *record {
	obj := objectOfID(id)
	if obj == "" {
		return nil
	}
	return st.recs[obj][id]
}

func (st *store) put(r *record) {
	id := r.id()
	if st.commitLag > 0 && st.now != nil {
		prev := st.recs[r.obj.Name][id]
		if prev != nil && !prev.visibleAt.IsZero() {
			prev = prev.committed // an earlier write is still in flight
		}
		r.visibleAt, r.committed = st.now().Add(st.commitLag), prev
	} else {
		r.visibleAt, r.committed = time.Time{}, nil
	}
	ch := storeChange{prev: st.recs[r.obj.Name][id], next: r, origin: st.origin}
	if st.inTx > 0 {
		st.undo = append(st.undo, undoEntry{object: r.obj.Name, id: id, prev: ch.prev, changes: len(st.changes)})
		st.changes = append(st.changes, ch)
	}
	st.set(r.obj.Name, id, r)
	if st.inTx == 0 && st.onCommit != nil {
		st.onCommit([]storeChange{ch})
	}
}

// uniqueKey names the records of obj whose unique field holds a value
// (folded, as Salesforce compares external ids case-insensitively).
type uniqueKey struct{ obj, field, value string }

func fold(s string) string { return strings.ToLower(strings.ToUpper(s)) }

// set stores r as the record id of obj (nil: removes it) and keeps the
// unique-field index in step. Records are never changed in place (writes
// clone), so the index is right as long as every store goes through set.
func (st *store) set(obj, id string, r *record) {
	if old := st.recs[obj][id]; old != nil {
		st.index(old, false)
	}
	if r == nil {
		delete(st.recs[obj], id)
		return
	}
	st.recs[obj][id] = r
	st.index(r, true)
}

func (st *store) index(r *record, add bool) {
	for _, f := range r.obj.Fields {
		v, _ := r.f[f.Name].(string)
		if !f.Unique || v == "" {
			continue
		}
		k := uniqueKey{r.obj.Name, f.Name, fold(v)}
		ids := st.unique[k]
		if !add {
			delete(ids, r.id())
			if len(ids) == 0 {
				delete(st.unique, k)
			}
			continue
		}
		if ids == nil {
			ids = map[string]struct{}{}
			st.unique[k] = ids
		}
		ids[r.id()] = struct{}{}
	}
}

// withValue returns the records of obj (deleted ones too) whose field f
// equals value case-insensitively: from the index for a unique field,
// else by looking at every record.
func (st *store) withValue(obj *sobject, f *Field, value string) []*record {
	var out []*record
	if f.Unique {
		for id := range st.unique[uniqueKey{obj.Name, f.Name, fold(value)}] {
			if r := st.recs[obj.Name][id]; strings.EqualFold(r.str(f.Name), value) {
				out = append(out, r)
			}
		}
		return out
	}
	for _, r := range st.recs[obj.Name] {
		if strings.EqualFold(r.str(f.Name), value) {
			out = append(out, r)
		}
	}
	return out
}

// begin opens a (nested) transaction and returns its savepoint.
func (st *store) begin() int { st.inTx++; return len(st.undo) }

// commit closes the innermost transaction, keeping its changes.
func (st *store) commit() {
	st.inTx--
	if st.inTx == 0 {
		st.undo = st.undo[:0]
		changes := st.changes
		st.changes = nil
		if len(changes) > 0 && st.onCommit != nil {
			st.onCommit(changes)
		}
	}
}

// rollback undoes every change since savepoint and closes the transaction.
func (st *store) rollback(savepoint int) {
	if savepoint < len(st.undo) {
		st.changes = st.changes[:st.undo[savepoint].changes]
	}
	for i := len(st.undo) - 1; i >= savepoint; i-- {
		u := st.undo[i]
		st.set(u.object, u.id, u.prev)
	}
	st.undo = st.undo[:savepoint]
	st.commit()
}

// visible returns the version of r that reads see at now (nil: none yet).
func visible(r *record, now time.Time) *record {
	if r == nil || r.visibleAt.IsZero() || !now.Before(r.visibleAt) {
		return r
	}
	return r.committed
}

// sorted returns the records of obj ordered by id (creation order).
func (st *store) sorted(obj string, withDeleted bool) []*record {
	return st.sortedAt(obj, withDeleted, time.Time{})
}

// sortedAt is sorted as reads see it at now (the zero time: the latest
// versions, ignoring commit lag).
func (st *store) sortedAt(obj string, withDeleted bool, now time.Time) []*record {
	return st.sortedWhere(obj, withDeleted, now, nil)
}

// sortedWhere is sortedAt of the records keep accepts (nil: all): the
// filter runs first, so a selective query sorts only what it found.
func (st *store) sortedWhere(obj string, withDeleted bool, now time.Time, keep func(*record) bool) []*record {
	var out []*record
	for _, r := range st.recs[obj] {
		if !now.IsZero() {
			r = visible(r, now)
		}
		if r != nil && (withDeleted || !r.deleted()) && (keep == nil || keep(r)) {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id() < out[j].id() })
	return out
}

// writeOp describes who writes and how.
type writeOp struct {
	actor      string // user id, stamped into CreatedById/LastModifiedById
	autoAssign bool   // Sforce-Auto-Assign is not FALSE
	now        time.Time
	hook       bool // a test hook: injected record faults do not apply
	upsert     bool // the create or update of an upsert (charged as one)
}

var emailRE = regexp.MustCompile(`^[A-Za-z0-9.!#$%&'*+/=?^_` + "`" + `{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$`)

// shapeError checks what Salesforce rejects while deserializing a request
// (unknown fields, values of the wrong JSON type); such errors fail the
// whole request. fields must exclude "attributes".
func shapeError(obj *sobject, fields map[string]any) *apiError {
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		f := obj.field(k)
		if f == nil {
			return &apiError{Code: "INVALID_FIELD", Message: fmt.Sprintf("No such column '%s' on sobject of type %s", k, obj.Name)}
		}
		if _, err := convertValue(f, fields[k]); err != nil {
			return err
		}
	}
	return nil
}

// convertValue turns a decoded JSON value into the stored form for f.
func convertValue(f *Field, v any) (any, *apiError) {
	if v == nil {
		if f.Type == "boolean" {
			return false, nil
		}
		return nil, nil
	}
	switch x := v.(type) { // Go values from the test hooks
	case int:
		v = float64(x)
	case int64:
		v = float64(x)
	case int32:
		v = float64(x)
	case float32:
		v = float64(x)
	}
	bad := func() (any, *apiError) {
		return nil, &apiError{Code: "JSON_PARSER_ERROR", Message: fmt.Sprintf("Cannot deserialize instance of %s from %s value %v or request may be missing a required field", f.soapType()[4:], jsonKind(v), v)}
	}
	switch f.Type {
	case "boolean":
		switch x := v.(type) {
		case bool:
			return x, nil
		case string:
			if b, err := strconv.ParseBool(strings.ToLower(x)); err == nil {
				return b, nil
			}
		}
		return bad()
	case "int", "double", "currency", "percent":
		switch x := v.(type) {
		case json.Number:
			n, err := x.Float64()
			if err == nil && (f.Type != "int" || n == float64(int64(n))) {
				return n, nil
			}
		case float64:
			if f.Type != "int" || x == float64(int64(x)) {
				return x, nil
			}
		case string:
			if n, err := strconv.ParseFloat(x, 64); err == nil {
				return n, nil
			}
			if x == "" {
				return nil, nil
			}
		}
		return bad()
	case "datetime":
		switch x := v.(type) {
		case string:
			if x == "" {
				return nil, nil
			}
			if t, ok := parseDateTime(x); ok {
				return t.Truncate(time.Second), nil
			}
		case time.Time:
			return x.UTC().Truncate(time.Second), nil
		}
		return bad()
	case "date":
		switch x := v.(type) {
		case string:
			if x == "" {
				return nil, nil
			}
			if t, err := time.Parse("2006-01-02", x); err == nil {
				return t.Format("2006-01-02"), nil
			}
			if t, ok := parseDateTime(x); ok {
				return t.Format("2006-01-02"), nil
			}
		case time.Time:
			return x.UTC().Format("2006-01-02"), nil
		}
		return bad()
	default: // text, id, reference
		x, ok := v.(string)
		if !ok {
			return bad()
		}
		if x == "" { // Salesforce stores empty strings as null
			return nil, nil
		}
		return x, nil
	}
}

func jsonKind(v any) string {
	switch v.(type) {
	case bool:
		return "VALUE_TRUE"
	case string:
		return "VALUE_STRING"
	case json.Number, float64, int:
		return "VALUE_NUMBER_INT"
	case map[string]any:
		return "START_OBJECT"
	case []any:
		return "START_ARRAY"
	}
	return "VALUE_EMBEDDED_OBJECT"
}

// assign validates fields for a create (prev == nil) or an update of prev
// and returns the new record, or every error Salesforce would report.
func (st *store) assign(obj *sobject, prev *record, fields map[string]any, op writeOp) (*record, []apiError) {
	var r *record
	if prev == nil {
		r = &record{obj: obj, f: map[string]any{}}
	} else {
		r = prev.clone()
	}
	var errs []apiError
	var readOnly []string
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		f := obj.field(k)
		if f == nil {
			errs = append(errs, apiError{Code: "INVALID_FIELD", Message: fmt.Sprintf("No such column '%s' on sobject of type %s", k, obj.Name)})
			continue
		}
		v, cerr := convertValue(f, fields[k])
		if cerr != nil {
			errs = append(errs, *cerr)
			continue
		}
		if f.Name == "Id" {
			if prev == nil {
				errs = append(errs, apiError{Code: "INVALID_FIELD", Message: "cannot specify Id in an insert call", Fields: []string{}})
			}
			continue
		}
		if prev == nil && !f.Createable || prev != nil && !f.Updateable {
			readOnly = append(readOnly, f.Name)
			continue
		}
		if err := st.checkValue(obj, f, v); err != nil {
			errs = append(errs, *err)
			continue
		}
		r.f[f.Name] = v
	}
	if len(readOnly) > 0 {
		errs = append(errs, apiError{Code: "INVALID_FIELD_FOR_INSERT_UPDATE",
			Message: fmt.Sprintf("Unable to create/update fields: %s. Please check the security settings of this field and verify that it is read/write for your profile or permission set.", strings.Join(readOnly, ", ")),
			Fields:  readOnly})
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if prev == nil {
		st.defaults(r, op)
	}
	var missing []string
	for _, f := range obj.Fields {
		if !f.Nillable && f.Createable && f.Type != "boolean" && r.f[f.Name] == nil && (prev == nil && !f.DefaultedOnCreate || prev != nil) {
			missing = append(missing, f.Name)
		}
	}
	if len(missing) > 0 {
		return nil, []apiError{{Code: "REQUIRED_FIELD_MISSING", Message: fmt.Sprintf("Required fields are missing: [%s]", strings.Join(missing, ", ")), Fields: missing}}
	}
	if err := st.checkObjectRules(r); err != nil {
		return nil, []apiError{*err}
	}
	st.derive(r, op)
	return r, nil
}

// checkValue applies describe-driven validation to one value.
func (st *store) checkValue(obj *sobject, f *Field, v any) *apiError {
	s, isStr := v.(string)
	if !isStr {
		return nil
	}
	if f.isText() && f.Length > 0 && utf8.RuneCountInString(s) > f.Length {
		return &apiError{Code: "STRING_TOO_LONG", Message: fmt.Sprintf("%s: data value too large: %s (max length=%d)", f.Label, s, f.Length), Fields: []string{f.Name}}
	}
	switch f.Type {
	case "email":
		if !emailRE.MatchString(s) {
			return &apiError{Code: "INVALID_EMAIL_ADDRESS", Message: fmt.Sprintf("%s: invalid email address: %s", f.Label, s), Fields: []string{f.Name}}
		}
	case "picklist":
		if f.RestrictedPicklist && !containsFold(f.Picklist, s) {
			return &apiError{Code: "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", Message: fmt.Sprintf("%s: bad value for restricted picklist field: %s", f.Label, s), Fields: []string{f.Name}}
		}
	case "reference":
		return st.checkReference(obj, f, s)
	}
	return nil
}

func (st *store) checkReference(obj *sobject, f *Field, s string) *apiError {
	id, ok := NormalizeID(s)
	target := objectOfID(id)
	if !ok || !contains(f.ReferenceTo, target) {
		return &apiError{Code: "MALFORMED_ID", Message: fmt.Sprintf("%s: id value of incorrect type: %s", f.Label, s), Fields: []string{f.Name}}
	}
	ref := st.get(id)
	if ref == nil || ref.deleted() {
		return &apiError{Code: "INVALID_CROSS_REFERENCE_KEY", Message: "invalid cross reference id", Fields: []string{}}
	}
	if f.Name == "OwnerId" || target == "User" && f.Name != "CreatedById" {
		if target == "User" && ref.f["IsActive"] == false {
			return &apiError{Code: "INACTIVE_OWNER_OR_USER", Message: "operation performed with inactive user [" + id + "] as owner of " + strings.ToLower(obj.Name), Fields: []string{}}
		}
		if target == "Group" && (ref.str("Type") != "Queue" || !queueSupports(ref, obj.Name)) {
			return &apiError{Code: "INVALID_CROSS_REFERENCE_KEY", Message: "invalid cross reference id", Fields: []string{}}
		}
	}
	if target == "Lead" && ref.f["IsConverted"] == true && obj.Name != "Lead" {
		return &apiError{Code: "CANNOT_UPDATE_CONVERTED_LEAD", Message: "cannot reference converted lead", Fields: []string{f.Name}}
	}
	return nil
}

// queueSupports reports whether the queue group may own records of obj
// (the fake's stand-in for QueueSobject).
func queueSupports(group *record, obj string) bool {
	list, _ := group.f[queueObjectsKey].(string)
	return containsFold(strings.Split(list, ";"), obj)
}

// queueObjectsKey stores a queue's supported objects on the Group record;
// it is not a field and never rendered.
const queueObjectsKey = "\x00queueObjects"

// checkObjectRules applies object-specific rules after field validation.
func (st *store) checkObjectRules(r *record) *apiError {
	if r.obj.Name != "CampaignMember" {
		return nil
	}
	if r.f["LeadId"] != nil && r.f["ContactId"] != nil {
		delete(r.f, "LeadId") // Salesforce keeps ContactId when both are given
	}
	who, whoField := r.f["ContactId"], "ContactId"
	if who == nil {
		who, whoField = r.f["LeadId"], "LeadId"
	}
	if who == nil {
		return &apiError{Code: "REQUIRED_FIELD_MISSING", Message: "Required fields are missing: [LeadId, ContactId]", Fields: []string{"LeadId", "ContactId"}}
	}
	campaign := r.f["CampaignId"]
	for _, m := range st.recs["CampaignMember"] {
		if m.id() != r.id() && !m.deleted() && m.f["CampaignId"] == campaign && m.f[whoField] == who {
			return &apiError{Code: "DUPLICATE_VALUE", Message: "Already a campaign member.", Fields: []string{}}
		}
	}
	return nil
}

// defaults fills what Salesforce fills on create.
func (st *store) defaults(r *record, op writeOp) {
	for _, f := range r.obj.Fields {
		if r.f[f.Name] != nil {
			continue
		}
		switch {
		case f.Type == "boolean":
			r.f[f.Name] = f.Name == "IsActive" && r.obj.Name == "User"
		case f.Type == "picklist" && f.DefaultedOnCreate && len(f.Picklist) > 0:
			r.f[f.Name] = f.Picklist[0]
		case f.Name == "OwnerId" && f.DefaultedOnCreate:
			r.f[f.Name] = op.actor
		}
	}
	r.f["Id"] = st.newID(r.obj.KeyPrefix)
	r.f["IsDeleted"] = false
	r.f["CreatedDate"] = op.now
	r.f["CreatedById"] = op.actor
}

// derive sets computed and audit fields before a save.
func (st *store) derive(r *record, op writeOp) {
	switch r.obj.Name {
	case "Lead", "Contact", "User":
		r.f["Name"] = strings.TrimSpace(r.str("FirstName") + " " + r.str("LastName"))
	case "Task":
		r.f["IsClosed"] = r.str("Status") == "Completed"
	case "CampaignMember":
		who := st.get(r.str("ContactId"))
		if who == nil {
			who = st.get(r.str("LeadId"))
		}
		if who != nil {
			r.f["FirstName"], r.f["LastName"], r.f["Email"] = who.f["FirstName"], who.f["LastName"], who.f["Email"]
		}
		r.f["HasResponded"] = r.str("Status") == "Responded"
	}
	if r.obj.Name == "Lead" && op.autoAssign && st.assignOwner != "" {
		r.f["OwnerId"] = st.assignOwner
	}
	r.f["LastModifiedDate"] = op.now
	r.f["LastModifiedById"] = op.actor
	r.f["SystemModstamp"] = op.now
}

// uniqueError enforces unique fields (the external id) against other rows.
func (st *store) uniqueError(r *record) *apiError {
	for _, f := range r.obj.Fields {
		if !f.Unique {
			continue
		}
		v, _ := r.f[f.Name].(string)
		if v == "" {
			continue
		}
		for _, o := range st.withValue(r.obj, f, v) {
			if o.id() != r.id() && !o.deleted() {
				return &apiError{Code: "DUPLICATE_VALUE", Message: fmt.Sprintf("duplicate value found: %s duplicates value on record with id: %s", f.Name, o.id()), Fields: []string{f.Name}}
			}
		}
	}
	return nil
}

// findByField returns the live records of obj whose field equals value
// (case-insensitively, as external ids are by default).
func (st *store) findByField(obj *sobject, f *Field, value string) []*record {
	var out []*record
	if f.isID() {
		id, ok := NormalizeID(value)
		if !ok {
			return nil
		}
		if r := st.recs[obj.Name][id]; r != nil && !r.deleted() {
			out = append(out, r)
		}
		return out
	}
	for _, r := range st.withValue(obj, f, value) {
		if !r.deleted() {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id() < out[j].id() })
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
