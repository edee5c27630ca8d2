package graph_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/memcrm"
	"github.com/crmsync/crmsync/graph"
	"github.com/crmsync/crmsync/graph/graphtest"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/events"
)

// The overview fields the console draws: the queue by record type and
// crmsync's calls per hour (the 24 h sparkline).
func TestOverviewQueueByTypeAndHourlyCalls(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		s := newSyncStack(t, bdb, events.NewBus(), memcrm.New())
		ws, token := s.srv.NewWorkspace(t, "Acme")
		s.connect(t, token, t.Name())
		s.recordChanges(t, token, "co-", 3)

		const q = `{ syncOverview { queuedBatchItems queuedByRecordType { recordType queued }
			apiCallsByHour { hour calls } conversionDailyLimit { used } } }`
		type overview struct {
			SyncOverview struct {
				QueuedBatchItems   int
				QueuedByRecordType []struct {
					RecordType string
					Queued     int
				}
				APICallsByHour []struct {
					Hour  string
					Calls int
				}
				ConversionDailyLimit struct{ Used int }
			}
		}
		var before overview
		s.srv.Query(t, token, q, nil).Decode(t, &before)
		queued := map[string]int{}
		for _, c := range before.SyncOverview.QueuedByRecordType {
			queued[c.RecordType] = c.Queued
		}
		require.Equal(t, map[string]int{"CONTACT": 0, "COMPANY": 3, "CAMPAIGN": 0, "CAMPAIGN_MEMBER": 0, "TASK": 0}, queued)
		require.Equal(t, 3, before.SyncOverview.QueuedBatchItems)
		require.Len(t, before.SyncOverview.APICallsByHour, 24)

		_, err := s.engine.Flush(context.Background(), ws)
		require.NoError(t, err)
		var after overview
		s.srv.Query(t, token, q, nil).Decode(t, &after)
		require.Zero(t, after.SyncOverview.QueuedBatchItems)
		hours := after.SyncOverview.APICallsByHour
		require.Len(t, hours, 24)
		require.Positive(t, hours[23].Calls, "the flush's calls count in the current hour")
		sum := 0
		for _, h := range hours {
			sum += h.Calls
		}
		require.Equal(t, after.SyncOverview.ConversionDailyLimit.Used, sum)
	})
}

func TestWorkspacesForAdmin(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		srv := graphtest.New(t, bdb, nil)
		_, token := srv.NewWorkspace(t, "Acme")
		srv.NewWorkspace(t, "Globex")
		var data struct{ Workspaces []struct{ Name string } }
		srv.Query(t, graphtest.AdminToken, `{ workspaces { id name createdAt } }`, nil).Decode(t, &data)
		require.Len(t, data.Workspaces, 2)
		require.Equal(t, "Acme", data.Workspaces[0].Name)
		require.Equal(t, "Globex", data.Workspaces[1].Name)

		resp := srv.Query(t, token, `{ workspaces { name } }`, nil)
		require.Len(t, resp.Errors, 1, resp.Body)
		require.Equal(t, graph.CodeForbidden, resp.Errors[0].Code())
	})
}
