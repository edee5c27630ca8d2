package push_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/prefs"
	"github.com/crmsync/crmsync/internal/push"
	"github.com/crmsync/crmsync/internal/record"
	"github.com/crmsync/crmsync/internal/synclog"
)

// stored is everything a dry run must leave alone: the queue, the
// records, the sync log.
func stored(t *testing.T, bdb *bun.DB) map[string][]map[string]any {
	t.Helper()
	out := map[string][]map[string]any{}
	for _, table := range []string{"outbound_items", "records", "sync_batches", "sync_batch_records"} {
		var rows []map[string]any
		require.NoError(t, bdb.NewSelect().Table(table).OrderExpr("id").Scan(context.Background(), &rows))
		out[table] = rows
	}
	return out
}

func dryRun(t *testing.T, b *testBundle, changes ...outbound.Change) *push.DryRun {
	t.Helper()
	res, err := b.engine.DryRun(context.Background(), b.ws, changes)
	require.NoError(t, err)
	return res
}

func dryField(t *testing.T, r push.DryRunRecord, field string) synclog.Field {
	t.Helper()
	for _, f := range r.Log.Fields {
		if f.Field == field {
			return f
		}
	}
	t.Fatalf("no decision for %s in %+v", field, r.Log.Fields)
	return synclog.Field{}
}

// TestDryRunMatchesDecidesAndStoresNothing: a dry run reports, per record,
// create or update, the CRM record matched and how, and each field's
// decision as a flush would make it, spending only reads; the queue, the
// records, the sync log and the CRM are unchanged.
func TestDryRunMatchesDecidesAndStoresNothing(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		b := setup(t, bdb)
		b.ingest(t, change(record.TypeCompany, "acme", b.clock.Now(), map[string]any{"name": "Acme", "website": "acme.example"}))
		b.flush(t)
		acme := b.rec(t, record.TypeCompany, "acme")
		rep := b.org.SalesRepIDs()[0]
		leadID, err := b.org.CreateAsUser(rep, "Lead", map[string]any{"LastName": "Hopper", "Company": "Navy", "Email": "grace@example.com", "Title": "Rear Admiral"})
		require.NoError(t, err)
		b.clock.Advance(time.Minute)
		b.ingest(t, change(record.TypeCompany, "queued", b.clock.Now(), map[string]any{"name": "Queued Inc"}))

		before := stored(t, bdb)
		leads, accounts := len(b.org.All("Lead")), len(b.org.All("Account"))
		callsBefore := b.org.CallCount()
		now := b.clock.Now()
		res := dryRun(t, b,
			change(record.TypeCompany, "acme", now, map[string]any{"industry": "Software"}),
			change(record.TypeContact, "grace", now, map[string]any{"email": "Grace@Example.com", "title": "Engineer", "phone": "+1 555"}),
			change(record.TypeContact, "newbie", now, map[string]any{"email": "new@example.com", "lastName": "Newbie", "company": "Newco"}),
		)
		require.Len(t, res.Records, 3)

		co := res.Records[0]
		require.Equal(t, push.ActionUpdate, co.Action)
		require.Equal(t, push.MatchedByLink, co.MatchedBy)
		require.Equal(t, acme.CRMID, co.Log.CRMID)
		require.True(t, dryField(t, co, "industry").Sent)

		grace := res.Records[1]
		require.Equal(t, push.ActionUpdate, grace.Action, grace.Log.Reason)
		require.Equal(t, push.MatchedByEmail, grace.MatchedBy)
		require.Equal(t, "Lead", grace.Log.CRMObject)
		require.Equal(t, leadID, grace.Log.CRMID)
		title := dryField(t, grace, "title")
		require.False(t, title.Sent)
		require.Equal(t, "CRM field is not empty", title.Reason) // memcrm: named neutrally
		require.True(t, dryField(t, grace, "phone").Sent)

		newbie := res.Records[2]
		require.Equal(t, push.ActionCreate, newbie.Action)
		require.Equal(t, push.MatchedNew, newbie.MatchedBy)
		require.Empty(t, newbie.Log.CRMID)
		require.Equal(t, "new record", dryField(t, newbie, "lastName").Reason)

		// Reads only, and counted: the org saw the dry run's calls, crmsync counts them too.
		require.Positive(t, res.APICalls)
		require.Equal(t, callsBefore+int64(res.APICalls), b.org.CallCount())
		require.Len(t, b.org.All("Lead"), leads)
		require.Len(t, b.org.All("Account"), accounts)
		l, _ := b.org.Get("Lead", leadID)
		require.Equal(t, "Rear Admiral", l.Fields["Title"])
		require.Equal(t, before, stored(t, bdb), "queue, records and sync log unchanged")

		// Invalid input is refused exactly as recordChanges refuses it.
		_, err = b.engine.DryRun(ctx, b.ws, []outbound.Change{change(record.TypeContact, "", now, map[string]any{"bad name!": 1})})
		var inputErr *outbound.InputError
		require.ErrorAs(t, err, &inputErr)
		_, ingestErr := b.in.Ingest(ctx, b.ws, []outbound.Change{change(record.TypeContact, "", now, map[string]any{"bad name!": 1})})
		require.EqualError(t, err, ingestErr.Error())
	})
}

// TestDryRunPlansChildrenOfRecordsItCreates: a contact whose company is
// created by the same batch is planned as after the create (not waiting),
// its AccountId standing for the new Account.
func TestDryRunPlansChildrenOfRecordsItCreates(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setup(t, bdb)
		ctx := context.Background()
		require.NoError(t, prefs.SetObject(ctx, bdb, b.ws, prefs.ObjectPreference{RecordType: record.TypeContact, WriteEnabled: true, ReadEnabled: true, CreateAs: prefs.CreateAsContact}))
		now := b.clock.Now()
		res := dryRun(t, b,
			change(record.TypeCompany, "globex", now, map[string]any{"name": "Globex", "website": "globex.example"}),
			change(record.TypeContact, "hank", now, map[string]any{"email": "hank@globex.example", "lastName": "Scorpio", outbound.FieldCompanyID: "globex"}),
		)
		require.Len(t, res.Records, 2)
		require.Equal(t, push.ActionCreate, res.Records[0].Action)
		hank := res.Records[1]
		require.Equal(t, push.ActionCreate, hank.Action, hank.Log.Reason)
		account := dryField(t, hank, outbound.FieldCompanyID)
		require.True(t, account.Sent)
		require.Equal(t, "AccountId", account.CRMField)
		d, err := outbound.Measure(ctx, bdb, b.ws)
		require.NoError(t, err)
		require.Zero(t, d.Queued)
		require.Empty(t, b.org.All("Account"))
	})
}
