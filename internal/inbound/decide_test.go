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
	const integration, rep = "005int", "005rep"
	older := record.FieldState{Value: "conv", ChangedAt: lastMod.Add(-time.Minute), Source: record.SourceUI}
	newer := record.FieldState{Value: "conv", ChangedAt: lastMod.Add(time.Minute), Source: record.SourceUI}
	sameSecond := record.FieldState{Value: "conv", ChangedAt: lastMod.Add(400 * time.Millisecond), Source: record.SourceUI}
	synced := map[string]any{"Title": "before"}
	byRep := crmView{LastModified: lastMod, LastModifiedByID: rep, Synced: synced}
	type input struct {
		mode    prefs.Mode
		conv    record.FieldState
		value   any
		view    crmView
		pending bool
	}
	tests := map[string]struct {
		in    input
		apply bool
		agree bool
	}{
		"two-way salesforce newer":                    {in: input{prefs.TwoWay, older, "sf", byRep, false}, apply: true},
		"two-way conversion newer":                    {in: input{prefs.TwoWay, newer, "sf", byRep, false}},
		"two-way tie goes to salesforce":              {in: input{prefs.TwoWay, sameSecond, "sf", byRep, false}, apply: true},
		"two-way pending, salesforce newer":           {in: input{prefs.TwoWay, older, "sf", byRep, true}, apply: true},
		"two-way pending, conversion newer":           {in: input{prefs.TwoWay, newer, "sf", byRep, true}},
		"two-way pending, field unchanged in the CRM": {in: input{prefs.TwoWay, older, "before", byRep, true}},
		"two-way pending, own write":                  {in: input{prefs.TwoWay, older, "sf", crmView{LastModified: lastMod, LastModifiedByID: integration, Synced: synced}, true}},
		"two-way flushed, snapshot refreshed":         {in: input{prefs.TwoWay, older, "before", byRep, false}, apply: true},
		"two-way values agree":                        {in: input{prefs.TwoWay, older, "conv", byRep, false}, agree: true},
		"prefer salesforce unless empty, not blank":   {in: input{prefs.PreferSalesforceUnlessEmpty, newer, "sf", byRep, true}, apply: true},
		"prefer salesforce unless empty, blank":       {in: input{prefs.PreferSalesforceUnlessEmpty, older, "", byRep, false}},
		"always prefer salesforce":                    {in: input{prefs.AlwaysPreferSalesforce, newer, nil, byRep, true}, apply: true},
		"always prefer conversion":                    {in: input{prefs.AlwaysPreferConversion, older, "sf", byRep, false}},
		"do not sync":                                 {in: input{prefs.DoNotSync, older, "sf", byRep, false}},
		"new record takes every synced field":         {in: input{prefs.AlwaysPreferConversion, record.FieldState{}, "sf", crmView{Created: true}, false}, apply: true},
		"new record skips blank values":               {in: input{prefs.TwoWay, record.FieldState{}, "", crmView{Created: true}, false}, agree: true},
		"new record never takes do-not-sync":          {in: input{prefs.DoNotSync, record.FieldState{}, "sf", crmView{Created: true}, false}},
		"missing conversion value, salesforce wins":   {in: input{prefs.TwoWay, record.FieldState{}, "sf", crmView{LastModified: lastMod, LastModifiedByID: rep}, false}, apply: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := prefs.FieldMapping{RecordType: record.TypeContact, Field: "title", CRMField: "Title", Mode: tt.in.mode}
			d := decideInbound(m, tt.in.conv, tt.in.value, tt.in.view, tt.in.pending, integration)
			require.Equal(t, tt.apply, d.Apply, d.Reason)
			require.Equal(t, tt.agree, d.Agree, d.Reason)
			require.NotEmpty(t, d.Reason)
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
