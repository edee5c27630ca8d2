package prefs

import "github.com/crmsync/crmsync/internal/record"

// FieldMapping links a Conversion field to a CRM field with a sync mode.
type FieldMapping struct {
	RecordType record.Type
	Field      string
	CRMField   string
	Mode       Mode
}

// CreateAs is what a new Conversion contact becomes in the CRM.
type CreateAs string

const (
	CreateAsLead    CreateAs = "LEAD"
	CreateAsContact CreateAs = "CONTACT"
)

// ObjectPreference is the per-record-type preference.
type ObjectPreference struct {
	RecordType   record.Type
	WriteEnabled bool
	ReadEnabled  bool
	// CreateAs applies to contacts only.
	CreateAs CreateAs
}

// DefaultObjectPreference is the preference of a type nobody configured:
// written and read, contacts created as Leads.
func DefaultObjectPreference(t record.Type) ObjectPreference {
	return ObjectPreference{RecordType: t, WriteEnabled: true, ReadEnabled: true, CreateAs: CreateAsLead}
}

// defaultFields are the standard mappings every workspace starts with.
var defaultFields = map[record.Type][][2]string{
	record.TypeContact: {
		{"email", "Email"}, {"firstName", "FirstName"}, {"lastName", "LastName"},
		{"phone", "Phone"}, {"title", "Title"}, {"company", "Company"},
	},
	record.TypeCompany: {
		{"name", "Name"}, {"website", "Website"}, {"phone", "Phone"}, {"industry", "Industry"},
	},
	record.TypeCampaign: {
		{"name", "Name"}, {"status", "Status"}, {"description", "Description"},
	},
	record.TypeCampaignMember: {
		{"status", "Status"},
	},
}

// DefaultFieldMappings returns the standard mappings for t, all in
// DefaultMode.
func DefaultFieldMappings(t record.Type) []FieldMapping {
	pairs := defaultFields[t]
	out := make([]FieldMapping, 0, len(pairs))
	for _, p := range pairs {
		out = append(out, FieldMapping{RecordType: t, Field: p[0], CRMField: p[1], Mode: DefaultMode})
	}
	return out
}
