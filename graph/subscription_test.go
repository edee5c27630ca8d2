package graph_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/memcrm"
	"github.com/crmsync/crmsync/graph"
	"github.com/crmsync/crmsync/graph/graphtest"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/db"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/events"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/prefs"
	"github.com/crmsync/crmsync/internal/push"
	"github.com/crmsync/crmsync/internal/secret"
	"github.com/crmsync/crmsync/internal/synclog"
)

// syncStack is one replica's sync services over a database, as
// cmd/crmsync wires them: connections, ingest and the engine publishing
// to the replica's event bus.
type syncStack struct {
	srv    *graphtest.Server
	engine *push.Engine
	crm    *memcrm.CRM
}

type crmsFunc func(ctx context.Context, name string) (connector.Connector, error)

func (f crmsFunc) Connector(ctx context.Context, name string) (connector.Connector, error) {
	return f(ctx, name)
}

type noSchedule struct{}

func (noSchedule) ScheduleFlushTx(context.Context, bun.Tx, int64) error { return nil }
func (noSchedule) ScheduleNow(context.Context, int64) error             { return nil }

// publisher turns engine and ingest notices into events, as
// cmd/crmsync's eventNotifier does.
type publisher struct{ bus events.Publisher }

func (p publisher) BatchWritten(ctx context.Context, b *synclog.Batch) {
	_ = p.bus.Publish(ctx, events.Event{WorkspaceID: b.WorkspaceID, Kind: events.KindBatch, BatchID: b.ID})
	_ = p.bus.Publish(ctx, events.Event{WorkspaceID: b.WorkspaceID, Kind: events.KindOverview})
}

func (p publisher) QueueChanged(ctx context.Context, ws int64) {
	_ = p.bus.Publish(ctx, events.Event{WorkspaceID: ws, Kind: events.KindOverview})
}

var testKey = func() []byte {
	k := make([]byte, secret.KeySize)
	for i := range k {
		k[i] = byte(i)
	}
	return k
}()

// newSyncStack serves the GraphQL API over bdb with bus as the replica's
// events. crm is shared by replicas of one test (one fake org).
func newSyncStack(t *testing.T, bdb *bun.DB, bus interface {
	events.Publisher
	graph.Subscriber
}, crm *memcrm.CRM) *syncStack {
	t.Helper()
	box, err := secret.NewBox(testKey)
	require.NoError(t, err)
	store := connection.NewStore(bdb, box)
	crms := crmsFunc(func(context.Context, string) (connector.Connector, error) { return crm, nil })
	conns := connection.NewService(store, crms, noSchedule{})
	notices := publisher{bus: bus}
	e := push.New(bdb, store, crms, notices, slog.New(slog.DiscardHandler), push.Config{})
	srv := graphtest.New(t, bdb, &graph.Resolver{
		Connections: conns,
		Prefs:       prefs.NewService(bdb, conns),
		Ingester:    outbound.NewIngester(bdb, noSchedule{}, notices),
		Flushes:     noSchedule{},
		Planner:     e,
		Events:      bus,
		Publisher:   bus,
	})
	return &syncStack{srv: srv, engine: e, crm: crm}
}

// connect connects the workspace to its own memcrm org over GraphQL.
func (s *syncStack) connect(t *testing.T, token, org string) {
	t.Helper()
	resp := s.srv.Query(t, token, `mutation($cfg: JSON!, $cred: JSON!) { connectCrm(input: {connector: "memcrm", config: $cfg, credentials: $cred}) { status } }`,
		map[string]any{"cfg": map[string]any{"org": org}, "cred": map[string]any{"token": memcrm.DefaultToken}})
	require.Empty(t, resp.Errors, resp.Body)
}

// recordChanges queues n company changes over GraphQL.
func (s *syncStack) recordChanges(t *testing.T, token string, prefix string, n int) {
	t.Helper()
	var input []map[string]any
	for i := range n {
		input = append(input, map[string]any{"recordType": "COMPANY", "recordId": fmt.Sprintf("%s%d", prefix, i), "source": "IMPORT",
			"fields": []map[string]any{{"name": "name", "value": fmt.Sprintf("%s %d", prefix, i)}}})
	}
	resp := s.srv.Query(t, token, `mutation($in: [RecordChangeInput!]!) { recordChanges(input: $in) { queued } }`, map[string]any{"in": input})
	require.Empty(t, resp.Errors, resp.Body)
}

// wsClient speaks one of gqlgen's two websocket protocols.
type wsClient struct {
	t        *testing.T
	conn     *websocket.Conn
	protocol string
	ctx      context.Context
}

func dialWS(t *testing.T, baseURL, protocol string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(baseURL, "http")+"/graphql", &websocket.DialOptions{Subprotocols: []string{protocol}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.CloseNow() })
	return &wsClient{t: t, conn: conn, protocol: protocol, ctx: ctx}
}

func (c *wsClient) init(payload map[string]any) {
	c.t.Helper()
	require.NoError(c.t, wsjson.Write(c.ctx, c.conn, map[string]any{"type": "connection_init", "payload": payload}))
	require.Equal(c.t, "connection_ack", c.read()["type"])
}

func (c *wsClient) subscribe(id, query string) {
	c.t.Helper()
	typ := "subscribe"
	if c.protocol == "graphql-ws" {
		typ = "start"
	}
	require.NoError(c.t, wsjson.Write(c.ctx, c.conn, map[string]any{"id": id, "type": typ, "payload": map[string]any{"query": query}}))
}

// read returns the next message but keep-alives (answering pings).
func (c *wsClient) read() map[string]any {
	c.t.Helper()
	for {
		var msg map[string]any
		require.NoError(c.t, wsjson.Read(c.ctx, c.conn, &msg))
		switch msg["type"] {
		case "ka", "pong":
			continue
		case "ping":
			require.NoError(c.t, wsjson.Write(c.ctx, c.conn, map[string]any{"type": "pong"}))
			continue
		}
		return msg
	}
}

// next returns the data of the next result of subscription id.
func (c *wsClient) next(id string, dst any) {
	c.t.Helper()
	msg := c.read()
	want := "next"
	if c.protocol == "graphql-ws" {
		want = "data"
	}
	require.Equal(c.t, want, msg["type"], "%v", msg)
	require.Equal(c.t, id, msg["id"])
	payload, _ := json.Marshal(msg["payload"])
	var res struct {
		Data   json.RawMessage `json:"data"`
		Errors []any           `json:"errors"`
	}
	require.NoError(c.t, json.Unmarshal(payload, &res))
	require.Empty(c.t, res.Errors, string(payload))
	require.NoError(c.t, json.Unmarshal(res.Data, dst))
}

type overviewMsg struct {
	SyncOverviewUpdated struct {
		QueuedBatchItems int
		Paused           bool
		PauseReason      *string
	}
}

const overviewSub = `subscription { syncOverviewUpdated { queuedBatchItems paused pauseReason } }`

// overviewUntil reads overviews until one satisfies ok.
func (c *wsClient) overviewUntil(ok func(queued int, paused bool, reason string) bool) {
	c.t.Helper()
	for {
		var m overviewMsg
		c.next("1", &m)
		o := m.SyncOverviewUpdated
		reason := ""
		if o.PauseReason != nil {
			reason = *o.PauseReason
		}
		if ok(o.QueuedBatchItems, o.Paused, reason) {
			return
		}
	}
}

func TestSyncOverviewUpdatedOverBothProtocols(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		s := newSyncStack(t, bdb, events.NewBus(), memcrm.New())
		for i, protocol := range []string{"graphql-transport-ws", "graphql-ws"} {
			t.Run(protocol, func(t *testing.T) {
				_, token := s.srv.NewWorkspace(t, fmt.Sprintf("ws%d", i))
				s.connect(t, token, fmt.Sprintf("%s-%d", t.Name(), i))
				c := dialWS(t, s.srv.URL, protocol)
				c.init(map[string]any{"Authorization": "Bearer " + token})
				c.subscribe("1", overviewSub)
				c.overviewUntil(func(q int, p bool, _ string) bool { return q == 0 && !p })

				// Queue counts move live as an import runs.
				s.recordChanges(t, token, "a", 3)
				c.overviewUntil(func(q int, _ bool, _ string) bool { return q == 3 })
				s.recordChanges(t, token, "b", 2)
				c.overviewUntil(func(q int, _ bool, _ string) bool { return q == 5 })

				// Pausing and resuming show at once.
				resp := s.srv.Query(t, token, `mutation { pauseSync { paused } }`, nil)
				require.Empty(t, resp.Errors, resp.Body)
				c.overviewUntil(func(q int, p bool, r string) bool { return p && r == "PAUSED_BY_USER" && q == 5 })
				resp = s.srv.Query(t, token, `mutation { resumeSync { paused } }`, nil)
				require.Empty(t, resp.Errors, resp.Body)
				c.overviewUntil(func(_ int, p bool, _ string) bool { return !p })
			})
		}
	})
}

type batchMsg struct {
	SyncBatchCompleted struct {
		ID        string
		Direction string
		Status    string
		Created   int
	}
}

const batchSub = `subscription { syncBatchCompleted { id direction status created } }`

func TestSyncBatchCompletedDeliversEachBatch(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		bus := events.NewBus()
		s := newSyncStack(t, bdb, bus, memcrm.New())
		ws, token := s.srv.NewWorkspace(t, "Acme")
		s.connect(t, token, t.Name())
		c := dialWS(t, s.srv.URL, "graphql-transport-ws")
		c.init(map[string]any{"authToken": token})
		c.subscribe("b", batchSub)
		// The subscription sends nothing until a batch: wait until the
		// server holds it, or the first batch may go before it listens.
		require.Eventually(t, func() bool { return bus.Subscribers(ws) == 1 }, 10*time.Second, 5*time.Millisecond)

		for round, n := range []int{2, 3} {
			s.recordChanges(t, token, fmt.Sprintf("r%d-", round), n)
			res, err := s.engine.Flush(ctx, ws)
			require.NoError(t, err)
			require.NotNil(t, res.Batch)
			var m batchMsg
			c.next("b", &m)
			require.Equal(t, fmt.Sprint(res.Batch.ID), m.SyncBatchCompleted.ID)
			require.Equal(t, "OUTBOUND", m.SyncBatchCompleted.Direction)
			require.Equal(t, "SUCCEEDED", m.SyncBatchCompleted.Status)
			require.Equal(t, n, m.SyncBatchCompleted.Created)
		}

		// A pause is a batch too (the PAUSED entry of the episode).
		resp := s.srv.Query(t, token, `mutation { pauseSync { paused } }`, nil)
		require.Empty(t, resp.Errors, resp.Body)
		res, err := s.engine.Flush(ctx, ws)
		require.NoError(t, err)
		require.Equal(t, push.PauseByUser, res.Paused)
		var m batchMsg
		c.next("b", &m)
		require.Equal(t, "PAUSED", m.SyncBatchCompleted.Status)
	})
}

func TestSubscriberSeesOnlyItsWorkspace(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		bus := events.NewBus()
		s := newSyncStack(t, bdb, bus, memcrm.New())
		wsA, tokenA := s.srv.NewWorkspace(t, "A")
		wsB, tokenB := s.srv.NewWorkspace(t, "B")
		s.connect(t, tokenA, t.Name()+"-a")
		s.connect(t, tokenB, t.Name()+"-b")

		b := dialWS(t, s.srv.URL, "graphql-transport-ws")
		b.init(map[string]any{"Authorization": "Bearer " + tokenB})
		b.subscribe("1", overviewSub)
		b.subscribe("b", batchSub)
		var first overviewMsg
		b.next("1", &first)
		require.Zero(t, first.SyncOverviewUpdated.QueuedBatchItems)
		require.Eventually(t, func() bool { return bus.Subscribers(wsB) == 2 }, 10*time.Second, 5*time.Millisecond, "both of B's subscriptions listen")

		// A's activity (queue, batch) comes first; B's own next. B's next
		// messages are B's: had A's leaked, a queue of 4 or A's batch
		// would arrive before them.
		s.recordChanges(t, tokenA, "a", 4)
		resA, err := s.engine.Flush(ctx, wsA)
		require.NoError(t, err)
		s.recordChanges(t, tokenB, "b", 1)
		var o overviewMsg
		b.next("1", &o)
		require.Equal(t, 1, o.SyncOverviewUpdated.QueuedBatchItems, "B sees its own queue only")
		resB, err := s.engine.Flush(ctx, wsB)
		require.NoError(t, err)
		var m batchMsg
		for {
			msg := b.read()
			if msg["id"] == "1" {
				continue // B's overview after its flush
			}
			payload, _ := json.Marshal(msg["payload"].(map[string]any)["data"])
			require.NoError(t, json.Unmarshal(payload, &m))
			break
		}
		require.Equal(t, fmt.Sprint(resB.Batch.ID), m.SyncBatchCompleted.ID, "not A's batch %d", resA.Batch.ID)
	})
}

func TestWebsocketRevokedTokenCloses(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		s := newSyncStack(t, bdb, events.NewBus(), memcrm.New())
		ws, _ := s.srv.NewWorkspace(t, "Acme")
		issued, err := s.srv.Workspaces.CreateToken(ctx, ws)
		require.NoError(t, err)
		require.NoError(t, s.srv.Workspaces.RevokeToken(ctx, issued.TokenID))
		for _, protocol := range []string{"graphql-transport-ws", "graphql-ws"} {
			c := dialWS(t, s.srv.URL, protocol)
			require.NoError(t, wsjson.Write(c.ctx, c.conn, map[string]any{"type": "connection_init", "payload": map[string]any{"authToken": issued.Token}}))
			var err error
			for err == nil { // a connection_error message may come first
				var msg map[string]any
				err = wsjson.Read(c.ctx, c.conn, &msg)
				if err == nil {
					require.Equal(t, "connection_error", msg["type"], msg)
				}
			}
			var closeErr websocket.CloseError
			require.True(t, errors.As(err, &closeErr), "%s: want a close, got %v", protocol, err)
			require.Equal(t, websocket.StatusCode(4403), closeErr.Code)
		}
	})
}

// TestSubscriptionsAcrossReplicas runs two app instances on one PostgreSQL
// database, each with its own PGBus: changes made through one reach
// subscribers of the other.
func TestSubscriptionsAcrossReplicas(t *testing.T) {
	t.Parallel()
	url := dbtest.PostgresURL(t)
	logger := slog.New(slog.DiscardHandler)
	crm := memcrm.New()
	replica := func() *syncStack {
		ctx := context.Background()
		bdb, err := db.Open(ctx, url, "", logger)
		require.NoError(t, err)
		t.Cleanup(func() { _ = bdb.Close() })
		bus := events.NewPGBus(bdb, url, logger)
		runCtx, stop := context.WithCancel(ctx)
		ready, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			bus.Run(runCtx, ready)
		}()
		t.Cleanup(func() { stop(); <-done })
		select {
		case <-ready:
		case <-time.After(30 * time.Second):
			t.Fatal("event listener did not start")
		}
		return newSyncStack(t, bdb, bus, crm)
	}
	one, two := replica(), replica()
	ws, token := one.srv.NewWorkspace(t, "Acme")
	one.connect(t, token, t.Name())

	c := dialWS(t, two.srv.URL, "graphql-ws")
	c.init(map[string]any{"authToken": token})
	c.subscribe("1", overviewSub)
	c.subscribe("b", batchSub)
	var o overviewMsg
	c.next("1", &o)

	// An import on replica one: replica two's subscriber sees the queue.
	one.recordChanges(t, token, "x", 3)
	for o.SyncOverviewUpdated.QueuedBatchItems != 3 {
		c.next("1", &o)
	}
	// A flush on replica one: replica two's subscriber gets the batch.
	res, err := one.engine.Flush(context.Background(), ws)
	require.NoError(t, err)
	for {
		msg := c.read()
		if msg["id"] != "b" {
			continue
		}
		var m batchMsg
		payload, _ := json.Marshal(msg["payload"].(map[string]any)["data"])
		require.NoError(t, json.Unmarshal(payload, &m))
		require.Equal(t, fmt.Sprint(res.Batch.ID), m.SyncBatchCompleted.ID)
		require.Equal(t, 3, m.SyncBatchCompleted.Created)
		break
	}
}
