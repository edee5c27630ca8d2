package push_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/salesforce"
	"github.com/crmsync/crmsync/connectors/salesforce/sffake"
	"github.com/crmsync/crmsync/connectors/salesforce/sffake/sffaketest"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/overview"
	"github.com/crmsync/crmsync/internal/push"
	"github.com/crmsync/crmsync/internal/record"
	"github.com/crmsync/crmsync/internal/secret"
	"github.com/crmsync/crmsync/internal/synclog"
)

// dataCalls returns the requests sffake counted or refused as API calls
// (OAuth and free calls left out).
func dataCalls(sf *sffake.Server) []sffake.Request {
	var out []sffake.Request
	for _, r := range sf.RequestLog() {
		if strings.HasPrefix(r.Path, "/services/data/v") && (r.Kind == "read" || r.Kind == "write" || r.Status == 403) {
			out = append(out, r)
		}
	}
	return out
}

// TestLimitsAgainstSffake runs the gate through the real Salesforce
// connector over HTTP: usage is read from Sforce-Limit-Info, a 403
// REQUEST_LIMIT_EXCEEDED mid-burst stops the calls, the /limits probe
// ends the pause, and a revoked refresh token expires the connection until
// it is reconnected.
func TestLimitsAgainstSffake(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		sf := sffaketest.Start(t)
		var ws int64
		require.NoError(t, bdb.NewRaw("INSERT INTO workspaces (name, created_at) VALUES (?, ?) RETURNING id", "t", time.Now().UTC()).Scan(ctx, &ws))
		key := make([]byte, secret.KeySize)
		_, _ = rand.Read(key)
		box, err := secret.NewBox(key)
		require.NoError(t, err)
		store := connection.NewStore(bdb, box)
		crm := newCounting(salesforce.New(salesforce.WithAllowedHosts("127.0.0.1")))
		conns := connectorsFunc(func(context.Context, string) (connector.Connector, error) { return crm, nil })
		svc := connection.NewService(store, conns, &nowScheduler{})
		cfg, err := json.Marshal(map[string]string{"loginUrl": sf.URL(), "clientId": sffake.DefaultClientID})
		require.NoError(t, err)
		credsFor := func(refresh string) json.RawMessage {
			b, err := json.Marshal(map[string]string{"clientSecret": sffake.DefaultClientSecret, "refreshToken": refresh})
			require.NoError(t, err)
			return b
		}
		refresh := sf.IssueRefreshToken(sf.IntegrationUserID())
		_, err = svc.Connect(ctx, ws, "salesforce", cfg, credsFor(refresh))
		require.NoError(t, err)
		held := push.New(bdb, store, conns, nil, slog.New(slog.DiscardHandler), push.Config{LimitProbe: time.Hour})
		probing := push.New(bdb, store, conns, nil, slog.New(slog.DiscardHandler), push.Config{LimitProbe: time.Millisecond})
		in := outbound.NewIngester(bdb, noScheduler{}, nil)
		ingest := func(prefix string, n int) {
			t.Helper()
			var changes []outbound.Change
			for i := range n {
				id := fmt.Sprintf("%s%d", prefix, i)
				changes = append(changes, change(record.TypeCompany, id, time.Now(), map[string]any{"name": "Company " + id, "website": id + ".example"}))
			}
			_, err := in.Ingest(ctx, ws, changes)
			require.NoError(t, err)
		}
		queue := func() int {
			t.Helper()
			d, err := outbound.Measure(ctx, bdb, ws)
			require.NoError(t, err)
			return d.Queued
		}
		drain := func(e *push.Engine) {
			t.Helper()
			deadline := time.Now().Add(20 * time.Second)
			for queue() > 0 {
				require.True(t, time.Now().Before(deadline), "queue did not drain")
				_, err := e.Flush(ctx, ws)
				require.NoError(t, err)
				time.Sleep(2 * time.Millisecond)
			}
		}

		// Usage comes from the Sforce-Limit-Info header of every response.
		ingest("first", 1)
		_, err = held.Flush(ctx, ws)
		require.NoError(t, err)
		used, maxCalls := sf.Usage()
		o, err := overview.Get(ctx, bdb, ws, time.Now())
		require.NoError(t, err)
		require.Equal(t, int64(used), *o.CRMUsed)
		require.Equal(t, int64(maxCalls), *o.CRMMax)
		require.WithinDuration(t, time.Now(), o.CRMObservedAt, time.Minute)

		// The allowance runs out mid-burst: one call is left, the burst needs more.
		sf.SetDailyMax(used + 1)
		ingest("burst", 10)
		before := len(dataCalls(sf))
		_, err = held.Flush(ctx, ws)
		require.ErrorIs(t, err, connector.ErrRateLimited)
		calls := dataCalls(sf)[before:]
		require.Equal(t, 403, calls[len(calls)-1].Status, "nothing was sent after the first REQUEST_LIMIT_EXCEEDED")
		_, after := crm.state()
		require.Zero(t, after)
		require.Equal(t, 10, queue())

		// Ticks while spent send nothing to Salesforce.
		n := len(sf.RequestLog())
		for range 3 {
			res, err := held.Flush(ctx, ws)
			require.NoError(t, err)
			require.Equal(t, push.PauseSalesforceLimit, res.Paused)
		}
		require.Len(t, sf.RequestLog(), n)
		paused, err := synclog.List(ctx, bdb, ws, synclog.Filter{Status: synclog.StatusPaused}, 0, 10)
		require.NoError(t, err)
		require.Len(t, paused, 1)

		// An old reading is probed with one /limits call: still spent, still paused.
		time.Sleep(5 * time.Millisecond) // older than the probing engine's LimitProbe
		res, err := probing.Flush(ctx, ws)
		require.NoError(t, err)
		require.Equal(t, push.PauseSalesforceLimit, res.Paused)
		probe := sf.RequestLog()[n:]
		require.Len(t, probe, 1)
		require.True(t, strings.HasSuffix(probe[0].Path, "/limits"), probe[0].Path)

		// The window frees calls: the next probe opens the gate and the queue drains.
		sf.SetUsage(0)
		sf.SetDailyMax(15000)
		time.Sleep(2 * time.Millisecond)
		drain(probing)
		require.Len(t, sf.All("Account"), 11)
		o, err = overview.Get(ctx, bdb, ws, time.Now())
		require.NoError(t, err)
		require.False(t, o.Paused)
		used, _ = sf.Usage()
		require.Equal(t, int64(used), *o.CRMUsed)

		// The refresh token is revoked: the connection expires, items stay.
		sf.RevokeRefreshToken(refresh)
		sf.ExpireAccessTokens()
		ingest("late", 2)
		res, err = held.Flush(ctx, ws)
		require.NoError(t, err)
		require.Equal(t, push.PauseConnectionExpired, res.Paused)
		o, err = overview.Get(ctx, bdb, ws, time.Now())
		require.NoError(t, err)
		require.Equal(t, connection.StatusExpired, o.ConnectionStatus)
		require.Equal(t, push.PauseConnectionExpired, o.PauseReason)
		require.Equal(t, 2, queue())

		// Reconnecting resumes.
		_, err = svc.Connect(ctx, ws, "salesforce", cfg, credsFor(sf.IssueRefreshToken(sf.IntegrationUserID())))
		require.NoError(t, err)
		drain(held)
		require.Len(t, sf.All("Account"), 13)
	})
}
