package reliability

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Many clients send one change per call through every replica at once
// (client-side round robin), so each replica's group commit merges their
// calls into shared transactions; replicas are killed while those commit
// and started again. Every acknowledged change reaches Salesforce in order
// (each record has one sender, so its acceptance order is well defined):
// the checker finds nothing lost or reordered.
func TestGroupCommitReplicaKilled(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := newCluster(t, clusterOptions{Latency: 30 * time.Millisecond})
	for range 3 {
		c.start()
	}
	tn := c.setup(ctx)
	l := newLoad(c, tn, 240)
	l.seed(ctx)

	const clients = 24
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failed atomic.Value
	var retried atomic.Int64
	for k := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(k)))
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				// Records k, k+clients, k+2·clients, …: this client's own.
				i := k + clients*rng.IntN(l.records/clients)
				rk := key(i)
				fields := updated[rk.Type]
				pick := fields[rng.IntN(len(fields))]
				ch := Change{Type: rk.Type, ID: rk.ID, Fields: map[string]string{pick[0]: Value(pick[1], i, int(l.seq.Add(1)))}}
				// The checker orders a field's values by At, as crmsync
				// orders them by changedAt: they must be the same time.
				ch.At = time.Now()
				tries, err := l.sendRoundRobin(ctx, k+n, []Change{ch}, ch.At)
				if err != nil {
					failed.Store(err)
					return
				}
				retried.Add(int64(tries - 1))
				l.chk.Accepted([]Change{ch})
				l.sent.Add(1)
			}
		})
	}
	for range 3 {
		l.waitSent(t, 400)
		live := c.live()
		c.kill(live[rand.IntN(len(live))])
		l.waitSent(t, 200)
		c.start()
	}
	l.waitSent(t, 200)
	close(stop)
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		t.Fatalf("a change was never acknowledged: %v", err)
	}
	rep := l.verify(ctx)
	t.Logf("%d replicas started, %d changes sent one per call by %d clients, %d calls retried on another replica, %d replays",
		c.started, l.sent.Load(), clients, retried.Load(), rep.Replays)
}

// sendRoundRobin sends changes to the live replicas in turn, starting at
// turn, until one acknowledges them; a failed or refused attempt (a killed
// replica, OVERLOADED) goes to the next one, with the same changes and
// changedAt, so an ambiguous attempt is harmless. It returns the attempts.
func (l *load) sendRoundRobin(ctx context.Context, turn int, changes []Change, at time.Time) (int, error) {
	in := make([]map[string]any, len(changes))
	for i, ch := range changes {
		var fields []map[string]any
		for name, v := range ch.Fields {
			fields = append(fields, map[string]any{"name": name, "value": v, "changedAt": at.Add(time.Duration(i) * time.Microsecond).Format(time.RFC3339Nano)})
		}
		in[i] = map[string]any{"recordType": ch.Type, "recordId": ch.ID, "source": "API", "fields": fields}
	}
	vars := map[string]any{"in": in}
	deadline := time.Now().Add(2 * time.Minute)
	for attempt := 1; ; attempt++ {
		var err error
		if live := l.c.live(); len(live) == 0 {
			err = fmt.Errorf("no replica running")
		} else {
			err = gql(ctx, live[(turn+attempt)%len(live)].url, l.tn.token,
				`mutation($in: [RecordChangeInput!]!) { recordChanges(input: $in) { accepted } }`, vars, nil)
		}
		if err == nil || userError(err) {
			return attempt, err
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return attempt, fmt.Errorf("gave up after %d attempts: %w", attempt, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}
