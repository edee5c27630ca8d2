package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/crmsync/crmsync/connectors/salesforce"
	"github.com/crmsync/crmsync/internal/inbound"
	"github.com/crmsync/crmsync/internal/prefs"
	"github.com/crmsync/crmsync/internal/record"
)

// InboundResult is what the inbound scenario measured: sales-rep edits in
// the fake org streamed into Conversion.
type InboundResult struct {
	Edits   int     `json:"edits"`
	Applied int     `json:"applied"`
	P50MS   float64 `json:"commit_to_visible_p50_ms"`
	P99MS   float64 `json:"commit_to_visible_p99_ms"`
	MaxMS   float64 `json:"commit_to_visible_max_ms"`
	// RESTCalls are the data API calls made while the reps edited
	// (subscribing and the first catch-up excluded).
	RESTCalls int `json:"rest_calls_while_streaming"`
	// IdleCalls are the data API calls of an idle spell as long as the
	// editing, after it.
	IdleCalls int `json:"rest_calls_idle"`
}

// inboundLeads is how many Leads the reps edit.
const inboundLeads = 50

// inbound: reps edit one Lead's Title per 1/rate seconds (Poisson
// arrivals) for --for; each edit's time from its Salesforce commit to the
// Conversion record showing it (read from the database every 10 ms), and
// the REST calls crmsync spent meanwhile.
func (b *bench) inbound(ctx context.Context, r *Report) error {
	ws := b.ws
	p := prefs.DefaultObjectPreference(record.TypeContact)
	if err := prefs.SetObject(ctx, b.a.DB, ws, p); err != nil {
		return err
	}
	if err := prefs.SetField(ctx, b.a.DB, ws, prefs.FieldMapping{RecordType: record.TypeContact, Field: "title", CRMField: "Title", Mode: prefs.TwoWay}); err != nil {
		return err
	}
	leads := make([]string, inboundLeads)
	for i := range leads {
		id, err := b.org.Insert("Lead", map[string]any{"LastName": fmt.Sprintf("Rep%d", i), "Company": "Bench",
			"Email": fmt.Sprintf("inbound%d@example.com", i), "Title": "start"})
		if err != nil {
			return err
		}
		leads[i] = id
	}
	cfg, _ := json.Marshal(salesforce.Config{LoginURL: b.orgURL, ClientID: b.org.ClientID(), PubSubEndpoint: "http://" + b.org.PubSubAddr()})
	creds, _ := json.Marshal(salesforce.Credentials{ClientSecret: b.org.ClientSecret(), RefreshToken: b.org.IssueRefreshToken(b.org.IntegrationUserID())})
	if _, err := b.a.Connections.Connect(ctx, ws, salesforce.Name, cfg, creds); err != nil {
		return err
	}
	// The supervisor subscribes; the first stream catches up by pulling,
	// creating the 50 contacts.
	b.progress.Line("inbound: waiting for the stream (and its first catch-up)")
	if err := b.waitFor(ctx, 2*time.Minute, func() (bool, error) {
		st, err := inbound.LoadStreamState(ctx, b.a.DB, ws)
		if err != nil {
			return false, err
		}
		n, err := b.a.DB.NewSelect().Model((*record.Record)(nil)).Where("workspace_id = ? AND crm_object = 'Lead'", ws).Count(ctx)
		return st.Mode == inbound.ModeStreaming && n == inboundLeads, err
	}); err != nil {
		st, _ := inbound.LoadStreamState(ctx, b.a.DB, ws)
		return fmt.Errorf("stream not up: %w (state %+v)", err, st)
	}
	if err := b.waitFor(ctx, time.Minute, func() (bool, error) { // Lead's and Contact's streams are set up
		n, err := b.a.DB.NewSelect().Table("inbound_streams").Where("workspace_id = ?", ws).Count(ctx)
		return n == 2, err
	}); err != nil {
		return fmt.Errorf("streams not set up: %w", err)
	}
	b.progress.Line("inbound: streaming; reps edit for %s", b.cmd.For)
	res := &InboundResult{}
	before := b.org.Calls()
	type edit struct {
		lead, title string
		at          time.Time
	}
	var pending []edit
	var lat []float64
	deadline := time.Now().Add(b.cmd.For)
	next := time.Now()
	check := time.NewTicker(10 * time.Millisecond)
	defer check.Stop()
	for i := 0; time.Now().Before(deadline) || len(pending) > 0; {
		if time.Now().After(deadline.Add(time.Minute)) {
			break // not seen a minute after the last edit: counted as not applied
		}
		if time.Now().Before(deadline) && !time.Now().Before(next) {
			e := edit{lead: leads[rand.IntN(len(leads))], title: fmt.Sprintf("t%d", i)}
			e.at = time.Now()
			if err := b.org.EditAsUser(b.org.RepUserID(), "Lead", e.lead, map[string]any{"Title": e.title}); err != nil {
				return err
			}
			pending = append(pending, e)
			res.Edits++
			i++
			next = next.Add(time.Duration(rand.ExpFloat64() / b.cmd.Rate * float64(time.Second)))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-check.C:
		}
		if len(pending) == 0 {
			continue
		}
		ids := make([]string, 0, len(pending))
		for _, e := range pending {
			ids = append(ids, e.lead)
		}
		recs, err := record.ByCRMIDs(ctx, b.a.DB, ws, ids)
		if err != nil {
			return err
		}
		now := time.Now()
		kept := pending[:0]
		for _, e := range pending {
			rec := recs[e.lead]
			if rec != nil && (rec.Fields["title"].Value == e.title || newerTitle(rec.Fields["title"].Value, e.title)) {
				lat = append(lat, float64(now.Sub(e.at).Microseconds())/1000)
				continue
			}
			kept = append(kept, e)
		}
		pending = kept
	}
	res.Applied = len(lat)
	after := b.org.Calls()
	res.RESTCalls = after.Read + after.Write - before.Read - before.Write
	b.progress.Line("inbound: idle for %s", b.cmd.For)
	idleStart := b.org.Calls()
	t := time.NewTimer(b.cmd.For)
	select {
	case <-ctx.Done():
		t.Stop()
		return ctx.Err()
	case <-t.C:
	}
	idleEnd := b.org.Calls()
	res.IdleCalls = idleEnd.Read + idleEnd.Write - idleStart.Read - idleStart.Write
	slices.Sort(lat)
	if len(lat) > 0 {
		res.P50MS, res.P99MS, res.MaxMS = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)], lat[len(lat)-1]
	}
	r.Inbound = res
	r.Changes, r.Records = res.Edits, inboundLeads
	b.calls(r, before)
	return nil
}

// newerTitle reports a title written by a later edit than want ("tN").
func newerTitle(have any, want string) bool {
	var h, w int
	s, _ := have.(string)
	if _, err := fmt.Sscanf(s, "t%d", &h); err != nil {
		return false
	}
	if _, err := fmt.Sscanf(want, "t%d", &w); err != nil {
		return false
	}
	return h > w
}

// waitFor polls cond every 50 ms until it holds or timeout passes.
func (b *bench) waitFor(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
