package prefs

import (
	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/internal/record"
)

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

// DefaultFieldMappings returns the standard mappings of type t, all in
// DefaultMode: the ones the connector's data contract declares.
func DefaultFieldMappings(c *connector.DataContract, t record.Type) []FieldMapping {
	var pairs []connector.FieldMapping
	switch {
	case t == record.TypeContact && c.Contact != nil:
		pairs = c.Contact.Fields
	case t == record.TypeCompany && c.Company != nil:
		pairs = c.Company.Fields
	case t == record.TypeCampaign && c.Campaign != nil:
		pairs = c.Campaign.Fields
	case t == record.TypeCampaignMember && c.CampaignMember != nil:
		pairs = c.CampaignMember.Fields
	}
	out := make([]FieldMapping, 0, len(pairs))
	for _, p := range pairs {
		out = append(out, FieldMapping{RecordType: t, Field: p.Field, CRMField: p.CRMField, Mode: DefaultMode})
	}
	return out
}
