package push_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/prefs"
	"github.com/crmsync/crmsync/internal/push"
	"github.com/crmsync/crmsync/internal/record"
	"github.com/crmsync/crmsync/internal/synclog"
)

// setupOnCRMClock is setup with the engine on the fake CRM's clock, so a
// test decides which second every write and observation falls in.
func setupOnCRMClock(t *testing.T, bdb *bun.DB) *testBundle {
	t.Helper()
	b := setup(t, bdb)
	conns := connectorsFunc(func(context.Context, string) (connector.Connector, error) { return b.crm, nil })
	b.engine = push.New(bdb, b.conns, conns, nil, slog.New(slog.DiscardHandler),
		push.Config{RetryBase: time.Millisecond, WaitDelay: time.Millisecond, Now: b.clock.Now})
	return b
}

func decision(t *testing.T, b *synclog.Batch, id, field string) synclog.Field {
	t.Helper()
	for _, r := range b.Records {
		if r.ConversionID != id {
			continue
		}
		for _, f := range r.Fields {
			if f.Field == field {
				return f
			}
		}
	}
	t.Fatalf("no decision for %s.%s in batch %+v", id, field, b)
	return synclog.Field{}
}

// TestConditionalWrites follows two Leads through the write paths: a
// record crmsync wrote is observed again for free by a later read; a
// proven state lets a change go in one conditional call; a record changed
// in the CRM since is refused (412) and decided again from the state read
// back in the same call; and a state observed within the second of its
// last change is not trusted, so a rep's second edit in that very second
// is read, not overwritten.
func TestConditionalWrites(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		b := setupOnCRMClock(t, bdb)
		rep := b.org.SalesRepIDs()[0]
		require.NoError(t, prefs.SetField(ctx, bdb, b.ws, prefs.FieldMapping{RecordType: record.TypeContact, Field: "title", CRMField: "Title", Mode: prefs.PreferSalesforceUnlessEmpty}))
		require.NoError(t, prefs.SetField(ctx, bdb, b.ws, prefs.FieldMapping{RecordType: record.TypeContact, Field: "phone", CRMField: "Phone", Mode: prefs.TwoWay}))
		lead := func(id string) map[string]any {
			r, ok := b.org.Get("Lead", b.rec(t, record.TypeContact, id).CRMID)
			require.True(t, ok)
			return r.Fields
		}

		t0 := b.clock.Now()
		b.ingest(t, change(record.TypeContact, "a", t0, map[string]any{"email": "a@example.com", "lastName": "A", "company": "C"}),
			change(record.TypeContact, "b", t0, map[string]any{"email": "b@example.com", "lastName": "B", "company": "C"}))
		require.Equal(t, 2, b.flush(t).Batch.Created)

		// B changes: its state is unknown (crmsync created it), so it is
		// read; A, written two seconds ago, rides along in the same read.
		b.clock.Advance(2 * time.Second)
		b.ingest(t, change(record.TypeContact, "b", b.clock.Now(), map[string]any{"phone": "1"}))
		res := b.flush(t)
		require.Equal(t, 2, res.Batch.APICalls, "read, then write")
		require.Equal(t, synclog.WriteReadFirst, res.Batch.WritePath)
		require.Contains(t, res.Batch.WritePathReason, "not known")
		require.True(t, b.rec(t, record.TypeContact, "a").CRMKnown.Proven(), "A observed again by B's read")

		// A changes: its state is proven, so one conditional call.
		b.clock.Advance(2 * time.Second)
		b.ingest(t, change(record.TypeContact, "a", b.clock.Now(), map[string]any{"phone": "2"}))
		res = b.flush(t)
		require.Equal(t, 1, res.Batch.APICalls, "one call: %+v", res.Batch)
		require.Equal(t, synclog.WriteOneCall, res.Batch.WritePath)
		require.Equal(t, "2", lead("a")["Phone"])
		require.Equal(t, 1, res.Batch.Updated)
		require.True(t, b.rec(t, record.TypeContact, "b").CRMKnown.Proven(), "B observed again by A's call")

		// A rep edits B; crmsync's change to another field of B is refused
		// (412), decided again from B's state read back in that call, and
		// written conditionally in a second call: the rep's edit stays.
		b.clock.Advance(2 * time.Second)
		require.NoError(t, b.org.EditAsUser(rep, "Lead", b.rec(t, record.TypeContact, "b").CRMID, map[string]any{"Title": "Rep's title"}))
		b.clock.Advance(time.Second)
		b.ingest(t, change(record.TypeContact, "b", b.clock.Now(), map[string]any{"phone": "3", "title": "Conversion's title"}))
		res = b.flush(t)
		require.Equal(t, synclog.WriteOneCallThenRead, res.Batch.WritePath)
		require.Contains(t, res.Batch.WritePathReason, "412")
		require.Equal(t, 2, res.Batch.APICalls, "the refused call reads B back; the second writes")
		require.Equal(t, "3", lead("b")["Phone"])
		require.Equal(t, "Rep's title", lead("b")["Title"], "not overwritten")
		d := decision(t, res.Batch, "b", "title")
		require.False(t, d.Sent)
		require.Contains(t, d.Reason, "not empty")

		// Same second: the rep blanks A's title at S; crmsync observes A in
		// second S (a change of A whose value Salesforce already has: a
		// refused call, then a read, nothing to write); the rep fills the
		// title again within S, which leaves LastModifiedDate at S. A state
		// observed in S is not proof: the next change of A is read first,
		// sees the rep's title, and keeps it.
		b.clock.Advance(2 * time.Second)
		a := b.rec(t, record.TypeContact, "a").CRMID
		require.NoError(t, b.org.EditAsUser(rep, "Lead", a, map[string]any{"Title": nil}))
		b.ingest(t, change(record.TypeContact, "a", b.clock.Now(), map[string]any{"lastName": "A"}))
		res = b.flush(t)
		require.Equal(t, 1, res.Batch.Skipped, "%+v", res.Batch)
		known := b.rec(t, record.TypeContact, "a").CRMKnown
		require.NotNil(t, known)
		require.Nil(t, known.Fields["Title"], "observed blank")
		require.False(t, known.Proven(), "observed within the second of the rep's edit")
		require.NoError(t, b.org.EditAsUser(rep, "Lead", a, map[string]any{"Title": "Rep's again"}))
		stamp, _ := b.org.Get("Lead", a)
		require.True(t, stamp.LastModified.Equal(known.LastModified), "the second edit left LastModifiedDate where it was")

		b.clock.Advance(time.Second)
		b.ingest(t, change(record.TypeContact, "a", b.clock.Now(), map[string]any{"title": "Conversion's title"}))
		res = b.flush(t)
		require.Equal(t, synclog.WriteReadFirst, res.Batch.WritePath)
		require.Contains(t, res.Batch.WritePathReason, "within the second")
		require.Equal(t, "Rep's again", lead("a")["Title"], "a state from the same second never overwrites the rep")
		d = decision(t, res.Batch, "a", "title")
		require.False(t, d.Sent)
		require.True(t, strings.Contains(d.Reason, "not empty"), d.Reason)
	})
}
