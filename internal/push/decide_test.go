package push

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/internal/prefs"
	"github.com/crmsync/crmsync/internal/record"
)

func TestDecideOutbound(t *testing.T) {
	t.Parallel()
	const us, rep = "005000000000001AAA", "005000000000002AAA"
	base := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	older, newer := base.Add(-time.Minute), base.Add(time.Minute)
	sameSecond := base.Add(400 * time.Millisecond)

	sf := func(title any, by string, synced ...any) crmState {
		s := crmState{Exists: true, Fields: map[string]any{"Title": title}, LastModified: base, LastModifiedByID: by}
		if len(synced) > 0 {
			s.Synced = map[string]any{"Title": synced[0]}
			s.SyncedStamps = map[string]record.Stamp{"Title": synced[1].(record.Stamp)}
		}
		return s
	}
	pending := func(s crmState, v any, st record.Stamp) crmState {
		s.Pending, s.PendingStamps = map[string]any{"Title": v}, map[string]record.Stamp{"Title": st}
		return s
	}
	readEarlier := record.ReadStamp(base.Add(-2 * time.Minute))
	wroteAt := func(t time.Time) record.Stamp { return record.WrittenStamp(t) }
	tests := map[string]struct {
		mode    prefs.Mode
		changed time.Time
		cur     crmState
		send    bool
		reason  string
	}{
		"two-way, Salesforce newer":                 {prefs.TwoWay, older, sf("VP", rep), false, reasonCRMNewer},
		"two-way, Conversion newer":                 {prefs.TwoWay, newer, sf("VP", rep), true, reasonNewer},
		"two-way, tie goes to Salesforce":           {prefs.TwoWay, sameSecond, sf("VP", rep), false, reasonSameTime},
		"two-way, blank Salesforce but newer":       {prefs.TwoWay, older, sf(nil, rep), false, reasonCRMNewer},
		"two-way, last modified by crmsync":         {prefs.TwoWay, older, sf("VP", us), false, reasonCRMNewer},
		"two-way, unchanged since an earlier read":  {prefs.TwoWay, older, sf("VP", rep, "VP", readEarlier), true, "unchanged since read with LastModifiedDate"},
		"two-way, unchanged but read after change":  {prefs.TwoWay, older, sf("VP", rep, "VP", record.ReadStamp(base)), false, reasonCRMNewer},
		"two-way, own write of an older change":     {prefs.TwoWay, older, sf("VP", us, "VP", wroteAt(older.Add(-time.Second))), true, "crmsync's write of the Conversion change"},
		"two-way, own write of a newer change":      {prefs.TwoWay, older, sf("VP", us, "VP", wroteAt(older.Add(time.Millisecond))), false, reasonCRMNewer},
		"two-way, own write of the same instant":    {prefs.TwoWay, older, sf("VP", us, "VP", wroteAt(older)), false, reasonSameTime},
		"two-way, own write is exact, not a second": {prefs.TwoWay, older.Add(time.Millisecond), sf("VP", us, "VP", wroteAt(older)), true, reasonNewer},
		"two-way, own unrecorded write, older":      {prefs.TwoWay, older, pending(sf("VP", us), "VP", wroteAt(older.Add(-time.Second))), true, "outcome unrecorded"},
		"two-way, own unrecorded write, newer":      {prefs.TwoWay, older, pending(sf("VP", us), "VP", wroteAt(newer)), false, "outcome unrecorded"},
		"two-way, field edited since sync":          {prefs.TwoWay, older, sf("VP", rep, "CTO", readEarlier), false, reasonCRMNewer},
		"two-way, already equal":                    {prefs.TwoWay, newer, sf("CEO", rep), false, reasonEqual},
		"prefer SF, blank":                          {prefs.PreferSalesforceUnlessEmpty, older, sf(nil, rep), true, reasonBlank},
		"prefer SF, empty string":                   {prefs.PreferSalesforceUnlessEmpty, older, sf("", rep), true, reasonBlank},
		"prefer SF, not blank":                      {prefs.PreferSalesforceUnlessEmpty, newer, sf("VP", rep), false, reasonNotBlank},
		"prefer SF, by crmsync, not blank":          {prefs.PreferSalesforceUnlessEmpty, newer, sf("VP", us), false, reasonNotBlank},
		"always Conversion, SF newer":               {prefs.AlwaysPreferConversion, older, sf("VP", rep), true, reasonAlwaysSends},
		"always Conversion, blank":                  {prefs.AlwaysPreferConversion, older, sf(nil, rep), true, reasonAlwaysSends},
		"always Salesforce, Conversion newer":       {prefs.AlwaysPreferSalesforce, newer, sf("VP", rep), false, reasonNeverSends},
		"always Salesforce, blank":                  {prefs.AlwaysPreferSalesforce, newer, sf(nil, rep), false, reasonNeverSends},
		"do not sync":                               {prefs.DoNotSync, newer, sf(nil, rep), false, reasonNeverSends},
		"do not sync on create":                     {prefs.DoNotSync, newer, crmState{}, false, reasonNeverSends},
		"create sends always-Salesforce":            {prefs.AlwaysPreferSalesforce, newer, crmState{}, true, reasonNewRecord},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := prefs.FieldMapping{RecordType: record.TypeContact, Field: "title", CRMField: "Title", Mode: tt.mode}
			d := decideOutbound(m, record.FieldState{Value: "CEO", ChangedAt: tt.changed, Source: record.SourceUI}, tt.cur, "Salesforce")
			require.Equal(t, tt.send, d.Send, d.Reason)
			require.Contains(t, d.Reason, say(tt.reason, "Salesforce"))
			// Another connector's CRM is named neutrally, with the same verdict.
			other := decideOutbound(m, record.FieldState{Value: "CEO", ChangedAt: tt.changed, Source: record.SourceUI}, tt.cur, "CRM")
			require.Equal(t, d.Send, other.Send)
			require.Contains(t, other.Reason, say(tt.reason, "CRM"))
			require.NotContains(t, other.Reason, "Salesforce")
			require.Equal(t, "CEO", d.Value)
		})
	}
}

func BenchmarkDecideOutbound(b *testing.B) {
	base := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	cur := crmState{Exists: true, Fields: map[string]any{"Title": "VP"}, LastModified: base, LastModifiedByID: "005B",
		Known: record.Known{Synced: map[string]any{"Title": "CTO"}}}
	fs := record.FieldState{Value: "CEO", ChangedAt: base.Add(time.Minute), Source: record.SourceUI}
	modes := []prefs.Mode{prefs.TwoWay, prefs.PreferSalesforceUnlessEmpty, prefs.AlwaysPreferConversion, prefs.AlwaysPreferSalesforce, prefs.DoNotSync}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m := prefs.FieldMapping{RecordType: record.TypeContact, Field: "title", CRMField: "Title", Mode: modes[i%len(modes)]}
		decideOutbound(m, fs, cur, "Salesforce")
		i++
	}
}
