package push_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/salesforce/sffake"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/push"
	"github.com/crmsync/crmsync/internal/record"
)

// A create whose answer never arrives (the CRM ran it, the response was
// cut) is matched on the next flush instead of being created again: for
// every record type crmsync creates. Salesforce must hold each record
// once.
func TestUnconfirmedCreatesAreMatchedNotRepeated(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setupSffake(t, bdb, push.Config{RetryBase: time.Millisecond})
		ctx := context.Background()
		now := time.Now()
		b.ingest(t, []outbound.Change{
			change(record.TypeCompany, "co", now, map[string]any{"name": "Acme", "website": "acme.example"}),
			change(record.TypeCampaign, "camp", now, map[string]any{"name": "Launch"}),
			change(record.TypeContact, "c", now, map[string]any{"email": "ada@example.com", "lastName": "L", "company": "Acme"}),
		})
		b.drain(t)
		var changes []outbound.Change
		for _, a := range []outbound.WorkflowAction{
			{Kind: outbound.WorkflowCreateTask, ActionID: "run-1", ContactID: "c", Task: &outbound.Task{Subject: "Call back", DueDate: "2026-12-01"}},
			{Kind: outbound.WorkflowAddToCampaign, ContactID: "c", CampaignID: "camp"},
		} {
			c, err := a.Change(time.Now())
			require.NoError(t, err)
			changes = append(changes, c)
		}
		changes = append(changes,
			change(record.TypeCompany, "co2", now, map[string]any{"name": "Globex", "website": "globex.example"}),
			change(record.TypeCampaign, "camp2", now, map[string]any{"name": "Webinar"}),
			change(record.TypeContact, "c2", now, map[string]any{"email": "grace@example.com", "lastName": "H", "company": "Globex"}))
		b.ingest(t, changes)

		// The next writes run, and their answers are cut: each flush stops
		// at its first, its outcome unknown.
		b.sf.InjectFault(sffake.Fault{Path: "/composite", Kind: sffake.FaultTruncate, Times: 4})
		cut := 0
		for range 20 {
			if _, err := b.engine.Flush(ctx, b.ws); err != nil {
				require.ErrorContains(t, err, "unexpected EOF")
				cut++
			}
			time.Sleep(5 * time.Millisecond) // past the retry back-off
		}
		require.Positive(t, cut, "a cut answer fails its flush") // reads are retried by the connector
		b.sf.ClearFaults()
		b.drain(t)

		got := map[string]int{}
		for _, object := range []string{"Account", "Campaign", "Lead", "Task", "CampaignMember"} {
			got[object] = len(b.sf.All(object))
		}
		require.Equal(t, map[string]int{"Account": 2, "Campaign": 2, "Lead": 2, "Task": 1, "CampaignMember": 1}, got, "records in Salesforce")
	})
}
