package inbound

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/internal/limits"
	"github.com/crmsync/crmsync/internal/record"
	"github.com/crmsync/crmsync/internal/synclog"
)

// ConversionIDPrefix prefixes the Conversion id of a record the pull
// creates from a CRM record: "sf:" + the CRM id.
const ConversionIDPrefix = "sf:"

// applier applies one page of CRM records of one object.
type applier struct {
	r   *run
	pl  objectPlan
	now time.Time

	byCRMID     map[string]*record.Record
	byKey       map[string]*record.Record
	byEmail     map[string][]*record.Record
	byDomain    map[string][]*record.Record
	unconfirmed []*record.Record
	// skips holds when CRM records of the page were last skipped; newSkips
	// are the skips of this page.
	skips    map[string]time.Time
	newSkips []skipRow

	dirty   map[int64]*record.Record
	created []*record.Record
	logs    []*synclog.Record
}

// applyPage applies one page and stores the cursor after it, in one
// transaction: a crash before the commit re-reads the page, a crash after
// it resumes after the page.
func (r *run) applyPage(ctx context.Context, pl objectPlan, recs []connector.Record, next string) error {
	return r.applyRecords(ctx, pl, recs, func(ctx context.Context, tx bun.Tx, now time.Time) error {
		return saveCursor(ctx, tx, r.c, pl.object, next, now)
	})
}

// applyRecords applies CRM records of one object, pulled or streamed, by
// the one rulebook, and calls advance in the same transaction to store
// where the feed stands after them (a pull's cursor, a stream's position).
func (r *run) applyRecords(ctx context.Context, pl objectPlan, recs []connector.Record, advance func(context.Context, bun.Tx, time.Time) error) error {
	now := r.p.now().UTC()
	prevID, prevLen := r.batch.ID, len(r.batch.Records)
	err := r.p.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if len(recs) > 0 {
			a := &applier{r: r, pl: pl, now: now, dirty: map[int64]*record.Record{}}
			if err := a.load(ctx, tx, recs); err != nil {
				return err
			}
			for _, cr := range recs {
				a.apply(cr)
			}
			if err := a.save(ctx, tx); err != nil {
				return err
			}
			if err := a.log(ctx, tx); err != nil {
				return err
			}
		}
		if err := advance(ctx, tx, now); err != nil {
			return err
		}
		return limits.Record(ctx, tx, r.c.WorkspaceID, now, r.uncounted)
	})
	if err != nil {
		r.batch.ID, r.batch.Records = prevID, r.batch.Records[:prevLen]
		r.batch.Count()
		return fmt.Errorf("apply %s changes of workspace %d: %w", pl.object, r.c.WorkspaceID, err)
	}
	r.uncounted = 0
	return nil
}

func stringOf(v any) string {
	s, _ := v.(string)
	return strings.TrimSpace(s)
}

func convString(r *record.Record, field string) string { return stringOf(r.Fields[field].Value) }

// load reads every Conversion record the page may touch: linked by CRM id,
// or candidates for linking by Conversion id, email, website domain or an
// unconfirmed create; on PostgreSQL it locks them.
func (a *applier) load(ctx context.Context, tx bun.Tx, recs []connector.Record) error {
	ws := a.r.c.WorkspaceID
	ids := make([]string, 0, len(recs))
	for _, cr := range recs {
		ids = append(ids, cr.ID)
		if to := a.convertedTo(cr); to != "" {
			ids = append(ids, to)
		}
	}
	linked, err := record.ByCRMIDs(ctx, tx, ws, ids)
	if err != nil {
		return err
	}
	if a.skips, err = skipped(ctx, tx, ws, ids); err != nil {
		return err
	}
	var keys []record.Key
	var emails, websites []string
	needUnconfirmed := false
	for _, cr := range recs {
		if linked[cr.ID] != nil || cr.Deleted || a.converted(cr) {
			continue
		}
		keys = append(keys, record.Key{Type: a.pl.t, ID: ConversionIDPrefix + cr.ID})
		n := a.r.names
		switch {
		case n.IsContact(a.pl.object):
			if e := strings.ToLower(stringOf(cr.Fields[n.Email(a.pl.object)])); e != "" {
				emails = append(emails, e)
			}
		case a.pl.object == n.Company:
			if d := record.Domain(stringOf(cr.Fields[n.CompanyDomain])); d != "" && n.CompanyDomain != "" {
				websites = append(websites, websiteVariants(d)...)
			}
			needUnconfirmed = true
		}
	}
	var found []*record.Record
	for _, r := range linked {
		found = append(found, r)
	}
	byKey, err := record.ByKeys(ctx, tx, ws, keys)
	if err != nil {
		return err
	}
	for _, r := range byKey {
		found = append(found, r)
	}
	more, err := byFieldValues(ctx, tx, ws, record.TypeContact, "email", slices.Compact(slices.Sorted(slices.Values(emails))))
	if err != nil {
		return err
	}
	found = append(found, more...)
	if more, err = byFieldValues(ctx, tx, ws, record.TypeCompany, "website", slices.Compact(slices.Sorted(slices.Values(websites)))); err != nil {
		return err
	}
	found = append(found, more...)
	if needUnconfirmed {
		if more, err = unconfirmedCompanies(ctx, tx, ws); err != nil {
			return err
		}
		found = append(found, more...)
	}

	byID := map[int64]*record.Record{}
	for _, r := range found {
		byID[r.ID] = r
	}
	if tx.Dialect().Name() == dialect.PG && len(byID) > 0 {
		rowIDs := make([]int64, 0, len(byID))
		for id := range byID {
			rowIDs = append(rowIDs, id)
		}
		if byID, err = record.Lock(ctx, tx, ws, rowIDs); err != nil {
			return err
		}
	}
	a.index(byID)
	return nil
}

// index builds the page's lookups over the loaded records.
func (a *applier) index(byID map[int64]*record.Record) {
	a.byCRMID, a.byKey = map[string]*record.Record{}, map[string]*record.Record{}
	a.byEmail, a.byDomain = map[string][]*record.Record{}, map[string][]*record.Record{}
	sorted := make([]*record.Record, 0, len(byID))
	for _, r := range byID {
		sorted = append(sorted, r)
	}
	slices.SortFunc(sorted, func(x, y *record.Record) int { return cmp.Compare(x.ID, y.ID) })
	for _, r := range sorted {
		if r.Fields == nil {
			r.Fields = record.Fields{}
		}
		if r.CRMFields == nil {
			r.CRMFields = map[string]any{}
		}
		a.add(r)
		if r.Type == record.TypeCompany && r.CRMID == "" && !r.CreateAttemptedAt.IsZero() {
			a.unconfirmed = append(a.unconfirmed, r)
		}
	}
}

// add puts a record in the page's lookups.
func (a *applier) add(r *record.Record) {
	if r.CRMID != "" {
		a.byCRMID[r.CRMID] = r
	}
	if r.Type == a.pl.t {
		a.byKey[r.ConversionID] = r
	}
	switch r.Type {
	case record.TypeContact:
		if e := strings.ToLower(convString(r, "email")); e != "" {
			a.byEmail[e] = append(a.byEmail[e], r)
		}
	case record.TypeCompany:
		if d := record.Domain(convString(r, "website")); d != "" {
			a.byDomain[d] = append(a.byDomain[d], r)
		}
	}
}

func (a *applier) apply(cr connector.Record) {
	switch {
	case cr.Deleted:
		a.unlinkDeleted(cr)
	case a.converted(cr):
		a.followConversion(cr)
	default:
		a.upsert(cr)
	}
}

// logRow appends a sync-log row for a record of the page.
func (a *applier) logRow(r *record.Record, cr connector.Record, outcome synclog.Outcome, reason string, fields []synclog.Field) {
	row := &synclog.Record{RecordType: a.pl.t, CRMObject: a.pl.object, CRMID: cr.ID, Outcome: outcome, Reason: reason, Fields: fields}
	if r != nil {
		row.RecordType, row.ConversionID = r.Type, r.ConversionID
	}
	a.logs = append(a.logs, row)
}

// skip logs a CRM record the pull leaves alone, once per version of it:
// the look-back reads the same version again, and that says nothing new.
func (a *applier) skip(r *record.Record, cr connector.Record, reason string) {
	a.remember(cr)
	if at, ok := a.skips[cr.ID]; ok && !cr.SystemModstamp.After(at) {
		return
	}
	a.logRow(r, cr, synclog.OutcomeSkipped, reason, nil)
}

// remember records that this version of a CRM record needs nothing more.
func (a *applier) remember(cr connector.Record) {
	a.newSkips = append(a.newSkips, skipRow{WorkspaceID: a.r.c.WorkspaceID, CRMID: cr.ID, CRMModstamp: cr.SystemModstamp.UTC()})
}

func (a *applier) touch(r *record.Record) {
	r.UpdatedAt = a.now
	if r.ID != 0 {
		a.dirty[r.ID] = r
	}
}

func (a *applier) unlink(r *record.Record) {
	delete(a.byCRMID, r.CRMID)
	r.CRMObject, r.CRMID, r.CRMFields, r.CRMModstamp = "", "", map[string]any{}, bun.NullTime{}
	r.CRMStamps = map[string]record.Stamp{}
}

// unlinkDeleted unlinks the Conversion record of a CRM record deleted in
// the CRM. The Conversion record is kept; its next outbound change matches
// or creates a CRM record again.
func (a *applier) unlinkDeleted(cr connector.Record) {
	r := a.byCRMID[cr.ID]
	if r == nil {
		return // never linked: nothing to do, nothing to log
	}
	a.unlink(r)
	a.touch(r)
	a.logRow(r, cr, synclog.OutcomeDeleted, "deleted in the CRM: unlinked (the Conversion record is kept)", nil)
}

// converted reports whether cr is a converted prospect.
func (a *applier) converted(cr connector.Record) bool {
	return a.r.names.IsProspect(a.pl.object) && a.r.names.IsConverted(cr.Fields)
}

// convertedTo returns the person a converted prospect became ("" for
// anything else).
func (a *applier) convertedTo(cr connector.Record) string {
	if !a.r.names.IsProspect(a.pl.object) {
		return ""
	}
	return strings.TrimSpace(a.r.names.ConvertedToID(cr.Fields))
}

// followConversion relinks the Conversion record of a converted prospect
// (Lead) to the person (Contact) it became; the person's values come
// through the person's pull.
func (a *applier) followConversion(cr connector.Record) {
	n := a.r.names
	to := a.convertedTo(cr)
	r := a.byCRMID[cr.ID]
	switch {
	case r == nil:
		a.skip(nil, cr, fmt.Sprintf("converted %s: its %s comes through the %[2]s pull", n.Prospect, n.Person))
	case to == "":
		a.skip(r, cr, fmt.Sprintf("converted %s without a %s: left linked to the %[1]s", n.Prospect, n.Person))
	case a.byCRMID[to] != nil && a.byCRMID[to] != r:
		a.skip(r, cr, fmt.Sprintf("converted %s: its %s %s is already linked to Conversion record %q",
			n.Prospect, n.Person, to, a.byCRMID[to].ConversionID))
	default:
		a.unlink(r)
		r.CRMObject, r.CRMID = n.Person, to
		a.byCRMID[to] = r
		a.touch(r)
		a.remember(cr) // read again, the prospect (no longer linked) says nothing new
		a.logRow(r, cr, synclog.OutcomeUpdated, fmt.Sprintf("%s was converted: relinked to its %s %s", n.Prospect, n.Person, to), nil)
	}
}

// match finds the Conversion record an unlinked CRM record belongs to. It
// returns the record and how it was found, or a reason to skip the CRM
// record; neither means "create one".
func (a *applier) match(cr connector.Record) (r *record.Record, how, skip string) {
	if k := a.byKey[ConversionIDPrefix+cr.ID]; k != nil && k.CRMID == "" {
		return k, "relinked to the record created from it earlier", ""
	}
	n := a.r.names
	switch {
	case n.IsContact(a.pl.object):
		email := strings.ToLower(stringOf(cr.Fields[n.Email(a.pl.object)]))
		if email == "" {
			return nil, "", "no email: crmsync links and creates contacts by email"
		}
		cands := a.byEmail[email]
		for _, c := range cands {
			if c.CRMID == "" {
				return c, "matched by email", ""
			}
		}
		if n.IsPerson(a.pl.object) {
			for _, c := range cands {
				if n.IsProspect(c.CRMObject) {
					return c, fmt.Sprintf("matched by email: a %s wins over a %s (was linked to %[2]s %s)", n.Person, n.Prospect, c.CRMID), ""
				}
			}
		}
		if len(cands) > 0 {
			return nil, "", fmt.Sprintf("email already belongs to Conversion contact %q (linked to %s %s)",
				cands[0].ConversionID, cands[0].CRMObject, cands[0].CRMID)
		}
	case a.pl.object == n.Company:
		for _, c := range a.byDomain[record.Domain(stringOf(cr.Fields[n.CompanyDomain]))] {
			if c.CRMID == "" && n.CompanyDomain != "" {
				return c, "matched by website domain", ""
			}
		}
		name := stringOf(cr.Fields[n.CompanyName])
		for _, c := range a.unconfirmed {
			if c.CRMID == "" && name != "" && convString(c, "name") == name {
				return c, "matched by name after an unconfirmed create", ""
			}
		}
	}
	return nil, "", ""
}

// upsert links (or creates) the Conversion record of a CRM record and
// applies its fields by mode.
func (a *applier) upsert(cr connector.Record) {
	r := a.byCRMID[cr.ID]
	fresh, created := false, false
	how := ""
	if r == nil {
		var skip string
		r, how, skip = a.match(cr)
		if skip != "" {
			a.skip(nil, cr, skip)
			return
		}
		if r != nil {
			if r.CRMID != "" {
				a.unlink(r)
			}
			r.CRMObject, r.CRMID, r.CRMFields, r.CreateAttemptedAt = a.pl.object, cr.ID, map[string]any{}, bun.NullTime{}
			r.CRMStamps = map[string]record.Stamp{}
			a.byCRMID[cr.ID] = r
			fresh = true
		} else {
			r = &record.Record{WorkspaceID: a.r.c.WorkspaceID, Type: a.pl.t, ConversionID: ConversionIDPrefix + cr.ID,
				CRMObject: a.pl.object, CRMID: cr.ID, Fields: record.Fields{}, CRMFields: map[string]any{}, CRMPending: map[string]any{},
				CRMStamps: map[string]record.Stamp{}, CRMPendingStamps: map[string]record.Stamp{}, CreatedAt: a.now}
			a.add(r)
			a.created = append(a.created, r)
			created = true
		}
	}
	if !fresh && !created && (a.seen(r, cr) || a.stale(r, cr)) {
		return
	}
	view := crmView{Created: created, LastModified: cr.LastModified, LastModifiedByID: cr.LastModifiedByID}
	if !fresh && !created {
		view.Known = r.Known()
	}
	var fields []synclog.Field
	applied := 0
	older := a.superseded(r, cr, fresh || created)
	for _, m := range a.r.maps[a.pl.t] {
		v, ok := cr.Fields[m.CRMField]
		if !ok {
			continue
		}
		if st, ok := older[m.CRMField]; ok {
			if !record.SameValue(r.CRMFields[m.CRMField], v) {
				fields = append(fields, synclog.Field{Field: m.Field, CRMField: m.CRMField, Mode: string(m.Mode), Value: v,
					Reason: reasonSuperseded + " (" + record.DescribeStamp(st, record.StampSnapshot) + ")"})
			}
			continue
		}
		d := decideInbound(m, r.Fields[m.Field], v, view, a.r.c.CRMName())
		if d.Agree && !d.Apply {
			continue
		}
		if d.Apply {
			r.Fields[m.Field] = record.FieldState{Value: v, ChangedAt: d.Stamp.At.UTC(), Source: record.SourceSalesforce, Second: !d.Stamp.Written}
			applied++
		}
		fields = append(fields, synclog.Field{Field: m.Field, CRMField: m.CRMField, Mode: string(m.Mode), Value: v, Sent: d.Apply, Reason: d.Reason})
	}
	if len(older) > 0 {
		// The event's fields map is shared by every record it names.
		cr.Fields = maps.Clone(cr.Fields)
		for k := range older {
			delete(cr.Fields, k)
		}
	}
	a.snapshot(r, cr, view)
	a.touch(r)
	slices.SortFunc(fields, func(x, y synclog.Field) int { return strings.Compare(x.Field, y.Field) })
	switch {
	case created:
		a.logRow(r, cr, synclog.OutcomeCreated, "new "+a.pl.object+" in the CRM", fields)
	case applied > 0 || fresh:
		a.logRow(r, cr, synclog.OutcomeUpdated, how, fields)
	case len(fields) > 0:
		a.logRow(r, cr, synclog.OutcomeSkipped, say(reasonNothingApplied, a.r.c.CRMName()), fields)
	}
}

// seen reports whether a CRM record is exactly as an earlier pull read it
// (a look-back overlap or a replayed page): nothing to do.
func (a *applier) seen(r *record.Record, cr connector.Record) bool {
	if r.CRMModstamp.IsZero() || cr.SystemModstamp.After(r.CRMModstamp.Time) {
		return false
	}
	for k, v := range cr.Fields {
		if stampFields[k] {
			continue
		}
		s, ok := r.CRMFields[k]
		if !ok || !record.SameValue(s, v) {
			return false
		}
	}
	return true
}

// stale reports a streamed change older than the CRM state the record
// was last synced with (a catch-up pull already read past it): applying it
// would take a field back in time. Pulled records are never stale: they
// are the record's current state.
func (a *applier) stale(r *record.Record, cr connector.Record) bool {
	return a.r.streamed && !r.CRMModstamp.IsZero() && cr.SystemModstamp.Before(r.CRMModstamp.Time)
}

// superseded returns the fields of a change event that crmsync already
// knows a newer value of, with that value's stamp: the snapshot holds a
// value that became true after the event was committed (crmsync's write of
// a later Conversion change, or a later read). Such an event arrives late
// (replayed after a restart, or held back while a flush had the lease);
// its value was overwritten since, and taking it into the snapshot would
// make crmsync's own write look like a fresh Salesforce edit to the next
// flush, which would then drop a newer Conversion change. Records read
// whole (pulls, reads after a gap) are current state: nothing is
// superseded.
func (a *applier) superseded(r *record.Record, cr connector.Record, linkedNow bool) map[string]record.Stamp {
	if !a.r.events || linkedNow {
		return nil
	}
	var out map[string]record.Stamp
	for k := range cr.Fields {
		st, ok := r.CRMStamps[k]
		// Exactly, not by Stamp.Compare's second: an event's commit time
		// and a stamp taken from an earlier event both carry milliseconds,
		// and two edits in one second are in order.
		if _, known := r.CRMFields[k]; !ok || !known || st.At.IsZero() || !cr.SystemModstamp.Before(st.At) {
			continue
		}
		if out == nil {
			out = map[string]record.Stamp{}
		}
		out[k] = st
	}
	return out
}

// stampFields are record stamps some connectors also return among the
// fields. seen compares values only: a flush that wrote in the second of
// the last pull refreshed the snapshot's values, not the stamps it read
// before writing, and the record is as the pull read it all the same.
var stampFields = map[string]bool{"LastModifiedDate": true, "LastModifiedById": true, "SystemModstamp": true}

// snapshot refreshes the record's synced snapshot and modstamp with what
// was read, each value stamped with when it became true (a value unchanged
// since the last sync keeps its stamp).
func (a *applier) snapshot(r *record.Record, cr connector.Record, view crmView) {
	snap := make(map[string]any, len(cr.Fields)+len(view.Synced))
	stamps := make(map[string]record.Stamp, len(cr.Fields)+len(view.Synced))
	for k, v := range view.Synced {
		snap[k] = v
		if st, ok := view.SyncedStamps[k]; ok {
			stamps[k] = st
		}
	}
	for k, v := range cr.Fields {
		stamps[k], _ = view.Stamp(k, v, cr.LastModified)
		snap[k] = v
	}
	r.CRMFields, r.CRMStamps = snap, stamps
	r.CRMModstamp = bun.NullTime{Time: cr.SystemModstamp.UTC()}
}

// save writes the page's records.
func (a *applier) save(ctx context.Context, tx bun.Tx) error {
	if err := rememberSkips(ctx, tx, a.newSkips); err != nil {
		return err
	}
	for i := 0; i < len(a.created); i += 500 {
		chunk := a.created[i:min(i+500, len(a.created))]
		if _, err := tx.NewInsert().Model(&chunk).Returning("id").Exec(ctx); err != nil {
			return fmt.Errorf("create %d records: %w", len(chunk), err)
		}
	}
	ids := make([]int64, 0, len(a.dirty))
	for id := range a.dirty {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		_, err := tx.NewUpdate().Model(a.dirty[id]).
			Column("fields", "crm_object", "crm_id", "crm_fields", "crm_stamps", "crm_modstamp", "create_attempted_at", "updated_at").
			WherePK().Exec(ctx)
		if err != nil {
			return fmt.Errorf("update record %d: %w", id, err)
		}
	}
	return nil
}

// log writes the page's sync-log rows into the pull's batch.
func (a *applier) log(ctx context.Context, tx bun.Tx) error {
	b := a.r.batch
	if len(a.logs) == 0 && b.ID == 0 {
		return nil
	}
	if err := a.r.ensureBatch(ctx, tx); err != nil {
		return err
	}
	for i := 0; i < len(a.logs); i += 500 {
		chunk := a.logs[i:min(i+500, len(a.logs))]
		for _, row := range chunk {
			row.BatchID, row.WorkspaceID = b.ID, b.WorkspaceID
			if row.Fields == nil {
				row.Fields = []synclog.Field{}
			}
		}
		if _, err := tx.NewInsert().Model(&chunk).Exec(ctx); err != nil {
			return fmt.Errorf("write records of sync batch %d: %w", b.ID, err)
		}
	}
	b.Records = append(b.Records, a.logs...)
	b.Count()
	b.APICalls, b.FinishedAt = a.r.meter.Calls, a.now
	_, err := tx.NewUpdate().Model(b).WherePK().
		Column("finished_at", "created", "updated", "deleted", "skipped", "failed", "waiting", "api_calls").Exec(ctx)
	if err != nil {
		return fmt.Errorf("count sync batch %d: %w", b.ID, err)
	}
	return nil
}
