package push_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/salesforce"
	"github.com/crmsync/crmsync/connectors/salesforce/sffake/sffaketest"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/push"
)

// fakeClock is the engine's clock in TestForecastPredictsMeasuredDuration:
// it moves only when the CRM spends time, so a drain's duration on it is
// the CRM's time alone, whatever the machine's load.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) Now() time.Time                  { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) advance(d time.Duration)         { c.ns.Add(int64(d)) }
func (c *fakeClock) since(t time.Time) time.Duration { return c.Now().Sub(t) }

// timedCRM is a connector that spends, on a fake clock, what an org of
// known cost would: latency per API call its response counts, and scale
// times the forecast's assumed time per record written (per id read), a
// bulk job's chunks of 10,000 worked 10 at a time. It implements every
// optional capability of the connector it wraps, so the flush takes the
// same paths.
type timedCRM struct {
	connector.Connector
	clock   *fakeClock
	latency time.Duration
	scale   float64
}

// The wrapped connector's optional capabilities.
type sfCapabilities interface {
	connector.BatchFetcher
	connector.ConditionalUpdater
	connector.BulkJobRunner
}

func (c *timedCRM) spend(meta *connector.Meta, records time.Duration) {
	calls := 0
	if meta != nil {
		calls = meta.Calls
	}
	c.clock.advance(time.Duration(calls)*c.latency + time.Duration(float64(records)*c.scale))
}

func (c *timedCRM) writes(ops []connector.Operation) time.Duration {
	var d time.Duration
	for _, op := range ops {
		d += push.AssumedRecordTime(op.Object, op.Kind)
	}
	return d
}

const readPerID = 200 * time.Microsecond

func (c *timedCRM) FetchCurrent(ctx context.Context, req connector.FetchCurrentRequest) (*connector.FetchCurrentResponse, error) {
	resp, err := c.Connector.FetchCurrent(ctx, req)
	if err == nil {
		c.spend(&resp.Meta, time.Duration(len(req.IDs))*readPerID)
	}
	return resp, err
}

func (c *timedCRM) FetchCurrentMany(ctx context.Context, req connector.FetchManyRequest) (*connector.FetchManyResponse, error) {
	resp, err := c.Connector.(sfCapabilities).FetchCurrentMany(ctx, req)
	if err == nil {
		var ids int
		for _, r := range req.Requests {
			ids += len(r.IDs)
		}
		c.spend(&resp.Meta, time.Duration(ids)*readPerID)
	}
	return resp, err
}

func (c *timedCRM) BulkUpdate(ctx context.Context, req connector.BulkUpdateRequest) (*connector.BulkUpdateResponse, error) {
	resp, err := c.Connector.BulkUpdate(ctx, req)
	if err == nil {
		c.spend(&resp.Meta, c.writes(req.Operations))
	}
	return resp, err
}

func (c *timedCRM) UpdateIfUnmodified(ctx context.Context, req connector.ConditionalUpdateRequest) (*connector.ConditionalUpdateResponse, error) {
	resp, err := c.Connector.(sfCapabilities).UpdateIfUnmodified(ctx, req)
	if err == nil {
		c.spend(&resp.Meta, 0)
	}
	return resp, err
}

func (c *timedCRM) OpenBulkJob(ctx context.Context, req connector.OpenBulkJobRequest) (*connector.OpenBulkJobResponse, error) {
	resp, err := c.Connector.(sfCapabilities).OpenBulkJob(ctx, req)
	if err == nil {
		c.spend(&resp.Meta, 0)
	}
	return resp, err
}

// RunBulkJob spends the job's calls and its processing: its chunks are
// worked at once (at most 10 in these tests), so it takes as long as its
// largest chunk.
func (c *timedCRM) RunBulkJob(ctx context.Context, req connector.RunBulkJobRequest) (*connector.BulkUpdateResponse, error) {
	resp, err := c.Connector.(sfCapabilities).RunBulkJob(ctx, req)
	if err == nil {
		chunk := req.Operations[:min(len(req.Operations), 10_000)]
		c.spend(&resp.Meta, c.writes(chunk))
	}
	return resp, err
}

func (c *timedCRM) SettleBulkJob(ctx context.Context, req connector.SettleBulkJobRequest) (*connector.SettleBulkJobResponse, error) {
	resp, err := c.Connector.(sfCapabilities).SettleBulkJob(ctx, req)
	if err == nil {
		c.spend(&resp.Meta, 0)
	}
	return resp, err
}

// TestForecastPredictsMeasuredDuration checks the forecast's duration
// against a drain timed on a fake clock that only the CRM moves: an org
// that spends 400 ms a call and 3 times the assumed time per record. A
// first import (REST and one bulk job) gives the workspace its measured
// batches and bulk job; the forecast of the next queue (updates by REST,
// creates by bulk) must then use the measured figures, and its CRM terms
// (calls, records, bulk: the flushes' own work is not on the fake clock)
// must come within 10% of the drain's time. Wall-clock time is not asserted.
func TestForecastPredictsMeasuredDuration(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		clock := &fakeClock{}
		clock.ns.Store(time.Now().UnixNano())
		const latency, scale = 400 * time.Millisecond, 3.0
		wrap := func(c connector.Connector) connector.Connector {
			return &timedCRM{Connector: c, clock: clock, latency: latency, scale: scale}
		}
		b := setupSffakeWrapped(t, bdb, sffaketest.Start(t), push.Config{MaxItems: 5000, Now: clock.Now}, wrap,
			func(c *salesforce.Config) { c.BulkThreshold = 1000 })

		// Nothing measured yet: the assumed figures.
		b.ingest(t, append(companies("d", 400, "phone"), contacts("e", 1500, "d", 400, "A")...))
		fc, err := b.engine.Forecast(ctx, b.ws)
		require.NoError(t, err)
		require.Equal(t, push.BasisAssumed, fc.Terms.CallBasis)
		require.Equal(t, push.BasisAssumed, fc.Terms.BulkBasis)
		require.Equal(t, push.DefaultCallLatency, fc.CallLatency)
		require.InDelta(t, 1.0, fc.Terms.RecordScale, 0)
		require.Equal(t, 1, fc.BulkJobs)
		b.drain(t)

		// The next queue: the 400 companies and 900 contacts updated by
		// REST, 1,200 new contacts created by one bulk job.
		b.ingest(t, append(append(companies("d", 400, "industry"), titles("e", 900)...), contacts("f", 1200, "d", 400, "B")...))
		fc, err = b.engine.Forecast(ctx, b.ws)
		require.NoError(t, err)
		require.Equal(t, 1, fc.BulkJobs)
		require.Equal(t, push.BasisMeasured, fc.Terms.CallBasis)
		require.Positive(t, fc.LatencyCalls)
		// The measured batch's time less the flush's own work, which the
		// fake clock does not spend, so a little under the org's scale.
		require.InDelta(t, scale, fc.Terms.RecordScale, 0.3)
		require.InDelta(t, latency.Seconds(), fc.CallLatency.Seconds(), 0.3*push.DefaultCallLatency.Seconds())
		require.Equal(t, push.BasisMeasured, fc.Terms.BulkBasis)
		require.Equal(t, 1, fc.Terms.BulkJobsSeen)
		require.Positive(t, fc.Terms.BulkPerRecord)
		require.Equal(t, fc.Terms.Flush+fc.Terms.Calls+fc.Terms.Records+fc.Terms.Bulk+fc.Terms.Pacing, fc.Duration)

		start := clock.Now()
		b.drain(t)
		measured := clock.since(start)
		predicted := fc.Duration - fc.Terms.Flush
		t.Logf("predicted %s (calls %s, records %s, bulk %s), measured %s on the CRM's clock", predicted, fc.Terms.Calls, fc.Terms.Records, fc.Terms.Bulk, measured)
		require.InEpsilon(t, measured.Seconds(), predicted.Seconds(), 0.10, "predicted %s, measured %s", predicted, measured)
	})
}

// TestForecastDurationMeasuresOnlyItsWorkspace: another workspace's
// batches do not make a workspace's figures measured.
func TestForecastDurationMeasuresOnlyItsWorkspace(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		other := setupSffake(t, bdb, push.Config{MaxItems: 1000})
		other.ingest(t, companies("o", 300, "phone"))
		other.drain(t)
		b := setupSffake(t, bdb, push.Config{MaxItems: 1000})
		b.ingest(t, companies("p", 300, "phone"))
		fc, err := b.engine.Forecast(ctx, b.ws)
		require.NoError(t, err)
		require.Equal(t, push.BasisAssumed, fc.Terms.CallBasis)
		require.True(t, fc.LatencyAssumed)
		fc, err = other.engine.Forecast(ctx, other.ws)
		require.NoError(t, err)
		require.Equal(t, push.BasisMeasured, fc.Terms.CallBasis, "the other workspace has its batch")
		require.Zero(t, fc.Items)
	})
}

// TestForecastPlansCutOffFlushes: on an org measured 10 times slower than
// assumed, 1,500 company creates outlive a flush job's 2 minutes. The
// forecast plans the first flush cut off at 2 minutes with what it wrote
// by then, then claims halved until they fit, and still counts each
// record once.
func TestForecastPlansCutOffFlushes(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		clock := &fakeClock{}
		clock.ns.Store(time.Now().UnixNano())
		wrap := func(c connector.Connector) connector.Connector {
			return &timedCRM{Connector: c, clock: clock, latency: time.Second, scale: 10}
		}
		b := setupSffakeWrapped(t, bdb, sffaketest.Start(t), push.Config{MaxItems: 50_000, Now: clock.Now}, wrap)
		b.ingest(t, companies("g", 300, "phone"))
		b.drain(t)
		b.ingest(t, companies("h", 1500, "phone"))
		fc, err := b.engine.Forecast(ctx, b.ws)
		require.NoError(t, err)
		require.Equal(t, push.BasisMeasured, fc.Terms.CallBasis)
		require.Greater(t, fc.Terms.RecordScale, 8.0)
		require.Equal(t, 1500, fc.Creates, "the records the cut-off flush wrote are still creates, counted once")
		require.Equal(t, 1500, fc.Records)
		require.Equal(t, 1, fc.CutOffs)
		require.Equal(t, 2*time.Minute, fc.Terms.CutOff)
		require.Greater(t, fc.Flushes, 1)
		require.Equal(t, fc.Terms.Flush+fc.Terms.Calls+fc.Terms.Records+fc.Terms.Bulk+fc.Terms.CutOff, fc.Duration)
		// What the cut-off flush wrote (about 1,000 records in 2 minutes)
		// is not written again: the rest fits in one more minute or two.
		require.Less(t, fc.Terms.Records, 90*time.Second, "records after the cut-off: %s", fc.Terms.Records)
		require.Greater(t, fc.Terms.Records, 30*time.Second)
	})
}
