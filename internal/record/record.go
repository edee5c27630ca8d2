// Package record holds Conversion's side of every synced record: its type,
// its field values with the time and source of each change, and its link to
// the CRM record it is synced with. Ingest (this package's Service) is the
// only way changes enter crmsync.
package record

import (
	"net/url"
	"reflect"
	"strings"
	"time"
)

// Type is the kind of a Conversion record.
type Type string

const (
	TypeContact        Type = "CONTACT"
	TypeCompany        Type = "COMPANY"
	TypeCampaign       Type = "CAMPAIGN"
	TypeCampaignMember Type = "CAMPAIGN_MEMBER"
	// TypeTask is a Salesforce Task created by a workflow action.
	TypeTask Type = "TASK"
)

// Types lists the record types users set preferences for.
var Types = []Type{TypeContact, TypeCompany, TypeCampaign, TypeCampaignMember}

// AllTypes lists every record type, Types then TypeTask (the order of the
// GraphQL RecordType enum, which is bound to Type).
var AllTypes = []Type{TypeContact, TypeCompany, TypeCampaign, TypeCampaignMember, TypeTask}

// Valid reports whether t is a known record type.
func (t Type) Valid() bool {
	switch t {
	case TypeContact, TypeCompany, TypeCampaign, TypeCampaignMember, TypeTask:
		return true
	}
	return false
}

// Source says where a change came from.
type Source string

const (
	SourceUI         Source = "UI"
	SourceForm       Source = "FORM"
	SourceImport     Source = "IMPORT"
	SourceAPI        Source = "API"
	SourceWorkflow   Source = "WORKFLOW"
	SourceSalesforce Source = "SALESFORCE"
)

// Valid reports whether s is a source a Conversion change may name.
func (s Source) Valid() bool {
	switch s {
	case SourceUI, SourceForm, SourceImport, SourceAPI, SourceWorkflow:
		return true
	}
	return false
}

// FieldState is one field's value with when and by whom it last changed.
// Value is a JSON scalar: nil, string, float64 or bool.
type FieldState struct {
	Value     any       `json:"v"`
	ChangedAt time.Time `json:"at"`
	Source    Source    `json:"src"`
	// Second marks a value applied from Salesforce whose ChangedAt is a
	// LastModifiedDate: known to the second, so a change within that
	// second is not newer (ties go to Salesforce).
	Second bool `json:"sec,omitempty"`
	// Superseded marks a queued change (outbound item) that was older than
	// the field's value in Conversion when it arrived: it is kept for the
	// sync log, never sent. Records never carry it.
	Superseded bool `json:"sup,omitempty"`
}

// Fields maps Conversion field names to their state.
type Fields map[string]FieldState

// Keep sets field name to st unless it holds a later change: the latest
// change by change time wins, the one kept last on a tie (see Supersedes).
func (f Fields) Keep(name string, st FieldState) {
	if prev, ok := f[name]; !ok || !prev.Supersedes(st) {
		f[name] = st
	}
}

// Supersedes reports whether the field's value s is newer than a change st
// to it, which then must not replace it: s changed later, or, for a value
// from Salesforce known to the second (Second), st did not change in a
// later second (ties go to Salesforce).
func (s FieldState) Supersedes(st FieldState) bool {
	if s.Second {
		return !st.ChangedAt.Truncate(time.Second).After(s.ChangedAt)
	}
	return s.ChangedAt.After(st.ChangedAt)
}

// Blank reports whether v counts as empty for sync decisions (nil or "").
func Blank(v any) bool {
	if v == nil {
		return true
	}
	s, ok := v.(string)
	return ok && s == ""
}

// SameValue compares two JSON scalars for sync purposes: nil and "" are
// the same (blank), and numbers compare by value.
func SameValue(a, b any) bool {
	if Blank(a) || Blank(b) {
		return Blank(a) && Blank(b)
	}
	if af, ok := toFloat(a); ok {
		bf, ok := toFloat(b)
		return ok && af == bf
	}
	return reflect.DeepEqual(a, b)
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	}
	return 0, false
}

// Domain reduces a website to its host, lower case and without "www.", so
// "https://www.Acme.com/about" and "acme.com" name the same company.
func Domain(website string) string {
	w := strings.ToLower(strings.TrimSpace(website))
	if w == "" {
		return ""
	}
	if !strings.Contains(w, "://") {
		w = "http://" + w
	}
	u, err := url.Parse(w)
	if err != nil {
		return ""
	}
	return strings.TrimPrefix(u.Hostname(), "www.")
}

// Stamp is when a CRM value became true, as crmsync knows it: the time of
// the Conversion change crmsync wrote (Written, exact), or the CRM record's
// LastModifiedDate when crmsync read the value (second precision: the
// value may have become true at any moment of that second).
type Stamp struct {
	At      time.Time `json:"at"`
	Written bool      `json:"w,omitempty"`
}

// ReadStamp is the stamp of a value read from a CRM record last modified at
// lastModified.
func ReadStamp(lastModified time.Time) Stamp { return Stamp{At: lastModified.UTC()} }

// WrittenStamp is the stamp of a value crmsync wrote from a Conversion
// change made at changedAt.
func WrittenStamp(changedAt time.Time) Stamp { return Stamp{At: changedAt.UTC(), Written: true} }

// Compare orders a Conversion change made at t against the CRM value
// stamped s: +1 when the change is newer, -1 when the CRM value is, 0 on a
// tie. Against a read stamp (second precision) t counts by its second;
// against a written stamp (an exact Conversion time) exactly. Ties go to
// the CRM: only +1 lets Conversion's value win.
func (s Stamp) Compare(t time.Time) int {
	if !s.Written {
		t = t.Truncate(time.Second)
	}
	return t.Compare(s.At)
}

// Known is what crmsync knows of a CRM record's values without reading
// it: the snapshot of the values it last wrote or read, and the values it
// is writing (or wrote without learning the outcome), each with its stamp.
type Known struct {
	Synced        map[string]any
	SyncedStamps  map[string]Stamp
	Pending       map[string]any
	PendingStamps map[string]Stamp
}

// Known returns what the record knows of its CRM record.
func (r *Record) Known() Known {
	return Known{Synced: r.CRMFields, SyncedStamps: r.CRMStamps, Pending: r.CRMPending, PendingStamps: r.CRMPendingStamps}
}

// How a CRM value's stamp is known (Known.Stamp).
const (
	// StampSnapshot: the value still equals the one crmsync last wrote or
	// read (unchanged since the last sync), so it is as old as that one.
	StampSnapshot = "snapshot"
	// StampPending: the value equals one crmsync wrote without recording
	// the outcome: crmsync's own write.
	StampPending = "pending"
	// StampRead: neither; the value is as old as the record's
	// LastModifiedDate just read.
	StampRead = "read"
)

// Stamp returns when the CRM value v of crmField, read from a record last
// modified at lastModified, became true: the stamp of the snapshot value
// it still equals, else of the pending value it equals, else the read's
// LastModifiedDate; and which of the three it is.
func (k Known) Stamp(crmField string, v any, lastModified time.Time) (Stamp, string) {
	if s, ok := k.Synced[crmField]; ok && SameValue(s, v) {
		if st, ok := k.SyncedStamps[crmField]; ok && !st.At.IsZero() {
			return st, StampSnapshot
		}
	}
	if p, ok := k.Pending[crmField]; ok && SameValue(p, v) {
		if st, ok := k.PendingStamps[crmField]; ok && !st.At.IsZero() {
			return st, StampPending
		}
	}
	return ReadStamp(lastModified), StampRead
}

// DescribeStamp says, for sync-log reasons, when a CRM value became true
// and how crmsync knows.
func DescribeStamp(st Stamp, how string) string {
	switch {
	case how == StampPending:
		return "crmsync's own write (outcome unrecorded) of the Conversion change of " + st.At.UTC().Format(time.RFC3339Nano)
	case how == StampSnapshot && st.Written:
		return "crmsync's write of the Conversion change of " + st.At.UTC().Format(time.RFC3339Nano) + ", unchanged since"
	case how == StampSnapshot:
		return "unchanged since read with LastModifiedDate " + st.At.UTC().Format(time.RFC3339)
	}
	return "LastModifiedDate " + st.At.UTC().Format(time.RFC3339)
}
