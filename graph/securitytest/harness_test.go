package securitytest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/memcrm"
	"github.com/crmsync/crmsync/connectors/salesforce"
	"github.com/crmsync/crmsync/graph"
	"github.com/crmsync/crmsync/graph/graphtest"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/db"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/events"
	"github.com/crmsync/crmsync/internal/httpserver"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/prefs"
	"github.com/crmsync/crmsync/internal/push"
	"github.com/crmsync/crmsync/internal/secret"
	"github.com/crmsync/crmsync/internal/synclog"
	"github.com/crmsync/crmsync/internal/workspace"
	"github.com/crmsync/crmsync/jobs"
)

// allowedOrigin is the one foreign origin the test server trusts.
const allowedOrigin = "https://app.example.com"

// bundle is a running server and the handles a test needs to look behind
// the API.
type bundle struct {
	db     *bun.DB
	api    *graphtest.Server // only its URL, Query and Do are used
	wsURL  string
	logs   *lockedBuffer // every log line of the server, as JSON
	crm    *memcrm.CRM
	store  *connection.Store
	engine *push.Engine
	bus    *countingBus
	works  *workspace.Service
	// crmToken is the only token memcrm accepts: a secret no output may show.
	crmToken string
}

// setup serves crmsync over bdb as cmd/crmsync wires it, with memcrm
// built in process and an insert-only River client (flushes are run by
// calling the engine). Events go through the in-process bus.
func setup(t *testing.T, bdb *bun.DB) *bundle {
	t.Helper()
	return newBundle(t, bdb, "")
}

// eachWithPGBus is dbtest.Each for tests of events: on PostgreSQL the
// server publishes and receives them through the PostgreSQL bus (NOTIFY),
// as replicas do in production.
func eachWithPGBus(t *testing.T, fn func(t *testing.T, b *bundle)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		fn(t, setup(t, dbtest.Open(t, db.SQLite)))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		url := dbtest.PostgresURL(t)
		bdb, err := db.Open(context.Background(), url, "", slog.New(slog.DiscardHandler))
		require.NoError(t, err)
		t.Cleanup(func() { _ = bdb.Close() })
		fn(t, newBundle(t, bdb, url))
	})
}

func newBundle(t *testing.T, bdb *bun.DB, pgURL string) *bundle {
	t.Helper()
	b := &bundle{db: bdb, logs: &lockedBuffer{}, crmToken: "S3CRET-crm-token-" + randomHex(t, 8)}
	logger := slog.New(slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server logs:\n%s", b.logs.String())
		}
	})

	b.crm = memcrm.New(memcrm.WithToken(b.crmToken))
	key := make([]byte, secret.KeySize)
	_, err := rand.Read(key)
	require.NoError(t, err)
	box, err := secret.NewBox(key)
	require.NoError(t, err)
	b.store = connection.NewStore(bdb, box)
	b.bus = &countingBus{bus: events.NewBus()}
	if pgURL != "" {
		pg := events.NewPGBus(bdb, pgURL, logger)
		ctx, cancel := context.WithCancel(context.Background())
		ready, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			pg.Run(ctx, ready)
		}()
		t.Cleanup(func() { cancel(); <-done })
		select {
		case <-ready:
		case <-time.After(10 * time.Second):
			t.Fatal("the PostgreSQL event bus is not listening after 10s")
		}
		b.bus.bus = pg
	}
	notices := notifier{bus: b.bus}
	sf := salesforce.New() // as served: Salesforce hosts only, no --allow-crm-host
	crms := connectorsFunc(func(_ context.Context, name string) (connector.Connector, error) {
		switch name {
		case memcrm.Name:
			return b.crm, nil
		case salesforce.Name:
			return sf, nil
		}
		return nil, &connection.UnknownConnectorError{Name: name, Known: []string{memcrm.Name, salesforce.Name}}
	})
	b.engine = push.New(bdb, b.store, crms, notices, logger, push.Config{RetryBase: time.Millisecond, WaitDelay: time.Millisecond})

	river, err := jobs.NewClient(bdb, logger, nil, nil)
	require.NoError(t, err)
	sched := jobs.NewScheduler(river, time.Second)
	conns := connection.NewService(b.store, crms, sched)
	b.works = workspace.NewService(bdb)
	resolver := graphtest.WithDB(&graph.Resolver{
		Logger:      logger,
		Workspaces:  b.works,
		Connections: conns,
		Prefs:       prefs.NewService(bdb, conns),
		Ingester:    outbound.NewIngester(bdb, sched, notices),
		Flushes:     sched,
		Events:      b.bus,
		Publisher:   b.bus,
		Planner:     b.engine,
	}, bdb)
	auth := workspace.NewAuthenticator(b.works, graphtest.AdminToken)
	gql := graph.NewHandler(resolver, graph.HandlerOptions{
		Logger:         logger,
		Authenticate:   auth.Authenticate,
		AllowedOrigins: []string{allowedOrigin},
		Introspection:  true,
		TokenRecheck:   100 * time.Millisecond,
	})
	srv, err := httpserver.New(httpserver.Deps{
		Logger:         logger,
		DB:             bdb,
		GraphQL:        gql,
		Authenticate:   auth.Authenticate,
		Registry:       prometheus.NewRegistry(),
		AllowedOrigins: []string{allowedOrigin},
		// The tests here send many largest documents with one token to
		// check what parsing them costs; the per-token body rate that
		// would refuse most of them is tested in internal/httpserver.
		BodyRate: 1 << 40,
	})
	require.NoError(t, err)
	ts := httptest.NewUnstartedServer(srv)
	ts.Config.ErrorLog = slog.NewLogLogger(logger.Handler(), slog.LevelWarn) // as httpserver.Serve does
	ts.Start()
	t.Cleanup(ts.Close)
	b.api = &graphtest.Server{URL: ts.URL, DB: bdb, Workspaces: b.works, Resolver: resolver}
	b.wsURL = "ws" + strings.TrimPrefix(ts.URL, "http") + "/graphql"
	return b
}

func (b *bundle) newWorkspace(t *testing.T, name string) (int64, string) {
	t.Helper()
	return b.api.NewWorkspace(t, name)
}

// query runs an operation and fails the test on a transport-level refusal.
func (b *bundle) query(t *testing.T, token, q string, vars map[string]any) *graphtest.Response {
	t.Helper()
	return b.api.Query(t, token, q, vars)
}

// mustQuery runs an operation that must succeed and decodes its data.
func (b *bundle) mustQuery(t *testing.T, token, q string, vars map[string]any, dst any) {
	t.Helper()
	resp := b.query(t, token, q, vars)
	require.Empty(t, resp.Errors, resp.Body)
	if dst != nil {
		resp.Decode(t, dst)
	}
}

// connect connects the workspace to its own memcrm org through the API.
func (b *bundle) connect(t *testing.T, token, org string) {
	t.Helper()
	b.mustQuery(t, token, `mutation($in: ConnectCrmInput!) { connectCrm(input: $in) { id } }`, map[string]any{"in": map[string]any{
		"connector": "memcrm", "config": map[string]any{"org": org}, "credentials": map[string]any{"token": b.crmToken},
	}}, nil)
}

// flush runs one flush of the workspace's queue, as a River job would.
func (b *bundle) flush(t *testing.T, ws int64) *push.Result {
	t.Helper()
	res, err := b.engine.Flush(context.Background(), ws)
	require.NoError(t, err)
	return res
}

type connectorsFunc func(ctx context.Context, name string) (connector.Connector, error)

func (f connectorsFunc) Connector(ctx context.Context, name string) (connector.Connector, error) {
	return f(ctx, name)
}

// notifier turns engine and ingest notices into events, as cmd/crmsync does.
type notifier struct{ bus events.Publisher }

func (n notifier) BatchWritten(ctx context.Context, b *synclog.Batch) {
	_ = n.bus.Publish(ctx, events.Event{WorkspaceID: b.WorkspaceID, Kind: events.KindBatch, BatchID: b.ID})
	_ = n.bus.Publish(ctx, events.Event{WorkspaceID: b.WorkspaceID, Kind: events.KindOverview})
}

func (n notifier) QueueChanged(ctx context.Context, ws int64) {
	_ = n.bus.Publish(ctx, events.Event{WorkspaceID: ws, Kind: events.KindOverview})
}

// countingBus is the server's event bus, counting the subscriptions
// started so a test can tell that none started.
type countingBus struct {
	bus interface {
		events.Publisher
		graph.Subscriber
	}
	all atomic.Int64
}

func (c *countingBus) Publish(ctx context.Context, e events.Event) error {
	return c.bus.Publish(ctx, e)
}

func (c *countingBus) Subscribe(ctx context.Context, ws int64) <-chan events.Event {
	c.all.Add(1)
	return c.bus.Subscribe(ctx, ws)
}

func (c *countingBus) started() int64 { return c.all.Load() }

// lockedBuffer is a bytes.Buffer safe for the server's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// randomHex returns n random bytes in hex.
func randomHex(t *testing.T, n int) string {
	t.Helper()
	buf := make([]byte, n)
	_, err := rand.Read(buf)
	require.NoError(t, err)
	return hex.EncodeToString(buf)
}
