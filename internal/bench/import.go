package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/crmsync/crmsync/connectors/salesforce"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/prefs"
	"github.com/crmsync/crmsync/internal/record"
)

// BulkResult is what the org's Bulk API 2.0 worked during a scenario.
type BulkResult struct {
	// Threshold is the connection's bulkThreshold (0: the connector's
	// default, salesforce.DefaultBulkThreshold).
	Threshold int `json:"bulk_threshold"`
	Jobs      int `json:"jobs"`
	Batches   int `json:"batches"`
	Records   int `json:"records"`
	// Duplicates counts Salesforce records beyond one per Conversion
	// record (Contacts by email, Accounts by name).
	Duplicates int `json:"duplicates"`
}

// importRecords: --changes contacts over --records companies, all new,
// accepted while no CRM is connected (an import), then the org is
// connected with the connection's bulkThreshold set to --bulk-threshold and
// the queue drains. Contacts are created as Contacts linked to their
// company's Account. Reports wall time, API calls, the Bulk work, peak RSS,
// lost changes (each record's phone must be in the org) and duplicates.
func (b *bench) importRecords(ctx context.Context, r *Report) error {
	p := prefs.DefaultObjectPreference(record.TypeContact)
	p.ReadEnabled, p.CreateAs = false, prefs.CreateAsContact
	if err := prefs.SetObject(ctx, b.a.DB, b.ws, p); err != nil {
		return err
	}
	// Connected and paused before anything is queued, so the forecast
	// sees the whole import and the first flush all of it.
	if err := b.connectPaused(ctx, salesforce.Config{LoginURL: b.orgURL, ClientID: b.org.ClientID(), BulkThreshold: b.cmd.BulkThreshold}); err != nil {
		return err
	}
	companies, contacts := b.cmd.Records, b.cmd.Changes
	now := time.Now()
	changes := make([]outbound.Change, 0, companies+contacts)
	phone := func(i int) string { return fmt.Sprintf("+1 555 %07d", i) }
	set := func(f map[string]outbound.FieldChange, name string, v any) {
		f[name] = outbound.FieldChange{Value: v, ChangedAt: now}
	}
	for i := range companies {
		k := record.Key{Type: record.TypeCompany, ID: fmt.Sprintf("company-%d", i)}
		f := map[string]outbound.FieldChange{}
		set(f, "name", fmt.Sprintf("Import company %d", i))
		set(f, "phone", phone(i))
		b.last[k] = phone(i)
		changes = append(changes, outbound.Change{Type: k.Type, ID: k.ID, Source: record.SourceImport, Fields: f})
	}
	for i := range contacts {
		k := record.Key{Type: record.TypeContact, ID: fmt.Sprintf("contact-%d", i)}
		f := map[string]outbound.FieldChange{}
		set(f, "email", fmt.Sprintf("import%d@example.com", i))
		set(f, "lastName", fmt.Sprintf("Import %d", i))
		set(f, outbound.FieldCompanyID, fmt.Sprintf("company-%d", i%companies))
		set(f, "phone", phone(companies+i))
		b.last[k] = phone(companies + i)
		changes = append(changes, outbound.Change{Type: k.Type, ID: k.ID, Source: record.SourceImport, Fields: f})
	}
	if err := b.ingest(ctx, changes); err != nil {
		return err
	}
	n := len(changes)
	changes = nil
	if err := b.forecast(ctx, r); err != nil {
		return err
	}
	before, start := b.org.Calls(), time.Now()
	if err := b.a.Connections.SetPaused(ctx, b.ws, false); err != nil {
		return err
	}
	if err := b.drain(ctx, 2*time.Hour); err != nil {
		return err
	}
	r.DrainSec = time.Since(start).Seconds()
	r.ChangesSec = float64(n) / r.DrainSec
	b.calls(r, before)
	r.PeakRSSMB, r.PeakHeapMB = peakRSSMB(), b.heap.PeakMB()
	var err error
	if r.Flushes, err = b.countFlushes(ctx, start); err != nil {
		return err
	}
	st := b.org.BulkStats()
	r.Bulk = &BulkResult{Threshold: b.cmd.BulkThreshold, Jobs: st.Jobs, Batches: st.Batches, Records: st.Records,
		Duplicates: duplicates(b.org.All("Contact"), "Email") + duplicates(b.org.All("Account"), "Name")}
	return nil
}

// duplicates counts records beyond the first with the same value of field.
func duplicates(recs []map[string]any, field string) int {
	seen := make(map[any]bool, len(recs))
	dup := 0
	for _, r := range recs {
		if seen[r[field]] {
			dup++
		}
		seen[r[field]] = true
	}
	return dup
}
