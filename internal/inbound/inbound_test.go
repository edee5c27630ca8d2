package inbound_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/memcrm"
	"github.com/crmsync/crmsync/connectors/salesforce"
	"github.com/crmsync/crmsync/connectors/salesforce/sffake"
	"github.com/crmsync/crmsync/connectors/salesforce/sffake/sffaketest"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/events"
	"github.com/crmsync/crmsync/internal/inbound"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/prefs"
	"github.com/crmsync/crmsync/internal/push"
	"github.com/crmsync/crmsync/internal/record"
	"github.com/crmsync/crmsync/internal/secret"
	"github.com/crmsync/crmsync/internal/synclog"
)

type connectorsFunc func(ctx context.Context, name string) (connector.Connector, error)

func (f connectorsFunc) Connector(ctx context.Context, name string) (connector.Connector, error) {
	return f(ctx, name)
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
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
	db  *bun.DB
	ws  int64
	crm connector.Connector
	// side is the CRM as its users see it; org is set on memcrm only.
	side   fakeOrg
	org    *memcrm.Org
	sf     *sffake.Server
	clock  clock
	conns  *connection.Store
	engine *push.Engine
	puller *inbound.Puller
	in     *outbound.Ingester
	pub    *recorder
	rep    string
	// wrap, when set, wraps the connector both syncs use.
	wrap func(connector.Connector) connector.Connector
}

// clock is the CRM's clock (memcrm.Clock, sffake.Clock).
type clock interface {
	Now() time.Time
	Advance(d time.Duration)
	Set(t time.Time)
}

// fakeOrg is what a sales rep does in the CRM, without API calls.
type fakeOrg interface {
	create(t *testing.T, object string, fields map[string]any) string
	edit(t *testing.T, object, id string, fields map[string]any)
	// get returns a record's fields and LastModifiedDate.
	get(t *testing.T, object, id string) (map[string]any, time.Time)
	convert(t *testing.T, leadID string) string
	remove(t *testing.T, object, id string)
}

type memOrg struct {
	crm  *memcrm.CRM
	name string
	org  *memcrm.Org
	rep  string
}

func (m memOrg) remove(t *testing.T, object, id string) {
	t.Helper()
	resp, err := m.crm.BulkUpdate(context.Background(), connector.BulkUpdateRequest{Session: memcrm.Session(m.name, memcrm.DefaultToken),
		Operations: []connector.Operation{{Kind: connector.OpDelete, Object: object, ID: id}}})
	require.NoError(t, err)
	require.Nil(t, resp.Results[0].Error)
}

func (m memOrg) create(t *testing.T, object string, fields map[string]any) string {
	t.Helper()
	id, err := m.org.CreateAsUser(m.rep, object, fields)
	require.NoError(t, err)
	return id
}

func (m memOrg) edit(t *testing.T, object, id string, fields map[string]any) {
	t.Helper()
	require.NoError(t, m.org.EditAsUser(m.rep, object, id, fields))
}

func (m memOrg) get(t *testing.T, object, id string) (map[string]any, time.Time) {
	t.Helper()
	r, ok := m.org.Get(object, id)
	require.True(t, ok, "%s %s", object, id)
	return r.Fields, r.LastModified
}

func (m memOrg) convert(t *testing.T, leadID string) string {
	t.Helper()
	id, err := m.org.ConvertLead(m.rep, leadID)
	require.NoError(t, err)
	return id
}

type sfOrg struct{ sf *sffake.Server }

func (s sfOrg) remove(t *testing.T, _, id string) {
	t.Helper()
	require.NoError(t, s.sf.DeleteAsUser(s.sf.RepUserID(), id))
}

func (s sfOrg) create(t *testing.T, object string, fields map[string]any) string {
	t.Helper()
	id, err := s.sf.InsertAsUser(s.sf.RepUserID(), object, fields)
	require.NoError(t, err)
	return id
}

func (s sfOrg) edit(t *testing.T, object, id string, fields map[string]any) {
	t.Helper()
	require.NoError(t, s.sf.EditAsUser(s.sf.RepUserID(), object, id, fields))
}

func (s sfOrg) get(t *testing.T, object, id string) (map[string]any, time.Time) {
	t.Helper()
	r, ok := s.sf.Get(object, id)
	require.True(t, ok, "%s %s", object, id)
	at, err := time.Parse("2006-01-02T15:04:05.000-0700", r["LastModifiedDate"].(string))
	require.NoError(t, err)
	return r, at.UTC()
}

func (s sfOrg) convert(t *testing.T, leadID string) string {
	t.Helper()
	id, _, err := s.sf.ConvertLead(leadID)
	require.NoError(t, err)
	return id
}

// Backends the CRM-facing tests run against.
const (
	backendMemcrm = "memcrm"
	backendSffake = "sffake"
	// backendSffakeStream is sffake with its Pub/Sub API served.
	backendSffakeStream = "sffake-stream"
)

var backends = []string{backendMemcrm, backendSffake}

// setup returns a bundle against memcrm.
func setup(t *testing.T, bdb *bun.DB, cfg inbound.Config) *testBundle {
	t.Helper()
	return setupWith(t, bdb, cfg, backendMemcrm)
}

// setupWith returns a bundle against memcrm, or against the Salesforce
// connector talking to sffake.
func setupWith(t *testing.T, bdb *bun.DB, cfg inbound.Config, backend string) *testBundle {
	t.Helper()
	ctx := context.Background()
	b := &testBundle{db: bdb, pub: &recorder{}}
	require.NoError(t, bdb.NewRaw("INSERT INTO workspaces (name, created_at) VALUES (?, ?) RETURNING id", "t", time.Now().UTC()).Scan(ctx, &b.ws))
	key := make([]byte, secret.KeySize)
	_, _ = rand.Read(key)
	box, err := secret.NewBox(key)
	require.NoError(t, err)
	b.conns = connection.NewStore(bdb, box)
	switch backend {
	case backendMemcrm:
		mc := memcrm.NewClock(time.Now().UTC().Add(-time.Hour).Truncate(time.Second))
		crm := memcrm.New(memcrm.WithClock(mc.Now))
		org := fmt.Sprintf("org-%s", t.Name())
		b.crm, b.clock, b.org = crm, mc, crm.Org(org)
		b.rep = b.org.SalesRepIDs()[0]
		b.side = memOrg{crm: crm, name: org, org: b.org, rep: b.rep}
		s := memcrm.Session(org, memcrm.DefaultToken)
		_, err = b.conns.Save(ctx, b.ws, memcrm.Name, s.Config, s.Credentials, b.org.Identity(), nil)
		require.NoError(t, err)
	case backendSffake, backendSffakeStream:
		sf := sffaketest.Start(t)
		crm := salesforce.New(salesforce.WithClock(sf.Clock().Now), salesforce.WithAllowedHosts("127.0.0.1"))
		cfg := salesforce.Config{LoginURL: sf.URL(), ClientID: sffake.DefaultClientID}
		if backend == backendSffakeStream {
			cfg.PubSubEndpoint = "http://" + sffaketest.StartPubSub(t, sf)
		}
		s := salesforce.NewSession(cfg,
			salesforce.Credentials{ClientSecret: sffake.DefaultClientSecret, RefreshToken: sf.IssueRefreshToken(sf.IntegrationUserID())})
		chk, err := crm.Check(ctx, connector.CheckRequest{Session: s})
		require.NoError(t, err)
		creds := s.Credentials
		if chk.Credentials != nil {
			creds = chk.Credentials
		}
		b.crm, b.clock, b.rep = crm, sf.Clock(), sf.RepUserID()
		b.side, b.sf = sfOrg{sf: sf}, sf
		_, err = b.conns.Save(ctx, b.ws, "salesforce", s.Config, creds, chk.Identity, nil)
		require.NoError(t, err)
	default:
		t.Fatalf("unknown backend %q", backend)
	}
	conns := connectorsFunc(func(ctx context.Context, name string) (connector.Connector, error) {
		if b.wrap != nil {
			return b.wrap(b.crm), nil
		}
		return b.crm, nil
	})
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	b.engine = push.New(bdb, b.conns, conns, nil, logger, push.Config{RetryBase: time.Millisecond, WaitDelay: time.Millisecond, LimitProbe: time.Millisecond})
	b.puller = inbound.New(bdb, b.conns, conns, b.engine, b.pub, logger, cfg)
	b.in = outbound.NewIngester(bdb, noScheduler{}, nil)
	return b
}

func (b *testBundle) ingest(t *testing.T, changes ...outbound.Change) {
	t.Helper()
	_, err := b.in.Ingest(context.Background(), b.ws, changes)
	require.NoError(t, err)
}

// flush flushes once the connection's lease is free: a running stream
// applies its batches under the same lease, so a flush right after an
// applied event may find it still held.
func (b *testBundle) flush(t *testing.T) *push.Result {
	t.Helper()
	var res *push.Result
	eventually(t, "a flush", func() bool {
		var err error
		res, err = b.engine.Flush(context.Background(), b.ws)
		if errors.Is(err, connection.ErrBusy) {
			return false
		}
		require.NoError(t, err)
		return true
	})
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
		for _, backend := range backends {
			t.Run(backend, func(t *testing.T) {
				b := setupWith(t, bdb, inbound.Config{}, backend)
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
	})
}

// TestModesInbound runs every mode against a Salesforce edit with no
// Conversion change pending, a blanked Salesforce field, and a Salesforce
// edit older than a pending Conversion change.
func TestModesInbound(t *testing.T) {
	t.Parallel()
	type situation string
	const (
		sfEdit       situation = "salesforce edit"
		sfBlank      situation = "salesforce blanked"
		convNewer    situation = "pending conversion change is newer"
		otherFieldSF situation = "salesforce edited another field"
	)
	want := map[prefs.Mode]map[situation]bool{ // is Salesforce's Title applied?
		prefs.TwoWay:                      {sfEdit: true, sfBlank: true, convNewer: false, otherFieldSF: false},
		prefs.PreferSalesforceUnlessEmpty: {sfEdit: true, sfBlank: false, convNewer: true, otherFieldSF: true},
		prefs.AlwaysPreferSalesforce:      {sfEdit: true, sfBlank: true, convNewer: true, otherFieldSF: true},
		prefs.AlwaysPreferConversion:      {sfEdit: false, sfBlank: false, convNewer: false, otherFieldSF: false},
		prefs.DoNotSync:                   {sfEdit: false, sfBlank: false, convNewer: false, otherFieldSF: false},
	}
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		for _, backend := range backends {
			t.Run(backend, func(t *testing.T) {
				for mode, cases := range want {
					for sit, applied := range cases {
						t.Run(fmt.Sprintf("%s/%s", mode, sit), func(t *testing.T) {
							b := setupWith(t, bdb, inbound.Config{}, backend)
							id := b.syncedContact(t, "c", "m@example.com")
							b.setMode(t, record.TypeContact, "title", "Title", mode)
							b.clock.Advance(time.Minute)
							sfValue := any("Rep's title")
							switch sit {
							case sfEdit:
								b.side.edit(t, "Lead", id, map[string]any{"Title": sfValue})
							case sfBlank:
								sfValue = nil
								b.side.edit(t, "Lead", id, map[string]any{"Title": nil})
							case convNewer:
								b.side.edit(t, "Lead", id, map[string]any{"Title": sfValue})
								b.clock.Advance(time.Minute)
								b.ingest(t, change(record.TypeContact, "c", b.clock.Now(), map[string]any{"title": "Conversion's title"}))
							case otherFieldSF:
								// Conversion changed Title, then a rep edited another
								// field: the record's LastModifiedDate is newer, the
								// Title in Salesforce is not.
								b.ingest(t, change(record.TypeContact, "c", b.clock.Now(), map[string]any{"title": "Conversion's title"}))
								b.clock.Advance(time.Minute)
								sfValue = "Initial"
								b.side.edit(t, "Lead", id, map[string]any{"Phone": "+1 999"})
							}
							queued := b.queued(t)
							before := b.rec(t, record.TypeContact, "c").Fields["title"]
							b.clock.Advance(time.Minute)
							b.pull(t)
							after := b.rec(t, record.TypeContact, "c").Fields["title"]
							if applied {
								require.True(t, record.SameValue(sfValue, after.Value), "%+v", after)
								require.Equal(t, record.SourceSalesforce, after.Source)
								_, lastMod := b.side.get(t, "Lead", id)
								if sit == otherFieldSF {
									// The value is older than the record's last
									// modification: it keeps the time it became
									// true, as crmsync wrote it.
									r := b.rec(t, record.TypeContact, "c")
									require.True(t, r.CRMStamps["Title"].Written, "%+v", r.CRMStamps)
									require.Equal(t, r.CRMStamps["Title"].At, after.ChangedAt)
									require.True(t, after.ChangedAt.Before(lastMod))
								} else {
									require.Equal(t, lastMod, after.ChangedAt)
								}
							} else {
								require.Equal(t, before, after)
							}
							require.Equal(t, queued, b.queued(t), "a pull never queues an outbound item")
						})
					}
				}
			})
		}
	})
}

// TestConflictEndsAsModeSays edits Title on both sides between two syncs:
// after one pull and one flush both sides hold what the mode says.
func TestConflictEndsAsModeSays(t *testing.T) {
	t.Parallel()
	const conv, sf = "Conversion's title", "Rep's title"
	tests := map[string]struct {
		mode prefs.Mode
		// sfLater: the rep's edit comes after Conversion's.
		sfLater bool
		// want in Conversion and in Salesforce after one pull and one flush.
		wantConv, wantSF string
	}{
		"two-way, salesforce later":      {prefs.TwoWay, true, sf, sf},
		"two-way, conversion later":      {prefs.TwoWay, false, conv, conv},
		"prefer salesforce unless empty": {prefs.PreferSalesforceUnlessEmpty, false, sf, sf},
		"always prefer salesforce":       {prefs.AlwaysPreferSalesforce, false, sf, sf},
		"always prefer conversion":       {prefs.AlwaysPreferConversion, true, conv, conv},
		"do not sync":                    {prefs.DoNotSync, true, conv, sf},
	}
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		for _, backend := range backends {
			t.Run(backend, func(t *testing.T) {
				for name, tt := range tests {
					for _, order := range []string{"pull then flush", "flush then pull"} {
						t.Run(name+"/"+order, func(t *testing.T) {
							b := setupWith(t, bdb, inbound.Config{}, backend)
							id := b.syncedContact(t, "c", "x@example.com")
							b.setMode(t, record.TypeContact, "title", "Title", tt.mode)
							b.clock.Advance(time.Minute)
							editSF := func() {
								b.side.edit(t, "Lead", id, map[string]any{"Title": sf})
							}
							editConv := func() {
								b.ingest(t, change(record.TypeContact, "c", b.clock.Now(), map[string]any{"title": conv}))
							}
							if tt.sfLater {
								editConv()
								b.clock.Advance(2 * time.Second)
								editSF()
							} else {
								editSF()
								b.clock.Advance(2 * time.Second)
								editConv()
							}
							b.clock.Advance(time.Minute)
							if order == "pull then flush" {
								b.pull(t)
								b.flush(t)
							} else {
								b.flush(t)
								b.pull(t)
							}
							require.Equal(t, tt.wantConv, b.rec(t, record.TypeContact, "c").Fields["title"].Value)
							lead, _ := b.side.get(t, "Lead", id)
							require.Equal(t, tt.wantSF, lead["Title"])
							require.Zero(t, b.queued(t))

							// One more cycle changes nothing on either side: no ping-pong.
							b.clock.Advance(time.Minute)
							b.pull(t)
							b.flush(t)
							require.Equal(t, tt.wantConv, b.rec(t, record.TypeContact, "c").Fields["title"].Value)
							lead, _ = b.side.get(t, "Lead", id)
							require.Equal(t, tt.wantSF, lead["Title"])
							require.Zero(t, b.queued(t))
						})
					}
				}
			})
		}
	})
}

// TestRepTitleConversionPhone is the issue's check: a rep edits a Lead's
// Title while Conversion edits the same contact's Phone (both TWO_WAY):
// after one pull and one flush both systems hold both edits, and both sync
// logs say why.
func TestRepTitleConversionPhone(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		for _, backend := range backends {
			t.Run(backend, func(t *testing.T) {
				for _, order := range []string{"pull then flush", "flush then pull"} {
					t.Run(order, func(t *testing.T) {
						b := setupWith(t, bdb, inbound.Config{}, backend)
						b.setMode(t, record.TypeContact, "title", "Title", prefs.TwoWay)
						b.setMode(t, record.TypeContact, "phone", "Phone", prefs.TwoWay)
						id := b.syncedContact(t, "c", "ada@example.com")
						b.clock.Advance(time.Minute)
						b.side.edit(t, "Lead", id, map[string]any{"Title": "VP Engineering"})
						b.clock.Advance(time.Second)
						b.ingest(t, change(record.TypeContact, "c", b.clock.Now(), map[string]any{"phone": "+44 20 7946 0000"}))
						b.clock.Advance(time.Minute)
						var in *inbound.Result
						var out *push.Result
						if order == "pull then flush" {
							in = b.pull(t)
							out = b.flush(t)
						} else {
							out = b.flush(t)
							in = b.pull(t)
						}
						r := b.rec(t, record.TypeContact, "c")
						require.Equal(t, "VP Engineering", r.Fields["title"].Value)
						require.Equal(t, record.SourceSalesforce, r.Fields["title"].Source)
						require.Equal(t, "+44 20 7946 0000", r.Fields["phone"].Value)
						lead, _ := b.side.get(t, "Lead", id)
						require.Equal(t, "VP Engineering", lead["Title"])
						require.Equal(t, "+44 20 7946 0000", lead["Phone"])

						inLog := b.batch(t, in.Batch.ID)
						require.Equal(t, synclog.Inbound, inLog.Direction)
						title := fieldLog(t, inLog.Records, "c", "title")
						require.True(t, title.Sent)
						crm := "Salesforce"
						if backend == backendMemcrm {
							crm = "CRM" // another connector's CRM is named neutrally
						}
						require.Contains(t, title.Reason, crm+" value is newer")
						outLog := b.batch(t, out.Batch.ID)
						require.Equal(t, synclog.Outbound, outLog.Direction)
						phone := fieldLog(t, outLog.Records, "c", "phone")
						require.True(t, phone.Sent, phone.Reason)
						if order == "pull then flush" {
							kept := fieldLog(t, inLog.Records, "c", "phone")
							require.False(t, kept.Sent)
							require.Contains(t, kept.Reason, "Conversion change is newer")
							require.Contains(t, kept.Reason, "unchanged since")
						}
						require.Zero(t, b.queued(t))
					})
				}
			})
		}
	})
}

// TestCreatesLinksAndSkips covers new CRM records, matching unlinked
// Conversion records, and what is skipped and why.
func TestCreatesLinksAndSkips(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		for _, backend := range backends {
			t.Run(backend, func(t *testing.T) {
				ctx := context.Background()
				b := setupWith(t, bdb, inbound.Config{}, backend)
				// Existing Conversion records nobody sent (writing is off), so they
				// are unlinked.
				for _, typ := range []record.Type{record.TypeContact, record.TypeCompany} {
					require.NoError(t, prefs.SetObject(ctx, bdb, b.ws, prefs.ObjectPreference{RecordType: typ, WriteEnabled: false, ReadEnabled: true, CreateAs: prefs.CreateAsLead}))
				}
				b.ingest(t,
					change(record.TypeContact, "grace", b.clock.Now(), map[string]any{"email": "Grace@Example.com", "lastName": "Hopper"}),
					change(record.TypeCompany, "acme", b.clock.Now(), map[string]any{"name": "ACME", "website": "https://www.acme.com/"}))
				require.Zero(t, b.queued(t))
				b.clock.Advance(time.Minute)

				newLead := b.side.create(t, "Lead", map[string]any{"LastName": "New", "Company": "Co", "Email": "new@example.com", "Title": "CTO"})
				graceLead := b.side.create(t, "Lead", map[string]any{"LastName": "Hopper", "Company": "Navy", "Email": "grace@example.COM"})
				noEmail := b.side.create(t, "Lead", map[string]any{"LastName": "Anon", "Company": "Co"})
				acct := b.side.create(t, "Account", map[string]any{"Name": "Acme Corp", "Website": "acme.com", "Industry": "Technology"})
				other := b.side.create(t, "Account", map[string]any{"Name": "Initech"})
				b.clock.Advance(time.Minute)

				res := b.pull(t)
				require.Zero(t, b.queued(t), "inbound creates and links without queueing anything")
				log := b.batch(t, res.Batch.ID)
				require.Equal(t, synclog.Inbound, log.Direction)
				require.Equal(t, 2, log.Created, "%+v", log)
				require.Equal(t, 2, log.Updated)
				require.Equal(t, 1, log.Skipped)

				created := b.rec(t, record.TypeContact, inbound.ConversionIDPrefix+newLead)
				require.Equal(t, "Lead", created.CRMObject)
				require.Equal(t, newLead, created.CRMID)
				require.Equal(t, "CTO", created.Fields["title"].Value)
				require.Equal(t, record.SourceSalesforce, created.Fields["title"].Source)
				require.Equal(t, graceLead, b.rec(t, record.TypeContact, "grace").CRMID, "matched by email, whatever its case")
				require.Equal(t, acct, b.rec(t, record.TypeCompany, "acme").CRMID, "matched by website domain")
				require.Equal(t, "Technology", b.rec(t, record.TypeCompany, "acme").Fields["industry"].Value)
				require.Equal(t, "Initech", b.rec(t, record.TypeCompany, inbound.ConversionIDPrefix+other).Fields["name"].Value)
				var skipped *synclog.Record
				for _, r := range log.Records {
					if r.CRMID == noEmail {
						skipped = r
					}
				}
				require.NotNil(t, skipped)
				require.Equal(t, synclog.OutcomeSkipped, skipped.Outcome)
				require.Contains(t, skipped.Reason, "no email")

				// Events: the batch, and records changed.
				evs := b.pub.all()
				require.Contains(t, evs, events.Event{WorkspaceID: b.ws, Kind: events.KindBatch, BatchID: res.Batch.ID})
				require.Contains(t, evs, events.Event{WorkspaceID: b.ws, Kind: events.KindRecords, BatchID: res.Batch.ID})

				// Reading is off for companies: Accounts are no longer pulled.
				require.NoError(t, prefs.SetObject(ctx, bdb, b.ws, prefs.ObjectPreference{RecordType: record.TypeCompany, WriteEnabled: false, ReadEnabled: false, CreateAs: prefs.CreateAsLead}))
				b.clock.Advance(time.Minute)
				b.side.create(t, "Account", map[string]any{"Name": "Unread"})
				res = b.pull(t)
				require.Nil(t, res.Batch)
				n, err := bdb.NewSelect().Model((*record.Record)(nil)).Where("workspace_id = ? AND type = ?", b.ws, record.TypeCompany).Count(ctx)
				require.NoError(t, err)
				require.EqualValues(t, 2, n)
			})
		}
	})
}

// TestConvertedLeadFollowsItsContact: a rep converts a synced Lead; the
// Conversion contact is relinked to the Contact, whose values then apply.
func TestConvertedLeadFollowsItsContact(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		for _, backend := range backends {
			t.Run(backend, func(t *testing.T) {
				b := setupWith(t, bdb, inbound.Config{}, backend)
				b.setMode(t, record.TypeContact, "title", "Title", prefs.TwoWay)
				leadID := b.syncedContact(t, "c", "conv@example.com")
				b.clock.Advance(time.Minute)
				contactID := b.side.convert(t, leadID)
				b.clock.Advance(time.Second)
				b.side.edit(t, "Contact", contactID, map[string]any{"Title": "Customer"})
				// An unrelated converted Lead nobody synced.
				stray := b.side.create(t, "Lead", map[string]any{"LastName": "Stray", "Company": "S", "Email": "stray@example.com"})
				strayContact := b.side.convert(t, stray)
				b.clock.Advance(time.Minute)

				res := b.pull(t)
				r := b.rec(t, record.TypeContact, "c")
				require.Equal(t, "Contact", r.CRMObject)
				require.Equal(t, contactID, r.CRMID)
				require.Equal(t, "Customer", r.Fields["title"].Value)
				log := b.batch(t, res.Batch.ID)
				reasons := map[string]string{}
				for _, row := range log.Records {
					reasons[row.CRMID] = string(row.Outcome) + ": " + row.Reason
				}
				require.Contains(t, reasons[leadID], "relinked to its Contact")
				require.Contains(t, reasons[stray], "converted Lead")
				// The stray Lead's Contact is a new contact with an email: created.
				require.Equal(t, strayContact, b.rec(t, record.TypeContact, inbound.ConversionIDPrefix+strayContact).CRMID)
				require.Zero(t, b.queued(t))

				// The next flush writes to the Contact, never to the converted Lead.
				b.clock.Advance(time.Minute)
				b.ingest(t, change(record.TypeContact, "c", b.clock.Now(), map[string]any{"title": "Champion"}))
				b.flush(t)
				contact, _ := b.side.get(t, "Contact", contactID)
				require.Equal(t, "Champion", contact["Title"])
			})
		}
	})
}

// TestDeletedInCRMUnlinks: a CRM record deleted in the CRM unlinks its
// Conversion record, which is kept.
func TestDeletedInCRMUnlinks(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		for _, backend := range backends {
			t.Run(backend, func(t *testing.T) {
				b := setupWith(t, bdb, inbound.Config{}, backend)
				leadID := b.syncedContact(t, "c", "gone@example.com")
				b.clock.Advance(time.Minute)
				b.side.remove(t, "Lead", leadID)
				b.clock.Advance(time.Minute)
				res := b.pull(t)
				r := b.rec(t, record.TypeContact, "c")
				require.Empty(t, r.CRMID)
				require.Equal(t, "gone@example.com", r.Fields["email"].Value)
				require.Equal(t, 1, res.Batch.Deleted)
				require.Zero(t, b.queued(t))
			})
		}
	})
}

// TestLookBackCatchesLateCommits: a record that becomes visible with a
// SystemModstamp older than what the last pull read (a transaction that
// committed late) is still applied.
func TestLookBackCatchesLateCommits(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setup(t, bdb, inbound.Config{})
		b.setMode(t, record.TypeContact, "title", "Title", prefs.TwoWay)
		id := b.syncedContact(t, "c", "late@example.com")
		b.clock.Advance(time.Minute)
		b.side.create(t, "Lead", map[string]any{"LastName": "Early", "Company": "E", "Email": "early@example.com"})
		b.pull(t)
		watermark := b.clock.Now()

		// Both commits carry stamps from before the watermark.
		b.clock.Set(watermark.Add(-30 * time.Second))
		late := b.side.create(t, "Lead", map[string]any{"LastName": "Late", "Company": "L", "Email": "late-new@example.com"})
		b.side.edit(t, "Lead", id, map[string]any{"Title": "Late edit"})
		b.clock.Set(watermark.Add(time.Minute))

		res := b.pull(t)
		require.NotNil(t, res.Batch)
		require.Equal(t, late, b.rec(t, record.TypeContact, inbound.ConversionIDPrefix+late).CRMID)
		require.Equal(t, "Late edit", b.rec(t, record.TypeContact, "c").Fields["title"].Value)
	})
}

// TestPagesThroughThousands reads thousands of records in small pages,
// within one pull and across pulls bounded by MaxPages.
func TestPagesThroughThousands(t *testing.T) {
	t.Parallel()
	const n, pageSize = 2500, 200
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		for _, backend := range backends {
			t.Run(backend, func(t *testing.T) {
				for _, maxPages := range []int{1000, 7} {
					t.Run(fmt.Sprintf("max %d pages", maxPages), func(t *testing.T) {
						ctx := context.Background()
						b := setupWith(t, bdb, inbound.Config{PageSize: pageSize, MaxPages: maxPages}, backend)
						counter := &fetchCounter{Connector: b.crm, fetches: map[string]int{}}
						b.wrap = func(connector.Connector) connector.Connector { return counter }
						for i := range n {
							b.side.create(t, "Lead", map[string]any{"LastName": fmt.Sprintf("L%d", i), "Company": "C", "Email": fmt.Sprintf("l%d@example.com", i)})
						}
						created, pulls := 0, 0
						for {
							res := b.pull(t)
							pulls++
							if res.Batch != nil {
								created += res.Batch.Created
							}
							if !res.More {
								break
							}
							require.Less(t, pulls, 100)
						}
						require.Equal(t, n, created)
						count, err := bdb.NewSelect().Model((*record.Record)(nil)).Where("workspace_id = ? AND type = ?", b.ws, record.TypeContact).Count(ctx)
						require.NoError(t, err)
						require.EqualValues(t, n, count)
						fetches, _ := counter.counts()
						require.Equal(t, (n+pageSize-1)/pageSize, fetches["Lead"])
						require.Zero(t, b.queued(t))
					})
				}
			})
		}
	})
}

// TestCrashMidPullResumes: a pull that fails on its Nth page keeps what it
// applied and logged; the next pull resumes after the last page applied,
// nothing skipped and nothing applied twice, and replaying pages applies
// nothing again.
func TestCrashMidPullResumes(t *testing.T) {
	t.Parallel()
	const n, pageSize = 1000, 200
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		for _, backend := range backends {
			t.Run(backend, func(t *testing.T) {
				ctx := context.Background()
				b := setupWith(t, bdb, inbound.Config{PageSize: pageSize}, backend)
				// Calls: Account (1), then Lead pages; the 4th call is the 3rd Lead page.
				counter := &fetchCounter{Connector: b.crm, fetches: map[string]int{}, failOn: 4}
				b.wrap = func(connector.Connector) connector.Connector { return counter }
				for i := range n {
					b.side.create(t, "Lead", map[string]any{"LastName": fmt.Sprintf("L%d", i), "Company": "C", "Email": fmt.Sprintf("l%d@example.com", i)})
				}
				res, err := b.puller.Pull(ctx, b.ws)
				require.ErrorIs(t, err, connector.ErrUnavailable)
				require.NotNil(t, res.Batch)
				failed := b.batch(t, res.Batch.ID)
				require.Equal(t, synclog.StatusFailed, failed.Status)
				require.Equal(t, 2*pageSize, failed.Created, "the pages applied before the failure are logged")
				require.Len(t, failed.Records, 2*pageSize)

				res = b.pull(t)
				require.Equal(t, synclog.StatusSucceeded, res.Batch.Status)
				require.Equal(t, n-2*pageSize, res.Batch.Created)
				count, err := bdb.NewSelect().Model((*record.Record)(nil)).Where("workspace_id = ? AND type = ?", b.ws, record.TypeContact).Count(ctx)
				require.NoError(t, err)
				require.EqualValues(t, n, count)

				// Replay every page from the start: nothing is applied twice.
				_, err = bdb.NewDelete().TableExpr("inbound_cursors").Where("workspace_id = ?", b.ws).Exec(ctx)
				require.NoError(t, err)
				res = b.pull(t)
				require.Nil(t, res.Batch, "pages read again change and log nothing")
				require.Zero(t, b.queued(t))
			})
		}
	})
}

// TestIdlePullsAreCheap: with no edits anywhere, each pull makes one query
// per object type, logs nothing and queues nothing.
func TestIdlePullsAreCheap(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		for _, backend := range backends {
			t.Run(backend, func(t *testing.T) {
				b := setupWith(t, bdb, inbound.Config{}, backend)
				counter := &fetchCounter{Connector: b.crm, fetches: map[string]int{}}
				b.wrap = func(connector.Connector) connector.Connector { return counter }
				b.syncedContact(t, "c", "idle@example.com")
				b.ingest(t, change(record.TypeCompany, "co", b.clock.Now(), map[string]any{"name": "Idle Inc", "website": "idle.example"}))
				b.flush(t)
				b.pull(t)
				const cycles = 20
				before, _ := counter.counts()
				for range cycles {
					b.clock.Advance(5 * time.Minute)
					if b.sf != nil {
						b.sf.ResetRequestLog()
					}
					res := b.pull(t)
					require.Nil(t, res.Batch)
					require.Equal(t, push.PauseNone, res.Paused)
					if b.org != nil {
						require.Equal(t, 3, res.Calls, "one call per object")
					}
					if b.sf != nil {
						queries := 0
						for _, r := range b.sf.RequestLog() {
							if strings.Contains(r.Path, "/query") {
								queries++
							}
						}
						require.Equal(t, 3, queries, "one query per object")
					}
					fres := b.flush(t)
					require.Nil(t, fres.Batch, "nothing to write outbound")
				}
				after, _ := counter.counts()
				for _, obj := range []string{"Lead", "Contact", "Account"} {
					require.Equal(t, cycles, after[obj]-before[obj], obj)
				}
				require.Zero(t, b.queued(t))
			})
		}
	})
}

// TestPausedPullsResumeByThemselves: over crmsync's daily limit, over the
// Salesforce allowance, or expired, a pull reads nothing, logs the pause
// once, and resumes once the cause is gone.
func TestPausedPullsResumeByThemselves(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		t.Run("crmsync daily limit", func(t *testing.T) {
			ctx := context.Background()
			b := setup(t, bdb, inbound.Config{})
			counter := &fetchCounter{Connector: b.crm, fetches: map[string]int{}}
			b.wrap = func(connector.Connector) connector.Connector { return counter }
			b.pull(t) // describe + 3 queries
			c, err := b.conns.Get(ctx, b.ws)
			require.NoError(t, err)
			limit := int64(4)
			require.NoError(t, b.conns.SetDailyLimit(ctx, c, &limit))
			_, total := counter.counts()
			res := b.pull(t)
			require.Equal(t, push.PauseConversionLimit, res.Paused)
			require.NotNil(t, res.Batch)
			require.Equal(t, synclog.StatusPaused, res.Batch.Status)
			require.Equal(t, synclog.Inbound, res.Batch.Direction)
			res = b.pull(t)
			require.Equal(t, push.PauseConversionLimit, res.Paused)
			require.Nil(t, res.Batch, "logged once per episode")
			_, after := counter.counts()
			require.Equal(t, total, after, "no call while paused")

			limit = 1000
			require.NoError(t, b.conns.SetDailyLimit(ctx, c, &limit))
			res = b.pull(t)
			require.Equal(t, push.PauseNone, res.Paused)
			c, err = b.conns.Get(ctx, b.ws)
			require.NoError(t, err)
			require.Empty(t, c.PauseReason)
		})
		t.Run("salesforce allowance", func(t *testing.T) {
			ctx := context.Background()
			b := setup(t, bdb, inbound.Config{})
			b.pull(t)
			b.org.SetDailyMax(b.org.Usage().Used)
			_, err := b.org.CreateAsUser(b.rep, "Lead", map[string]any{"LastName": "Waiting", "Company": "W", "Email": "w@example.com"})
			require.NoError(t, err)
			_, err = b.puller.Pull(ctx, b.ws)
			require.ErrorIs(t, err, connector.ErrRateLimited)
			res := b.pull(t)
			require.Equal(t, push.PauseSalesforceLimit, res.Paused)
			require.NotNil(t, res.Batch)
			res = b.pull(t)
			require.Equal(t, push.PauseSalesforceLimit, res.Paused)
			require.Nil(t, res.Batch, "logged once per episode")

			// The gate checks a spent allowance again once its reading is
			// LimitProbe old (a millisecond here): the pull resumes by itself.
			b.org.SetDailyMax(memcrm.DefaultDailyMax)
			require.Eventually(t, func() bool {
				res = b.pull(t)
				return res.Paused == push.PauseNone
			}, 10*time.Second, 5*time.Millisecond)
			require.Equal(t, 1, res.Batch.Created, "the change waiting behind the limit is applied")
		})
		t.Run("expired", func(t *testing.T) {
			ctx := context.Background()
			b := setup(t, bdb, inbound.Config{})
			c, err := b.conns.Get(ctx, b.ws)
			require.NoError(t, err)
			good, err := b.conns.Credentials(c)
			require.NoError(t, err)
			bad := memcrm.Session("x", "revoked")
			_, err = b.conns.Save(ctx, b.ws, memcrm.Name, c.Config, bad.Credentials, b.org.Identity(), nil)
			require.NoError(t, err)
			res := b.pull(t)
			require.Equal(t, push.PauseConnectionExpired, res.Paused)
			c, err = b.conns.Get(ctx, b.ws)
			require.NoError(t, err)
			require.Equal(t, connection.StatusExpired, c.Status)
			res = b.pull(t)
			require.Equal(t, push.PauseConnectionExpired, res.Paused)
			require.Nil(t, res.Batch, "logged once per episode")

			_, err = b.conns.Save(ctx, b.ws, memcrm.Name, c.Config, good, b.org.Identity(), nil)
			require.NoError(t, err)
			res = b.pull(t)
			require.Equal(t, push.PauseNone, res.Paused)
		})
	})
}

// TestLookBackCatchesLateCommitsOnSalesforce: against the Salesforce
// connector and sffake's commit lag, a Lead whose transaction commits after
// a pull read newer records (so it carries a SystemModstamp older than the
// watermark) is caught by the connector's look-back on the next pull, and
// the overlap it re-reads applies and logs nothing twice.
func TestLookBackCatchesLateCommitsOnSalesforce(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		b := setupWith(t, bdb, inbound.Config{}, backendSffake)
		b.sf.SetCommitLag(30 * time.Second)
		late := b.side.create(t, "Lead", map[string]any{"LastName": "Late", "Company": "L", "Email": "late@example.com"})
		b.sf.SetCommitLag(0)
		b.clock.Advance(10 * time.Second)
		early := b.side.create(t, "Lead", map[string]any{"LastName": "Early", "Company": "E", "Email": "early@example.com"})

		res := b.pull(t)
		require.Equal(t, 1, res.Batch.Created)
		require.Equal(t, early, b.rec(t, record.TypeContact, inbound.ConversionIDPrefix+early).CRMID)
		_, err := record.Get(ctx, bdb, b.ws, record.Key{Type: record.TypeContact, ID: inbound.ConversionIDPrefix + late})
		require.Error(t, err, "not committed yet")

		b.clock.Advance(30 * time.Second)
		res = b.pull(t)
		require.NotNil(t, res.Batch)
		require.Equal(t, 1, res.Batch.Created, "only the late Lead: the overlap re-read the early one and left it alone")
		require.Len(t, res.Batch.Records, 1)
		require.Equal(t, late, b.rec(t, record.TypeContact, inbound.ConversionIDPrefix+late).CRMID)
		require.Zero(t, b.queued(t))
	})
}

// TestIngestDuringPullsLosesNothing: Conversion changes ingested while
// pulls apply Salesforce changes to the same record are all kept.
func TestIngestDuringPullsLosesNothing(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setup(t, bdb, inbound.Config{})
		b.setMode(t, record.TypeContact, "title", "Title", prefs.AlwaysPreferSalesforce)
		b.setMode(t, record.TypeContact, "phone", "Phone", prefs.AlwaysPreferConversion)
		id := b.syncedContact(t, "c", "busy@example.com")
		const n = 30
		done := make(chan error, 1)
		go func() {
			for i := range n {
				at := time.Now().UTC()
				if _, err := b.in.Ingest(context.Background(), b.ws, []outbound.Change{{Type: record.TypeContact, ID: "c", Source: record.SourceAPI,
					Fields: map[string]outbound.FieldChange{"phone": {Value: fmt.Sprintf("+1 %03d", i), ChangedAt: at}}}}); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		for i := range n {
			b.clock.Advance(time.Second)
			b.side.edit(t, "Lead", id, map[string]any{"Title": fmt.Sprintf("T%d", i)})
			b.pull(t)
		}
		require.NoError(t, <-done)
		b.clock.Advance(time.Second)
		b.pull(t)
		r := b.rec(t, record.TypeContact, "c")
		require.Equal(t, fmt.Sprintf("+1 %03d", n-1), r.Fields["phone"].Value, "no ingested change is lost")
		require.Equal(t, fmt.Sprintf("T%d", n-1), r.Fields["title"].Value, "no pulled change is lost")
	})
}
