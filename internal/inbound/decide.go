package inbound

import (
	"fmt"
	"strings"
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
	// Known is what crmsync knew of the CRM record before this read
	// (record.Record.Known): empty for a record linked to this CRM record
	// by the pull itself.
	record.Known
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
	// Stamp is when the Salesforce value became true (record.Known.Stamp):
	// the change time of the field once applied.
	Stamp record.Stamp
}

// Reasons recorded in the sync log. They are user-facing text; {crm}
// stands for the CRM's name (connection.CRMName), filled in by say.
const (
	reasonNewRecord      = "new record"
	reasonNeverApplies   = "mode never applies {crm} values"
	reasonAlwaysApplies  = "mode always applies {crm} values"
	reasonBlank          = "{crm} field is empty"
	reasonNotBlank       = "{crm} value is not empty"
	reasonCRMNewer       = "{crm} value is newer"
	reasonSameTime       = "{crm} value is as new (ties go to {crm})"
	reasonConversionNew  = "Conversion change is newer"
	reasonAlreadyHas     = "Conversion already has this value"
	reasonNotReadOnCRM   = "field does not exist on the CRM object"
	reasonNothingApplied = "no {crm} change applied"
	reasonSuperseded     = "change event older than the value crmsync holds: left as it is"
)

// decideInbound applies a field's mode (docs/architecture.md#sync-modes, inbound column)
// to the CRM value v of a field whose Conversion state is conv.
//
// TWO_WAY compares the same two times as the outbound rule (internal/push
// decideOutbound), so a pull and a flush always agree on the winner: when
// Salesforce's value became true (record.Known.Stamp: the stamp of the
// snapshot value it still equals, else of crmsync's own unrecorded write it
// equals, else the LastModifiedDate just read) against the time of
// Conversion's value. Salesforce's value is applied unless Conversion's is
// newer (record.Stamp.Compare; ties go to Salesforce). A LastModifiedDate
// bumped by an edit to another field therefore never overwrites a newer
// Conversion change to this one, and crmsync's own writes read back are
// exactly as old as the Conversion change they carried.
//
// crm names the CRM in the reasons.
func decideInbound(m prefs.FieldMapping, conv record.FieldState, v any, cur crmView, crm string) fieldDecision {
	st, how := cur.Stamp(m.CRMField, v, cur.LastModified)
	d := fieldDecision{Field: m.Field, CRMField: m.CRMField, Mode: m.Mode, Value: v, Stamp: st}
	apply := func(reason string) fieldDecision { d.Apply, d.Reason = true, say(reason, crm); return d }
	keep := func(reason string) fieldDecision { d.Apply, d.Reason = false, say(reason, crm); return d }

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
		times := fmt.Sprintf("({crm} value: %s; changed in Conversion %s)", record.DescribeStamp(st, how), stamp(conv.ChangedAt))
		switch st.Compare(conv.ChangedAt) {
		case 1:
			return keep(reasonConversionNew + " " + times)
		case 0:
			return apply(reasonSameTime + " " + times)
		}
		return apply(reasonCRMNewer + " " + times)
	}
	return keep(reasonNeverApplies)
}

// say fills a reason's {crm} with the CRM's name.
func say(reason, crm string) string { return strings.ReplaceAll(reason, "{crm}", crm) }

func stamp(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339Nano)
}
