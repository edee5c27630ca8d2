package inbound

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/internal/prefs"
	"github.com/crmsync/crmsync/internal/record"
)

func TestDecideInbound(t *testing.T) {
	t.Parallel()
	lastMod := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	const rep = "005rep"
	older := record.FieldState{Value: "conv", ChangedAt: lastMod.Add(-time.Minute), Source: record.SourceUI}
	newer := record.FieldState{Value: "conv", ChangedAt: lastMod.Add(time.Minute), Source: record.SourceUI}
	sameSecond := record.FieldState{Value: "conv", ChangedAt: lastMod.Add(400 * time.Millisecond), Source: record.SourceUI}
	known := func(v any, st record.Stamp) record.Known {
		return record.Known{Synced: map[string]any{"Title": v}, SyncedStamps: map[string]record.Stamp{"Title": st}}
	}
	byRep := crmView{LastModified: lastMod, LastModifiedByID: rep, Known: known("before", record.ReadStamp(lastMod.Add(-time.Hour)))}
	// The rep's value was read before (at an earlier LastModifiedDate); the
	// record was modified since, by an edit to another field.
	readEarlier := crmView{LastModified: lastMod, LastModifiedByID: rep, Known: known("sf", record.ReadStamp(lastMod.Add(-2*time.Minute)))}
	// crmsync wrote "sf" from a Conversion change made 30 s before lastMod.
	ownWrite := crmView{LastModified: lastMod, LastModifiedByID: "005int", Known: known("sf", record.WrittenStamp(lastMod.Add(-30*time.Second)))}
	type input struct {
		mode  prefs.Mode
		conv  record.FieldState
		value any
		view  crmView
	}
	tests := map[string]struct {
		in     input
		apply  bool
		agree  bool
		reason string
		at     time.Time
	}{
		"two-way salesforce newer":                   {in: input{prefs.TwoWay, older, "sf", byRep}, apply: true, reason: reasonCRMNewer, at: lastMod},
		"two-way conversion newer":                   {in: input{prefs.TwoWay, newer, "sf", byRep}, reason: reasonConversionNew},
		"two-way tie goes to salesforce":             {in: input{prefs.TwoWay, sameSecond, "sf", byRep}, apply: true, reason: reasonSameTime, at: lastMod},
		"two-way unchanged value read earlier":       {in: input{prefs.TwoWay, older, "sf", readEarlier}, reason: reasonConversionNew},
		"two-way unchanged value, conversion older":  {in: input{prefs.TwoWay, record.FieldState{Value: "conv", ChangedAt: lastMod.Add(-3 * time.Minute)}, "sf", readEarlier}, apply: true, reason: reasonCRMNewer, at: lastMod.Add(-2 * time.Minute)},
		"two-way own write older than conversion":    {in: input{prefs.TwoWay, record.FieldState{Value: "conv", ChangedAt: lastMod.Add(-10 * time.Second)}, "sf", ownWrite}, reason: reasonConversionNew},
		"two-way own write newer than conversion":    {in: input{prefs.TwoWay, older, "sf", ownWrite}, apply: true, reason: reasonCRMNewer, at: lastMod.Add(-30 * time.Second)},
		"two-way values agree":                       {in: input{prefs.TwoWay, older, "conv", byRep}, agree: true, reason: reasonAlreadyHas},
		"prefer salesforce unless empty, not blank":  {in: input{prefs.PreferSalesforceUnlessEmpty, newer, "sf", byRep}, apply: true, reason: reasonNotBlank, at: lastMod},
		"prefer salesforce unless empty, blank":      {in: input{prefs.PreferSalesforceUnlessEmpty, older, "", byRep}, reason: reasonBlank},
		"always prefer salesforce":                   {in: input{prefs.AlwaysPreferSalesforce, newer, nil, byRep}, apply: true, reason: reasonAlwaysApplies, at: lastMod},
		"always prefer conversion":                   {in: input{prefs.AlwaysPreferConversion, older, "sf", byRep}, reason: reasonNeverApplies},
		"do not sync":                                {in: input{prefs.DoNotSync, older, "sf", byRep}, reason: reasonNeverApplies},
		"new record takes every synced field":        {in: input{prefs.AlwaysPreferConversion, record.FieldState{}, "sf", crmView{Created: true, LastModified: lastMod}}, apply: true, reason: reasonNewRecord, at: lastMod},
		"new record skips blank values":              {in: input{prefs.TwoWay, record.FieldState{}, "", crmView{Created: true}}, agree: true, reason: reasonBlank},
		"new record never takes do-not-sync":         {in: input{prefs.DoNotSync, record.FieldState{}, "sf", crmView{Created: true}}, reason: reasonNeverApplies},
		"missing conversion value, salesforce wins":  {in: input{prefs.TwoWay, record.FieldState{}, "sf", crmView{LastModified: lastMod, LastModifiedByID: rep}}, apply: true, reason: reasonCRMNewer, at: lastMod},
		"two-way reason names both times, as read":   {in: input{prefs.TwoWay, older, "sf", byRep}, apply: true, reason: "LastModifiedDate 2026-11-28T12:00:00Z; changed in Conversion 2026-11-28T11:59:00Z", at: lastMod},
		"two-way reason names both times, own write": {in: input{prefs.TwoWay, older, "sf", ownWrite}, apply: true, reason: "Conversion change of 2026-11-28T11:59:30Z", at: lastMod.Add(-30 * time.Second)},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := prefs.FieldMapping{RecordType: record.TypeContact, Field: "title", CRMField: "Title", Mode: tt.in.mode}
			d := decideInbound(m, tt.in.conv, tt.in.value, tt.in.view, "Salesforce")
			require.Equal(t, tt.apply, d.Apply, d.Reason)
			require.Equal(t, tt.agree, d.Agree, d.Reason)
			require.Contains(t, d.Reason, say(tt.reason, "Salesforce"))
			// Another connector's CRM is named neutrally, with the same verdict.
			other := decideInbound(m, tt.in.conv, tt.in.value, tt.in.view, "CRM")
			require.Equal(t, d.Apply, other.Apply)
			require.Contains(t, other.Reason, say(tt.reason, "CRM"))
			require.NotContains(t, other.Reason, "Salesforce")
			if tt.apply {
				require.Equal(t, tt.at, d.Stamp.At, "the applied value's change time is when it became true in Salesforce")
			}
		})
	}
}

func TestDomainOf(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"https://www.Acme.com/about": "acme.com",
		"acme.com":                   "acme.com",
		"  ":                         "",
		"http://sub.acme.co.uk":      "sub.acme.co.uk",
	}
	for in, want := range tests {
		require.Equal(t, want, record.Domain(in), in)
	}
}
