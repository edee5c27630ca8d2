// Package metrics exposes crmsync's sync state to Prometheus, per workspace
// connection (docs/architecture.md#observability; the list is in docs/limits.md).
//
// Two halves: Collector reads the state every replica shares (queue depth,
// API usage against both limits, pause state) from the database on each
// scrape, with a few aggregated queries over all workspaces, so any replica
// reports the same numbers; Observer counts what this process did (sync
// batches and their latency, CRM calls, pause episodes, plugin restarts),
// fed by the engine's batch notifier and the plugin host.
package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/limits"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/overview"
	"github.com/crmsync/crmsync/internal/push"
	"github.com/crmsync/crmsync/internal/synclog"
)

// scrapeTimeout bounds the queries of one scrape.
const scrapeTimeout = 5 * time.Second

// pauseReasons are the reasons a connection can be paused for, each one a
// series of crmsync_sync_paused.
var pauseReasons = []push.PauseReason{
	push.PauseSalesforceLimit, push.PauseConversionLimit,
	push.PauseConnectionExpired, push.PauseByUser, push.PauseCredentialsUnreadable,
	push.PauseConnectorUnavailable,
}

// Collector reads per-connection gauges from the database on every scrape.
type Collector struct {
	db     bun.IDB
	logger *slog.Logger
	now    func() time.Time

	queued, failed, oldest     *prometheus.Desc
	apiUsed, apiMax            *prometheus.Desc
	callsUsed, callsLimit      *prometheus.Desc
	paused, expired, scrapeErr *prometheus.Desc
	unreadable, unavailable    *prometheus.Desc
	// Budget pacing (push.StoredPace), for paced connections.
	paceTokens, paceWait, budgetPerDay, budgetSpent *prometheus.Desc
	// Progress of the outbound backlog (overview.Progress).
	progressDone, progressRemaining, progressRate, progressETA *prometheus.Desc
}

// NewCollector returns a Collector over db.
func NewCollector(db bun.IDB, logger *slog.Logger) *Collector {
	ws := []string{"workspace", "connector"}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &Collector{db: db, logger: logger, now: time.Now,
		queued:      d("crmsync_queue_items", "Changes waiting to be pushed to the CRM.", ws...),
		failed:      d("crmsync_queue_failed_items", "Changes parked after the CRM refused them for good.", ws...),
		oldest:      d("crmsync_queue_oldest_item_age_seconds", "Age of the oldest change waiting to be pushed (0 when none).", ws...),
		apiUsed:     d("crmsync_crm_api_used", "The CRM org's API calls used in its daily window, as last reported by the CRM (all tools, not only crmsync).", ws...),
		apiMax:      d("crmsync_crm_api_max", "The CRM org's daily API allowance, as last reported by the CRM.", ws...),
		callsUsed:   d("crmsync_calls_used", "CRM API calls crmsync itself made in the rolling 24 hours.", ws...),
		callsLimit:  d("crmsync_calls_limit", "The crmsync daily call limit (absent when none is set).", ws...),
		paused:      d("crmsync_sync_paused", "1 when the connection's syncing is paused for this reason, else 0.", "workspace", "connector", "reason"),
		expired:     d("crmsync_connection_expired", "1 when the connection's credentials can no longer be refreshed.", ws...),
		unreadable:  d("crmsync_connection_credentials_unreadable", "1 when the connection's stored credentials do not decrypt with this server's secret key (the key changed).", ws...),
		unavailable: d("crmsync_connector_unavailable", "1 when the connection's connector cannot start (connection status CONNECTOR_UNAVAILABLE; the kind is the reason's first word: VERSION_MISMATCH, BAD_HANDSHAKE, CHECKSUM_MISMATCH, CRASH_LOOP, START_FAILED).", "workspace", "connector", "kind"),
		scrapeErr:   d("crmsync_metrics_scrape_error", "1 when the last scrape could not read the sync state from the database.", nil...),

		paceTokens:   d("crmsync_pace_tokens", "Calls in the connection's outbound token bucket (negative: debt after a burst).", ws...),
		paceWait:     d("crmsync_pace_wait_seconds", "How long a change arriving now waits for the bucket before its flush may start.", ws...),
		budgetPerDay: d("crmsync_budget_calls_per_day", "The calls crmsync may make in any 24 hours (its daily limit, else its share of the CRM allowance).", ws...),
		budgetSpent:  d("crmsync_budget_spent_calls", "The calls crmsync made in the rolling 24 hours, against its budget.", ws...),

		progressDone:      d("crmsync_outbound_progress_records_done", "Records the flushes finished (written, skipped or parked as failed) since the oldest queued change was accepted (0 when nothing is queued).", ws...),
		progressRemaining: d("crmsync_outbound_progress_records_remaining", "Distinct records with queued changes.", ws...),
		progressRate:      d("crmsync_outbound_progress_records_per_second", "Records finished per second over the last 5 minutes (or since the backlog began, if later).", ws...),
		progressETA:       d("crmsync_outbound_progress_eta_seconds", "Seconds until the queue is empty at that rate (absent while the rate is 0 or nothing is queued).", ws...),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.queued, c.failed, c.oldest, c.apiUsed, c.apiMax,
		c.callsUsed, c.callsLimit, c.paused, c.expired, c.unreadable, c.unavailable, c.scrapeErr, c.paceTokens, c.paceWait, c.budgetPerDay, c.budgetSpent,
		c.progressDone, c.progressRemaining, c.progressRate, c.progressETA} {
		ch <- d
	}
}

// queueRow is one workspace's queue, by state.
type queueRow struct {
	WorkspaceID int64          `bun:"workspace_id"`
	State       outbound.State `bun:"state"`
	N           int64          `bun:"n"`
	Oldest      bun.NullTime   `bun:"oldest"`
}

// state is what one scrape read.
type state struct {
	conns  []connection.Connection
	queues []queueRow
	calls  map[int64]int64
	// progress of each workspace with queued items.
	progress map[int64]overview.Progress
}

func (c *Collector) read(ctx context.Context, now time.Time) (*state, error) {
	s := &state{}
	if err := c.db.NewSelect().Model(&s.conns).Column("workspace_id", "connector", "status", "status_reason", "paused_by_user",
		"api_used", "api_max", "daily_limit", "pause_reason", "pace_tokens", "pace_rate", "pace_at", "pace_burst", "pace_budget").Scan(ctx); err != nil {
		return nil, fmt.Errorf("read connections: %w", err)
	}
	err := c.db.NewSelect().Model((*outbound.Item)(nil)).
		ColumnExpr("workspace_id, state, COUNT(*) AS n, MIN(created_at) AS oldest").
		Group("workspace_id", "state").Scan(ctx, &s.queues)
	if err != nil {
		return nil, fmt.Errorf("measure queues: %w", err)
	}
	if s.calls, err = limits.UsedByWorkspace(ctx, c.db, now); err != nil {
		return nil, err
	}
	// Two reads per workspace with a backlog (its distinct queued records,
	// its batches in the sync log), none for the others.
	s.progress = map[int64]overview.Progress{}
	for _, q := range s.queues {
		if q.State != outbound.StateQueued || q.N == 0 {
			continue
		}
		p, err := overview.GetProgress(ctx, c.db, q.WorkspaceID, q.Oldest.Time, now)
		if err != nil {
			return nil, err
		}
		s.progress[q.WorkspaceID] = p
	}
	return s, nil
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	now := c.now()
	s, err := c.read(ctx, now)
	if err != nil {
		c.logger.Warn("metrics: read sync state", slog.Any("error", err))
		ch <- prometheus.MustNewConstMetric(c.scrapeErr, prometheus.GaugeValue, 1)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.scrapeErr, prometheus.GaugeValue, 0)
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	// Every workspace with a connection or a queue gets its queue series;
	// the connector label is empty while not connected.
	connectorOf := map[int64]string{}
	for _, cn := range s.conns {
		connectorOf[cn.WorkspaceID] = cn.Connector
	}
	type depth struct {
		queued, failed int64
		oldest         time.Time
	}
	depths := map[int64]*depth{}
	for _, cn := range s.conns {
		depths[cn.WorkspaceID] = &depth{}
	}
	for _, q := range s.queues {
		d := depths[q.WorkspaceID]
		if d == nil {
			d = &depth{}
			depths[q.WorkspaceID] = d
		}
		switch q.State {
		case outbound.StateQueued:
			d.queued, d.oldest = q.N, q.Oldest.Time
		case outbound.StateFailed:
			d.failed = q.N
		}
	}
	for ws, d := range depths {
		labels := []string{strconv.FormatInt(ws, 10), connectorOf[ws]}
		gauge(c.queued, float64(d.queued), labels...)
		gauge(c.failed, float64(d.failed), labels...)
		age := 0.0
		if !d.oldest.IsZero() {
			age = max(now.Sub(d.oldest).Seconds(), 0)
		}
		gauge(c.oldest, age, labels...)
		p := s.progress[ws] // zero when nothing is queued
		gauge(c.progressDone, float64(p.Done), labels...)
		gauge(c.progressRemaining, float64(p.Remaining), labels...)
		gauge(c.progressRate, p.PerMinute/60, labels...)
		if !p.ETA.IsZero() {
			gauge(c.progressETA, max(p.ETA.Sub(now).Seconds(), 0), labels...)
		}
	}
	for i := range s.conns {
		cn := &s.conns[i]
		labels := []string{strconv.FormatInt(cn.WorkspaceID, 10), cn.Connector}
		if cn.APIUsed.Valid {
			gauge(c.apiUsed, float64(cn.APIUsed.Int64), labels...)
		}
		if cn.APIMax.Valid {
			gauge(c.apiMax, float64(cn.APIMax.Int64), labels...)
		}
		used := s.calls[cn.WorkspaceID]
		gauge(c.callsUsed, float64(used), labels...)
		if p := push.StoredPace(cn, used, now); p.Enabled {
			gauge(c.paceTokens, p.Tokens, labels...)
			gauge(c.paceWait, p.Wait.Seconds(), labels...)
			gauge(c.budgetPerDay, float64(p.BudgetPerDay), labels...)
			gauge(c.budgetSpent, float64(p.Spent), labels...)
		}
		if cn.DailyLimit.Valid {
			gauge(c.callsLimit, float64(cn.DailyLimit.Int64), labels...)
		}
		reason := overview.PauseReason(cn, used)
		for _, r := range pauseReasons {
			gauge(c.paused, boolValue(r == reason), append(labels, string(r))...)
		}
		gauge(c.expired, boolValue(cn.Status == connection.StatusExpired), labels...)
		gauge(c.unreadable, boolValue(cn.Status == connection.StatusCredentialsUnreadable), labels...)
		kind := ""
		if cn.Status == connection.StatusConnectorUnavailable {
			kind, _, _ = strings.Cut(cn.StatusReason, ":")
		}
		gauge(c.unavailable, boolValue(kind != ""), append(labels, kind)...)
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Observer counts what this process does: it is an push.BatchNotifier
// and the plugin host's OnRestart and OnStartFailure.
type Observer struct {
	batches       *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	calls         *prometheus.CounterVec
	pauses        *prometheus.CounterVec
	restarts      *prometheus.CounterVec
	startFailures *prometheus.CounterVec

	// ingest group commit (outbound.GroupObserver)
	groupCalls, groupChanges   prometheus.Histogram
	groupDuration, ingestWait  prometheus.Histogram
	groupFailures, ingestRefus prometheus.Counter
}

// NewObserver returns an Observer; register it with Register.
func NewObserver() *Observer {
	return &Observer{
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crmsync_sync_batches_total",
			Help: "Sync batches run by this process: direction OUTBOUND is a flush, INBOUND a pull; status SUCCEEDED, PARTIAL or FAILED.",
		}, []string{"workspace", "direction", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "crmsync_sync_batch_duration_seconds",
			Help:    "Latency of sync batches (a flush: from claiming the queue to the sync log written).",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"workspace", "direction"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crmsync_crm_api_calls_total",
			Help: "CRM API calls made by the sync batches of this process.",
		}, []string{"workspace", "direction"}),
		pauses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crmsync_sync_pauses_total",
			Help: "Pause episodes logged by this process (one PAUSED sync-log entry each).",
		}, []string{"workspace", "direction"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crmsync_plugin_restarts_total",
			Help: "Starts of a connector plugin after its first: replacing a process that died, or retrying after a failed start.",
		}, []string{"connector"}),
		startFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crmsync_plugin_start_failures_total",
			Help: "Connector plugins that could not be started, by kind: VERSION_MISMATCH, BAD_HANDSHAKE, CHECKSUM_MISMATCH, CRASH_LOOP (held back after dying too often), START_FAILED.",
		}, []string{"connector", "kind"}),
		groupCalls: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "crmsync_ingest_group_calls",
			Help:    "Ingest calls (recordChanges mutations and in-process ingests) sharing one group-commit transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		groupChanges: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "crmsync_ingest_group_changes",
			Help:    "Changes committed by one group-commit transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		}),
		groupDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "crmsync_ingest_commit_duration_seconds",
			Help:    "Duration of one group-commit transaction, from begin to commit.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		ingestWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "crmsync_ingest_wait_seconds",
			Help:    "How long an ingest call waited for its group's transaction to start.",
			Buckets: []float64{.0001, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		groupFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "crmsync_ingest_group_failures_total",
			Help: "Group-commit transactions that failed (their calls got a retryable error, or were tried again one by one).",
		}),
		ingestRefus: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "crmsync_ingest_rejected_total",
			Help: "Ingest calls refused as overloaded because too many calls waited already (--ingest-max-waiting).",
		}),
	}
}

// Register adds the observer's series to reg.
func (o *Observer) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{o.batches, o.duration, o.calls, o.pauses, o.restarts, o.startFailures,
		o.groupCalls, o.groupChanges, o.groupDuration, o.ingestWait, o.groupFailures, o.ingestRefus} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register sync metrics: %w", err)
		}
	}
	return nil
}

// BatchWritten implements push.BatchNotifier.
func (o *Observer) BatchWritten(_ context.Context, b *synclog.Batch) {
	ws, dir := strconv.FormatInt(b.WorkspaceID, 10), string(b.Direction)
	if b.Status == synclog.StatusPaused {
		o.pauses.WithLabelValues(ws, dir).Inc()
		return
	}
	o.batches.WithLabelValues(ws, dir, string(b.Status)).Inc()
	o.duration.WithLabelValues(ws, dir).Observe(max(b.FinishedAt.Sub(b.StartedAt).Seconds(), 0))
	if b.APICalls > 0 {
		o.calls.WithLabelValues(ws, dir).Add(float64(b.APICalls))
	}
}

// PluginRestarted counts a restart of the named connector's plugin
// (crmplugin.HostConfig.OnRestart).
func (o *Observer) PluginRestarted(connector string) {
	o.restarts.WithLabelValues(connector).Inc()
}

// PluginStartFailed counts a failed start of the named connector's plugin
// by kind (crmplugin.HostConfig.OnStartFailure).
func (o *Observer) PluginStartFailed(connector, kind string) {
	o.startFailures.WithLabelValues(connector, kind).Inc()
}

// GroupCommitted implements outbound.GroupObserver.
func (o *Observer) GroupCommitted(calls, changes int, took time.Duration, err error) {
	if err != nil {
		o.groupFailures.Inc()
		return
	}
	o.groupCalls.Observe(float64(calls))
	o.groupChanges.Observe(float64(changes))
	o.groupDuration.Observe(took.Seconds())
}

// CallWaited implements outbound.GroupObserver.
func (o *Observer) CallWaited(d time.Duration) { o.ingestWait.Observe(d.Seconds()) }

// CallRejected implements outbound.GroupObserver.
func (o *Observer) CallRejected() { o.ingestRefus.Inc() }
