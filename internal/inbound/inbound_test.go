package inbound_test

import (
	"context"
	"crypto/rand"
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
	"github.com/crmsync/crmsync/internal/engine"
	"github.com/crmsync/crmsync/internal/events"
	"github.com/crmsync/crmsync/internal/inbound"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/prefs"
	"github.com/crmsync/crmsync/internal/record"
	"github.com/crmsync/crmsync/internal/secret"
	"github.com/crmsync/crmsync/internal/synclog"
)

type connectorsFunc func(ctx context.Context, name string) (connector.Connector, error)

func (f connectorsFunc) Connector(ctx context.Context, name string) (connector.Connector, error) {
	return f(ctx, name)
}

type noScheduler struct{}

func (noScheduler) ScheduleFlushTx(context.Context, bun.Tx, int64) error { return nil }

// recorder keeps the events published.
type recorder struct {
	mu     sync.Mutex
	events []events.Event
}

func (r *recorder) Publish(_ context.Context, e events.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	return nil
}

func (r *recorder) all() []events.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]events.Event(nil), r.events...)
}

// fetchCounter wraps a connector, counting FetchChanges calls per object
// and failing the call numbered failOn (1-based; 0 never).
type fetchCounter struct {
	connector.Connector
	mu      sync.Mutex
	fetches map[string]int
	total   int
	failOn  int
}

func (f *fetchCounter) FetchChanges(ctx context.Context, req connector.FetchChangesRequest) (*connector.FetchChangesResponse, error) {
	f.mu.Lock()
	f.total++
	n := f.total
	f.fetches[req.Object]++
	f.mu.Unlock()
	if f.failOn > 0 && n == f.failOn {
		return nil, connector.Errorf(connector.KindUnavailable, "injected failure on fetch %d", n)
	}
	return f.Connector.(connector.ChangeFetcher).FetchChanges(ctx, req)
}

func (f *fetchCounter) counts() (map[string]int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for k, v := range f.fetches {
		out[k] = v
	}
	return out, f.total
}

type testBundle struct {
	db     *bun.DB
	ws     int64
	crm    *memcrm.CRM
	org    *memcrm.Org
	clock  *memcrm.Clock
	conns  *connection.Store
	engine *engine.Engine
	puller *inbound.Puller
	in     *outbound.Ingester
	pub    *recorder
	rep    string
	// wrap, when set, wraps the connector both syncs use.
	wrap func(connector.Connector) connector.Connector
}

func setup(t *testing.T, bdb *bun.DB, cfg inbound.Config) *testBundle {
	t.Helper()
	ctx := context.Background()
	b := &testBundle{db: bdb, clock: memcrm.NewClock(time.Now().UTC().Add(-time.Hour).Truncate(time.Second)), pub: &recorder{}}
	b.crm = memcrm.New(memcrm.WithClock(b.clock.Now))
	org := fmt.Sprintf("org-%s", t.Name())
	b.org = b.crm.Org(org)
	b.rep = b.org.SalesRepIDs()[0]
	require.NoError(t, bdb.NewRaw("INSERT INTO workspaces (name, created_at) VALUES (?, ?) RETURNING id", "t", time.Now().UTC()).Scan(ctx, &b.ws))
	key := make([]byte, secret.KeySize)
	_, _ = rand.Read(key)
	box, err := secret.NewBox(key)
	require.NoError(t, err)
	b.conns = connection.NewStore(bdb, box)
	s := memcrm.Session(org, memcrm.DefaultToken)
	_, err = b.conns.Save(ctx, b.ws, memcrm.Name, s.Config, s.Credentials, b.org.Identity(), nil)
	require.NoError(t, err)
	conns := connectorsFunc(func(ctx context.Context, name string) (connector.Connector, error) {
		if b.wrap != nil {
			return b.wrap(b.crm), nil
		}
		return b.crm, nil
	})
	logger := slog.New(slog.DiscardHandler)
	b.engine = engine.New(bdb, b.conns, conns, nil, logger, engine.Config{RetryBase: time.Millisecond, WaitDelay: time.Millisecond})
	b.puller = inbound.New(bdb, b.conns, conns, b.engine, b.pub, logger, cfg)
	b.in = outbound.NewIngester(bdb, noScheduler{}, nil)
	return b
}

func (b *testBundle) ingest(t *testing.T, changes ...outbound.Change) {
	t.Helper()
	_, err := b.in.Ingest(context.Background(), b.ws, changes)
	require.NoError(t, err)
}

func (b *testBundle) flush(t *testing.T) *engine.Result {
	t.Helper()
	res, err := b.engine.Flush(context.Background(), b.ws)
	require.NoError(t, err)
	return res
}

func (b *testBundle) pull(t *testing.T) *inbound.Result {
	t.Helper()
	res, err := b.puller.Pull(context.Background(), b.ws)
	require.NoError(t, err)
	return res
}

func (b *testBundle) rec(t *testing.T, typ record.Type, id string) *record.Record {
	t.Helper()
	r, err := record.Get(context.Background(), b.db, b.ws, record.Key{Type: typ, ID: id})
	require.NoError(t, err)
	return r
}

func (b *testBundle) queued(t *testing.T) int {
	t.Helper()
	d, err := outbound.Measure(context.Background(), b.db, b.ws)
	require.NoError(t, err)
	return d.Queued + d.Failed
}

func (b *testBundle) setMode(t *testing.T, typ record.Type, field, crmField string, mode prefs.Mode) {
	t.Helper()
	require.NoError(t, prefs.SetField(context.Background(), b.db, b.ws, prefs.FieldMapping{RecordType: typ, Field: field, CRMField: crmField, Mode: mode}))
}

// batch loads a batch with its records.
func (b *testBundle) batch(t *testing.T, id int64) *synclog.Batch {
	t.Helper()
	full, err := synclog.Get(context.Background(), b.db, b.ws, id)
	require.NoError(t, err)
	return full
}

func change(typ record.Type, id string, at time.Time, fields map[string]any) outbound.Change {
	c := outbound.Change{Type: typ, ID: id, Source: record.SourceUI, Fields: map[string]outbound.FieldChange{}}
	for k, v := range fields {
		c.Fields[k] = outbound.FieldChange{Value: v, ChangedAt: at}
	}
	return c
}

// syncedContact creates a contact in Conversion, flushes it to a Lead and
// pulls once, so both sides agree; it returns the Lead's id.
func (b *testBundle) syncedContact(t *testing.T, id, email string) string {
	t.Helper()
	b.ingest(t, change(record.TypeContact, id, b.clock.Now(), map[string]any{"email": email, "lastName": "Lovelace", "company": "Analytical", "title": "Initial", "phone": "+1 000"}))
	b.flush(t)
	b.clock.Advance(time.Minute)
	b.pull(t)
	r := b.rec(t, record.TypeContact, id)
	require.Equal(t, "Lead", r.CRMObject)
	return r.CRMID
}

func fieldLog(t *testing.T, rows []*synclog.Record, conversionID, field string) synclog.Field {
	t.Helper()
	for _, r := range rows {
		if r.ConversionID != conversionID {
			continue
		}
		for _, f := range r.Fields {
			if f.Field == field {
				return f
			}
		}
	}
	t.Fatalf("no log of field %s of %q in %+v", field, conversionID, rows)
	return synclog.Field{}
}

func TestCrmsyncOwnWritesChangeNothing(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setup(t, bdb, inbound.Config{})
		b.ingest(t, change(record.TypeContact, "c1", b.clock.Now(), map[string]any{"email": "ada@example.com", "lastName": "Lovelace", "company": "Analytical", "title": "Countess"}))
		b.flush(t)
		before := b.rec(t, record.TypeContact, "c1")
		b.clock.Advance(time.Minute)
		res := b.pull(t)
		require.Nil(t, res.Batch, "reading back crmsync's own write logs nothing")
		after := b.rec(t, record.TypeContact, "c1")
		require.Equal(t, before.Fields, after.Fields)
		require.Equal(t, before.CRMID, after.CRMID)
		require.False(t, after.CRMModstamp.IsZero(), "the modstamp read is stored")
		require.Zero(t, b.queued(t))
	})
}
