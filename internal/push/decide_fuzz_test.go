package push

import (
	"strings"
	"testing"
	"time"

	"github.com/crmsync/crmsync/internal/prefs"
	"github.com/crmsync/crmsync/internal/record"
)

var fuzzModes = []prefs.Mode{prefs.TwoWay, prefs.PreferSalesforceUnlessEmpty, prefs.AlwaysPreferConversion,
	prefs.AlwaysPreferSalesforce, prefs.DoNotSync}

// fuzzValue picks a JSON scalar: nil, "", a string or a number, so equal
// and blank values come up often.
func fuzzValue(kind uint8, s string) any {
	switch kind % 5 {
	case 0:
		return nil
	case 1:
		return ""
	case 2:
		return s
	case 3:
		return float64(len(s))
	default:
		return "same"
	}
}

// FuzzDecideOutbound checks the field-mode decision's invariants on any
// field and CRM state:
//   - DO_NOT_SYNC never sends;
//   - a create sends every field that is not DO_NOT_SYNC;
//   - on an existing record a value equal to the CRM's is never sent;
//   - ALWAYS_PREFER_CONVERSION sends unless equal, ALWAYS_PREFER_SALESFORCE never;
//   - PREFER_SALESFORCE_UNLESS_EMPTY sends exactly into a blank CRM field;
//   - TWO_WAY sends exactly a change newer than the time Salesforce's value
//     became true: the snapshot's stamp when the CRM still holds the
//     snapshot value, else LastModifiedDate (by the second, ties to
//     Salesforce), whoever modified the record; its reason names the
//     Conversion time.
func FuzzDecideOutbound(f *testing.F) {
	f.Add(uint8(0), true, uint8(2), "VP", true, uint8(2), "CEO", int64(0), int64(0), false, false, uint8(0), "", int64(0), false)
	f.Add(uint8(0), true, uint8(2), "VP", true, uint8(2), "CEO", int64(400e6), int64(0), false, false, uint8(0), "", int64(0), false)
	f.Add(uint8(0), true, uint8(2), "VP", true, uint8(2), "CEO", int64(-60e9), int64(0), true, false, uint8(0), "", int64(0), false)
	f.Add(uint8(0), true, uint8(2), "VP", true, uint8(2), "CEO", int64(-60e9), int64(0), false, true, uint8(2), "VP", int64(-120e9), true)
	f.Add(uint8(0), true, uint8(2), "VP", true, uint8(2), "CEO", int64(1e9), int64(500e6), false, false, uint8(0), "", int64(0), false)
	f.Add(uint8(1), true, uint8(1), "", true, uint8(2), "CEO", int64(0), int64(0), false, false, uint8(0), "", int64(0), false)
	f.Add(uint8(2), true, uint8(4), "", true, uint8(4), "", int64(0), int64(0), false, false, uint8(0), "", int64(0), false)
	f.Add(uint8(3), false, uint8(0), "", false, uint8(2), "CEO", int64(0), int64(0), false, false, uint8(0), "", int64(0), false)
	f.Add(uint8(4), false, uint8(0), "", false, uint8(2), "CEO", int64(0), int64(0), false, false, uint8(0), "", int64(0), false)
	f.Fuzz(func(t *testing.T, mode uint8, exists bool, curKind uint8, curS string, has bool,
		valKind uint8, valS string, changedNanos, lastModNanos int64, byUs, hasSynced bool, syncedKind uint8, syncedS string, syncedNanos int64, written bool) {
		const us, rep = "005000000000001AAA", "005000000000002AAA"
		base := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
		m := prefs.FieldMapping{RecordType: record.TypeContact, Field: "title", CRMField: "Title", Mode: fuzzModes[int(mode)%len(fuzzModes)]}
		fs := record.FieldState{Value: fuzzValue(valKind, valS), ChangedAt: base.Add(time.Duration(changedNanos % int64(time.Hour))), Source: record.SourceUI}
		cur := crmState{Exists: exists, LastModified: base.Add(time.Duration(lastModNanos % int64(time.Hour))), LastModifiedByID: rep}
		if byUs {
			cur.LastModifiedByID = us
		}
		var current any // what the CRM holds; nil when it lacks the field
		if has {
			current = fuzzValue(curKind, curS)
			cur.Fields = map[string]any{"Title": current}
		}
		syncedAt := record.Stamp{At: base.Add(time.Duration(syncedNanos % int64(time.Hour))), Written: written}
		if !written {
			syncedAt.At = syncedAt.At.Truncate(time.Second)
		}
		if hasSynced {
			cur.Synced = map[string]any{"Title": fuzzValue(syncedKind, syncedS)}
			cur.SyncedStamps = map[string]record.Stamp{"Title": syncedAt}
		}

		d := decideOutbound(m, fs, cur, "Salesforce")
		if d.Reason == "" {
			t.Fatal("every decision has a reason")
		}
		if d.Field != m.Field || d.CRMField != m.CRMField || d.Mode != m.Mode {
			t.Fatalf("decision %+v does not describe mapping %+v", d, m)
		}
		if m.Mode == prefs.DoNotSync {
			if d.Send {
				t.Fatalf("DO_NOT_SYNC sent: %+v", d)
			}
			return
		}
		if !exists {
			if !d.Send {
				t.Fatalf("a create must send %s: %+v", m.Mode, d)
			}
			return
		}
		equal := has && record.SameValue(current, fs.Value)
		if equal && d.Send {
			t.Fatalf("sent a value the CRM already has: %+v", d)
		}
		switch m.Mode {
		case prefs.AlwaysPreferConversion:
			if d.Send == equal {
				t.Fatalf("ALWAYS_PREFER_CONVERSION must send unless equal (equal=%v): %+v", equal, d)
			}
		case prefs.AlwaysPreferSalesforce:
			if d.Send {
				t.Fatalf("ALWAYS_PREFER_SALESFORCE sent: %+v", d)
			}
		case prefs.PreferSalesforceUnlessEmpty:
			if !equal && d.Send != record.Blank(current) {
				t.Fatalf("PREFER_SALESFORCE_UNLESS_EMPTY must send exactly into a blank field (current %v): %+v", current, d)
			}
		case prefs.TwoWay:
			// The time Salesforce's value became true: the snapshot's
			// stamp when it still holds the snapshot value, else the
			// LastModifiedDate read. Whoever modified the record last
			// plays no part.
			sfAt := record.ReadStamp(cur.LastModified)
			if hasSynced && record.SameValue(cur.Synced["Title"], current) {
				sfAt = syncedAt
			}
			newer := fs.ChangedAt.After(sfAt.At)
			if !sfAt.Written {
				newer = fs.ChangedAt.Truncate(time.Second).After(sfAt.At)
			}
			if !equal && d.Send != newer {
				t.Fatalf("TWO_WAY must send exactly a change newer than Salesforce's value (changed %v, Salesforce %+v): %+v", fs.ChangedAt, sfAt, d)
			}
			if !equal && !strings.Contains(d.Reason, fs.ChangedAt.UTC().Format(time.RFC3339Nano)) {
				t.Fatalf("TWO_WAY reason does not name the Conversion time: %+v", d)
			}
		}
	})
}
