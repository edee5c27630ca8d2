package engine

import (
	"fmt"
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
	// Synced holds, per CRM field, the value crmsync last wrote or read;
	// a field whose current value still equals it was not edited in the
	// CRM since.
	Synced map[string]any
	// Pending holds values crmsync sent to the CRM without recording the
	// outcome (record.Record.CRMPending): they are its own too.
	Pending map[string]any
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

// Reasons recorded in the sync log. They are user-facing text.
const (
	reasonNewRecord     = "new record"
	reasonAlwaysSends   = "mode always sends"
	reasonNeverSends    = "mode never sends"
	reasonBlank         = "Salesforce field is empty"
	reasonNotBlank      = "Salesforce field is not empty"
	reasonEqual         = "Salesforce already has this value"
	reasonUnchanged     = "Salesforce field unchanged since last sync"
	reasonOwnWrite      = "last Salesforce change was crmsync's own"
	reasonNewer         = "Conversion change is newer"
	reasonNotOnObject   = "field does not exist on the CRM object"
	reasonNotWriteable  = "CRM field is not writeable"
	reasonSalesforceNew = "Salesforce value is newer"
)

// decideOutbound applies a field's mode (ARCHITECTURE §5.4, outbound column).
// integrationUser is the CRM user crmsync writes as: a record it modified
// last was not edited by anyone else. Ties go to the CRM: Salesforce stamps
// have second precision, so a Conversion change in the same second as the
// CRM's last modification is not considered newer.
func decideOutbound(m prefs.FieldMapping, fs record.FieldState, cur crmState, integrationUser string) fieldDecision {
	d := fieldDecision{Field: m.Field, CRMField: m.CRMField, Mode: m.Mode, Value: fs.Value}
	send := func(reason string) fieldDecision { d.Send, d.Reason = true, reason; return d }
	drop := func(reason string) fieldDecision { d.Send, d.Reason = false, reason; return d }

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
		if synced, ok := cur.Synced[m.CRMField]; ok && record.SameValue(synced, current) {
			return send(reasonUnchanged)
		}
		if pending, ok := cur.Pending[m.CRMField]; ok && record.SameValue(pending, current) {
			return send(reasonUnchanged)
		}
		if integrationUser != "" && cur.LastModifiedByID == integrationUser {
			return send(reasonOwnWrite)
		}
		if fs.ChangedAt.Truncate(time.Second).After(cur.LastModified) {
			return send(reasonNewer)
		}
		return drop(fmt.Sprintf("%s (LastModifiedDate %s, changed in Conversion %s)", reasonSalesforceNew,
			cur.LastModified.UTC().Format(time.RFC3339), fs.ChangedAt.UTC().Format(time.RFC3339Nano)))
	}
	return drop(reasonNeverSends)
}
