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
}

// Fields maps Conversion field names to their state.
type Fields map[string]FieldState

// Keep sets field name to st unless it holds a later change: the latest
// change by change time wins, the one kept last on a tie.
func (f Fields) Keep(name string, st FieldState) {
	if prev, ok := f[name]; !ok || !prev.ChangedAt.After(st.ChangedAt) {
		f[name] = st
	}
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
