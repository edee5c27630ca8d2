// Package record holds Conversion's side of every synced record: its type,
// its field values with the time and source of each change, and its link to
// the CRM record it is synced with. Ingest (this package's Service) is the
// only way changes enter crmsync.
package record

import (
	"fmt"
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

// ParseType returns the Type named s.
func ParseType(s string) (Type, error) {
	if t := Type(s); t.Valid() {
		return t, nil
	}
	return "", fmt.Errorf("unknown record type %q", s)
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

// Blank reports whether v counts as empty for sync decisions (nil or "").
func Blank(v any) bool {
	if v == nil {
		return true
	}
	s, ok := v.(string)
	return ok && s == ""
}
