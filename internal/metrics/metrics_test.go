package metrics

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/limits"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/record"
	"github.com/crmsync/crmsync/internal/secret"
	"github.com/crmsync/crmsync/internal/synclog"
)

type noScheduler struct{}

func (noScheduler) ScheduleFlushTx(context.Context, bun.Tx, int64) error { return nil }

func newWorkspace(t *testing.T, bdb *bun.DB) int64 {
	t.Helper()
	var id int64
	require.NoError(t, bdb.NewRaw("INSERT INTO workspaces (name, created_at) VALUES (?, ?) RETURNING id", "w", time.Now().UTC()).Scan(context.Background(), &id))
	return id
}

func companies(ws int64, ids ...string) []outbound.Change {
	var out []outbound.Change
	for _, id := range ids {
		out = append(out, outbound.Change{Type: record.TypeCompany, ID: id, Source: record.SourceAPI,
			Fields: map[string]outbound.FieldChange{"name": {Value: fmt.Sprintf("%s of %d", id, ws), ChangedAt: time.Now()}}})
	}
	return out
}

// scrape serves reg the way /metrics does and returns the text.
func scrape(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	require.Equal(t, 200, rec.Code)
	body, err := io.ReadAll(rec.Body)
	require.NoError(t, err)
	return string(body)
}

// value returns the value of the series named exactly by series (name and
// labels in Prometheus' sorted order).
func value(t *testing.T, text, series string) string {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	t.Fatalf("no series %s in:\n%s", series, text)
	return ""
}

func TestCollectorReadsEveryConnection(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		key := make([]byte, secret.KeySize)
		_, _ = rand.Read(key)
		box, err := secret.NewBox(key)
		require.NoError(t, err)
		store := connection.NewStore(bdb, box)
		in := outbound.NewIngester(bdb, noScheduler{}, nil)

		// Workspace a: connected, two queued, one parked, usage known,
		// a crmsync limit, paused by hand.
		a := newWorkspace(t, bdb)
		c, err := store.Save(ctx, a, "memcrm", []byte(`{"org":"a"}`), []byte(`{"token":"t"}`), connector.Identity{UserID: "005"},
			&connector.Usage{Used: 40, Max: 100, ObservedAt: time.Now()})
		require.NoError(t, err)
		limit := int64(50)
		require.NoError(t, store.SetDailyLimit(ctx, c, &limit))
		require.NoError(t, store.SetPausedByUser(ctx, a, true))
		_, err = in.Ingest(ctx, a, companies(a, "x", "y", "z"))
		require.NoError(t, err)
		items, err := outbound.Claim(ctx, bdb, a, time.Now(), 1)
		require.NoError(t, err)
		require.NoError(t, outbound.Park(ctx, bdb, []int64{items[0].ID}, "INVALID", "no"))
		require.NoError(t, limits.Record(ctx, bdb, a, time.Now(), 7))
		// Its last paced flush left the bucket in debt: one call short,
		// refilling at one call an hour.
		require.NoError(t, store.SetPace(ctx, c, -1, 1.0/3600, 6, 50, time.Now()))

		// Workspace b: not connected, one queued change.
		b := newWorkspace(t, bdb)
		_, err = in.Ingest(ctx, b, companies(b, "q"))
		require.NoError(t, err)

		// Workspace e: expired credentials, nothing queued.
		e := newWorkspace(t, bdb)
		ce, err := store.Save(ctx, e, "salesforce", []byte(`{}`), []byte(`{}`), connector.Identity{}, nil)
		require.NoError(t, err)
		require.NoError(t, store.MarkExpired(ctx, ce, "invalid_grant"))

		col := NewCollector(bdb, slog.New(slog.DiscardHandler))
		col.now = func() time.Time { return time.Now().Add(time.Hour) }
		reg := prometheus.NewRegistry()
		require.NoError(t, reg.Register(col))
		text := scrape(t, reg)

		wa := fmt.Sprintf(`{connector="memcrm",workspace="%d"}`, a)
		require.Equal(t, "2", value(t, text, "crmsync_queue_items"+wa))
		require.Equal(t, "1", value(t, text, "crmsync_queue_failed_items"+wa))
		var age float64
		_, err = fmt.Sscan(value(t, text, "crmsync_queue_oldest_item_age_seconds"+wa), &age)
		require.NoError(t, err)
		require.InDelta(t, 3600, age, 60)
		require.Equal(t, "40", value(t, text, "crmsync_crm_api_used"+wa))
		require.Equal(t, "100", value(t, text, "crmsync_crm_api_max"+wa))
		require.Equal(t, "7", value(t, text, "crmsync_calls_used"+wa))
		require.Equal(t, "50", value(t, text, "crmsync_calls_limit"+wa))
		var tokens, wait float64
		_, err = fmt.Sscan(value(t, text, "crmsync_pace_tokens"+wa), &tokens)
		require.NoError(t, err)
		require.InDelta(t, 0, tokens, 0.01, "an hour refilled the call it owed")
		_, err = fmt.Sscan(value(t, text, "crmsync_pace_wait_seconds"+wa), &wait)
		require.NoError(t, err)
		require.InDelta(t, 3600, wait, 60, "an hour to the next whole call")
		require.Equal(t, "50", value(t, text, "crmsync_budget_calls_per_day"+wa))
		require.Equal(t, "7", value(t, text, "crmsync_budget_spent_calls"+wa))
		require.NotContains(t, text, fmt.Sprintf(`crmsync_pace_tokens{connector="salesforce",workspace="%d"}`, e), "no pace before a paced flush")
		require.Equal(t, "1", value(t, text, fmt.Sprintf(`crmsync_sync_paused{connector="memcrm",reason="PAUSED_BY_USER",workspace="%d"}`, a)))
		require.Equal(t, "0", value(t, text, fmt.Sprintf(`crmsync_sync_paused{connector="memcrm",reason="SALESFORCE_LIMIT",workspace="%d"}`, a)))
		require.Equal(t, "0", value(t, text, "crmsync_connection_expired"+wa))

		wb := fmt.Sprintf(`{connector="",workspace="%d"}`, b)
		require.Equal(t, "1", value(t, text, "crmsync_queue_items"+wb))
		require.NotContains(t, text, "crmsync_calls_used"+wb, "no connection, no usage series")

		we := fmt.Sprintf(`{connector="salesforce",workspace="%d"}`, e)
		require.Equal(t, "0", value(t, text, "crmsync_queue_items"+we))
		require.Equal(t, "0", value(t, text, "crmsync_queue_oldest_item_age_seconds"+we))
		require.Equal(t, "1", value(t, text, "crmsync_connection_expired"+we))
		require.Equal(t, "1", value(t, text, fmt.Sprintf(`crmsync_sync_paused{connector="salesforce",reason="CONNECTION_EXPIRED",workspace="%d"}`, e)))
		require.NotContains(t, text, "crmsync_calls_limit"+we, "no limit set")
		require.Equal(t, "0", value(t, text, "crmsync_metrics_scrape_error"))

		// The scrape follows the state: resuming clears the pause.
		require.NoError(t, store.SetPausedByUser(ctx, a, false))
		text = scrape(t, reg)
		require.Equal(t, "0", value(t, text, fmt.Sprintf(`crmsync_sync_paused{connector="memcrm",reason="PAUSED_BY_USER",workspace="%d"}`, a)))

		// A database that cannot answer is reported, not hidden.
		require.NoError(t, bdb.Close())
		text = scrape(t, reg)
		require.Equal(t, "1", value(t, text, "crmsync_metrics_scrape_error"))
	})
}

func TestObserverCountsBatchesAndRestarts(t *testing.T) {
	t.Parallel()
	o := NewObserver()
	reg := prometheus.NewRegistry()
	require.NoError(t, o.Register(reg))
	start := time.Now()
	ctx := context.Background()
	o.BatchWritten(ctx, &synclog.Batch{WorkspaceID: 3, Direction: synclog.Outbound, Status: synclog.StatusSucceeded,
		StartedAt: start, FinishedAt: start.Add(300 * time.Millisecond), APICalls: 4})
	o.BatchWritten(ctx, &synclog.Batch{WorkspaceID: 3, Direction: synclog.Outbound, Status: synclog.StatusFailed,
		StartedAt: start, FinishedAt: start.Add(3 * time.Second), APICalls: 1})
	o.BatchWritten(ctx, &synclog.Batch{WorkspaceID: 3, Direction: synclog.Outbound, Status: synclog.StatusPaused, StartedAt: start, FinishedAt: start})
	o.PluginRestarted("memcrm")
	o.PluginRestarted("memcrm")

	text := scrape(t, reg)
	require.Equal(t, "1", value(t, text, `crmsync_sync_batches_total{direction="OUTBOUND",status="SUCCEEDED",workspace="3"}`))
	require.Equal(t, "1", value(t, text, `crmsync_sync_batches_total{direction="OUTBOUND",status="FAILED",workspace="3"}`))
	require.NotContains(t, text, `status="PAUSED"`, "a pause is not a batch run")
	require.Equal(t, "1", value(t, text, `crmsync_sync_pauses_total{direction="OUTBOUND",workspace="3"}`))
	require.Equal(t, "2", value(t, text, `crmsync_sync_batch_duration_seconds_count{direction="OUTBOUND",workspace="3"}`))
	require.Equal(t, "1", value(t, text, `crmsync_sync_batch_duration_seconds_bucket{direction="OUTBOUND",workspace="3",le="0.5"}`))
	require.Equal(t, "3.3", value(t, text, `crmsync_sync_batch_duration_seconds_sum{direction="OUTBOUND",workspace="3"}`))
	require.Equal(t, "5", value(t, text, `crmsync_crm_api_calls_total{direction="OUTBOUND",workspace="3"}`))
	require.Equal(t, "2", value(t, text, `crmsync_plugin_restarts_total{connector="memcrm"}`))
}

// TestCollectorReportsProgress: a backlog of 5 records queued at t0, with
// an outbound batch a minute later that created 2, parked 1 as failed, and
// left one to retry and one waiting for its parent: 3 done, 5 remaining,
// 3 records in 2 minutes, 200 s to go. Inbound batches and batches from
// before the backlog do not count; a workspace with nothing queued
// reports zeros and no ETA.
func TestCollectorReportsProgress(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		key := make([]byte, secret.KeySize)
		_, _ = rand.Read(key)
		box, err := secret.NewBox(key)
		require.NoError(t, err)
		store := connection.NewStore(bdb, box)
		t0 := time.Now().UTC().Truncate(time.Second).Add(-30 * time.Minute) // companies() changes now: less than an hour after
		in := outbound.NewIngester(bdb, noScheduler{}, nil, outbound.WithClock(func() time.Time { return t0 }))

		a := newWorkspace(t, bdb)
		_, err = store.Save(ctx, a, "memcrm", []byte(`{"org":"a"}`), []byte(`{"token":"t"}`), connector.Identity{UserID: "005"}, nil)
		require.NoError(t, err)
		_, err = in.Ingest(ctx, a, companies(a, "v", "w", "x", "y", "z"))
		require.NoError(t, err)
		batch := func(dir synclog.Direction, at time.Time, outcomes ...synclog.Outcome) {
			t.Helper()
			b := &synclog.Batch{WorkspaceID: a, Direction: dir, StartedAt: at, FinishedAt: at}
			for i, o := range outcomes {
				b.Records = append(b.Records, &synclog.Record{RecordType: record.TypeCompany, ConversionID: fmt.Sprint(i), Outcome: o})
			}
			b.Count()
			require.NoError(t, synclog.Write(ctx, bdb, b))
		}
		batch(synclog.Outbound, t0.Add(-time.Minute), synclog.OutcomeCreated, synclog.OutcomeCreated) // an earlier backlog
		batch(synclog.Inbound, t0.Add(30*time.Second), synclog.OutcomeUpdated, synclog.OutcomeUpdated)
		batch(synclog.Outbound, t0.Add(time.Minute), synclog.OutcomeCreated, synclog.OutcomeUpdated, synclog.OutcomeFailed,
			synclog.OutcomeRetrying, synclog.OutcomeWaiting)

		idle := newWorkspace(t, bdb)
		_, err = store.Save(ctx, idle, "memcrm", []byte(`{"org":"i"}`), []byte(`{"token":"t"}`), connector.Identity{UserID: "005"}, nil)
		require.NoError(t, err)

		col := NewCollector(bdb, slog.New(slog.DiscardHandler))
		col.now = func() time.Time { return t0.Add(2 * time.Minute) }
		reg := prometheus.NewRegistry()
		require.NoError(t, reg.Register(col))
		text := scrape(t, reg)

		wa := fmt.Sprintf(`{connector="memcrm",workspace="%d"}`, a)
		require.Equal(t, "3", value(t, text, "crmsync_outbound_progress_records_done"+wa))
		require.Equal(t, "5", value(t, text, "crmsync_outbound_progress_records_remaining"+wa))
		require.Equal(t, "0.025", value(t, text, "crmsync_outbound_progress_records_per_second"+wa))
		require.Equal(t, "200", value(t, text, "crmsync_outbound_progress_eta_seconds"+wa))

		wi := fmt.Sprintf(`{connector="memcrm",workspace="%d"}`, idle)
		require.Equal(t, "0", value(t, text, "crmsync_outbound_progress_records_done"+wi))
		require.Equal(t, "0", value(t, text, "crmsync_outbound_progress_records_remaining"+wi))
		require.Equal(t, "0", value(t, text, "crmsync_outbound_progress_records_per_second"+wi))
		require.NotContains(t, text, "crmsync_outbound_progress_eta_seconds"+wi, "no ETA without a backlog")
	})
}
