package memcrm

import (
	"fmt"
	"math"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/crmsync/crmsync/connectors/connector"
)

// apply runs one BulkUpdate operation as the integration user.
func (o *Org) apply(f Faults, op connector.Operation) connector.Result {
	return o.write(o.integrationUser, f, op)
}

func fail(code, format string, args ...any) connector.Result {
	return connector.Result{Error: &connector.RecordError{Code: code, Message: fmt.Sprintf(format, args...)}}
}

func failFields(code string, fields []string, format string, args ...any) connector.Result {
	r := fail(code, format, args...)
	r.Error.Fields = fields
	return r
}

// write applies op as user.
func (o *Org) write(user string, f Faults, op connector.Operation) connector.Result {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.writeLocked(user, f, op)
}

// writeIfUnmodified applies an update as the integration user unless its
// record was modified after since (whole seconds, as Salesforce compares
// LastModifiedDate): checked and written under one lock.
func (o *Org) writeIfUnmodified(f Faults, op connector.Operation, since time.Time) connector.ConditionalResult {
	o.mu.Lock()
	defer o.mu.Unlock()
	if def, ok := o.crm.objects[op.Object]; ok {
		if r, res := o.existing(def, op.ID); res.Error == nil && r.modified.After(since.UTC().Truncate(time.Second)) {
			return connector.ConditionalResult{PreconditionFailed: true}
		}
	}
	res := o.writeLocked(o.integrationUser, f, op)
	return connector.ConditionalResult{Error: res.Error}
}

func (o *Org) writeLocked(user string, f Faults, op connector.Operation) connector.Result {
	def, ok := o.crm.objects[op.Object]
	if !ok {
		return fail("INVALID_TYPE", "sObject type %q is not supported", op.Object)
	}
	if res, ok := o.injected(f, op); ok {
		return res
	}
	if !def.Createable && op.Kind != connector.OpDelete {
		return fail("INVALID_TYPE", "sObject type %q is read only", op.Object)
	}
	fields, res := normalize(op.Fields)
	if res.Error != nil {
		return res
	}
	switch op.Kind {
	case connector.OpCreate:
		return o.create(user, def, fields)
	case connector.OpUpdate:
		r, res := o.existing(def, op.ID)
		if res.Error != nil {
			return res
		}
		return o.update(user, def, r, fields)
	case connector.OpUpsert:
		return o.upsert(user, def, op.ExternalIDField, op.ExternalID, fields)
	case connector.OpDelete:
		r, res := o.existing(def, op.ID)
		if res.Error != nil {
			return res
		}
		if !def.Deletable {
			return fail("INSUFFICIENT_ACCESS_OR_READONLY", "%s records cannot be deleted", def.Name)
		}
		r.deleted = true
		o.touch(r, user)
		return connector.Result{ID: r.id}
	}
	return fail("INVALID_OPERATION", "unknown operation kind %q", op.Kind)
}

// injected returns the result of the first record fault matching op.
func (o *Org) injected(f Faults, op connector.Operation) (connector.Result, bool) {
	for _, rf := range f.Records {
		if rf.Object != "" && rf.Object != op.Object {
			continue
		}
		byID := rf.ID != "" && (rf.ID == op.ID || rf.ID == op.ExternalID)
		byField := rf.Field != "" && op.Fields[rf.Field] != nil && fmt.Sprint(op.Fields[rf.Field]) == rf.Value
		if !byID && !byField {
			continue
		}
		key := fmt.Sprintf("%+v", rf)
		if rf.Times > 0 && o.faultHits[key] >= rf.Times {
			continue
		}
		o.faultHits[key]++
		msg := rf.Message
		if msg == "" {
			msg = "injected failure"
		}
		res := fail(rf.Code, "%s", msg)
		res.Error.Retryable = rf.Retryable
		return res, true
	}
	return connector.Result{}, false
}

// normalize turns Go numbers into float64 and empty strings into nil (as
// Salesforce stores them).
func normalize(in map[string]any) (map[string]any, connector.Result) {
	out := make(map[string]any, len(in))
	for k, v := range in {
		switch v := v.(type) {
		case nil, bool, float64:
			out[k] = v
		case string:
			if v == "" {
				out[k] = nil
			} else {
				out[k] = v
			}
		case int:
			out[k] = float64(v)
		case int64:
			out[k] = float64(v)
		case float32:
			out[k] = float64(v)
		default:
			return nil, failFields("INVALID_TYPE_ON_FIELD_IN_RECORD", []string{k}, "%s: value of type %T is not a JSON scalar", k, v)
		}
	}
	return out, connector.Result{}
}

func (o *Org) existing(def *objectDef, id string) (*record, connector.Result) {
	full, ok := validID(id)
	if !ok {
		return nil, fail("MALFORMED_ID", "%s ID: id value of incorrect type: %s", def.Name, id)
	}
	if obj, err := objectOfID(full); err != nil || obj != def.Name {
		return nil, fail("MALFORMED_ID", "%s ID: id value of incorrect type: %s", def.Name, id)
	}
	r, ok := o.records[def.Name][full]
	if !ok || r.deleted {
		return nil, fail(connector.CodeNotFound, "entity is deleted")
	}
	return r, connector.Result{}
}

func (o *Org) create(user string, def *objectDef, fields map[string]any) connector.Result {
	for name, v := range fields {
		if res := o.check(def, name, v, true); res.Error != nil {
			return res
		}
	}
	var missing []string
	for _, name := range def.required {
		if fields[name] == nil {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return failFields("REQUIRED_FIELD_MISSING", missing, "Required fields are missing: [%s]", strings.Join(missing, ", "))
	}
	if res := o.checkCreate(def, fields); res.Error != nil {
		return res
	}
	defaults(def.Name, user, fields)
	r := o.insert(user, def.Name, fields)
	return connector.Result{ID: r.id, Created: true}
}

func defaults(object, user string, fields map[string]any) {
	set := func(name string, v any) {
		if fields[name] == nil {
			fields[name] = v
		}
	}
	switch object {
	case "Lead":
		set("Status", "Open - Not Contacted")
		set("IsConverted", false)
	case "Campaign":
		set("IsActive", false)
	case "CampaignMember":
		set("Status", "Sent")
	case "Task":
		set("Status", "Not Started")
		set("Priority", "Normal")
	}
	if object != "CampaignMember" {
		set("OwnerId", user)
	}
}

// checkCreate enforces object-level rules of a create.
func (o *Org) checkCreate(def *objectDef, fields map[string]any) connector.Result {
	if def.Name != "CampaignMember" {
		return connector.Result{}
	}
	lead, contact := fields["LeadId"], fields["ContactId"]
	if (lead == nil) == (contact == nil) {
		return failFields("REQUIRED_FIELD_MISSING", []string{"LeadId", "ContactId"}, "a campaign member names exactly one of LeadId and ContactId")
	}
	for _, m := range o.records["CampaignMember"] {
		if !m.deleted && m.fields["CampaignId"] == fields["CampaignId"] &&
			((lead != nil && m.fields["LeadId"] == lead) || (contact != nil && m.fields["ContactId"] == contact)) {
			return fail(connector.CodeDuplicate, "Already a campaign member.")
		}
	}
	return connector.Result{}
}

func (o *Org) update(user string, def *objectDef, r *record, fields map[string]any) connector.Result {
	if def.Name == "Lead" && r.fields["IsConverted"] == true {
		return fail(connector.CodeConvertedLead, "cannot reference converted lead")
	}
	for name, v := range fields {
		if res := o.check(def, name, v, false); res.Error != nil {
			return res
		}
		if v == nil && slices.Contains(def.required, name) {
			return failFields("REQUIRED_FIELD_MISSING", []string{name}, "Required fields are missing: [%s]", name)
		}
	}
	for name, v := range fields {
		r.fields[name] = v
	}
	o.touch(r, user)
	return connector.Result{ID: r.id}
}

func (o *Org) upsert(user string, def *objectDef, field, value string, fields map[string]any) connector.Result {
	f, ok := def.Field(field)
	if !ok || !f.ExternalID {
		return failFields("INVALID_FIELD", []string{field}, "%s is not an external id field of %s", field, def.Name)
	}
	if value == "" {
		return failFields("MISSING_ARGUMENT", []string{field}, "no external id value")
	}
	var found []*record
	for _, r := range o.sorted(def.Name) {
		if !r.deleted && r.fields[field] != nil && strings.EqualFold(fmt.Sprint(r.fields[field]), value) {
			found = append(found, r)
		}
	}
	if v, ok := fields[field]; ok && v != value {
		return failFields("INVALID_FIELD", []string{field}, "the body sets %s to another value than the external id", field)
	}
	fields[field] = value
	switch len(found) {
	case 0:
		return o.create(user, def, fields)
	case 1:
		return o.update(user, def, found[0], fields)
	}
	return failFields("DUPLICATE_EXTERNAL_ID", []string{field}, "%s = %q matches %d records", field, value, len(found))
}

// check validates one field value of a write.
func (o *Org) check(def *objectDef, name string, v any, create bool) connector.Result {
	f, ok := def.Field(name)
	if !ok {
		return failFields("INVALID_FIELD", []string{name}, "No such column '%s' on sobject of type %s", name, def.Name)
	}
	if (create && !f.Createable) || (!create && !f.Updateable) {
		return failFields("INVALID_FIELD_FOR_INSERT_UPDATE", []string{name}, "Unable to create/update fields: %s", name)
	}
	if v == nil {
		if f.Type == "boolean" {
			return failFields("INVALID_TYPE_ON_FIELD_IN_RECORD", []string{name}, "%s: a boolean cannot be null", name)
		}
		return connector.Result{}
	}
	bad := func(want string) connector.Result {
		return failFields("INVALID_TYPE_ON_FIELD_IN_RECORD", []string{name}, "%s: value not of required type %s: %v", name, want, v)
	}
	switch f.Type {
	case "boolean":
		if _, ok := v.(bool); !ok {
			return bad("boolean")
		}
		return connector.Result{}
	case "double", "currency", "percent", "int":
		if n, ok := v.(float64); !ok || math.IsNaN(n) {
			return bad(string(f.Type))
		}
		return connector.Result{}
	}
	s, ok := v.(string)
	if !ok {
		return bad(string(f.Type))
	}
	if f.Length > 0 && len([]rune(s)) > f.Length {
		return failFields("STRING_TOO_LONG", []string{name}, "%s: data value too large (max length=%d)", name, f.Length)
	}
	switch f.Type {
	case "email":
		if a, err := mail.ParseAddress(s); err != nil || a.Address != s || !strings.Contains(s[strings.LastIndex(s, "@"):], ".") {
			return failFields("INVALID_EMAIL_ADDRESS", []string{name}, "%s: invalid email address: %s", name, s)
		}
	case "date":
		if _, err := time.Parse(time.DateOnly, s); err != nil {
			return bad("date")
		}
	case "datetime":
		if _, err := time.Parse(time.RFC3339, s); err != nil {
			return bad("datetime")
		}
	case "reference":
		return o.checkReference(f, s)
	}
	return connector.Result{}
}

func (o *Org) checkReference(f connector.Field, id string) connector.Result {
	full, ok := validID(id)
	if !ok {
		return failFields("MALFORMED_ID", []string{f.Name}, "%s: id value of incorrect type: %s", f.Name, id)
	}
	obj, err := objectOfID(full)
	if err != nil || !slices.Contains(f.ReferenceTo, obj) {
		return failFields("FIELD_INTEGRITY_EXCEPTION", []string{f.Name}, "%s: id value of incorrect type: %s", f.Name, id)
	}
	if r, ok := o.records[obj][full]; !ok || r.deleted {
		return failFields("INVALID_CROSS_REFERENCE_KEY", []string{f.Name}, "invalid cross reference id: %s", id)
	}
	if obj == "Group" && o.records[obj][full].fields["Type"] != "Queue" {
		return failFields("FIELD_INTEGRITY_EXCEPTION", []string{f.Name}, "%s: owner must be a user or a queue", f.Name)
	}
	return connector.Result{}
}
