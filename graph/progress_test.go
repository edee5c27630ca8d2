package graph_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/memcrm"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/events"
	"github.com/crmsync/crmsync/internal/push"
	"github.com/crmsync/crmsync/internal/secret"
)

// TestOverviewProgress: syncOverview.progress is null with nothing
// queued, counts the queued records before any flush (no rate, no ETA),
// and after a flush that wrote half of them shows the half done, a rate
// and an ETA. internal/overview's tests check the figures exactly.
func TestOverviewProgress(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		crm := memcrm.New()
		s := newSyncStack(t, bdb, events.NewBus(), crm)
		ws, token := s.srv.NewWorkspace(t, "Acme")
		s.connect(t, token, t.Name())

		type progress struct {
			RecordsDone, RecordsRemaining, RecordsTotal int
			RecordsPerMinute                            float64
			ETA                                         *time.Time
			Since                                       time.Time
		}
		read := func() *progress {
			t.Helper()
			var out struct{ SyncOverview struct{ Progress *progress } }
			s.srv.Query(t, token, `{ syncOverview { progress { recordsDone recordsRemaining recordsTotal recordsPerMinute eta since } } }`, nil).Decode(t, &out)
			return out.SyncOverview.Progress
		}
		require.Nil(t, read(), "nothing queued")

		before := time.Now().Add(-time.Second)
		s.recordChanges(t, token, "acme", 4)
		p := read()
		require.NotNil(t, p)
		require.Equal(t, progress{RecordsRemaining: 4, RecordsTotal: 4, Since: p.Since}, *p)
		require.WithinRange(t, p.Since, before, time.Now())

		// A flush that claims two of the four items.
		box, err := secret.NewBox(testKey)
		require.NoError(t, err)
		half := push.New(bdb, connection.NewStore(bdb, box), crmsFunc(func(context.Context, string) (connector.Connector, error) { return crm, nil }),
			nil, slog.New(slog.DiscardHandler), push.Config{MaxItems: 2})
		res, err := half.Flush(context.Background(), ws)
		require.NoError(t, err)
		require.Equal(t, 2, res.Batch.Created)
		p = read()
		require.NotNil(t, p)
		require.Equal(t, 2, p.RecordsDone)
		require.Equal(t, 2, p.RecordsRemaining)
		require.Equal(t, 4, p.RecordsTotal)
		require.Positive(t, p.RecordsPerMinute)
		require.NotNil(t, p.ETA)
		require.True(t, p.ETA.After(p.Since), "eta %s, since %s", p.ETA, p.Since)

		_, err = s.engine.Flush(context.Background(), ws)
		require.NoError(t, err)
		require.Nil(t, read(), "drained")
	})
}

// TestSyncOverviewUpdatedCarriesProgress: the subscription pushes the
// progress as changes are queued, and null once the queue drained.
func TestSyncOverviewUpdatedCarriesProgress(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		s := newSyncStack(t, bdb, events.NewBus(), memcrm.New())
		ws, token := s.srv.NewWorkspace(t, "Acme")
		s.connect(t, token, t.Name())
		c := dialWS(t, s.srv.URL, "graphql-transport-ws")
		c.init(map[string]any{"authToken": token})
		c.subscribe("p", `subscription { syncOverviewUpdated { progress { recordsDone recordsRemaining recordsTotal } } }`)
		type prog struct{ RecordsDone, RecordsRemaining, RecordsTotal int }
		type msg struct {
			SyncOverviewUpdated struct{ Progress *prog }
		}
		// until reads pushes until one satisfies ok.
		until := func(ok func(p *prog) bool) {
			t.Helper()
			for {
				var m msg
				c.next("p", &m)
				if ok(m.SyncOverviewUpdated.Progress) {
					return
				}
			}
		}
		until(func(p *prog) bool { return p == nil })
		s.recordChanges(t, token, "a", 3)
		until(func(p *prog) bool { return p != nil && *p == prog{RecordsRemaining: 3, RecordsTotal: 3} })
		_, err := s.engine.Flush(context.Background(), ws)
		require.NoError(t, err)
		until(func(p *prog) bool { return p == nil })
	})
}
