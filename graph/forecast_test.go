package graph_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/memcrm"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/events"
)

type forecastOut struct {
	SyncForecast struct {
		QueuedItems, Records, Creates, Updates, APICalls, Flushes int
		CutOffs                                                   int
		RestAPICalls, BulkAPICalls, BulkJobs                      int
		BulkThreshold                                             *int
		CallLatencyAssumed                                        bool
		DurationSeconds                                           float64
		DurationTerms                                             struct {
			FlushSeconds, CallSeconds, RecordSeconds, BulkSeconds, PacingSeconds, CutOffSeconds float64
			CallBasis, BulkBasis                                                                string
			RecordScale                                                                         float64
			BulkSecondsPerRecord                                                                *float64
			BulkJobsMeasured                                                                    int
		}
		FitsBudget   bool
		BudgetSource string
		RecordTypes  []struct {
			RecordType           string
			QueuedItems, Creates int
			Updates, APICalls    int
		}
	}
}

const forecastQuery = `{ syncForecast { queuedItems records creates updates apiCalls restApiCalls bulkApiCalls bulkJobs bulkThreshold flushes callLatencyAssumed fitsBudget budgetSource
	durationSeconds cutOffs durationTerms { flushSeconds callSeconds recordSeconds bulkSeconds pacingSeconds cutOffSeconds callBasis recordScale bulkBasis bulkSecondsPerRecord bulkJobsMeasured }
	recordTypes { recordType queuedItems creates updates apiCalls } } }`

// TestSyncForecast: the forecast of the caller's workspace counts its
// queued creates, then, once they are flushed, the same records as
// updates with a measured call latency; another workspace's queue is
// not counted.
func TestSyncForecast(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s := newSyncStack(t, bdb, events.NewBus(), memcrm.New())
		ws, token := s.srv.NewWorkspace(t, "Acme")
		_, other := s.srv.NewWorkspace(t, "Other")
		s.connect(t, token, "fc-acme")
		s.connect(t, other, "fc-other")
		s.recordChanges(t, token, "co-", 3)
		s.recordChanges(t, other, "x-", 5)

		forecast := func() forecastOut {
			t.Helper()
			resp := s.srv.Query(t, token, forecastQuery, nil)
			require.Empty(t, resp.Errors, resp.Body)
			var out forecastOut
			require.NoError(t, json.Unmarshal(resp.Data, &out))
			return out
		}
		fc := forecast().SyncForecast
		require.Equal(t, 3, fc.QueuedItems)
		require.Equal(t, 3, fc.Creates)
		require.Zero(t, fc.Updates)
		require.Equal(t, 1, fc.Flushes)
		require.Positive(t, fc.APICalls)
		// memcrm announces no bulk path: every call is planned by REST.
		require.Equal(t, fc.APICalls, fc.RestAPICalls)
		require.Zero(t, fc.BulkAPICalls)
		require.Zero(t, fc.BulkJobs)
		require.Nil(t, fc.BulkThreshold)
		require.True(t, fc.CallLatencyAssumed)
		terms := fc.DurationTerms
		require.Equal(t, "ASSUMED", terms.CallBasis)
		require.Equal(t, "ASSUMED", terms.BulkBasis)
		require.InDelta(t, 1.0, terms.RecordScale, 0)
		require.Nil(t, terms.BulkSecondsPerRecord)
		require.Positive(t, terms.FlushSeconds)
		require.Positive(t, terms.CallSeconds)
		require.Positive(t, terms.RecordSeconds, "3 company creates at the assumed time per record")
		require.Zero(t, fc.CutOffs)
		require.Zero(t, terms.CutOffSeconds)
		require.InDelta(t, fc.DurationSeconds, terms.FlushSeconds+terms.CallSeconds+terms.RecordSeconds+terms.BulkSeconds+terms.PacingSeconds+terms.CutOffSeconds, 1e-6)
		require.True(t, fc.FitsBudget)
		require.Len(t, fc.RecordTypes, 1)
		require.Equal(t, "COMPANY", fc.RecordTypes[0].RecordType)
		require.Equal(t, 3, fc.RecordTypes[0].Creates)

		_, err := s.engine.Flush(context.Background(), ws)
		require.NoError(t, err)
		s.recordChanges(t, token, "co-", 3)
		fc = forecast().SyncForecast
		require.Equal(t, 3, fc.Updates)
		require.Zero(t, fc.Creates)
		require.False(t, fc.CallLatencyAssumed)
		require.Equal(t, "MEASURED", fc.DurationTerms.CallBasis, "the first flush's batch")
	})
}

func TestSyncForecastNeedsAConnection(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s := newSyncStack(t, bdb, events.NewBus(), memcrm.New())
		_, token := s.srv.NewWorkspace(t, "Acme")
		resp := s.srv.Query(t, token, forecastQuery, nil)
		require.Len(t, resp.Errors, 1, resp.Body)
		require.Contains(t, resp.Errors[0].Message, "no CRM connection")
	})
}

// TestRecordChangesDryRun: dryRun: true answers per record with the
// action, the CRM record and how it was matched, and the field decisions,
// and queues nothing; without dryRun the result shape is unchanged.
func TestRecordChangesDryRun(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s := newSyncStack(t, bdb, events.NewBus(), memcrm.New())
		ws, token := s.srv.NewWorkspace(t, "Acme")
		s.connect(t, token, "dry-acme")
		s.recordChanges(t, token, "co-", 1)
		_, err := s.engine.Flush(context.Background(), ws)
		require.NoError(t, err)

		input := []map[string]any{
			{"recordType": "COMPANY", "recordId": "co-0", "source": "API", "fields": []map[string]any{{"name": "industry", "value": "Software"}}},
			{"recordType": "COMPANY", "recordId": "new", "source": "API", "fields": []map[string]any{{"name": "name", "value": "New Co"}}},
		}
		resp := s.srv.Query(t, token, `mutation($in: [RecordChangeInput!]!) { recordChanges(input: $in, dryRun: true) {
			accepted queued dryRunApiCalls dryRun { recordType recordId action crmObject crmId matchedBy reason fields { field crmField sent reason } } } }`,
			map[string]any{"in": input})
		require.Empty(t, resp.Errors, resp.Body)
		var out struct {
			RecordChanges struct {
				Accepted, Queued, DryRunAPICalls int
				DryRun                           []struct {
					RecordType, RecordID, Action, CrmObject, CrmID, MatchedBy, Reason string
					Fields                                                            []struct {
						Field, CrmField, Reason string
						Sent                    bool
					}
				}
			}
		}
		require.NoError(t, json.Unmarshal(resp.Data, &out))
		rc := out.RecordChanges
		require.Equal(t, 2, rc.Accepted)
		require.Zero(t, rc.Queued)
		require.Positive(t, rc.DryRunAPICalls)
		require.Len(t, rc.DryRun, 2)
		require.Equal(t, "UPDATE", rc.DryRun[0].Action)
		require.Equal(t, "LINKED", rc.DryRun[0].MatchedBy)
		require.NotEmpty(t, rc.DryRun[0].CrmID)
		require.Equal(t, "Account", rc.DryRun[0].CrmObject)
		require.Len(t, rc.DryRun[0].Fields, 1)
		require.Equal(t, "Industry", rc.DryRun[0].Fields[0].CrmField)
		require.True(t, rc.DryRun[0].Fields[0].Sent)
		require.Equal(t, "CREATE", rc.DryRun[1].Action)
		require.Equal(t, "NEW", rc.DryRun[1].MatchedBy)

		resp = s.srv.Query(t, token, `{ syncOverview { queuedBatchItems } record(type: COMPANY, id: "new") { id } }`, nil)
		require.Empty(t, resp.Errors, resp.Body)
		require.JSONEq(t, `{"syncOverview": {"queuedBatchItems": 0}, "record": null}`, string(resp.Data))

		// Invalid input is refused as without dryRun.
		resp = s.srv.Query(t, token, `mutation { recordChanges(input: [{recordType: COMPANY, recordId: "x", source: API, fields: [{name: "bad name!", value: 1}]}], dryRun: true) { accepted } }`, nil)
		require.Len(t, resp.Errors, 1, resp.Body)
		require.Equal(t, "BAD_USER_INPUT", resp.Errors[0].Extensions["code"])

		// Without dryRun, the result is as before.
		resp = s.srv.Query(t, token, `mutation($in: [RecordChangeInput!]!) { recordChanges(input: $in) { accepted queued dryRun { recordId } dryRunApiCalls } }`, map[string]any{"in": input})
		require.Empty(t, resp.Errors, resp.Body)
		require.JSONEq(t, `{"recordChanges": {"accepted": 2, "queued": 2, "dryRun": [], "dryRunApiCalls": 0}}`, string(resp.Data))
	})
}
