package push

import (
	"strings"
	"testing"
	"time"

	"github.com/crmsync/crmsync/internal/prefs"
	"github.com/crmsync/crmsync/internal/record"
)

// Words a reason for not sending a field uses, and words a reason for
// sending one uses: a decision never pairs sent with the first kind, or
// not sent with the second (no `sent: true` with "Salesforce field
// unchanged").
var (
	notSentWords = []string{"unchanged", "not sent", "already has", "never sends", "not empty", "Salesforce value is",
		"ties go to Salesforce", "does not exist", "not writeable", "superseded", "skipped", "kept"}
	sentWords = []string{"always sends", "new record", "Conversion change is newer", "field is empty"}
)

// TestDecisionWording runs decideOutbound over every mode and a grid of
// situations (create or update; the CRM field missing, blank, equal or
// different; Conversion's change older, as old or newer; our own write or
// a rep's) and checks each decision's reason agrees with its verdict.
func TestDecisionWording(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	currents := map[string]*any{"missing": nil, "blank": ptrAny(""), "equal": ptrAny("CEO"), "different": ptrAny("VP")}
	var n, sent int
	for _, mode := range []prefs.Mode{prefs.TwoWay, prefs.PreferSalesforceUnlessEmpty, prefs.AlwaysPreferConversion, prefs.AlwaysPreferSalesforce, prefs.DoNotSync} {
		for _, exists := range []bool{false, true} {
			for curName, cur := range currents {
				for _, delta := range []time.Duration{-time.Minute, 0, 400 * time.Millisecond, time.Minute} {
					for _, by := range []string{"005000000000001AAA", "005000000000002AAA"} {
						m := prefs.FieldMapping{RecordType: record.TypeContact, Field: "title", CRMField: "Title", Mode: mode}
						fs := record.FieldState{Value: "CEO", ChangedAt: base.Add(delta), Source: record.SourceUI}
						st := crmState{Exists: exists, LastModified: base, LastModifiedByID: by}
						if cur != nil {
							st.Fields = map[string]any{"Title": *cur}
						}
						d := decideOutbound(m, fs, st, "Salesforce")
						n++
						if d.Send {
							sent++
						}
						words := sentWords
						if d.Send {
							words = notSentWords
						}
						for _, w := range words {
							if strings.Contains(d.Reason, w) {
								t.Errorf("%s, exists=%v, CRM %s, change %s, by %s: sent=%v with reason %q (%q says the opposite)",
									mode, exists, curName, delta, by, d.Send, d.Reason, w)
							}
						}
					}
				}
			}
		}
	}
	if n != 5*2*4*4*2 || sent == 0 || sent == n {
		t.Fatalf("ran %d decisions, %d sent: the grid must cover both verdicts", n, sent)
	}
}

func ptrAny(v any) *any { return &v }
