package inbound_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"pgregory.net/rapid"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/inbound"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/prefs"
	"github.com/crmsync/crmsync/internal/record"
	"github.com/crmsync/crmsync/internal/synclog"
	"github.com/crmsync/crmsync/internal/syncmodel"
)

// propertyFields are the fields the property test syncs, one Lead field
// each (present on memcrm and sffake); every case draws a mode for each.
var propertyFields = []struct {
	name, crmField string
	values         []any
}{
	{"title", "Title", []any{nil, "T1", "T2", "T3"}},
	{"firstName", "FirstName", []any{nil, "Ann", "Bo", "Cy"}},
	{"phone", "Phone", []any{nil, "+1 555 0101", "+1 555 0102", "+1 555 0103"}},
	{"website", "Website", []any{nil, "w1.example.com", "w2.example.com"}},
	{"leadSource", "LeadSource", []any{nil, "Web", "Other", "Partner Referral"}},
}

var allModes = []prefs.Mode{prefs.TwoWay, prefs.PreferSalesforceUnlessEmpty, prefs.AlwaysPreferConversion,
	prefs.AlwaysPreferSalesforce, prefs.DoNotSync}

// propertyRecords is how many records each case follows at once (their
// histories interleave; flushes and pulls take them together).
const propertyRecords = 8

// faultyWriter wraps a connector: while fault is set, BulkUpdate calls
// meet it (the write applied but its response lost, or the call failing
// before it reaches the CRM).
type faultyWriter struct {
	connector.Connector
	fault atomic.Int32
}

var errInjected = errors.New("injected")

func (w *faultyWriter) BulkUpdate(ctx context.Context, req connector.BulkUpdateRequest) (*connector.BulkUpdateResponse, error) {
	switch syncmodel.Fault(w.fault.Load()) {
	case syncmodel.LostResponse:
		if _, err := w.Connector.BulkUpdate(ctx, req); err != nil {
			return nil, err
		}
		return nil, connector.Errorf(connector.KindUnavailable, "response lost: %v", errInjected)
	case syncmodel.FailedCall:
		return nil, connector.Errorf(connector.KindUnavailable, "call failed: %v", errInjected)
	}
	return w.Connector.BulkUpdate(ctx, req)
}

func (w *faultyWriter) FetchChanges(ctx context.Context, req connector.FetchChangesRequest) (*connector.FetchChangesResponse, error) {
	return w.Connector.(connector.ChangeFetcher).FetchChanges(ctx, req)
}

// propertyChecks sets rapid's case count and seed for the property test:
// CRMSYNC_PROPERTY_CHECKS (default 10 per database and backend, each case
// following propertyRecords records; scripts/test.sh runs 125 more without
// the race detector) and CRMSYNC_PROPERTY_SEED (default a fixed seed, so
// `make test` is reproducible; -rapid.seed overrides both).
func propertyChecks(t *testing.T) {
	t.Helper()
	checks, seed := "10", "22"
	if v := os.Getenv("CRMSYNC_PROPERTY_CHECKS"); v != "" {
		checks = v
	}
	if v := os.Getenv("CRMSYNC_PROPERTY_SEED"); v != "" {
		seed = v
	}
	if f := flag.Lookup("rapid.checks"); f != nil && os.Getenv("RAPID_CHECKS") == "" && f.Value.String() == f.DefValue {
		if err := f.Value.Set(checks); err != nil {
			t.Fatal(err)
		}
	}
	if f := flag.Lookup("rapid.seed"); f != nil && os.Getenv("RAPID_SEED") == "" && f.Value.String() == "0" {
		if err := f.Value.Set(seed); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDecisionsMatchModel drives the real engine (ingest, flush, pull) and
// the reference model (internal/syncmodel) with the same random histories:
// sales-rep edits at the CRM's clock, Conversion changes whose changedAt
// comes out of order and within the same second, flushes whose write is
// applied but its response lost or fails outright, and pulls, over a mode
// drawn per field (all five modes), on memcrm and sffake. After every
// flush and pull both sides' values and every logged field decision must
// be the model's.
func TestDecisionsMatchModel(t *testing.T) {
	propertyChecks(t)
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		for _, backend := range backends {
			t.Run(backend, func(t *testing.T) {
				b := setupWith(t, bdb, inbound.Config{}, backend)
				w := &faultyWriter{}
				b.wrap = func(c connector.Connector) connector.Connector { w.Connector = c; return w }
				n, decisions := 0, 0
				rapid.Check(t, func(rt *rapid.T) {
					n++
					p := &propertyCase{rt: rt, b: b, w: w, prefix: fmt.Sprintf("p%d", n)}
					p.run()
					decisions += p.decisions
				})
				t.Logf("%s: %d cases (runs, shrinking included) of %d records each, %d field decisions compared", t.Name(), n, propertyRecords, decisions)
			})
		}
	})
}

type propertyCase struct {
	rt     *rapid.T
	b      *testBundle
	w      *faultyWriter
	prefix string
	fields []syncmodel.Field
	models []*syncmodel.Model
	ids    []string // Conversion ids
	crmIDs []string
	// decisions counts the field decisions compared with the model.
	decisions int
}

func (p *propertyCase) ctx() context.Context { return context.Background() }

func (p *propertyCase) must(err error, what string) {
	if err != nil {
		p.rt.Fatalf("%s: %v", what, err)
	}
}

func (p *propertyCase) run() {
	rt, b := p.rt, p.b
	for _, f := range propertyFields {
		mode := rapid.SampledFrom(allModes).Draw(rt, "mode "+f.name)
		p.fields = append(p.fields, syncmodel.Field{Name: f.name, CRMField: f.crmField, Mode: mode})
		p.must(prefs.SetField(p.ctx(), b.db, b.ws, prefs.FieldMapping{RecordType: record.TypeContact, Field: f.name, CRMField: f.crmField, Mode: mode}), "set mode")
	}
	p.create()
	steps := rapid.IntRange(10, 40).Draw(rt, "steps")
	for range steps {
		switch rapid.IntRange(0, 11).Draw(rt, "action") {
		case 0, 1:
			b.clock.Advance(rapid.SampledFrom([]time.Duration{0, 100 * time.Millisecond, 400 * time.Millisecond, time.Second, 2 * time.Second}).Draw(rt, "advance"))
		case 2, 3:
			i, f, v := p.drawEdit()
			now := b.clock.Now()
			p.must(p.edit(p.crmIDs[i], map[string]any{f.crmField: v}), "rep edit")
			p.models[i].Edit(f.crmField, v, now)
		case 4, 5, 6, 7, 8:
			i, f, v := p.drawEdit()
			at := b.clock.Now().Add(-time.Duration(rapid.IntRange(0, 40).Draw(rt, "changedAt back, 100 ms")) * 100 * time.Millisecond)
			c := outbound.Change{Type: record.TypeContact, ID: p.ids[i], Source: record.SourceForm,
				Fields: map[string]outbound.FieldChange{f.name: {Value: v, ChangedAt: at}}}
			_, err := b.in.Ingest(p.ctx(), b.ws, []outbound.Change{c})
			p.must(err, "ingest")
			p.models[i].Change(f.name, v, at)
		case 9, 10:
			fault := syncmodel.Fault(rapid.SampledFrom([]int{0, 0, 0, int(syncmodel.LostResponse), int(syncmodel.FailedCall)}).Draw(rt, "fault"))
			p.flush(fault)
		default:
			p.pull()
		}
	}
	p.flush(syncmodel.NoFault)
	p.pull()
	p.flush(syncmodel.NoFault)
}

func (p *propertyCase) drawEdit() (int, struct {
	name, crmField string
	values         []any
}, any) {
	i := rapid.IntRange(0, propertyRecords-1).Draw(p.rt, "record")
	f := propertyFields[rapid.IntRange(0, len(propertyFields)-1).Draw(p.rt, "field")]
	v := rapid.SampledFrom(f.values).Draw(p.rt, "value")
	return i, f, v
}

func (p *propertyCase) edit(id string, fields map[string]any) error {
	b := p.b
	if b.org != nil {
		return b.org.EditAsUser(b.rep, "Lead", id, fields)
	}
	return b.sf.EditAsUser(b.rep, "Lead", id, fields)
}

// create makes the case's records: created in Conversion, flushed (a
// create), pulled once.
func (p *propertyCase) create() {
	b := p.b
	changedAt := b.clock.Now()
	var changes []outbound.Change
	var initial []map[string]any
	for i := range propertyRecords {
		id := fmt.Sprintf("%s-%d", p.prefix, i)
		values := map[string]any{}
		c := outbound.Change{Type: record.TypeContact, ID: id, Source: record.SourceUI, Fields: map[string]outbound.FieldChange{
			"email": {Value: id + "@example.com", ChangedAt: changedAt}, "lastName": {Value: "L", ChangedAt: changedAt},
			"company": {Value: "C", ChangedAt: changedAt}}}
		for _, f := range propertyFields {
			values[f.name] = f.values[1]
			c.Fields[f.name] = outbound.FieldChange{Value: f.values[1], ChangedAt: changedAt}
		}
		p.ids = append(p.ids, id)
		changes = append(changes, c)
		initial = append(initial, values)
	}
	_, err := b.in.Ingest(p.ctx(), b.ws, changes)
	p.must(err, "ingest creates")
	createdAt := b.clock.Now()
	_, err = b.engine.Flush(p.ctx(), b.ws)
	p.must(err, "flush creates")
	b.clock.Advance(time.Second)
	_, err = b.puller.Pull(p.ctx(), b.ws)
	p.must(err, "pull creates")
	for i, id := range p.ids {
		r, err := record.Get(p.ctx(), b.db, b.ws, record.Key{Type: record.TypeContact, ID: id})
		p.must(err, "load record")
		if r.CRMID == "" {
			p.rt.Fatalf("record %s not created in the CRM", id)
		}
		p.crmIDs = append(p.crmIDs, r.CRMID)
		p.models = append(p.models, syncmodel.New(p.fields, initial[i], changedAt, createdAt))
	}
	p.compareValues("after the creates")
}

func (p *propertyCase) flush(fault syncmodel.Fault) {
	b := p.b
	now := b.clock.Now()
	p.w.fault.Store(int32(fault))
	res, err := b.engine.Flush(p.ctx(), b.ws)
	p.w.fault.Store(0)
	want := make([][]syncmodel.Decision, len(p.models))
	wrote := false
	for i, m := range p.models {
		d, w := m.Flush(now, fault)
		want[i], wrote = d, wrote || w
	}
	if fault != syncmodel.NoFault && wrote {
		if !errors.Is(err, errInjected) && (err == nil || !strings.Contains(err.Error(), "injected")) {
			p.rt.Fatalf("flush with fault %d: the model wrote, the engine returned %v", fault, err)
		}
		p.compareValues(fmt.Sprintf("after a flush with fault %d", fault))
		return
	}
	p.must(err, "flush")
	p.compareDecisions("flush", res.Batch, want)
	p.compareValues("after a flush")
}

func (p *propertyCase) pull() {
	res, err := p.b.puller.Pull(p.ctx(), p.b.ws)
	p.must(err, "pull")
	want := make([][]syncmodel.Decision, len(p.models))
	for i, m := range p.models {
		want[i] = m.Pull()
	}
	p.compareDecisions("pull", res.Batch, want)
	p.compareValues("after a pull")
}

// verdictOf classifies a sync-log reason, whichever name it gives the CRM
// (Salesforce on sffake, the neutral CRM on memcrm).
func verdictOf(reason string) syncmodel.Verdict {
	if rest, ok := strings.CutPrefix(reason, "CRM "); ok {
		reason = "Salesforce " + rest
	}
	reason = strings.Replace(reason, "applies CRM values", "applies Salesforce values", 1)
	for _, v := range []struct {
		prefix  string
		verdict syncmodel.Verdict
	}{
		{"superseded", syncmodel.Superseded},
		{"mode never", syncmodel.Never},
		{"mode always", syncmodel.Always},
		{"Salesforce already has this value", syncmodel.Equal},
		{"Salesforce field is empty", syncmodel.Blank},
		{"Salesforce field is not empty", syncmodel.NotBlank},
		{"Salesforce value is not empty", syncmodel.NotBlank},
		{"Conversion change is newer", syncmodel.ConversionNewer},
		{"Salesforce value is as new", syncmodel.SameTime},
		{"Salesforce value is newer", syncmodel.CRMNewer},
	} {
		if strings.HasPrefix(reason, v.prefix) {
			return v.verdict
		}
	}
	return syncmodel.Verdict("unknown: " + reason)
}

func (p *propertyCase) compareDecisions(what string, batch *synclog.Batch, want [][]syncmodel.Decision) {
	got := make([][]syncmodel.Decision, len(p.models))
	if batch != nil && batch.ID != 0 {
		full, err := synclog.Get(p.ctx(), p.b.db, p.b.ws, batch.ID)
		p.must(err, "load sync batch")
		for _, row := range full.Records {
			for i, id := range p.ids {
				if row.ConversionID != id {
					continue
				}
				for _, f := range row.Fields {
					if f.Mode == "" {
						continue // structural or unmapped
					}
					got[i] = append(got[i], syncmodel.Decision{Field: f.Field, Act: f.Sent, Verdict: verdictOf(f.Reason)})
				}
			}
		}
	}
	for i := range p.models {
		p.decisions += len(want[i])
		if fmt.Sprint(sorted(got[i])) != fmt.Sprint(sorted(want[i])) {
			r, _ := record.Get(p.ctx(), p.b.db, p.b.ws, record.Key{Type: record.TypeContact, ID: p.ids[i]})
			p.rt.Logf("record %+v\nCRM %+v\nbatch %+v", r, p.crmRecord(p.crmIDs[i]), batch)
			p.rt.Fatalf("%s of record %s: engine decided %v, the model %v", what, p.ids[i], sorted(got[i]), sorted(want[i]))
		}
	}
}

func sorted(ds []syncmodel.Decision) []syncmodel.Decision {
	out := append([]syncmodel.Decision(nil), ds...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j].Field < out[i].Field {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func (p *propertyCase) compareValues(when string) {
	for i, id := range p.ids {
		r, err := record.Get(p.ctx(), p.b.db, p.b.ws, record.Key{Type: record.TypeContact, ID: id})
		p.must(err, "load record")
		crm := p.crmRecord(p.crmIDs[i])
		for _, f := range p.fields {
			if got, want := r.Fields[f.Name].Value, p.models[i].Conversion(f.Name); !record.SameValue(got, want) {
				p.rt.Fatalf("%s: Conversion %s of %s is %v, the model says %v", when, f.Name, id, got, want)
			}
			if got, want := crm[f.CRMField], p.models[i].CRM(f.CRMField); !record.SameValue(got, want) {
				p.rt.Fatalf("%s: CRM %s of %s is %v, the model says %v", when, f.CRMField, id, got, want)
			}
		}
	}
}

func (p *propertyCase) crmRecord(id string) map[string]any {
	if p.b.org != nil {
		r, ok := p.b.org.Get("Lead", id)
		if !ok {
			p.rt.Fatalf("Lead %s is gone", id)
		}
		return r.Fields
	}
	r, ok := p.b.sf.Get("Lead", id)
	if !ok {
		p.rt.Fatalf("Lead %s is gone", id)
	}
	return r
}
