package reliability

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/internal/prefs"
	"github.com/crmsync/crmsync/internal/record"
)

// specs are the fields the load changes, one per sync mode. Contacts are
// created in Salesforce as Leads, companies as Accounts.
var specs = []FieldSpec{
	{record.TypeContact, "email", "Email", prefs.PreferSalesforceUnlessEmpty},
	{record.TypeContact, "lastName", "LastName", prefs.PreferSalesforceUnlessEmpty},
	{record.TypeContact, "phone", "Phone", prefs.AlwaysPreferConversion},
	{record.TypeContact, "title", "Title", prefs.TwoWay},
	{record.TypeContact, "firstName", "FirstName", prefs.PreferSalesforceUnlessEmpty},
	{record.TypeContact, "company", "Company", prefs.AlwaysPreferSalesforce},
	{record.TypeCompany, "name", "Name", prefs.PreferSalesforceUnlessEmpty},
	{record.TypeCompany, "phone", "Phone", prefs.AlwaysPreferConversion},
	{record.TypeCompany, "website", "Website", prefs.DoNotSync},
}

// updated are the fields updates change, with the tag of their values.
var updated = map[record.Type][][2]string{
	record.TypeContact: {{"phone", "ph"}, {"title", "ti"}, {"firstName", "fn"}, {"company", "co"}},
	record.TypeCompany: {{"phone", "ph"}, {"website", "ws"}},
}

// tenant is a workspace and its API token.
type tenant struct {
	id    int64
	token string
}

// setup creates a workspace, sets the field modes of specs and connects it
// to the fake org through the Salesforce connector plugin.
func (c *cluster) setup(ctx context.Context) tenant { return c.setupWith(ctx, specs) }

// setupWith is setup with the field modes of fields.
func (c *cluster) setupWith(ctx context.Context, fields []FieldSpec) tenant {
	t := c.t
	t.Helper()
	var created struct {
		CreateWorkspace struct {
			Workspace struct{ ID string }
			Token     string
		}
	}
	require.NoError(t, c.call(ctx, c.admin, `mutation { createWorkspace(name: "reliability") { workspace { id } token } }`, nil, &created))
	id, err := strconv.ParseInt(created.CreateWorkspace.Workspace.ID, 10, 64)
	require.NoError(t, err)
	tn := tenant{id: id, token: created.CreateWorkspace.Token}
	c.refreshToken = c.org.IssueRefreshToken(c.org.IntegrationUserID())
	c.connect(ctx, tn, c.refreshToken)
	for _, s := range fields {
		require.NoError(t, c.call(ctx, tn.token, `mutation($in: FieldSyncPreferenceInput!) { updateFieldSyncPreference(input: $in) { mode } }`,
			map[string]any{"in": map[string]any{"recordType": s.Type, "field": s.Field, "crmField": s.CRMField, "mode": s.Mode}}, nil))
	}
	return tn
}

// connect (re)connects the workspace with a refresh token.
func (c *cluster) connect(ctx context.Context, tn tenant, refreshToken string) {
	c.t.Helper()
	var out struct{ ConnectCrm struct{ Status string } }
	config := map[string]any{"loginUrl": c.orgURL, "clientId": c.org.ClientID()}
	if c.pubsub != "" {
		config["pubsubEndpoint"] = "http://" + c.pubsub
	}
	if c.bulkThreshold > 0 {
		config["bulkThreshold"] = c.bulkThreshold
	}
	require.NoError(c.t, c.call(ctx, tn.token, `mutation($in: ConnectCrmInput!) { connectCrm(input: $in) { status } }`,
		map[string]any{"in": map[string]any{
			"connector":   "salesforce",
			"config":      config,
			"credentials": map[string]any{"clientSecret": c.org.ClientSecret(), "refreshToken": refreshToken},
		}}, &out))
	require.Equal(c.t, "CONNECTED", out.ConnectCrm.Status)
}

// load is a Conversion sending changes to crmsync: records are created,
// then updated in batches, each value unique and numbered, each batch
// retried until acknowledged.
type load struct {
	c       *cluster
	tn      tenant
	chk     *Checker
	records int
	batch   int
	pause   time.Duration
	seq     atomic.Int64
	sent    atomic.Int64
}

func newLoad(c *cluster, tn tenant, records int) *load {
	return &load{c: c, tn: tn, chk: NewChecker(specs), records: records, batch: 50, pause: 20 * time.Millisecond}
}

func key(i int) record.Key {
	if i%2 == 0 {
		return record.Key{Type: record.TypeContact, ID: fmt.Sprintf("c-%d", i)}
	}
	return record.Key{Type: record.TypeCompany, ID: fmt.Sprintf("a-%d", i)}
}

// seed creates every record and waits until Salesforce has them all.
func (l *load) seed(ctx context.Context) {
	t := l.c.t
	t.Helper()
	changes := l.seedChanges()
	for start := 0; start < len(changes); start += 500 {
		chunk := changes[start:min(start+500, len(changes))]
		require.NoError(t, l.send(ctx, chunk, time.Now()))
		l.chk.Seeded(chunk)
	}
	require.NoError(t, l.c.waitDrained(ctx, l.tn.id, 3*time.Minute), "seeding")
}

// seedChange creates record i with its first values.
func (l *load) seedChange(i int) Change {
	k := key(i)
	f := map[string]string{"phone": Value("ph", i, 0)}
	if k.Type == record.TypeContact {
		f["email"] = fmt.Sprintf("rel-%d@example.com", i)
		f["lastName"] = fmt.Sprintf("Rel %d", i)
		f["firstName"] = Value("fn", i, 0)
		f["company"] = Value("co", i, 0)
		f["title"] = Value("ti", i, 0)
	} else {
		f["name"] = fmt.Sprintf("Rel Account %d", i)
		f["website"] = Value("ws", i, 0)
	}
	return Change{Type: k.Type, ID: k.ID, Fields: f}
}

// run sends update batches until ctx ends or stop is closed.
func (l *load) run(ctx context.Context, stop <-chan struct{}) error {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	hot := max(1, l.records/20)
	for {
		select {
		case <-stop:
			return nil
		case <-ctx.Done():
			return nil
		case <-time.After(l.pause):
		}
		changes := make([]Change, 0, l.batch)
		for range l.batch {
			i := rng.IntN(l.records)
			if rng.IntN(5) == 0 {
				i = rng.IntN(hot)
			}
			k := key(i)
			fields := updated[k.Type]
			f := map[string]string{}
			for _, pick := range rng.Perm(len(fields))[:1+rng.IntN(2)] {
				f[fields[pick][0]] = Value(fields[pick][1], i, int(l.seq.Add(1)))
			}
			ch := Change{Type: k.Type, ID: k.ID, Fields: f}
			if _, ok := f["title"]; ok && rng.IntN(2) == 0 {
				// A late form or import: the TWO_WAY field's change
				// happened up to 3 s ago, out of acceptance order, often
				// within the second of another change or a rep's edit.
				// Alone in its change, so other fields keep their order.
				ch = Change{Type: k.Type, ID: k.ID, Fields: map[string]string{"title": f["title"]},
					At: time.Now().Add(-time.Duration(rng.IntN(3000)) * time.Millisecond)}
				delete(f, "title")
				if len(f) > 0 {
					changes = append(changes, Change{Type: k.Type, ID: k.ID, Fields: f})
				}
			}
			changes = append(changes, ch)
		}
		if err := l.send(ctx, changes, time.Now()); err != nil {
			return err
		}
		l.chk.Accepted(changes)
		l.sent.Add(int64(len(changes)))
	}
}

// send ingests changes through recordChanges until acknowledged. A change
// without a time (At) changed at at, plus a microsecond per place in the
// batch; send sets At so the checker knows it.
func (l *load) send(ctx context.Context, changes []Change, at time.Time) error {
	in := make([]map[string]any, len(changes))
	for i := range changes {
		ch := &changes[i]
		if ch.At.IsZero() {
			ch.At = at.Add(time.Duration(i) * time.Microsecond)
		}
		var fields []map[string]any
		for name, v := range ch.Fields {
			fields = append(fields, map[string]any{"name": name, "value": v, "changedAt": ch.At.Format(time.RFC3339Nano)})
		}
		in[i] = map[string]any{"recordType": ch.Type, "recordId": ch.ID, "source": "API", "fields": fields}
	}
	return l.c.call(ctx, l.tn.token, `mutation($in: [RecordChangeInput!]!) { recordChanges(input: $in) { accepted } }`,
		map[string]any{"in": in}, nil)
}

// rep is a sales rep editing Leads crmsync created, until stop is closed:
// Company (the field Salesforce always wins) on every other contact, and
// Title (TWO_WAY) on the rest, so a Title's LastModifiedDate is its edit's.
func (l *load) rep(ctx context.Context, stop <-chan struct{}, every time.Duration) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
		i := rng.IntN(l.records/2) * 2 // a contact
		k := key(i)
		var crmID string
		err := l.c.db.NewSelect().Table("records").Column("crm_id").
			Where("workspace_id = ? AND type = ? AND conversion_id = ?", l.tn.id, k.Type, k.ID).Scan(ctx, &crmID)
		if err != nil || crmID == "" {
			continue
		}
		field, crmField, v := "company", "Company", fmt.Sprintf("Rep Co %d-%d", i, n)
		if i%4 == 0 {
			field, crmField, v = "title", "Title", fmt.Sprintf("Rep Ti %d-%d", i, n)
		}
		// The checker learns of the edit first: a concurrent check would
		// otherwise miss it. An edit the org refuses is forgotten below.
		from := time.Now()
		l.chk.RepEdited(k.Type, k.ID, field, v, from, from.Add(time.Second))
		if err := l.c.org.EditAsUser(l.c.org.RepUserID(), "Lead", crmID, map[string]any{crmField: v}); err != nil {
			l.chk.Forget(k.Type, k.ID, field)
			l.c.t.Errorf("rep edit of %s: %v", crmID, err)
			return
		}
		l.chk.RepEdited(k.Type, k.ID, field, v, from, time.Now())
	}
}

// running is a load running in the background.
type running struct {
	l    *load
	stop chan struct{}
	wg   sync.WaitGroup
	err  error
}

// start runs the load (and a rep editing the org) until finish.
func (l *load) start(ctx context.Context) *running {
	r := &running{l: l, stop: make(chan struct{})}
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		r.err = l.run(ctx, r.stop)
	}()
	go func() {
		defer r.wg.Done()
		l.rep(ctx, r.stop, 300*time.Millisecond)
	}()
	return r
}

// finish stops the load; the test fails if a batch was never acknowledged.
func (r *running) finish(t *testing.T) {
	t.Helper()
	close(r.stop)
	r.wg.Wait()
	require.NoError(t, r.err, "the load could not deliver a batch")
}

// waitSent waits until the load sent at least n more changes than when
// called, so a fault lands under load.
func (l *load) waitSent(t *testing.T, n int64) {
	t.Helper()
	target := l.sent.Load() + n
	deadline := time.Now().Add(2 * time.Minute)
	for l.sent.Load() < target {
		require.True(t, time.Now().Before(deadline), "the load stalled at %d changes", l.sent.Load())
		time.Sleep(50 * time.Millisecond)
	}
}

// verify drains the queue and runs the checker; every invariant must hold.
func (l *load) verify(ctx context.Context) Report {
	t := l.c.t
	t.Helper()
	require.NoError(t, l.c.waitDrained(ctx, l.tn.id, 3*time.Minute))
	rep, err := l.chk.Check(ctx, l.c.db, l.tn.id, l.c.org)
	require.NoError(t, err)
	t.Logf("checker: %+v", rep)
	hist := map[string]int{}
	for _, req := range l.c.org.RequestLog() {
		hist[req.Kind+" "+req.Method+" "+req.Path]++
	}
	t.Logf("requests: %v", hist)
	require.Empty(t, rep.Failures(), "problems: %v", rep.Problems)
	require.Zero(t, rep.Waiting, "drained")
	require.Positive(t, rep.Changes)
	return rep
}
