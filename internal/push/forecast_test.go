package push_test

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
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
	"github.com/crmsync/crmsync/internal/limits"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/push"
	"github.com/crmsync/crmsync/internal/record"
	"github.com/crmsync/crmsync/internal/secret"
)

// sfBundle is a workspace connected to sffake through the real Salesforce
// connector.
type sfBundle struct {
	db     *bun.DB
	ws     int64
	sf     *sffake.Server
	engine *push.Engine
	in     *outbound.Ingester
	store  *connection.Store
}

func (b *sfBundle) conn(t *testing.T) *connection.Connection {
	t.Helper()
	c, err := b.store.Get(context.Background(), b.ws)
	require.NoError(t, err)
	return c
}

// setupSffake connects a workspace to a fresh sffake org; sfcfg adjusts
// the connection's configuration.
func setupSffake(t *testing.T, bdb *bun.DB, cfg push.Config, sfcfg ...func(*salesforce.Config)) *sfBundle {
	t.Helper()
	return setupSffakeOrg(t, bdb, sffaketest.Start(t), cfg, sfcfg...)
}

// setupSffakeOrg is setupSffake on an org the caller started.
func setupSffakeOrg(t *testing.T, bdb *bun.DB, sf *sffake.Server, cfg push.Config, sfcfg ...func(*salesforce.Config)) *sfBundle {
	t.Helper()
	return setupSffakeWrapped(t, bdb, sf, cfg, nil, sfcfg...)
}

// setupSffakeWrapped is setupSffakeOrg with the engine's connector
// wrapped by wrap (nil: as is).
func setupSffakeWrapped(t *testing.T, bdb *bun.DB, sf *sffake.Server, cfg push.Config, wrap func(connector.Connector) connector.Connector, sfcfg ...func(*salesforce.Config)) *sfBundle {
	t.Helper()
	ctx := context.Background()
	b := &sfBundle{db: bdb, sf: sf}
	require.NoError(t, bdb.NewRaw("INSERT INTO workspaces (name, created_at) VALUES (?, ?) RETURNING id", "t", time.Now().UTC()).Scan(ctx, &b.ws))
	key := make([]byte, secret.KeySize)
	_, _ = rand.Read(key)
	box, err := secret.NewBox(key)
	require.NoError(t, err)
	store := connection.NewStore(bdb, box)
	b.store = store
	crm := salesforce.New(salesforce.WithAllowedHosts("127.0.0.1"))
	conns := connectorsFunc(func(context.Context, string) (connector.Connector, error) { return crm, nil })
	svc := connection.NewService(store, conns, &nowScheduler{})
	sc := salesforce.Config{LoginURL: b.sf.URL(), ClientID: sffake.DefaultClientID}
	for _, f := range sfcfg {
		f(&sc)
	}
	config, err := json.Marshal(sc)
	require.NoError(t, err)
	creds, err := json.Marshal(map[string]string{"clientSecret": sffake.DefaultClientSecret, "refreshToken": b.sf.IssueRefreshToken(b.sf.IntegrationUserID())})
	require.NoError(t, err)
	_, err = svc.Connect(ctx, b.ws, "salesforce", config, creds)
	require.NoError(t, err)
	if wrap != nil {
		wrapped := wrap(crm)
		conns = func(context.Context, string) (connector.Connector, error) { return wrapped, nil }
	}
	b.engine = push.New(bdb, store, conns, nil, slog.New(slog.DiscardHandler), cfg)
	b.in = outbound.NewIngester(bdb, noScheduler{}, nil)
	return b
}

func (b *sfBundle) ingest(t *testing.T, changes []outbound.Change) {
	t.Helper()
	for len(changes) > 0 {
		n := min(len(changes), 1000)
		_, err := b.in.Ingest(context.Background(), b.ws, changes[:n])
		require.NoError(t, err)
		changes = changes[n:]
	}
}

// drain flushes until nothing is queued and returns the API calls
// crmsync counted meanwhile (its budget's count; Salesforce's own count
// leaves out the describes the connector answers from its cache).
func (b *sfBundle) drain(t *testing.T) int {
	t.Helper()
	ctx := context.Background()
	before, err := limits.Used(ctx, b.db, b.ws, time.Now())
	require.NoError(t, err)
	for range 100 {
		_, err := b.engine.Flush(ctx, b.ws)
		require.NoError(t, err)
		d, err := outbound.Measure(ctx, b.db, b.ws)
		require.NoError(t, err)
		if d.Queued == 0 {
			after, err := limits.Used(ctx, b.db, b.ws, time.Now())
			require.NoError(t, err)
			return int(after - before)
		}
	}
	t.Fatal("queue did not drain")
	return 0
}

func companies(prefix string, n int, field string) []outbound.Change {
	var out []outbound.Change
	for i := range n {
		id := fmt.Sprintf("%s%d", prefix, i)
		out = append(out, change(record.TypeCompany, id, time.Now(), map[string]any{"name": "Company " + id, "website": id + ".example", field: field + id}))
	}
	return out
}

// TestForecastPredictsMeasuredCalls checks syncForecast's planned calls
// against what draining the queue through the real Salesforce connector
// costs in sffake: within 10% for a backlog of updates, a backlog of
// records never linked (changed again after the flush that creates them),
// a burst on a few records, and an import of new contacts over new
// companies, by REST and over a low bulk threshold (Bulk API 2.0 jobs).
func TestForecastPredictsMeasuredCalls(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// before is queued and drained first (records to update later).
		before, queue    func() []outbound.Change
		creates, updates int
		// bulkThreshold is the connection's; bulkJobs the jobs planned.
		bulkThreshold, bulkJobs int
	}{
		{
			name: "backlog",
			before: func() []outbound.Change {
				return append(companies("b", 1200, "phone"), contacts("p", 800, "b", 1200, "A")...)
			},
			queue:   func() []outbound.Change { return append(companies("b", 1200, "industry"), titles("p", 800)...) },
			updates: 2000,
		},
		{
			name:   "burst",
			before: func() []outbound.Change { return companies("h", 40, "phone") },
			queue: func() []outbound.Change {
				var out []outbound.Change
				for i := range 1500 {
					id := fmt.Sprintf("h%d", i%40)
					out = append(out, change(record.TypeCompany, id, time.Now(), map[string]any{"industry": fmt.Sprintf("Industry %d", i)}))
				}
				return out
			},
			updates: 40,
		},
		{
			name: "import",
			queue: func() []outbound.Change {
				return append(companies("c", 100, "phone"), contacts("i", 3000, "c", 100, "A")...)
			},
			creates: 3100,
		},
		{
			// Flushes of 1,000 items: the first three write 900 or 1,000
			// Leads, over the threshold, each as one Bulk job; the last
			// 100 by REST.
			name: "import over the bulk threshold",
			queue: func() []outbound.Change {
				return append(companies("c", 100, "phone"), contacts("i", 3000, "c", 100, "A")...)
			},
			creates:       3100,
			bulkThreshold: 500,
			bulkJobs:      3,
		},
		{
			// All new, and changed again after the changes that create
			// them: the first flush matches and creates 900 records, the
			// second reads them and writes nothing (the creates sent the
			// records whole, later changes included).
			name: "backlog of new records",
			queue: func() []outbound.Change {
				out := append(companies("n", 400, "phone"), contacts("q", 500, "n", 400, "A")...)
				return append(append(out, companies("n", 400, "industry")...), titles("q", 500)...)
			},
			creates: 900,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
				b := setupSffake(t, bdb, push.Config{MaxItems: 1000}, func(c *salesforce.Config) { c.BulkThreshold = tc.bulkThreshold })
				if tc.before != nil {
					b.ingest(t, tc.before())
					b.drain(t)
				}
				b.ingest(t, tc.queue())
				fc, err := b.engine.Forecast(context.Background(), b.ws)
				require.NoError(t, err)
				require.Equal(t, tc.creates, fc.Creates)
				require.Equal(t, tc.updates, fc.Updates)
				threshold := cmp.Or(tc.bulkThreshold, salesforce.DefaultBulkThreshold)
				require.Equal(t, threshold, fc.BulkThreshold, "the connection's threshold, announced by the connector")
				require.Equal(t, tc.bulkJobs, fc.BulkJobs)
				require.Equal(t, 5*tc.bulkJobs, fc.BulkCalls, "create, upload, close, a poll and the results per job")
				require.Equal(t, fc.APICalls, fc.RESTCalls+fc.BulkCalls)
				measured := b.drain(t)
				t.Logf("%s: predicted %d calls (%d REST, %d Bulk) in %d flushes, measured %d", tc.name, fc.APICalls, fc.RESTCalls, fc.BulkCalls, fc.Flushes, measured)
				require.InEpsilon(t, measured, fc.APICalls, 0.10, "predicted %d calls, measured %d", fc.APICalls, measured)
				require.Equal(t, tc.bulkJobs, b.sf.BulkStats().Jobs, "the Bulk jobs the org ran")
				// No outbound batch made calls before the import: the latency is assumed.
				require.Equal(t, tc.before == nil, fc.LatencyAssumed)
				if fc.LatencyAssumed {
					require.Equal(t, push.DefaultCallLatency, fc.CallLatency)
				} else {
					require.Positive(t, fc.LatencyCalls)
				}
				require.False(t, fc.Paced)
				require.Zero(t, fc.Terms.Pacing, "fixed windows: the flushes follow each other")
				require.Equal(t, fc.Terms.Flush+fc.Terms.Calls+fc.Terms.Records+fc.Terms.Bulk, fc.Duration)
				require.Equal(t, push.BudgetSalesforce, fc.BudgetSource)
				require.True(t, fc.Fits)
				require.Equal(t, fc.At.Add(fc.Duration), fc.FinishesAt)
				var calls int
				for _, tf := range fc.Types {
					calls += tf.APICalls
				}
				require.GreaterOrEqual(t, calls, fc.APICalls)
			})
		})
	}
}

// titles gives n contacts a title (blank in the CRM, so sent).
func titles(prefix string, n int) []outbound.Change {
	var out []outbound.Change
	for i := range n {
		out = append(out, change(record.TypeContact, fmt.Sprintf("%s%d", prefix, i), time.Now(), map[string]any{"title": "Title"}))
	}
	return out
}

// TestForecastBeyondTheDailyLimit: a queue needing more calls than the
// crmsync daily limit leaves does not fit, and finishes only after the
// window frees calls.
func TestForecastBeyondTheDailyLimit(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		b := setupSffake(t, bdb, push.Config{MaxItems: 1000})
		b.ingest(t, companies("x", 3000, "phone"))
		// Changed again: the fourth flush updates what the first creates.
		b.ingest(t, companies("x", 500, "industry"))
		limit := int64(2)
		require.NoError(t, b.store.SetDailyLimit(ctx, b.conn(t), &limit))
		fc, err := b.engine.Forecast(ctx, b.ws)
		require.NoError(t, err)
		require.Equal(t, 3000, fc.Creates)
		require.Equal(t, 3000, fc.Records, "a record written by two flushes counts once")
		require.Zero(t, fc.Updates)
		require.Equal(t, 4, fc.Flushes)
		require.Equal(t, push.BudgetDailyLimit, fc.BudgetSource)
		require.Equal(t, int64(2), fc.BudgetLeft)
		require.False(t, fc.Fits)
		require.True(t, fc.FinishesAt.After(fc.At.Add(fc.Duration)), "finishes %v, drained at %v", fc.FinishesAt, fc.At.Add(fc.Duration))
		require.Len(t, fc.Types, 1)
		require.Equal(t, record.TypeCompany, fc.Types[0].Type)
		require.Equal(t, 3500, fc.Types[0].Items)
	})
}

func contacts(prefix string, n int, companyPrefix string, companies int, last string) []outbound.Change {
	var out []outbound.Change
	for i := range n {
		id := fmt.Sprintf("%s%d", prefix, i)
		out = append(out, change(record.TypeContact, id, time.Now(), map[string]any{
			"email": id + "@example.com", "lastName": last + id, "firstName": "First", "company": "Company of " + id,
			outbound.FieldCompanyID: fmt.Sprintf("%s%d", companyPrefix, i%companies),
		}))
	}
	return out
}
