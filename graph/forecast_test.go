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
		CallLatencyAssumed                                        bool
		FitsBudget                                                bool
		BudgetSource                                              string
		RecordTypes                                               []struct {
			RecordType           string
			QueuedItems, Creates int
			Updates, APICalls    int
		}
	}
}

const forecastQuery = `{ syncForecast { queuedItems records creates updates apiCalls flushes callLatencyAssumed fitsBudget budgetSource
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
		require.True(t, fc.CallLatencyAssumed)
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
