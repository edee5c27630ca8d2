package outbound_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/record"
)

// gate is a Scheduler that holds the first transaction open until
// released, so the calls arriving meanwhile form the next group. fail
// decides whether a transaction fails (it sees the transaction's rows).
type gate struct {
	entered, release chan struct{}
	once             sync.Once
	mu               sync.Mutex
	txs              int
	fail             func(ctx context.Context, tx bun.Tx) error
}

func newGate() *gate {
	return &gate{entered: make(chan struct{}), release: make(chan struct{})}
}

func (g *gate) ScheduleFlushTx(ctx context.Context, tx bun.Tx, _ int64) error {
	first := false
	g.once.Do(func() { first = true })
	if first {
		close(g.entered)
		<-g.release
	}
	g.mu.Lock()
	g.txs++
	g.mu.Unlock()
	if g.fail != nil {
		return g.fail(ctx, tx)
	}
	return nil
}

// groupLog records what the observer saw.
type groupLog struct {
	mu       sync.Mutex
	groups   []int // calls per committed group
	failed   int
	rejected int
	waited   int
}

func (l *groupLog) GroupCommitted(calls, _ int, _ time.Duration, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.failed++
		return
	}
	l.groups = append(l.groups, calls)
}

func (l *groupLog) CallWaited(time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.waited++
}

func (l *groupLog) CallRejected() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rejected++
}

type result struct {
	res outbound.IngestResult
	err error
}

// startCall ingests in the background and returns where its result goes.
func startCall(in *outbound.Ingester, ws int64, changes ...outbound.Change) chan result {
	ch := make(chan result, 1)
	go func() {
		res, err := in.Ingest(context.Background(), ws, changes)
		ch <- result{res, err}
	}()
	return ch
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 20*time.Second, time.Millisecond, what)
}

// Calls arriving while a transaction is in flight share the next one; each
// returns its own counts once that transaction committed, and a record's
// changes merge in arrival order.
func TestGroupCommitMergesConcurrentCalls(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ws := newWorkspace(t, bdb)
		g, obs := newGate(), &groupLog{}
		in := outbound.NewIngester(bdb, g, nil, outbound.WithObserver(obs))
		t0 := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)

		first := startCall(in, ws, contact("lead", t0, map[string]any{"title": "first"}))
		<-g.entered
		const n = 10
		var calls []chan result
		for i := range n {
			calls = append(calls, startCall(in, ws,
				contact("shared", t0.Add(time.Duration(i)*time.Second), map[string]any{"title": fmt.Sprintf("v%d", i)}),
				contact(fmt.Sprintf("own%d", i), t0, map[string]any{"email": fmt.Sprintf("c%d@example.com", i)})))
			waitFor(t, "call waiting", func() bool { return in.Waiting() == i+1 })
		}
		select {
		case r := <-first:
			t.Fatalf("the first call returned before its transaction committed: %+v", r)
		default:
		}
		close(g.release)
		r := <-first
		require.NoError(t, r.err)
		require.Equal(t, outbound.IngestResult{Accepted: 1, Queued: 1}, r.res)
		for _, ch := range calls {
			r := <-ch
			require.NoError(t, r.err)
			require.Equal(t, outbound.IngestResult{Accepted: 2, Queued: 2}, r.res)
		}
		require.Equal(t, []int{1, n}, obs.groups, "the ten waiting calls share one transaction")
		require.Equal(t, 2, g.txs)
		require.Equal(t, 0, in.Waiting())

		recs, err := record.ByKeys(context.Background(), bdb, ws, []record.Key{{Type: record.TypeContact, ID: "shared"}})
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf("v%d", n-1), recs[record.Key{Type: record.TypeContact, ID: "shared"}].Fields["title"].Value)
		items, err := outbound.ByRecord(context.Background(), bdb, ws, recs[record.Key{Type: record.TypeContact, ID: "shared"}].ID)
		require.NoError(t, err)
		require.Len(t, items, n)
		for i, it := range items {
			require.Equal(t, fmt.Sprintf("v%d", i), it.Fields["title"].Value, "items queue in arrival order")
		}
	})
}

// Bad input is refused before it joins a transaction, even while one is
// in flight, and never fails the calls it would have shared one with.
func TestGroupCommitValidatesBeforeJoining(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ws := newWorkspace(t, bdb)
		g := newGate()
		in := outbound.NewIngester(bdb, g, nil)
		first := startCall(in, ws, contact("a", time.Time{}, map[string]any{"title": "x"}))
		<-g.entered
		good := startCall(in, ws, contact("b", time.Time{}, map[string]any{"title": "y"}))
		waitFor(t, "good call waiting", func() bool { return in.Waiting() == 1 })
		_, err := in.Ingest(context.Background(), ws, []outbound.Change{{Type: record.TypeContact, ID: "c", Source: record.SourceAPI}})
		var inputErr *outbound.InputError
		require.ErrorAs(t, err, &inputErr, "refused at once, while a transaction is in flight")
		close(g.release)
		require.NoError(t, (<-first).err)
		require.NoError(t, (<-good).err)
	})
}

// A transaction that fails fails only the calls whose changes make it
// fail: the group is tried again call by call, and the others commit.
func TestGroupCommitFailureFailsOnlyItsCalls(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		ws := newWorkspace(t, bdb)
		g, obs := newGate(), &groupLog{}
		g.fail = func(ctx context.Context, tx bun.Tx) error {
			n, err := tx.NewSelect().Table("records").Where("workspace_id = ? AND conversion_id = 'poison'", ws).Count(ctx)
			if err != nil {
				return err
			}
			if n > 0 {
				return errors.New("the database refused the poison record")
			}
			return nil
		}
		in := outbound.NewIngester(bdb, g, nil, outbound.WithObserver(obs))
		first := startCall(in, ws, contact("a", time.Time{}, map[string]any{"title": "x"}))
		<-g.entered
		good1 := startCall(in, ws, contact("b", time.Time{}, map[string]any{"title": "y"}))
		waitFor(t, "waiting", func() bool { return in.Waiting() == 1 })
		bad := startCall(in, ws, contact("poison", time.Time{}, map[string]any{"title": "z"}))
		waitFor(t, "waiting", func() bool { return in.Waiting() == 2 })
		good2 := startCall(in, ws, contact("c", time.Time{}, map[string]any{"title": "w"}))
		waitFor(t, "waiting", func() bool { return in.Waiting() == 3 })
		close(g.release)

		require.NoError(t, (<-first).err)
		require.NoError(t, (<-good1).err)
		require.NoError(t, (<-good2).err)
		r := <-bad
		require.ErrorIs(t, r.err, outbound.ErrNotCommitted)
		require.NotContains(t, r.err.Error(), "poison", "the cause is logged, not shown")

		var ids []string
		require.NoError(t, bdb.NewSelect().Table("records").Column("conversion_id").Where("workspace_id = ?", ws).
			Order("conversion_id").Scan(ctx, &ids))
		require.Equal(t, []string{"a", "b", "c"}, ids, "nothing of the failed call was applied")
		d, err := outbound.Measure(ctx, bdb, ws)
		require.NoError(t, err)
		require.Equal(t, 3, d.Queued)
		require.Equal(t, 2, obs.failed, "the group, then the poison call alone")
	})
}

// Beyond the configured number of waiting calls a call is refused at once
// with a retry hint, and nothing of it is applied.
func TestGroupCommitRefusesWhenOverloaded(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ws := newWorkspace(t, bdb)
		g, obs := newGate(), &groupLog{}
		in := outbound.NewIngester(bdb, g, nil, outbound.WithObserver(obs), outbound.WithGroupCommit(outbound.GroupConfig{MaxWaiting: 2}))
		first := startCall(in, ws, contact("a", time.Time{}, map[string]any{"title": "x"}))
		<-g.entered
		w1 := startCall(in, ws, contact("b", time.Time{}, map[string]any{"title": "y"}))
		w2 := startCall(in, ws, contact("c", time.Time{}, map[string]any{"title": "z"}))
		waitFor(t, "two waiting", func() bool { return in.Waiting() == 2 })

		_, err := in.Ingest(context.Background(), ws, []outbound.Change{contact("d", time.Time{}, map[string]any{"title": "w"})})
		var over *outbound.OverloadedError
		require.ErrorAs(t, err, &over)
		require.GreaterOrEqual(t, over.RetryAfter, 10*time.Millisecond)
		require.Contains(t, err.Error(), "overloaded, retry after")
		require.Equal(t, 1, obs.rejected)

		close(g.release)
		for _, ch := range []chan result{first, w1, w2} {
			require.NoError(t, (<-ch).err)
		}
		var n int64
		n, err = bdb.NewSelect().Table("records").Where("workspace_id = ? AND conversion_id = 'd'", ws).Count(context.Background())
		require.NoError(t, err)
		require.Zero(t, n)
		_, err = in.Ingest(context.Background(), ws, []outbound.Change{contact("d", time.Time{}, map[string]any{"title": "w"})})
		require.NoError(t, err, "accepted again once the line is short")
	})
}

// A caller that gives up while waiting withdraws its call: nothing of it
// is applied, and the others are unaffected.
func TestGroupCommitCancelWhileWaiting(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ws := newWorkspace(t, bdb)
		g := newGate()
		in := outbound.NewIngester(bdb, g, nil)
		first := startCall(in, ws, contact("a", time.Time{}, map[string]any{"title": "x"}))
		<-g.entered
		ctx, cancel := context.WithCancel(context.Background())
		gaveUp := make(chan error, 1)
		go func() {
			_, err := in.Ingest(ctx, ws, []outbound.Change{contact("b", time.Time{}, map[string]any{"title": "y"})})
			gaveUp <- err
		}()
		waitFor(t, "waiting", func() bool { return in.Waiting() == 1 })
		cancel()
		require.ErrorIs(t, <-gaveUp, context.Canceled)
		require.Equal(t, 0, in.Waiting())
		close(g.release)
		require.NoError(t, (<-first).err)
		n, err := bdb.NewSelect().Table("records").Where("workspace_id = ? AND conversion_id = 'b'", ws).Count(context.Background())
		require.NoError(t, err)
		require.Zero(t, n)
	})
}
