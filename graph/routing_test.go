package graph_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/memcrm"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/events"
)

// Capability-aware routing: with a connector that describes no Campaign
// (nor CampaignMember) object, and so declares no such part in its data
// contract, campaign changes stay in Conversion, counted
// in the overview, and never become failed items; their preferences say
// unsupported and cannot be changed; a campaign change queued before the
// connection is logged as skipped, not failed.
func TestCapabilityAwareRouting(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		s := newSyncStack(t, bdb, events.NewBus(), memcrm.New(memcrm.WithoutObjects("Campaign", "CampaignMember")))
		ws, token := s.srv.NewWorkspace(t, "Acme")
		ingest := func(recordType, id string) (accepted, queued int) {
			t.Helper()
			var out struct {
				RecordChanges struct{ Accepted, Queued int }
			}
			s.srv.Query(t, token, `mutation($in: [RecordChangeInput!]!) { recordChanges(input: $in) { accepted queued } }`,
				map[string]any{"in": []map[string]any{{"recordType": recordType, "recordId": id, "source": "UI",
					"fields": []map[string]any{{"name": "name", "value": id}}}}}).Decode(t, &out)
			return out.RecordChanges.Accepted, out.RecordChanges.Queued
		}

		// Not connected: every type waits for the next connection.
		_, queued := ingest("CAMPAIGN", "early")
		require.Equal(t, 1, queued)
		s.connect(t, token, t.Name())

		var prefs struct {
			ObjectSyncPreferences []struct {
				RecordType string
				Supported  bool
			}
		}
		s.srv.Query(t, token, `{ objectSyncPreferences { recordType supported } }`, nil).Decode(t, &prefs)
		supported := map[string]bool{}
		for _, p := range prefs.ObjectSyncPreferences {
			supported[p.RecordType] = p.Supported
		}
		require.Equal(t, map[string]bool{"CONTACT": true, "COMPANY": true, "CAMPAIGN": false, "CAMPAIGN_MEMBER": false}, supported)

		resp := s.srv.Query(t, token, `mutation { updateObjectSyncPreference(input: {recordType: CAMPAIGN, writeEnabled: true, readEnabled: true}) { supported } }`, nil)
		require.Len(t, resp.Errors, 1, resp.Body)
		require.Equal(t, "the connector memcrm does not support CAMPAIGN records (its data contract maps no object to them): their changes stay in Conversion and are not sent", resp.Errors[0].Message)
		resp = s.srv.Query(t, token, `mutation { updateFieldSyncPreference(input: {recordType: CAMPAIGN_MEMBER, field: "status", crmField: "Status", mode: TWO_WAY}) { mode } }`, nil)
		require.Len(t, resp.Errors, 1, resp.Body)
		require.Contains(t, resp.Errors[0].Message, "does not support CAMPAIGN_MEMBER records (its data contract maps no object to them)")
		resp = s.srv.Query(t, token, `mutation { updateObjectSyncPreference(input: {recordType: COMPANY, writeEnabled: true, readEnabled: true}) { supported } }`, nil)
		require.Empty(t, resp.Errors, resp.Body)

		accepted, queued := ingest("CAMPAIGN", "spring")
		require.Equal(t, 1, accepted)
		require.Zero(t, queued, "not queued for a connector without campaigns")
		ingest("CAMPAIGN", "summer")
		_, queued = ingest("COMPANY", "acme")
		require.Equal(t, 1, queued)

		type overview struct {
			SyncOverview struct {
				QueuedBatchItems       int
				FailedItems            int
				UnsupportedRecordTypes []struct {
					RecordType   string
					Changes      int
					LastChangeAt *string
				}
			}
		}
		const q = `{ syncOverview { queuedBatchItems failedItems unsupportedRecordTypes { recordType changes lastChangeAt } } }`
		var o overview
		s.srv.Query(t, token, q, nil).Decode(t, &o)
		require.Equal(t, 2, o.SyncOverview.QueuedBatchItems, "the early campaign and the company")
		unsupported := o.SyncOverview.UnsupportedRecordTypes
		require.Len(t, unsupported, 2)
		require.Equal(t, "CAMPAIGN", unsupported[0].RecordType)
		require.Equal(t, 2, unsupported[0].Changes)
		require.NotNil(t, unsupported[0].LastChangeAt)
		require.Equal(t, "CAMPAIGN_MEMBER", unsupported[1].RecordType)
		require.Zero(t, unsupported[1].Changes)
		require.Nil(t, unsupported[1].LastChangeAt)

		_, err := s.engine.Flush(context.Background(), ws)
		require.NoError(t, err)
		s.srv.Query(t, token, q, nil).Decode(t, &o)
		require.Zero(t, o.SyncOverview.QueuedBatchItems)
		require.Zero(t, o.SyncOverview.FailedItems, "no failed items manufactured")

		var rec struct {
			Record struct {
				PendingItems, FailedItems int
				History                   []struct{ Outcome, Reason string }
			}
		}
		s.srv.Query(t, token, `{ record(type: CAMPAIGN, id: "early") { pendingItems failedItems history { outcome reason } } }`, nil).Decode(t, &rec)
		require.Zero(t, rec.Record.FailedItems)
		require.Len(t, rec.Record.History, 1)
		require.Equal(t, "SKIPPED", rec.Record.History[0].Outcome)
		require.Equal(t, "not supported by connector memcrm: its data contract maps no object to them", rec.Record.History[0].Reason)
		s.srv.Query(t, token, `{ record(type: CAMPAIGN, id: "spring") { pendingItems failedItems history { outcome reason } } }`, nil).Decode(t, &rec)
		require.Zero(t, rec.Record.PendingItems, "kept in Conversion only")
		require.Empty(t, rec.Record.History)
	})
}
