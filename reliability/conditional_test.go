package reliability

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/crmsync/crmsync/internal/record"
)

// Fault kinds aimed at one-call conditional writes (docs/sync.md,
// "Conditional writes"): a rep editing the records crmsync has just
// written, within the same second, and a storm of such edits that has
// Salesforce refuse conditional writes (412) again and again. The checker
// holds the rep's values to the field modes as for every other fault.
func init() {
	faultKinds = append(faultKinds,
		faultKind{"same-second rep edits", func(ctx context.Context, t *testing.T, c *cluster, l *load) {
			l.editJustWritten(ctx, t, 3*time.Second, 50*time.Millisecond)
			l.waitSent(t, 100)
		}},
		faultKind{"412 storm", func(ctx context.Context, t *testing.T, c *cluster, l *load) {
			l.editJustWritten(ctx, t, 4*time.Second, 5*time.Millisecond)
			l.waitSent(t, 100)
		}},
	)
}

// editJustWritten has a rep edit Company (Salesforce always wins) on the
// contacts crmsync wrote last, every pause for d: the edits land within
// the second of crmsync's writes and read-backs, and after the states
// crmsync keeps, so its next conditional writes to them are refused.
func (l *load) editJustWritten(ctx context.Context, t *testing.T, d, pause time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for n := 0; time.Now().Before(deadline); n++ {
		var rows []struct {
			ConversionID string `bun:"conversion_id"`
			CRMID        string `bun:"crm_id"`
		}
		err := l.c.db.NewSelect().Table("records").Column("conversion_id", "crm_id").
			Where("workspace_id = ? AND type = 'CONTACT' AND crm_id <> '' AND crm_object = 'Lead'", l.tn.id).
			OrderExpr("updated_at DESC").Limit(3).Scan(ctx, &rows)
		if err != nil {
			t.Errorf("find the contacts written last: %v", err)
			return
		}
		for _, r := range rows {
			v := fmt.Sprintf("Rep Co %s-s%d", r.ConversionID, n)
			// As the load's rep does: the checker learns of the edit first.
			from := time.Now()
			l.chk.RepEdited(record.TypeContact, r.ConversionID, "company", v, from, from.Add(time.Second))
			if err := l.c.org.EditAsUser(l.c.org.RepUserID(), "Lead", r.CRMID, map[string]any{"Company": v}); err != nil {
				l.chk.Forget(record.TypeContact, r.ConversionID, "company")
				t.Errorf("rep edit of %s: %v", r.CRMID, err)
				return
			}
			l.chk.RepEdited(record.TypeContact, r.ConversionID, "company", v, from, time.Now())
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
	}
}
