package push_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/memcrm"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/prefs"
	"github.com/crmsync/crmsync/internal/push"
	"github.com/crmsync/crmsync/internal/record"
	"github.com/crmsync/crmsync/internal/secret"
	"github.com/crmsync/crmsync/internal/synclog"
)

// connectorsFunc hands out connectors from a function.
type connectorsFunc func(ctx context.Context, name string) (connector.Connector, error)

func (f connectorsFunc) Connector(ctx context.Context, name string) (connector.Connector, error) {
	return f(ctx, name)
}

type noScheduler struct{}

func (noScheduler) ScheduleFlushTx(context.Context, bun.Tx, int64) error { return nil }

type testBundle struct {
	db     *bun.DB
	ws     int64
	crm    *memcrm.CRM
	org    *memcrm.Org
	clock  *memcrm.Clock
	conns  *connection.Store
	engine *push.Engine
	in     *outbound.Ingester
	// wrap, when set, wraps the connector the engine uses.
	wrap func(connector.Connector) connector.Connector
	// unavailable, when set, is the start failure the connector gets.
	unavailable atomic.Pointer[connection.UnavailableError]
}

func setup(t *testing.T, bdb *bun.DB) *testBundle {
	t.Helper()
	ctx := context.Background()
	b := &testBundle{db: bdb, clock: memcrm.NewClock(time.Now().UTC().Add(-time.Hour).Truncate(time.Second))}
	b.crm = memcrm.New(memcrm.WithClock(b.clock.Now))
	org := fmt.Sprintf("org-%s", t.Name())
	b.org = b.crm.Org(org)
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
		if u := b.unavailable.Load(); u != nil {
			return nil, u
		}
		if b.wrap != nil {
			return b.wrap(b.crm), nil
		}
		return b.crm, nil
	})
	b.engine = push.New(bdb, b.conns, conns, nil, slog.New(slog.DiscardHandler), push.Config{RetryBase: time.Millisecond, WaitDelay: time.Millisecond})
	b.in = outbound.NewIngester(bdb, noScheduler{}, nil)
	return b
}

func (b *testBundle) ingest(t *testing.T, changes ...outbound.Change) {
	t.Helper()
	_, err := b.in.Ingest(context.Background(), b.ws, changes)
	require.NoError(t, err)
}

func (b *testBundle) flush(t *testing.T) *push.Result {
	t.Helper()
	res, err := b.engine.Flush(context.Background(), b.ws)
	require.NoError(t, err)
	return res
}

// drain flushes until the queue holds nothing due.
func (b *testBundle) drain(t *testing.T) {
	t.Helper()
	for range 10 {
		b.flush(t)
		d, err := outbound.Measure(context.Background(), b.db, b.ws)
		require.NoError(t, err)
		if d.Queued == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond) // backoffs in these tests are a millisecond
	}
	t.Fatal("queue did not drain")
}

func (b *testBundle) rec(t *testing.T, typ record.Type, id string) *record.Record {
	t.Helper()
	r, err := record.Get(context.Background(), b.db, b.ws, record.Key{Type: typ, ID: id})
	require.NoError(t, err)
	return r
}

func change(typ record.Type, id string, at time.Time, fields map[string]any) outbound.Change {
	c := outbound.Change{Type: typ, ID: id, Source: record.SourceUI, Fields: map[string]outbound.FieldChange{}}
	for k, v := range fields {
		c.Fields[k] = outbound.FieldChange{Value: v, ChangedAt: at}
	}
	return c
}

func lastBatch(t *testing.T, b *testBundle) *synclog.Batch {
	t.Helper()
	batches, err := synclog.List(context.Background(), b.db, b.ws, synclog.Filter{}, 0, 1)
	require.NoError(t, err)
	require.NotEmpty(t, batches)
	full, err := synclog.Get(context.Background(), b.db, b.ws, batches[0].ID)
	require.NoError(t, err)
	return full
}

func TestFlushCreatesThenUpdates(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setup(t, bdb)
		now := b.clock.Now()
		b.ingest(t, change(record.TypeContact, "c1", now, map[string]any{"email": "ada@example.com", "lastName": "Lovelace", "company": "Analytical", "title": "Countess"}))
		res := b.flush(t)
		require.Equal(t, 1, res.Batch.Created, "%+v", res.Batch)

		r := b.rec(t, record.TypeContact, "c1")
		require.Equal(t, "Lead", r.CRMObject)
		lead, ok := b.org.Get("Lead", r.CRMID)
		require.True(t, ok)
		require.Equal(t, "Countess", lead.Fields["Title"])
		require.Equal(t, b.org.Identity().UserID, lead.LastModifiedByID)

		// A later change updates only what changed; the default mode
		// (prefer Salesforce unless empty) keeps the non-empty Title.
		b.clock.Advance(time.Minute)
		b.ingest(t, change(record.TypeContact, "c1", b.clock.Now(), map[string]any{"title": "Engineer", "phone": "+44 1"}))
		res = b.flush(t)
		require.Equal(t, 1, res.Batch.Updated)
		lead, _ = b.org.Get("Lead", r.CRMID)
		require.Equal(t, "Countess", lead.Fields["Title"])
		require.Equal(t, "+44 1", lead.Fields["Phone"])
		logged := lastBatch(t, b).Records[0].Fields
		require.Contains(t, logged, synclog.Field{Field: "title", CRMField: "Title", Mode: string(prefs.PreferSalesforceUnlessEmpty), Value: "Engineer", Reason: "CRM field is not empty"}) // memcrm: the CRM is named neutrally

		// Nothing queued: a flush makes no CRM call.
		calls := b.org.CallCount()
		res = b.flush(t)
		require.Nil(t, res.Batch)
		require.Equal(t, calls, b.org.CallCount())
	})
}

// TestFieldModes runs every mode against a Salesforce value that is newer,
// older, blank, or last written by crmsync itself.
func TestFieldModes(t *testing.T) {
	t.Parallel()
	type situation string
	const (
		sfNewer situation = "salesforce newer"
		sfOlder situation = "salesforce older"
		sfBlank situation = "salesforce blank"
		sfOwn   situation = "changed by crmsync"
	)
	want := map[prefs.Mode]map[situation]bool{ // does Conversion's value end up in Salesforce?
		prefs.TwoWay:                      {sfNewer: false, sfOlder: true, sfBlank: false, sfOwn: true},
		prefs.PreferSalesforceUnlessEmpty: {sfNewer: false, sfOlder: false, sfBlank: true, sfOwn: false},
		prefs.AlwaysPreferConversion:      {sfNewer: true, sfOlder: true, sfBlank: true, sfOwn: true},
		prefs.AlwaysPreferSalesforce:      {sfNewer: false, sfOlder: false, sfBlank: false, sfOwn: false},
		prefs.DoNotSync:                   {sfNewer: false, sfOlder: false, sfBlank: false, sfOwn: false},
	}
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		for mode, cases := range want {
			for sit, sent := range cases {
				t.Run(fmt.Sprintf("%s/%s", mode, sit), func(t *testing.T) {
					b := setup(t, bdb)
					ctx := context.Background()
					rep := b.org.SalesRepIDs()[0]
					// The record exists in Salesforce, created by crmsync.
					t0 := b.clock.Now()
					b.ingest(t, change(record.TypeContact, "c", t0, map[string]any{"email": "m@example.com", "lastName": "M", "company": "C", "title": "Initial"}))
					b.flush(t)
					id := b.rec(t, record.TypeContact, "c").CRMID
					require.NoError(t, prefs.SetField(ctx, bdb, b.ws, prefs.FieldMapping{RecordType: record.TypeContact, Field: "title", CRMField: "Title", Mode: mode}))

					b.clock.Advance(time.Minute)
					changedAt := b.clock.Now()
					switch sit {
					case sfNewer:
						b.clock.Advance(time.Minute)
						require.NoError(t, b.org.EditAsUser(rep, "Lead", id, map[string]any{"Title": "Rep's"}))
					case sfOlder:
						require.NoError(t, b.org.EditAsUser(rep, "Lead", id, map[string]any{"Title": "Rep's"}))
						b.clock.Advance(time.Minute)
						changedAt = b.clock.Now()
					case sfBlank:
						b.clock.Advance(time.Minute)
						require.NoError(t, b.org.EditAsUser(rep, "Lead", id, map[string]any{"Title": nil}))
					case sfOwn:
						// crmsync's own later write (another field) bumps LastModifiedDate.
						b.clock.Advance(time.Minute)
						b.ingest(t, change(record.TypeContact, "c", b.clock.Now(), map[string]any{"phone": "1"}))
						b.flush(t)
					}
					b.ingest(t, change(record.TypeContact, "c", changedAt, map[string]any{"title": "Conversion's"}))
					b.flush(t)
					lead, _ := b.org.Get("Lead", id)
					if sent {
						require.Equal(t, "Conversion's", lead.Fields["Title"])
					} else {
						require.NotEqual(t, "Conversion's", lead.Fields["Title"])
					}
					var decision *synclog.Field
					for _, f := range lastBatch(t, b).Records[0].Fields {
						if f.Field == "title" {
							decision = &f
						}
					}
					require.NotNil(t, decision, "every field decision is logged")
					require.Equal(t, sent, decision.Sent, decision.Reason)
					require.NotEmpty(t, decision.Reason)
				})
			}
		}
	})
}

func TestCoalescesTenThousandChangesIntoOneWrite(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setup(t, bdb)
		t0 := b.clock.Now()
		changes := make([]outbound.Change, 0, 5000)
		for i := range 10_000 {
			changes = append(changes, change(record.TypeCompany, "acme", t0.Add(time.Duration(i)*time.Millisecond),
				map[string]any{"name": fmt.Sprintf("Acme %d", i)}))
			if len(changes) == 5000 {
				b.ingest(t, changes...)
				changes = changes[:0]
			}
		}
		res := b.flush(t)
		require.Equal(t, 1, res.Batch.Created)
		accounts := b.org.All("Account")
		require.Len(t, accounts, 1)
		require.Equal(t, "Acme 9999", accounts[0].Fields["Name"])

		// Once linked, 10,000 more changes cost one read and one write, as
		// counted by the CRM (describes are cached).
		for i := range 10_000 {
			changes = append(changes, change(record.TypeCompany, "acme", t0.Add(time.Hour+time.Duration(i)*time.Millisecond),
				map[string]any{"phone": fmt.Sprintf("%d", i)}))
			if len(changes) == 5000 {
				b.ingest(t, changes...)
				changes = changes[:0]
			}
		}
		before := b.org.CallCount()
		res = b.flush(t)
		require.Equal(t, 1, res.Batch.Updated)
		require.Equal(t, int64(2), b.org.CallCount()-before)
		require.Equal(t, 2, res.Batch.APICalls)
		acct, _ := b.org.Get("Account", accounts[0].ID)
		require.Equal(t, "9999", acct.Fields["Phone"])
	})
}

func TestDependenciesWaitForParents(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		b := setup(t, bdb)
		now := b.clock.Now()
		require.NoError(t, prefs.SetObject(ctx, bdb, b.ws, prefs.ObjectPreference{RecordType: record.TypeContact, WriteEnabled: true, ReadEnabled: true, CreateAs: prefs.CreateAsContact}))
		// Children first, in one batch: levels order them.
		member := outbound.Change{Type: record.TypeCampaignMember, ID: outbound.MemberID("camp", "c1"), Source: record.SourceUI,
			Fields: map[string]outbound.FieldChange{"campaignId": {Value: "camp"}, "contactId": {Value: "c1"}, "status": {Value: "Sent"}}}
		b.ingest(t, member,
			change(record.TypeContact, "c1", now, map[string]any{"email": "g@example.com", "lastName": "Hopper", "companyId": "navy"}),
			change(record.TypeCompany, "navy", now, map[string]any{"name": "US Navy", "website": "https://navy.mil"}),
			change(record.TypeCampaign, "camp", now, map[string]any{"name": "Launch"}),
		)
		res := b.flush(t)
		require.Equal(t, 4, res.Batch.Created, "%+v", res.Batch)
		contact := b.rec(t, record.TypeContact, "c1")
		c, _ := b.org.Get("Contact", contact.CRMID)
		require.Equal(t, b.rec(t, record.TypeCompany, "navy").CRMID, c.Fields["AccountId"])
		members := b.org.All("CampaignMember")
		require.Len(t, members, 1)
		require.Equal(t, contact.CRMID, members[0].Fields["ContactId"])

		// A task for a contact that cannot reach the CRM yet waits, not fails.
		require.NoError(t, prefs.SetObject(ctx, bdb, b.ws, prefs.ObjectPreference{RecordType: record.TypeContact, WriteEnabled: true, ReadEnabled: true, CreateAs: prefs.CreateAsContact}))
		b.ingest(t,
			change(record.TypeContact, "c2", now, map[string]any{"email": "x@example.com"}), // no LastName: the CRM refuses it
			change(record.TypeTask, "t1", now, map[string]any{"contactId": "c2", "subject": "Call"}),
		)
		res = b.flush(t)
		require.Equal(t, 1, res.Batch.Failed, "%+v", res.Batch.Records)
		require.Equal(t, 1, res.Batch.Waiting)
		d, err := outbound.Measure(ctx, bdb, b.ws)
		require.NoError(t, err)
		require.Equal(t, 1, d.Queued, "the task stays queued")
		require.Equal(t, 1, d.Failed, "the contact is parked with the CRM's error")
		failed, err := outbound.Failed(ctx, bdb, b.ws, 0, 10)
		require.NoError(t, err)
		require.Equal(t, "REQUIRED_FIELD_MISSING", failed[0].ErrorCode)
	})
}

func TestMatchesExistingAndFollowsConvertedLead(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setup(t, bdb)
		rep := b.org.SalesRepIDs()[0]
		leadID, err := b.org.CreateAsUser(rep, "Lead", map[string]any{"LastName": "Turing", "Company": "Bletchley", "Email": "alan@example.com"})
		require.NoError(t, err)
		contactID, err := b.org.ConvertLead(rep, leadID)
		require.NoError(t, err)

		b.clock.Advance(time.Minute)
		b.ingest(t, change(record.TypeContact, "alan", b.clock.Now(), map[string]any{"email": "Alan@Example.com", "phone": "+44 2"}))
		res := b.flush(t)
		require.Equal(t, 1, res.Batch.Updated, "%+v", res.Batch.Records)
		r := b.rec(t, record.TypeContact, "alan")
		require.Equal(t, "Contact", r.CRMObject)
		require.Equal(t, contactID, r.CRMID)
		require.Len(t, b.org.All("Lead"), 1, "no second lead created")
		c, _ := b.org.Get("Contact", contactID)
		require.Equal(t, "+44 2", c.Fields["Phone"])
	})
}

func TestDuplicateCampaignMemberIsSuccess(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setup(t, bdb)
		now := b.clock.Now()
		b.ingest(t,
			change(record.TypeContact, "c1", now, map[string]any{"email": "d@example.com", "lastName": "D", "company": "X"}),
			change(record.TypeCampaign, "camp", now, map[string]any{"name": "Webinar"}))
		b.flush(t)
		rep := b.org.SalesRepIDs()[0]
		_, err := b.org.CreateAsUser(rep, "CampaignMember", map[string]any{
			"CampaignId": b.rec(t, record.TypeCampaign, "camp").CRMID, "LeadId": b.rec(t, record.TypeContact, "c1").CRMID, "Status": "Sent"})
		require.NoError(t, err)
		b.ingest(t, outbound.Change{Type: record.TypeCampaignMember, ID: outbound.MemberID("camp", "c1"), Source: record.SourceWorkflow,
			Fields: map[string]outbound.FieldChange{"campaignId": {Value: "camp"}, "contactId": {Value: "c1"}, "status": {Value: "Sent"}}})
		res := b.flush(t)
		require.Zero(t, res.Batch.Failed, "%+v", res.Batch.Records)
		require.Len(t, b.org.All("CampaignMember"), 1)
		require.NotEmpty(t, b.rec(t, record.TypeCampaignMember, outbound.MemberID("camp", "c1")).CRMID)

		// Removing the membership deletes it.
		b.ingest(t, outbound.Change{Type: record.TypeCampaignMember, ID: outbound.MemberID("camp", "c1"), Source: record.SourceUI, Op: outbound.OpRemove})
		res = b.flush(t)
		require.Equal(t, 1, res.Batch.Deleted, "%+v", res.Batch.Records)
		require.Empty(t, b.org.All("CampaignMember"))
	})
}

// crashAfterWrite lets BulkUpdate through to the CRM, then fails as if the
// process died before recording the outcome.
type crashAfterWrite struct {
	connector.Connector
	crashed bool
}

func (c *crashAfterWrite) BulkUpdate(ctx context.Context, req connector.BulkUpdateRequest) (*connector.BulkUpdateResponse, error) {
	resp, err := c.Connector.BulkUpdate(ctx, req)
	if err != nil || c.crashed {
		return resp, err
	}
	c.crashed = true
	return nil, connector.Errorf(connector.KindUnavailable, "connection reset after the write")
}

func TestReplayAfterCrashCreatesNothingTwice(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setup(t, bdb)
		crash := &crashAfterWrite{Connector: b.crm}
		b.wrap = func(connector.Connector) connector.Connector { return crash }
		now := b.clock.Now()
		b.ingest(t,
			change(record.TypeContact, "c1", now, map[string]any{"email": "r@example.com", "lastName": "R", "company": "X"}),
			change(record.TypeCompany, "co", now, map[string]any{"name": "Co", "website": "co.example"}),
			change(record.TypeCampaign, "camp", now, map[string]any{"name": "Spring"}))
		res, err := b.engine.Flush(context.Background(), b.ws)
		require.ErrorIs(t, err, connector.ErrUnavailable)
		require.Len(t, b.org.All("Account"), 1, "the write reached the CRM")
		// The sync log shows what went out in the cut-off call, sent, with
		// an outcome that says it is not known.
		require.Equal(t, synclog.StatusFailed, res.Batch.Status)
		require.NotEmpty(t, res.Batch.Records)
		for _, r := range res.Batch.Records {
			require.Equal(t, synclog.OutcomeRetrying, r.Outcome, "%s %s", r.RecordType, r.ConversionID)
			require.Contains(t, r.Reason, "whether the CRM applied it is not known")
			require.True(t, slices.ContainsFunc(r.Fields, func(f synclog.Field) bool { return f.Sent }), "%s %s: %+v", r.RecordType, r.ConversionID, r.Fields)
		}
		d, err := outbound.Measure(context.Background(), bdb, b.ws)
		require.NoError(t, err)
		require.Equal(t, 3, d.Queued, "nothing is lost")

		b.drain(t)
		require.Len(t, b.org.All("Account"), 1)
		require.Len(t, b.org.All("Campaign"), 1)
		require.Len(t, b.org.All("Lead"), 1)
	})
}

func TestRetryableAndPermanentFailures(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		b := setup(t, bdb)
		b.org.SetFaults(memcrm.Faults{Records: []memcrm.RecordFault{
			{Object: "Account", Field: "Name", Value: "Locked", Code: connector.CodeLocked, Retryable: true, Times: 2},
			{Object: "Account", Field: "Name", Value: "Invalid", Code: "FIELD_CUSTOM_VALIDATION_EXCEPTION", Message: "Name is banned"},
		}})
		now := b.clock.Now()
		b.ingest(t, change(record.TypeCompany, "a", now, map[string]any{"name": "Locked"}), change(record.TypeCompany, "b", now, map[string]any{"name": "Invalid"}))
		res := b.flush(t)
		require.Equal(t, 2, res.Batch.Failed)
		require.Equal(t, synclog.StatusFailed, res.Batch.Status, "every record failed")
		require.Equal(t, "all 2 records failed (1 parked as a failed item, 1 will be retried); first: COMPANY a: "+connector.CodeLocked+": "+res.Batch.Records[0].Reason, res.Batch.Message)
		failed, err := outbound.Failed(ctx, bdb, b.ws, 0, 10)
		require.NoError(t, err)
		require.Len(t, failed, 1)
		require.Equal(t, "Name is banned", failed[0].ErrorMessage)

		b.drain(t)
		accounts := b.org.All("Account")
		require.Len(t, accounts, 1)
		require.Equal(t, "Locked", accounts[0].Fields["Name"])

		// The user fixes the cause and retries the parked item.
		b.org.SetFaults(memcrm.Faults{})
		n, err := outbound.Retry(ctx, bdb, b.ws, nil)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		b.drain(t)
		require.Len(t, b.org.All("Account"), 2)
	})
}

func TestExpiredCredentialsPauseAndKeepItems(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		b := setup(t, bdb)
		c, err := b.conns.Get(ctx, b.ws)
		require.NoError(t, err)
		bad := memcrm.Session("x", "revoked")
		_, err = b.conns.Save(ctx, b.ws, memcrm.Name, json.RawMessage(c.Config), bad.Credentials, b.org.Identity(), nil)
		require.NoError(t, err)
		b.ingest(t, change(record.TypeCompany, "a", b.clock.Now(), map[string]any{"name": "A"}))
		res := b.flush(t)
		require.Equal(t, push.PauseConnectionExpired, res.Paused)
		c, err = b.conns.Get(ctx, b.ws)
		require.NoError(t, err)
		require.Equal(t, connection.StatusExpired, c.Status)
		res = b.flush(t)
		require.Equal(t, push.PauseConnectionExpired, res.Paused)
		require.Nil(t, res.Batch, "the pause is logged once per episode")
		d, err := outbound.Measure(ctx, bdb, b.ws)
		require.NoError(t, err)
		require.Equal(t, 1, d.Queued)
	})
}

// A connector that cannot start pauses the connection as
// CONNECTOR_UNAVAILABLE with the reason, once per episode, keeping the
// items; once it starts again the connection is CONNECTED and the queue
// drains.
func TestConnectorUnavailablePausesAndResumes(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		b := setup(t, bdb)
		b.unavailable.Store(&connection.UnavailableError{Connector: memcrm.Name, Kind: "VERSION_MISMATCH", Reason: "the plugin speaks connector protocol version 2"})
		b.ingest(t, change(record.TypeCompany, "a", b.clock.Now(), map[string]any{"name": "A"}))
		res := b.flush(t)
		require.Equal(t, push.PauseConnectorUnavailable, res.Paused)
		require.NotNil(t, res.Batch)
		require.Equal(t, synclog.StatusPaused, res.Batch.Status)
		require.Contains(t, res.Batch.Message, "VERSION_MISMATCH: the plugin speaks connector protocol version 2")
		c, err := b.conns.Get(ctx, b.ws)
		require.NoError(t, err)
		require.Equal(t, connection.StatusConnectorUnavailable, c.Status)
		require.Equal(t, "VERSION_MISMATCH: the plugin speaks connector protocol version 2", c.StatusReason)
		require.Equal(t, string(push.PauseConnectorUnavailable), c.PauseReason)

		res = b.flush(t)
		require.Equal(t, push.PauseConnectorUnavailable, res.Paused)
		require.Nil(t, res.Batch, "the pause is logged once per episode")
		d, err := outbound.Measure(ctx, bdb, b.ws)
		require.NoError(t, err)
		require.Equal(t, 1, d.Queued, "nothing dropped")

		b.unavailable.Store(nil)
		res = b.flush(t)
		require.Equal(t, push.PauseNone, res.Paused)
		c, err = b.conns.Get(ctx, b.ws)
		require.NoError(t, err)
		require.Equal(t, connection.StatusConnected, c.Status)
		require.Empty(t, c.StatusReason)
		require.Empty(t, c.PauseReason)
		d, err = outbound.Measure(ctx, bdb, b.ws)
		require.NoError(t, err)
		require.Zero(t, d.Queued)
	})
}

// An expired connection keeps its status when the connector cannot start
// too: it needs the user first.
func TestConnectorUnavailableKeepsExpired(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		b := setup(t, bdb)
		c, err := b.conns.Get(ctx, b.ws)
		require.NoError(t, err)
		require.NoError(t, b.conns.MarkExpired(ctx, c, "refresh token revoked"))
		b.unavailable.Store(&connection.UnavailableError{Connector: memcrm.Name, Kind: "CRASH_LOOP", Reason: "died"})
		b.ingest(t, change(record.TypeCompany, "a", b.clock.Now(), map[string]any{"name": "A"}))
		require.Equal(t, push.PauseConnectionExpired, b.flush(t).Paused)
		c, err = b.conns.Get(ctx, b.ws)
		require.NoError(t, err)
		require.Equal(t, connection.StatusExpired, c.Status)
	})
}

func TestWorkflowActions(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setup(t, bdb)
		now := b.clock.Now()
		b.ingest(t, change(record.TypeContact, "c1", now, map[string]any{"email": "w@example.com", "lastName": "W", "company": "X"}),
			change(record.TypeCampaign, "camp", now, map[string]any{"name": "Nurture"}))
		b.flush(t)
		leadID := b.rec(t, record.TypeContact, "c1").CRMID

		actions := []outbound.WorkflowAction{
			{Kind: outbound.WorkflowCreateTask, ActionID: "run-1", ContactID: "c1", Task: &outbound.Task{Subject: "Call back", DueDate: "2026-12-01"}},
			{Kind: outbound.WorkflowCreateTask, ActionID: "run-1", ContactID: "c1", Task: &outbound.Task{Subject: "Call back", DueDate: "2026-12-01"}}, // a retried run
			{Kind: outbound.WorkflowAddToCampaign, ContactID: "c1", CampaignID: "camp"},
			{Kind: outbound.WorkflowAssignToQueue, ContactID: "c1", QueueID: b.org.QueueID()},
		}
		for _, a := range actions {
			c, err := a.Change(b.clock.Now())
			require.NoError(t, err)
			b.ingest(t, c)
		}
		b.drain(t)
		b.drain(t) // the duplicate run's item, if any, is flushed too

		tasks := b.org.All("Task")
		require.Len(t, tasks, 1, "a retried workflow run creates no second task")
		require.Equal(t, leadID, tasks[0].Fields["WhoId"])
		require.Equal(t, "Call back", tasks[0].Fields["Subject"])
		lead, _ := b.org.Get("Lead", leadID)
		require.Equal(t, b.org.QueueID(), lead.Fields["OwnerId"])
		require.Len(t, b.org.All("CampaignMember"), 1)

		_, err := outbound.WorkflowAction{Kind: outbound.WorkflowAssignToQueue, ContactID: "c1", QueueID: "' OR 1=1"}.Change(now)
		var ie *outbound.InputError
		require.ErrorAs(t, err, &ie)
		_, err = outbound.WorkflowAction{Kind: outbound.WorkflowCreateTask, ContactID: "c1"}.Change(now)
		require.ErrorAs(t, err, &ie)
	})
}

// Updates of every type need no dependency order: one read of all objects
// and one write for the whole batch, as counted by the CRM.
func TestUpdateBurstIsOneWrite(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setup(t, bdb)
		now := b.clock.Now()
		var changes []outbound.Change
		for i := range 50 {
			changes = append(changes,
				change(record.TypeCompany, fmt.Sprintf("co%d", i), now, map[string]any{"name": fmt.Sprintf("Co %d", i)}),
				change(record.TypeContact, fmt.Sprintf("c%d", i), now, map[string]any{"email": fmt.Sprintf("c%d@example.com", i), "lastName": "L", "company": "X", "companyId": fmt.Sprintf("co%d", i)}),
				change(record.TypeCampaign, fmt.Sprintf("camp%d", i), now, map[string]any{"name": fmt.Sprintf("Camp %d", i)}))
		}
		b.ingest(t, changes...)
		b.drain(t)

		b.clock.Advance(time.Minute)
		changes = changes[:0]
		for i := range 50 {
			changes = append(changes,
				change(record.TypeCompany, fmt.Sprintf("co%d", i), b.clock.Now(), map[string]any{"phone": "1"}),
				change(record.TypeContact, fmt.Sprintf("c%d", i), b.clock.Now(), map[string]any{"phone": "2"}),
				change(record.TypeCampaign, fmt.Sprintf("camp%d", i), b.clock.Now(), map[string]any{"status": "In Progress"}))
		}
		b.ingest(t, changes...)
		before := b.org.CallCount()
		res := b.flush(t)
		require.Equal(t, 150, res.Batch.Updated, "%+v", res.Batch)
		require.Equal(t, int64(1+1), b.org.CallCount()-before, "one read of every object (Account, Campaign, Lead) and one write")
	})
}

// A write that reached the CRM but whose outcome crmsync never recorded (it
// died) must not make its own value look like a rep's edit: here a rep then
// edits another field of the record, so the record was last modified by
// someone else, after Conversion's next change. TWO_WAY must still send
// that change, since the CRM's value is the one crmsync sent.
func TestTwoWayAfterUnrecordedWriteAndRepEdit(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b, lead := unrecordedWrite(t, bdb)
		got, _ := b.org.Get("Lead", lead)
		require.Equal(t, "T1", got.Fields["Title"], "the write reached the CRM")

		b.clock.Advance(time.Minute)
		b.ingest(t, change(record.TypeContact, "c1", b.clock.Now(), map[string]any{"title": "T2"}))
		b.clock.Advance(time.Minute)
		require.NoError(t, b.org.EditAsUser(b.org.SalesRepIDs()[0], "Lead", lead, map[string]any{"Company": "Rep Co"}))
		b.drain(t)
		got, _ = b.org.Get("Lead", lead)
		require.Equal(t, "T2", got.Fields["Title"], "the last Conversion change wins: Salesforce only has crmsync's own unrecorded write")
		require.Equal(t, "Rep Co", got.Fields["Company"])
	})
}

// unrecordedWrite syncs a TWO_WAY contact with title T0, then writes T1
// through a connector that dies after the write reached the CRM: T1 is in
// the CRM, and crmsync never learned the outcome.
func unrecordedWrite(t *testing.T, bdb *bun.DB) (*testBundle, string) {
	t.Helper()
	ctx := context.Background()
	b := setup(t, bdb)
	require.NoError(t, prefs.SetField(ctx, bdb, b.ws, prefs.FieldMapping{RecordType: record.TypeContact, Field: "title", CRMField: "Title", Mode: prefs.TwoWay}))
	b.ingest(t, change(record.TypeContact, "c1", b.clock.Now(), map[string]any{"email": "r@example.com", "lastName": "R", "company": "X", "title": "T0"}))
	b.drain(t)
	lead := b.rec(t, record.TypeContact, "c1").CRMID

	b.clock.Advance(time.Minute)
	crash := &crashAfterWrite{Connector: b.crm}
	b.wrap = func(connector.Connector) connector.Connector { return crash }
	b.ingest(t, change(record.TypeContact, "c1", b.clock.Now(), map[string]any{"title": "T1"}))
	_, err := b.engine.Flush(ctx, b.ws)
	require.ErrorIs(t, err, connector.ErrUnavailable)
	return b, lead
}

// The same, but the retry that follows the unrecorded write fails (a row
// lock): its value replaces the pending one, while the CRM keeps the
// earlier write. crmsync must still know that value as its own once a rep
// edits another field, or the next Conversion change is dropped as older
// than the rep's edit (seen in the reliability soak).
func TestTwoWayAfterUnrecordedWriteAndFailedRetry(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b, lead := unrecordedWrite(t, bdb)
		b.wrap = nil

		b.clock.Advance(time.Minute)
		b.org.SetFaults(memcrm.Faults{Records: []memcrm.RecordFault{{Object: "Lead", Field: "Title", Value: "T2", Code: connector.CodeLocked, Retryable: true, Times: 1}}})
		b.ingest(t, change(record.TypeContact, "c1", b.clock.Now(), map[string]any{"title": "T2"}))
		res := b.flush(t)
		require.Equal(t, synclog.OutcomeRetrying, res.Batch.Records[0].Outcome, "%+v", res.Batch.Records[0])
		got, _ := b.org.Get("Lead", lead)
		require.Equal(t, "T1", got.Fields["Title"], "the CRM keeps crmsync's unrecorded write")

		b.clock.Advance(time.Minute)
		b.ingest(t, change(record.TypeContact, "c1", b.clock.Now(), map[string]any{"title": "T3"}))
		b.clock.Advance(time.Minute)
		require.NoError(t, b.org.EditAsUser(b.org.SalesRepIDs()[0], "Lead", lead, map[string]any{"Company": "Rep Co"}))
		b.drain(t)
		got, _ = b.org.Get("Lead", lead)
		require.Equal(t, "T3", got.Fields["Title"], "the last Conversion change wins: the CRM's T1 is crmsync's own write")
	})
}
