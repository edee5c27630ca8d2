package securitytest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/outbound"
)

// TestWaitingForParentIsLoggedOnce: campaign memberships naming a campaign
// that does not exist yet wait for it. The sync log says so once, however
// many flushes pass while they wait (the outside probe found 22 WAITING
// batches in 3 minutes), the overview counts them as waiting apart from
// queued items, and once the campaign arrives they are released and logged
// as created.
func TestWaitingForParentIsLoggedOnce(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setup(t, bdb)
		ws, token := b.newWorkspace(t, "Acme")
		b.connect(t, token, "acme")
		ctx := context.Background()
		const ingest = `mutation($in: [RecordChangeInput!]!) { recordChanges(input: $in) { accepted } }`
		field := func(name, value string) map[string]any { return map[string]any{"name": name, "value": value} }
		b.mustQuery(t, token, ingest, map[string]any{"in": []any{
			map[string]any{"recordType": "CONTACT", "recordId": "c1", "source": "API", "fields": []any{field("email", "c1@example.com"), field("lastName", "One"), field("company", "Acme")}},
			map[string]any{"recordType": "CONTACT", "recordId": "c2", "source": "API", "fields": []any{field("email", "c2@example.com"), field("lastName", "Two"), field("company", "Acme")}},
		}}, nil)
		b.flush(t, ws)
		b.mustQuery(t, token, ingest, map[string]any{"in": []any{
			map[string]any{"recordType": "CAMPAIGN_MEMBER", "source": "API", "membership": map[string]any{"campaignId": "camp-x", "contactId": "c1", "action": "ADD", "status": "Sent"}},
			map[string]any{"recordType": "CAMPAIGN_MEMBER", "source": "API", "membership": map[string]any{"campaignId": "camp-x", "contactId": "c2", "action": "ADD", "status": "Sent"}},
		}}, nil)

		// Flush until the memberships have waited through five passes.
		deadline := time.Now().Add(30 * time.Second)
		for {
			b.flush(t, ws)
			var attempts int
			require.NoError(t, bdb.NewSelect().Model((*outbound.Item)(nil)).ColumnExpr("MIN(attempts)").
				Where("workspace_id = ? AND record_type = ?", ws, "CAMPAIGN_MEMBER").Scan(ctx, &attempts))
			if attempts >= 5 {
				break
			}
			require.True(t, time.Now().Before(deadline), "the memberships were not tried five times")
		}

		type overview struct {
			SyncOverview struct{ QueuedBatchItems, WaitingItems int }
			SyncLogs     struct {
				Edges []struct {
					Node struct {
						Waiting, Created int
						Records          struct {
							Edges []struct {
								Node struct{ RecordType, Outcome string }
							}
						}
					}
				}
			}
		}
		const read = `{ syncOverview { queuedBatchItems waitingItems } syncLogs(first: 100) { edges { node { waiting created records { edges { node { recordType outcome } } } } } } }`
		var d overview
		b.mustQuery(t, token, read, nil, &d)
		require.Equal(t, 2, d.SyncOverview.WaitingItems)
		require.Zero(t, d.SyncOverview.QueuedBatchItems, "waiting items are counted apart")
		waitingBatches := 0
		for _, e := range d.SyncLogs.Edges {
			if e.Node.Waiting > 0 {
				waitingBatches++
				require.Equal(t, 2, e.Node.Waiting)
			}
		}
		require.Equal(t, 1, waitingBatches, "one WAITING entry when they start waiting, none per pass")

		// The campaign arrives: the memberships are released and logged.
		b.mustQuery(t, token, ingest, map[string]any{"in": []any{
			map[string]any{"recordType": "CAMPAIGN", "recordId": "camp-x", "source": "API", "fields": []any{field("name", "Spring")}},
		}}, nil)
		for {
			b.flush(t, ws)
			n, err := bdb.NewSelect().Model((*outbound.Item)(nil)).Where("workspace_id = ?", ws).Count(ctx)
			require.NoError(t, err)
			if n == 0 {
				break
			}
			require.True(t, time.Now().Before(deadline), "the memberships were not released")
		}
		d = overview{}
		b.mustQuery(t, token, read, nil, &d)
		require.Zero(t, d.SyncOverview.WaitingItems)
		released := 0
		for _, e := range d.SyncLogs.Edges {
			for _, r := range e.Node.Records.Edges {
				if r.Node.RecordType == "CAMPAIGN_MEMBER" && r.Node.Outcome != "WAITING" {
					released++
				}
			}
		}
		require.Equal(t, 2, released, "each membership logged once more, when released")
	})
}
