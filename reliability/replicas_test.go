package reliability

import (
	"context"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/stretchr/testify/require"
)

// Three replicas share one PostgreSQL; two of them are killed and started
// again and again under load. No connection is flushed by two at once (the
// checker finds no overlapping syncs), nothing is lost or sent twice, and a
// subscription on the replica that stays up keeps receiving every replica's
// batches.
func TestReplicas(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := newCluster(t, clusterOptions{Latency: 30 * time.Millisecond})
	keeper := c.start()
	c.start()
	c.start()
	tn := c.setup(ctx)
	l := newLoad(c, tn, 300)
	l.seed(ctx)
	sub := subscribe(ctx, t, keeper.url, tn.token)
	run := l.start(ctx)
	for range 4 {
		l.waitSent(t, 300)
		var others []*replica
		for _, r := range c.live() {
			if r != keeper {
				others = append(others, r)
			}
		}
		c.kill(others[rand.IntN(len(others))])
		before := sub.batches.Load()
		l.waitSent(t, 200)
		c.start()
		sub.waitMore(t, before)
	}
	run.finish(t)
	rep := l.verify(ctx)
	t.Logf("%d replicas started, %d changes, %d replays, %d batches seen by the subscription", c.started, rep.Changes, rep.Replays, sub.batches.Load())

	// A subscription on a replica started during the run works as well.
	late := c.live()[len(c.live())-1]
	require.NotEqual(t, keeper, late)
	lateSub := subscribe(ctx, t, late.url, tn.token)
	require.NoError(t, l.send(ctx, []Change{{Type: key(0).Type, ID: key(0).ID, Fields: map[string]string{"phone": Value("ph", 0, int(l.seq.Add(1)))}}}, time.Now()))
	lateSub.waitMore(t, 0)
}

// subscription counts syncBatchCompleted events on one websocket.
type subscription struct {
	batches atomic.Int64
}

func subscribe(ctx context.Context, t *testing.T, baseURL, token string) *subscription {
	t.Helper()
	conn, _, err := websocket.Dial(ctx, "ws"+baseURL[len("http"):]+"/graphql", &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.CloseNow() })
	require.NoError(t, wsjson.Write(ctx, conn, map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + token}}))
	var ack map[string]any
	require.NoError(t, wsjson.Read(ctx, conn, &ack))
	require.Equal(t, "connection_ack", ack["type"], "%v", ack)
	require.NoError(t, wsjson.Write(ctx, conn, map[string]any{"id": "1", "type": "subscribe",
		"payload": map[string]any{"query": "subscription { syncBatchCompleted { id direction } }"}}))
	s := &subscription{}
	go func() {
		for {
			var msg map[string]any
			if err := wsjson.Read(ctx, conn, &msg); err != nil {
				return
			}
			if msg["type"] == "next" {
				s.batches.Add(1)
			}
		}
	}()
	return s
}

// waitMore waits until the subscription saw more batches than before.
func (s *subscription) waitMore(t *testing.T, before int64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for s.batches.Load() <= before {
		require.True(t, time.Now().Before(deadline), "the subscription received no batch for a minute")
		time.Sleep(50 * time.Millisecond)
	}
}
