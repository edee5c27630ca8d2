package inbound

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/uptrace/bun"
)

// StreamCollector exports the inbound streams' state on every scrape:
// the mode, the lag, and the counters of events applied and fallbacks
// (rate() of the events counter is events per minute).
type StreamCollector struct {
	db     bun.IDB
	logger *slog.Logger
	now    func() time.Time

	mode, lag, events, fallbacks *prometheus.Desc
}

// NewStreamCollector returns a StreamCollector over db.
func NewStreamCollector(db bun.IDB, logger *slog.Logger) *StreamCollector {
	ws := []string{"workspace"}
	return &StreamCollector{db: db, logger: logger, now: time.Now,
		mode: prometheus.NewDesc("crmsync_inbound_mode", "1 for the workspace's current inbound mode (STREAMING, CATCHING_UP or POLLING), else 0.",
			[]string{"workspace", "mode"}, nil),
		lag: prometheus.NewDesc("crmsync_inbound_stream_lag_seconds",
			"Now minus the CRM commit time of the newest change applied from the stream (while streaming).", ws, nil),
		events: prometheus.NewDesc("crmsync_inbound_stream_events_total",
			"Change events consumed from the CRM's change stream (own writes included).", ws, nil),
		fallbacks: prometheus.NewDesc("crmsync_inbound_stream_fallbacks_total",
			"Falls back from streaming: catch-up pulls and switches to polling.", ws, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *StreamCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.mode
	ch <- c.lag
	ch <- c.events
	ch <- c.fallbacks
}

// Collect implements prometheus.Collector.
func (c *StreamCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var states []StreamState
	if err := c.db.NewSelect().Model(&states).Scan(ctx); err != nil {
		c.logger.Warn("metrics: read inbound streams", slog.Any("error", err))
		return
	}
	var lags []struct {
		WorkspaceID int64        `bun:"workspace_id"`
		Last        bun.NullTime `bun:"last"`
	}
	if err := c.db.NewSelect().Model((*positionRow)(nil)).ColumnExpr("workspace_id, max(last_commit_at) AS last").
		Group("workspace_id").Scan(ctx, &lags); err != nil {
		c.logger.Warn("metrics: read inbound stream lag", slog.Any("error", err))
		return
	}
	last := map[int64]time.Time{}
	for _, l := range lags {
		last[l.WorkspaceID] = l.Last.Time
	}
	now := c.now()
	for _, st := range states {
		ws := strconv.FormatInt(st.WorkspaceID, 10)
		for _, m := range []Mode{ModeStreaming, ModeCatchingUp, ModePolling} {
			v := 0.0
			if st.Mode == m {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.mode, prometheus.GaugeValue, v, ws, string(m))
		}
		if at := last[st.WorkspaceID]; st.Mode == ModeStreaming && !at.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, max(now.Sub(at).Seconds(), 0), ws)
		}
		ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(st.EventsApplied), ws)
		ch <- prometheus.MustNewConstMetric(c.fallbacks, prometheus.CounterValue, float64(st.Fallbacks), ws)
	}
}
