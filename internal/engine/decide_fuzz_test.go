package engine

import (
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
//   - TWO_WAY sends a change that is not newer than the CRM's last
//     modification (a tie within the second, or older) only when the CRM
//     field is unchanged since the last sync or crmsync itself modified the
//     record last.
func FuzzDecideOutbound(f *testing.F) {
	f.Add(uint8(0), true, uint8(2), "VP", true, uint8(2), "CEO", int64(0), int64(0), false, false, uint8(0), "")
	f.Add(uint8(0), true, uint8(2), "VP", true, uint8(2), "CEO", int64(400e6), int64(0), false, false, uint8(0), "")
	f.Add(uint8(0), true, uint8(2), "VP", true, uint8(2), "CEO", int64(-60e9), int64(0), true, false, uint8(0), "")
	f.Add(uint8(0), true, uint8(2), "VP", true, uint8(2), "CEO", int64(-60e9), int64(0), false, true, uint8(2), "VP")
	f.Add(uint8(0), true, uint8(2), "VP", true, uint8(2), "CEO", int64(1e9), int64(500e6), false, false, uint8(0), "")
	f.Add(uint8(1), true, uint8(1), "", true, uint8(2), "CEO", int64(0), int64(0), false, false, uint8(0), "")
	f.Add(uint8(2), true, uint8(4), "", true, uint8(4), "", int64(0), int64(0), false, false, uint8(0), "")
	f.Add(uint8(3), false, uint8(0), "", false, uint8(2), "CEO", int64(0), int64(0), false, false, uint8(0), "")
	f.Add(uint8(4), false, uint8(0), "", false, uint8(2), "CEO", int64(0), int64(0), false, false, uint8(0), "")
	f.Fuzz(func(t *testing.T, mode uint8, exists bool, curKind uint8, curS string, has bool,
		valKind uint8, valS string, changedNanos, lastModNanos int64, byUs, hasSynced bool, syncedKind uint8, syncedS string) {
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
		if hasSynced {
			cur.Synced = map[string]any{"Title": fuzzValue(syncedKind, syncedS)}
		}

		d := decideOutbound(m, fs, cur, us)
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
			newer := fs.ChangedAt.Truncate(time.Second).After(cur.LastModified)
			unchanged := hasSynced && record.SameValue(cur.Synced["Title"], current)
			if d.Send && !newer && !unchanged && !byUs {
				t.Fatalf("TWO_WAY sent a change not newer than the CRM's (changed %v, CRM %v): %+v", fs.ChangedAt, cur.LastModified, d)
			}
			if !d.Send && !equal && (newer || unchanged || byUs) {
				t.Fatalf("TWO_WAY kept back a change that should win: %+v", d)
			}
		}
	})
}
