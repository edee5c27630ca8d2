package inbound

import (
	"fmt"
	"time"

	"github.com/crmsync/crmsync/internal/prefs"
	"github.com/crmsync/crmsync/internal/record"
)

// crmView is what a pull knows of one CRM record while deciding its fields.
type crmView struct {
	// Created is true when the pull creates the Conversion record.
	Created          bool
	LastModified     time.Time
	LastModifiedByID string
	// Synced is the record's snapshot (record.CRMFields): per CRM field,
	// the value crmsync last wrote or read. Nil for a record linked to this
	// CRM record by the pull itself.
	Synced map[string]any
}

// fieldDecision is the inbound verdict for one field of one record.
type fieldDecision struct {
	Field    string
	CRMField string
	Mode     prefs.Mode
	Value    any
	Apply    bool
	Reason   string
	// Agree is true when Conversion already holds the value: nothing to
	// decide, nothing worth a log line.
	Agree bool
}

// Reasons recorded in the sync log. They are user-facing text.
const (
	reasonNewRecord      = "new record"
	reasonNeverApplies   = "mode never applies Salesforce values"
	reasonAlwaysApplies  = "mode always applies Salesforce values"
	reasonBlank          = "Salesforce field is empty"
	reasonNotBlank       = "Salesforce value is not empty"
	reasonUnchanged      = "Salesforce field unchanged since last sync; Conversion's change stands"
	reasonOwnWrite       = "last Salesforce change was crmsync's own; Conversion's change stands"
	reasonSalesforceNew  = "Salesforce change is newer"
	reasonConversionNew  = "Conversion change is newer"
	reasonAlreadyHas     = "Conversion already has this value"
	reasonNotReadOnCRM   = "field does not exist on the CRM object"
	reasonNothingApplied = "no Salesforce change applied"
)

// decideInbound applies a field's mode (ARCHITECTURE §5.4, inbound column)
// to the CRM value v of a field whose Conversion state is conv.
//
// pending says Conversion's value has not been through a flush yet: an
// outbound item carries the field, or writing is off for the record type.
// Only TWO_WAY looks at it:
//
//   - with a pending Conversion change the rule is the exact complement of
//     the outbound rule (internal/engine decideOutbound), so the pull and the
//     flush that follows agree: Salesforce's value is applied only when the
//     CRM field changed since the last sync (v differs from the snapshot),
//     the change was not crmsync's own, and it is not older than
//     Conversion's (ties go to Salesforce: LastModifiedDate has second
//     precision, so a Conversion change within that second is not newer).
//     A record-level LastModifiedDate bumped by an edit to another field
//     therefore never overwrites a pending Conversion change to this one.
//   - without one, Conversion's value already went through a flush that
//     kept Salesforce's (outbound found Salesforce newer, or the field was
//     not part of the write and the flush refreshed the snapshot with what
//     it read), so the snapshot says nothing about who is newer: the newer
//     change by time wins, ties to Salesforce.
func decideInbound(m prefs.FieldMapping, conv record.FieldState, v any, cur crmView, pending bool, integrationUser string) fieldDecision {
	d := fieldDecision{Field: m.Field, CRMField: m.CRMField, Mode: m.Mode, Value: v}
	apply := func(reason string) fieldDecision { d.Apply, d.Reason = true, reason; return d }
	keep := func(reason string) fieldDecision { d.Apply, d.Reason = false, reason; return d }

	if m.Mode == prefs.DoNotSync {
		d.Agree = record.SameValue(conv.Value, v)
		return keep(reasonNeverApplies)
	}
	if cur.Created {
		// Nothing in Conversion to prefer: every synced field comes along,
		// as every synced field goes with an outbound create.
		if record.Blank(v) {
			d.Agree = true
			return keep(reasonBlank)
		}
		return apply(reasonNewRecord)
	}
	if record.SameValue(conv.Value, v) {
		d.Agree = true
		return keep(reasonAlreadyHas)
	}
	switch m.Mode {
	case prefs.AlwaysPreferConversion:
		return keep(reasonNeverApplies)
	case prefs.AlwaysPreferSalesforce:
		return apply(reasonAlwaysApplies)
	case prefs.PreferSalesforceUnlessEmpty:
		if record.Blank(v) {
			return keep(reasonBlank)
		}
		return apply(reasonNotBlank)
	case prefs.TwoWay:
		sfNewer := !conv.ChangedAt.Truncate(time.Second).After(cur.LastModified)
		if pending {
			if synced, ok := cur.Synced[m.CRMField]; ok && record.SameValue(synced, v) {
				return keep(reasonUnchanged)
			}
			if integrationUser != "" && cur.LastModifiedByID == integrationUser {
				return keep(reasonOwnWrite)
			}
		}
		if sfNewer {
			return apply(fmt.Sprintf("%s (LastModifiedDate %s, changed in Conversion %s)", reasonSalesforceNew,
				stamp(cur.LastModified), stamp(conv.ChangedAt)))
		}
		return keep(fmt.Sprintf("%s (changed in Conversion %s, LastModifiedDate %s)", reasonConversionNew,
			stamp(conv.ChangedAt), stamp(cur.LastModified)))
	}
	return keep(reasonNeverApplies)
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339Nano)
}
