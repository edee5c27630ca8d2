package push

import (
	"fmt"
	"strings"
	"time"

	"github.com/crmsync/crmsync/internal/prefs"
	"github.com/crmsync/crmsync/internal/record"
)

// crmState is what the flush knows of a CRM record just before writing it.
type crmState struct {
	// Exists is false for a record about to be created.
	Exists           bool
	Fields           map[string]any
	LastModified     time.Time
	LastModifiedByID string
	// Known is what crmsync knew of the record before this read (the
	// record's snapshot and pending values with their stamps); empty for a
	// record not linked to this CRM record before the flush.
	record.Known
}

// fieldDecision is the outbound verdict for one field of one record.
type fieldDecision struct {
	Field    string
	CRMField string
	Mode     prefs.Mode
	Value    any
	Send     bool
	Reason   string
}

// Reasons recorded in the sync log. They are user-facing text; {crm}
// stands for the CRM's name (connection.CRMName), filled in by say.
const (
	reasonNewRecord    = "new record"
	reasonAlwaysSends  = "mode always sends"
	reasonNeverSends   = "mode never sends"
	reasonBlank        = "{crm} field is empty"
	reasonNotBlank     = "{crm} field is not empty"
	reasonEqual        = "{crm} already has this value"
	reasonNewer        = "Conversion change is newer"
	reasonNotOnObject  = "field does not exist on the CRM object"
	reasonNotWriteable = "CRM field is not writeable"
	reasonCRMNewer     = "{crm} value is newer"
	reasonSameTime     = "{crm} value is as new (ties go to {crm})"
	reasonSuperseded   = "superseded"
)

// decideOutbound applies a field's mode (docs/architecture.md#sync-modes, outbound column).
//
// TWO_WAY compares times: the Conversion change's changedAt against the
// time Salesforce's current value became true (record.Known.Stamp): the
// stamp of the snapshot value it still equals (unchanged since the last
// sync: the LastModifiedDate it was read with, or the time of the
// Conversion change crmsync wrote), else of a value crmsync wrote without
// recording the outcome, else the LastModifiedDate just read. It sends only
// when the Conversion change is newer (record.Stamp.Compare: by the second
// against a LastModifiedDate; ties go to Salesforce).
//
// crm names the CRM in the reasons.
func decideOutbound(m prefs.FieldMapping, fs record.FieldState, cur crmState, crm string) fieldDecision {
	d := fieldDecision{Field: m.Field, CRMField: m.CRMField, Mode: m.Mode, Value: fs.Value}
	send := func(reason string) fieldDecision { d.Send, d.Reason = true, say(reason, crm); return d }
	drop := func(reason string) fieldDecision { d.Send, d.Reason = false, say(reason, crm); return d }

	if m.Mode == prefs.DoNotSync {
		return drop(reasonNeverSends)
	}
	if !cur.Exists {
		// Nothing in the CRM to prefer: every synced field goes with the create.
		return send(reasonNewRecord)
	}
	current, has := cur.Fields[m.CRMField]
	if has && record.SameValue(current, fs.Value) {
		return drop(reasonEqual)
	}
	switch m.Mode {
	case prefs.AlwaysPreferConversion:
		return send(reasonAlwaysSends)
	case prefs.AlwaysPreferSalesforce:
		return drop(reasonNeverSends)
	case prefs.PreferSalesforceUnlessEmpty:
		if record.Blank(current) {
			return send(reasonBlank)
		}
		return drop(reasonNotBlank)
	case prefs.TwoWay:
		st, how := cur.Stamp(m.CRMField, current, cur.LastModified)
		times := fmt.Sprintf("(changed in Conversion %s; {crm} value: %s)",
			fs.ChangedAt.UTC().Format(time.RFC3339Nano), record.DescribeStamp(st, how))
		switch st.Compare(fs.ChangedAt) {
		case 1:
			return send(reasonNewer + " " + times)
		case 0:
			return drop(reasonSameTime + " " + times)
		}
		return drop(reasonCRMNewer + " " + times)
	}
	return drop(reasonNeverSends)
}

// say fills a reason's {crm} with the CRM's name.
func say(reason, crm string) string { return strings.ReplaceAll(reason, "{crm}", crm) }

// supersededReason is the sync-log reason of a queued Conversion change that
// is older than the field's value in Conversion: it is never sent.
func supersededReason(fs, current record.FieldState, crm string) string {
	switch {
	case current.Supersedes(fs) && current.Second:
		return fmt.Sprintf("%s: Conversion's value from %s (last modified %s) is not older than this change (changed %s; ties go to %[2]s); not sent",
			reasonSuperseded, crm, current.ChangedAt.UTC().Format(time.RFC3339), fs.ChangedAt.UTC().Format(time.RFC3339Nano))
	case current.Supersedes(fs):
		return fmt.Sprintf("%s: Conversion's value (changed %s, %s) is newer than this change (changed %s); not sent",
			reasonSuperseded, current.ChangedAt.UTC().Format(time.RFC3339Nano), current.Source, fs.ChangedAt.UTC().Format(time.RFC3339Nano))
	}
	return fmt.Sprintf("%s: Conversion had a newer value when this change (changed %s) arrived; not sent",
		reasonSuperseded, fs.ChangedAt.UTC().Format(time.RFC3339Nano))
}
