package push_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/memcrm"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/limits"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/overview"
	"github.com/crmsync/crmsync/internal/push"
	"github.com/crmsync/crmsync/internal/record"
	"github.com/crmsync/crmsync/internal/synclog"
)

// countingCRM counts every call that reaches the connector, refused ones
// included, and the calls started after the first rate-limit refusal.
type countingCRM struct {
	connector.Connector

	mu         sync.Mutex
	calls      map[string]int
	limited    bool
	afterLimit int
}

func newCounting(c connector.Connector) *countingCRM {
	return &countingCRM{Connector: c, calls: map[string]int{}}
}

func (c *countingCRM) begin(method string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[method]++
	if c.limited {
		c.afterLimit++
	}
}

func (c *countingCRM) end(err error) {
	if errors.Is(err, connector.ErrRateLimited) {
		c.mu.Lock()
		c.limited = true
		c.mu.Unlock()
	}
}

// total returns the calls made, Limits probes excluded when data is set.
func (c *countingCRM) total(data bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for m, k := range c.calls {
		if !data || m != "Limits" {
			n += k
		}
	}
	return n
}

func (c *countingCRM) state() (limited bool, afterLimit int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.limited, c.afterLimit
}

func (c *countingCRM) Describe(ctx context.Context, req connector.DescribeRequest) (*connector.Description, error) {
	if len(req.Session.Credentials) == 0 {
		// The static part (name, capabilities): the connector answers it
		// itself, without calling the CRM.
		return c.Connector.Describe(ctx, req)
	}
	c.begin("Describe")
	r, err := c.Connector.Describe(ctx, req)
	c.end(err)
	return r, err
}

func (c *countingCRM) Check(ctx context.Context, req connector.CheckRequest) (*connector.CheckResponse, error) {
	c.begin("Check")
	r, err := c.Connector.Check(ctx, req)
	c.end(err)
	return r, err
}

func (c *countingCRM) FetchCurrent(ctx context.Context, req connector.FetchCurrentRequest) (*connector.FetchCurrentResponse, error) {
	c.begin("FetchCurrent")
	r, err := c.Connector.FetchCurrent(ctx, req)
	c.end(err)
	return r, err
}

func (c *countingCRM) BulkUpdate(ctx context.Context, req connector.BulkUpdateRequest) (*connector.BulkUpdateResponse, error) {
	c.begin("BulkUpdate")
	r, err := c.Connector.BulkUpdate(ctx, req)
	c.end(err)
	return r, err
}

func (c *countingCRM) Limits(ctx context.Context, req connector.LimitsRequest) (*connector.LimitsResponse, error) {
	c.begin("Limits")
	r, err := c.Connector.Limits(ctx, req)
	c.end(err)
	return r, err
}

// nowScheduler counts the flushes a connection service asks for.
type nowScheduler struct {
	mu sync.Mutex
	n  int
}

func (s *nowScheduler) ScheduleNow(context.Context, int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	return nil
}

// engineWith returns an engine over b's database and store calling crm,
// with the given probe age.
func engineWith(b *testBundle, crm connector.Connector, probe time.Duration) *push.Engine {
	conns := connectorsFunc(func(context.Context, string) (connector.Connector, error) { return crm, nil })
	return push.New(b.db, b.conns, conns, nil, slog.New(slog.DiscardHandler),
		push.Config{RetryBase: time.Millisecond, WaitDelay: time.Millisecond, LimitProbe: probe})
}

// burst queues a burst touching every dependency level: companies,
// contacts of those companies, a campaign and its members.
func burst(b *testBundle, t *testing.T, n int) {
	t.Helper()
	now := b.clock.Now()
	var changes []outbound.Change
	changes = append(changes, change(record.TypeCampaign, "camp", now, map[string]any{"name": "Launch"}))
	for i := range n {
		co, c := fmt.Sprintf("co%d", i), fmt.Sprintf("c%d", i)
		changes = append(changes,
			change(record.TypeCompany, co, now, map[string]any{"name": "Company " + co, "website": co + ".example"}),
			change(record.TypeContact, c, now, map[string]any{"email": c + "@example.com", "lastName": "L" + c, "company": "Company " + co, "companyId": co}),
			outbound.Change{Type: record.TypeCampaignMember, ID: outbound.MemberID("camp", c), Source: record.SourceUI,
				Fields: map[string]outbound.FieldChange{"campaignId": {Value: "camp"}, "contactId": {Value: c}, "status": {Value: "Sent"}}})
	}
	b.ingest(t, changes...)
}

func queued(t *testing.T, b *testBundle) int {
	t.Helper()
	d, err := outbound.Measure(context.Background(), b.db, b.ws)
	require.NoError(t, err)
	return d.Queued
}

func pausedBatches(t *testing.T, b *testBundle) []*synclog.Batch {
	t.Helper()
	out, err := synclog.List(context.Background(), b.db, b.ws, synclog.Filter{Status: synclog.StatusPaused}, 0, 100)
	require.NoError(t, err)
	return out
}

func overviewOf(t *testing.T, b *testBundle) overview.Overview {
	t.Helper()
	o, err := overview.Get(context.Background(), b.db, b.ws, time.Now())
	require.NoError(t, err)
	return o
}

// drainWith flushes with e until the queue is empty, failing after a
// deadline.
func drainWith(t *testing.T, b *testBundle, e *push.Engine) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for queued(t, b) > 0 {
		require.True(t, time.Now().Before(deadline), "queue did not drain: %d left", queued(t, b))
		_, err := e.Flush(context.Background(), b.ws)
		require.NoError(t, err)
		time.Sleep(2 * time.Millisecond) // backoffs and probe ages in these tests are a millisecond
	}
}

func TestSalesforceLimitPausesAndResumesWithNothingLost(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		b := setup(t, bdb)
		crm := newCounting(b.crm)
		// The gate trusts a spent reading for an hour: flushes in between
		// must not reach the CRM at all.
		held := engineWith(b, crm, time.Hour)

		// Usage comes back with every response and shows in the overview.
		b.ingest(t, change(record.TypeCompany, "first", b.clock.Now(), map[string]any{"name": "First", "website": "first.example"}))
		_, err := held.Flush(ctx, b.ws)
		require.NoError(t, err)
		o := overviewOf(t, b)
		u := b.org.Usage()
		require.NotNil(t, o.CRMUsed)
		require.Equal(t, u.Used, *o.CRMUsed)
		require.Equal(t, u.Max, *o.CRMMax)
		require.False(t, o.Paused)

		// The allowance runs out in the middle of a burst.
		const n = 5
		burst(b, t, n)
		total := 1 + 3*n
		require.Equal(t, total, queued(t, b))
		b.org.SetDailyMax(u.Used + 2)
		_, err = held.Flush(ctx, b.ws)
		require.ErrorIs(t, err, connector.ErrRateLimited)
		limited, after := crm.state()
		require.True(t, limited)
		require.Zero(t, after, "no call after the first REQUEST_LIMIT_EXCEEDED")
		require.Equal(t, total, queued(t, b), "the queue holds")
		o = overviewOf(t, b)
		require.True(t, o.Paused)
		require.Equal(t, push.PauseSalesforceLimit, o.PauseReason)

		// Ticks while spent: no CRM call, one PAUSED entry for the episode.
		calls := crm.total(false)
		for range 5 {
			res, err := held.Flush(ctx, b.ws)
			require.NoError(t, err)
			require.Equal(t, push.PauseSalesforceLimit, res.Paused)
		}
		require.Equal(t, calls, crm.total(false))
		paused := pausedBatches(t, b)
		require.Len(t, paused, 1)
		require.Contains(t, paused[0].Message, "CRM daily API usage") // memcrm: named neutrally

		// The allowance resets. A reading younger than the probe age is
		// still trusted, so nothing moves yet...
		b.org.ResetUsage()
		b.org.SetDailyMax(memcrm.DefaultDailyMax)
		res, err := held.Flush(ctx, b.ws)
		require.NoError(t, err)
		require.Equal(t, push.PauseSalesforceLimit, res.Paused)
		require.Equal(t, calls, crm.total(false))

		// ...and once the reading is old enough, one Limits probe ends the
		// pause and the queue drains by itself.
		probing := engineWith(b, crm, time.Millisecond)
		time.Sleep(2 * time.Millisecond)
		drainWith(t, b, probing)
		require.Equal(t, 1, crm.calls["Limits"], "one probe ends the episode")
		require.Len(t, b.org.All("Account"), n+1)
		require.Len(t, b.org.All("Lead"), n)
		require.Len(t, b.org.All("Campaign"), 1)
		require.Len(t, b.org.All("CampaignMember"), n)
		require.False(t, overviewOf(t, b).Paused)

		// A new episode is logged again.
		b.org.SetDailyMax(b.org.Usage().Used)
		b.ingest(t, change(record.TypeCompany, "late", b.clock.Now(), map[string]any{"name": "Late", "website": "late.example"}))
		_, err = held.Flush(ctx, b.ws)
		require.ErrorIs(t, err, connector.ErrRateLimited)
		res, err = held.Flush(ctx, b.ws)
		require.NoError(t, err)
		require.Equal(t, push.PauseSalesforceLimit, res.Paused)
		require.Len(t, pausedBatches(t, b), 2)
	})
}

func TestSalesforceUsageAtMaxPausesBeforeAnyCall(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		b := setup(t, bdb)
		crm := newCounting(b.crm)
		e := engineWith(b, crm, time.Hour)
		// A response said the allowance is spent (a successful call can
		// use the last one): the next flush sends nothing.
		c, err := b.conns.Get(ctx, b.ws)
		require.NoError(t, err)
		require.NoError(t, b.conns.Observe(ctx, c, connector.Meta{Usage: &connector.Usage{Used: 500, Max: 500, ObservedAt: time.Now()}}))
		b.ingest(t, change(record.TypeCompany, "a", b.clock.Now(), map[string]any{"name": "A"}))
		res, err := e.Flush(ctx, b.ws)
		require.NoError(t, err)
		require.Equal(t, push.PauseSalesforceLimit, res.Paused)
		require.NotNil(t, res.Batch)
		require.Equal(t, synclog.StatusPaused, res.Batch.Status)
		require.Zero(t, crm.total(false))
		require.Equal(t, 1, queued(t, b))
	})
}

func TestConversionLimitIsNeverCrossed(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		b := setup(t, bdb)
		crm := newCounting(b.crm)
		e := engineWith(b, crm, time.Hour)
		sched := &nowScheduler{}
		svc := connection.NewService(b.conns, connectorsFunc(func(context.Context, string) (connector.Connector, error) { return crm, nil }), sched)

		// Refused limits, with a clear message.
		var ie *connection.InputError
		neg := int64(-1)
		require.ErrorAs(t, svc.SetDailyLimit(ctx, b.ws, &neg), &ie)
		require.Contains(t, ie.Message, "0 or more")
		b.ingest(t, change(record.TypeCompany, "seed", b.clock.Now(), map[string]any{"name": "Seed"}))
		_, err := e.Flush(ctx, b.ws) // learns the org's max
		require.NoError(t, err)
		above := b.org.Usage().Max + 1
		require.ErrorAs(t, svc.SetDailyLimit(ctx, b.ws, &above), &ie)
		require.Contains(t, ie.Message, "above the org's daily API allowance")

		used, err := limits.Used(ctx, bdb, b.ws, time.Now())
		require.NoError(t, err)
		require.Equal(t, int64(crm.total(false)), used, "crmsync counts every call it makes")
		limit := used + 12
		require.NoError(t, svc.SetDailyLimit(ctx, b.ws, &limit))
		require.Equal(t, 1, sched.n, "a new limit schedules a flush (it may end a pause)")
		o := overviewOf(t, b)
		require.Equal(t, limit, *o.ConversionLimit)
		require.Equal(t, used, o.ConversionUsed)

		// Changes keep coming; crmsync spends at most the limit.
		before := crm.total(false)
		var paused bool
		for i := range 20 {
			b.ingest(t, change(record.TypeCompany, fmt.Sprintf("co%d", i), b.clock.Now(), map[string]any{"name": fmt.Sprintf("Co %d", i), "website": fmt.Sprintf("co%d.example", i)}))
			res, err := e.Flush(ctx, b.ws)
			require.NoError(t, err)
			now, err := limits.Used(ctx, bdb, b.ws, time.Now())
			require.NoError(t, err)
			require.LessOrEqual(t, now, limit, "crmsync's count never crosses the limit")
			require.LessOrEqual(t, int64(crm.total(false)-before), limit-used, "nor do the calls the CRM sees")
			if res.Paused == push.PauseConversionLimit {
				paused = true
				require.Zero(t, crm.total(false)-before-int(now-used), "a refused batch makes no call")
			}
		}
		require.True(t, paused)
		require.Len(t, pausedBatches(t, b), 1, "one PAUSED entry for the episode")
		o = overviewOf(t, b)
		require.True(t, o.Paused)
		require.Equal(t, push.PauseConversionLimit, o.PauseReason)
		left := queued(t, b)
		require.Positive(t, left, "refused items stay queued")

		// Raising the limit resumes; clearing it drains everything.
		require.NoError(t, svc.SetDailyLimit(ctx, b.ws, nil))
		require.Nil(t, overviewOf(t, b).ConversionLimit)
		drainWith(t, b, e)
		require.Len(t, b.org.All("Account"), 21, "nothing lost")
	})
}

func TestBatchThatWouldCrossConversionLimitDoesNotStart(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		b := setup(t, bdb)
		crm := newCounting(b.crm)
		e := engineWith(b, crm, time.Hour)
		c, err := b.conns.Get(ctx, b.ws)
		require.NoError(t, err)
		require.NoError(t, limits.Record(ctx, bdb, b.ws, time.Now(), 98))
		limit := int64(100)
		require.NoError(t, b.conns.SetDailyLimit(ctx, c, &limit))
		// 98 of 100 used: under the limit, but a burst over three
		// dependency levels needs more than two calls.
		burst(b, t, 3)
		res, err := e.Flush(ctx, b.ws)
		require.NoError(t, err)
		require.Equal(t, push.PauseConversionLimit, res.Paused)
		require.Contains(t, res.Batch.Message, "2 of 100 are left")
		require.Zero(t, crm.total(false))
		require.Equal(t, 10, queued(t, b))
	})
}

func TestExpiredConnectionResumesOnReconnect(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		b := setup(t, bdb)
		crm := newCounting(b.crm)
		e := engineWith(b, crm, time.Hour)
		sched := &nowScheduler{}
		svc := connection.NewService(b.conns, connectorsFunc(func(context.Context, string) (connector.Connector, error) { return crm, nil }), sched)
		c, err := b.conns.Get(ctx, b.ws)
		require.NoError(t, err)
		cfg := json.RawMessage(c.Config)
		revoked := memcrm.Session("x", "revoked")
		_, err = b.conns.Save(ctx, b.ws, memcrm.Name, cfg, revoked.Credentials, b.org.Identity(), nil)
		require.NoError(t, err)

		b.ingest(t, change(record.TypeCompany, "a", b.clock.Now(), map[string]any{"name": "A"}))
		res, err := e.Flush(ctx, b.ws)
		require.NoError(t, err)
		require.Equal(t, push.PauseConnectionExpired, res.Paused)
		o := overviewOf(t, b)
		require.True(t, o.Paused)
		require.Equal(t, push.PauseConnectionExpired, o.PauseReason)
		require.Equal(t, connection.StatusExpired, o.ConnectionStatus)
		paused := pausedBatches(t, b)
		require.Len(t, paused, 1)
		require.Contains(t, paused[0].Message, "reconnect")

		// Expired: flushes make no call at all.
		calls := crm.total(false)
		for range 3 {
			res, err = e.Flush(ctx, b.ws)
			require.NoError(t, err)
			require.Equal(t, push.PauseConnectionExpired, res.Paused)
		}
		require.Equal(t, calls, crm.total(false))
		require.Len(t, pausedBatches(t, b), 1)

		// Reconnecting with good credentials resumes and keeps every item.
		good := memcrm.Session("x", memcrm.DefaultToken)
		_, err = svc.Connect(ctx, b.ws, memcrm.Name, cfg, good.Credentials)
		require.NoError(t, err)
		require.Equal(t, 1, sched.n)
		require.False(t, overviewOf(t, b).Paused)
		drainWith(t, b, e)
		require.Len(t, b.org.All("Account"), 1)
	})
}

func TestPausedByUser(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		b := setup(t, bdb)
		crm := newCounting(b.crm)
		e := engineWith(b, crm, time.Hour)
		sched := &nowScheduler{}
		svc := connection.NewService(b.conns, connectorsFunc(func(context.Context, string) (connector.Connector, error) { return crm, nil }), sched)

		require.NoError(t, svc.SetPaused(ctx, b.ws, true))
		require.Zero(t, sched.n)
		b.ingest(t, change(record.TypeCompany, "a", b.clock.Now(), map[string]any{"name": "A"}))
		for range 3 {
			res, err := e.Flush(ctx, b.ws)
			require.NoError(t, err)
			require.Equal(t, push.PauseByUser, res.Paused)
		}
		require.Zero(t, crm.total(false))
		require.Len(t, pausedBatches(t, b), 1)
		o := overviewOf(t, b)
		require.Equal(t, push.PauseByUser, o.PauseReason)
		require.Equal(t, 1, o.Queued)

		require.NoError(t, svc.SetPaused(ctx, b.ws, false))
		require.Equal(t, 1, sched.n, "resuming schedules a flush")
		drainWith(t, b, e)
		require.Len(t, b.org.All("Account"), 1)
		require.False(t, overviewOf(t, b).Paused)

		// Pausing again is a new episode, logged again.
		require.NoError(t, svc.SetPaused(ctx, b.ws, true))
		res, err := e.Flush(ctx, b.ws)
		require.NoError(t, err)
		require.Equal(t, push.PauseByUser, res.Paused)
		require.Len(t, pausedBatches(t, b), 2)
	})
}

func TestConversionLimitCountsDescribes(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		b := setup(t, bdb)
		crm := newCounting(b.crm)
		e := engineWith(b, crm, time.Hour)
		c, err := b.conns.Get(ctx, b.ws)
		require.NoError(t, err)
		// A new contact costs a describe (Lead and Contact, never seen),
		// a match over Leads and Contacts, and a create: a limit of three
		// would be crossed, so the batch waits.
		limit := int64(3)
		require.NoError(t, b.conns.SetDailyLimit(ctx, c, &limit))
		b.ingest(t, change(record.TypeContact, "c", b.clock.Now(), map[string]any{"email": "d@example.com", "lastName": "D", "company": "X"}))
		res, err := e.Flush(ctx, b.ws)
		require.NoError(t, err)
		require.Equal(t, push.PauseConversionLimit, res.Paused)
		require.Zero(t, crm.total(false))

		limit = 5
		require.NoError(t, b.conns.SetDailyLimit(ctx, c, &limit))
		res, err = e.Flush(ctx, b.ws)
		require.NoError(t, err)
		require.Equal(t, 1, res.Batch.Created)
		used, err := limits.Used(ctx, bdb, b.ws, time.Now())
		require.NoError(t, err)
		require.LessOrEqual(t, used, limit)
		require.Equal(t, int64(crm.total(false)), used)
	})
}
