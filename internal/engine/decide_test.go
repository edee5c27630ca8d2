package engine

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
		}
		return s
	}
	tests := map[string]struct {
		mode    prefs.Mode
		changed time.Time
		cur     crmState
		send    bool
		reason  string
	}{
		"two-way, Salesforce newer":           {prefs.TwoWay, older, sf("VP", rep), false, reasonSalesforceNew},
		"two-way, Conversion newer":           {prefs.TwoWay, newer, sf("VP", rep), true, reasonNewer},
		"two-way, tie goes to Salesforce":     {prefs.TwoWay, sameSecond, sf("VP", rep), false, reasonSalesforceNew},
		"two-way, blank Salesforce but newer": {prefs.TwoWay, older, sf(nil, rep), false, reasonSalesforceNew},
		"two-way, our own write":              {prefs.TwoWay, older, sf("VP", us), true, reasonOwnWrite},
		"two-way, field unchanged since sync": {prefs.TwoWay, older, sf("VP", rep, "VP"), true, reasonUnchanged},
		"two-way, field edited since sync":    {prefs.TwoWay, older, sf("VP", rep, "CTO"), false, reasonSalesforceNew},
		"two-way, already equal":              {prefs.TwoWay, newer, sf("CEO", rep), false, reasonEqual},
		"prefer SF, blank":                    {prefs.PreferSalesforceUnlessEmpty, older, sf(nil, rep), true, reasonBlank},
		"prefer SF, empty string":             {prefs.PreferSalesforceUnlessEmpty, older, sf("", rep), true, reasonBlank},
		"prefer SF, not blank":                {prefs.PreferSalesforceUnlessEmpty, newer, sf("VP", rep), false, reasonNotBlank},
		"prefer SF, by crmsync, not blank":    {prefs.PreferSalesforceUnlessEmpty, newer, sf("VP", us), false, reasonNotBlank},
		"always Conversion, SF newer":         {prefs.AlwaysPreferConversion, older, sf("VP", rep), true, reasonAlwaysSends},
		"always Conversion, blank":            {prefs.AlwaysPreferConversion, older, sf(nil, rep), true, reasonAlwaysSends},
		"always Salesforce, Conversion newer": {prefs.AlwaysPreferSalesforce, newer, sf("VP", rep), false, reasonNeverSends},
		"always Salesforce, blank":            {prefs.AlwaysPreferSalesforce, newer, sf(nil, rep), false, reasonNeverSends},
		"do not sync":                         {prefs.DoNotSync, newer, sf(nil, rep), false, reasonNeverSends},
		"do not sync on create":               {prefs.DoNotSync, newer, crmState{}, false, reasonNeverSends},
		"create sends always-Salesforce":      {prefs.AlwaysPreferSalesforce, newer, crmState{}, true, reasonNewRecord},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := prefs.FieldMapping{RecordType: record.TypeContact, Field: "title", CRMField: "Title", Mode: tt.mode}
			d := decideOutbound(m, record.FieldState{Value: "CEO", ChangedAt: tt.changed, Source: record.SourceUI}, tt.cur, us)
			require.Equal(t, tt.send, d.Send, d.Reason)
			require.Contains(t, d.Reason, tt.reason)
			require.Equal(t, "CEO", d.Value)
		})
	}
}

func BenchmarkDecideOutbound(b *testing.B) {
	base := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	cur := crmState{Exists: true, Fields: map[string]any{"Title": "VP"}, LastModified: base, LastModifiedByID: "005B",
		Synced: map[string]any{"Title": "CTO"}}
	fs := record.FieldState{Value: "CEO", ChangedAt: base.Add(time.Minute), Source: record.SourceUI}
	modes := []prefs.Mode{prefs.TwoWay, prefs.PreferSalesforceUnlessEmpty, prefs.AlwaysPreferConversion, prefs.AlwaysPreferSalesforce, prefs.DoNotSync}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m := prefs.FieldMapping{RecordType: record.TypeContact, Field: "title", CRMField: "Title", Mode: modes[i%len(modes)]}
		decideOutbound(m, fs, cur, "005A")
		i++
	}
}
