package push

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/prefs"
	"github.com/crmsync/crmsync/internal/record"
	"github.com/crmsync/crmsync/internal/synclog"
)

// Conditional writes (docs/sync.md): a small flush whose records' CRM
// state is known and provably current (record.Observation.Proven) skips the
// read. Its fields are decided from the known state exactly as from a
// read, and its writes go as updates conditional on the known
// LastModified, all in one call: a record changed since is refused (412),
// read, and decided again. Known states come from every read crmsync makes
// (the flush's reads, and the reads that ride along in a conditional call);
// a record crmsync writes is observed again, for free, by the next call
// that reads, at least a second after the write.

// maxReobserve bounds the records one call observes again besides its own
// (one Salesforce retrieve subrequest holds 2,000 ids).
const maxReobserve = 2000

// knownOf is the state of a record read in a call the CRM answered at at.
func knownOf(r connector.Record, at time.Time) *record.Observation {
	return &record.Observation{ID: r.ID, Fields: r.Fields, LastModified: r.LastModified, LastModifiedByID: r.LastModifiedByID, ObservedAt: at.UTC()}
}

// observed stores a record's state as read in a call answered at at: a
// state not yet proven (read within the second of its last change, or
// with no CRM clock) is read again a second after its last change.
func observed(rec *record.Record, r connector.Record, at time.Time) {
	rec.CRMKnown = knownOf(r, at)
	rec.CRMObserveAfter = bun.NullTime{}
	if at.IsZero() {
		rec.CRMKnown, rec.CRMObserveAfter = nil, bun.NullTime{} // no clock: no proof, ever
		return
	}
	if !rec.CRMKnown.Proven() {
		rec.CRMObserveAfter = bun.NullTime{Time: r.LastModified.Truncate(time.Second).Add(time.Second).UTC()}
	}
}

// written forgets the state of a record the flush wrote (its LastModified
// moved to a moment crmsync does not know) and has it observed again.
func (f *flush) written(rec *record.Record) {
	rec.CRMKnown = nil
	rec.CRMObserveAfter = bun.NullTime{Time: f.now.Truncate(time.Second).Add(time.Second)}
}

// loadReobserve loads the workspace's records due to be observed again,
// other than the flush's own: only what a read needs and an observation
// sets (saveRecords writes back crm_known and crm_observe_after alone),
// as every flush pays for this query whether or not a call carries them.
func (f *flush) loadReobserve(ctx context.Context) error {
	var recs []*record.Record
	err := f.e.db.NewSelect().Model(&recs).Column("id", "type", "conversion_id", "crm_object", "crm_id").
		Where("workspace_id = ? AND crm_observe_after IS NOT NULL AND crm_observe_after <= ? AND crm_id <> ''", f.c.WorkspaceID, f.now).
		OrderExpr("crm_observe_after ASC").Limit(maxReobserve).Scan(ctx)
	if err != nil {
		return fmt.Errorf("load records to observe again of workspace %d: %w", f.c.WorkspaceID, err)
	}
	for _, r := range recs {
		if _, mine := f.records[record.Key{Type: r.Type, ID: r.ConversionID}]; mine {
			continue
		}
		if _, ok := f.maps[r.Type]; !ok {
			if f.maps[r.Type], err = prefs.Fields(ctx, f.e.db, f.routing.Contract, f.c.WorkspaceID, r.Type); err != nil {
				return err
			}
		}
		f.reobserve = append(f.reobserve, r)
	}
	return nil
}

// withReobserve adds the records due to be observed again to by-id reads
// (object → ids), within limits: up to maxReobserve ids per object and
// maxObjects objects in all, of objects the flush has described. It
// returns the reads in object order.
func (f *flush) withReobserve(ids map[string][]string, maxObjects int) []connector.FetchCurrentRequest {
	for _, r := range f.reobserve {
		if _, ok := f.desc.Object(r.CRMObject); !ok {
			continue // its fields are not checked against a describe yet
		}
		_, have := ids[r.CRMObject]
		if (!have && len(ids) >= maxObjects) || len(ids[r.CRMObject]) >= maxReobserve {
			continue
		}
		ids[r.CRMObject] = append(ids[r.CRMObject], r.CRMID)
		f.reobserving = append(f.reobserving, r)
	}
	objects := slices.Sorted(maps.Keys(ids))
	reqs := make([]connector.FetchCurrentRequest, len(objects))
	for i, o := range objects {
		reqs[i] = connector.FetchCurrentRequest{Object: o, IDs: ids[o], Fields: f.readFields(o)}
	}
	return reqs
}

// applyReobserved stores the states read of records observed again; one
// the CRM no longer has is simply unknown.
func (f *flush) applyReobserved(found map[string]connector.Record, at time.Time) {
	for _, r := range f.reobserving {
		if cr, ok := found[r.CRMID]; ok {
			observed(r, cr, at)
		} else {
			r.CRMKnown, r.CRMObserveAfter = nil, bun.NullTime{}
		}
		f.observedAgain = append(f.observedAgain, r)
	}
	f.reobserving = nil
}

// conditional is the connector's conditional update, when it announces one.
func (f *flush) conditional() (connector.ConditionalUpdater, bool) {
	return connection.Optional[connector.ConditionalUpdater](f.caps, connector.CapabilityConditionalUpdate, f.crm)
}

// oneCallReason returns why the flush cannot go in one conditional call
// ("" when it can). Every record must be an update of a linked record
// whose state is known, proven, and holds every field its decision reads.
func (f *flush) oneCallReason(jobs []*job) string {
	if f.e.cfg.ReadFirst {
		return "conditional writes are off"
	}
	if _, ok := f.conditional(); !ok {
		return "the connector has no conditional update"
	}
	if len(jobs) > connector.MaxConditionalUpdates {
		return fmt.Sprintf("%d records, more than %d", len(jobs), connector.MaxConditionalUpdates)
	}
	for _, j := range jobs {
		if why := f.knownReason(j); why != "" {
			return fmt.Sprintf("%s %q: %s", j.rec.Type, j.rec.ConversionID, why)
		}
	}
	return ""
}

func (f *flush) knownReason(j *job) string {
	k := j.rec.CRMKnown
	switch {
	case j.w.Op == outbound.OpRemove:
		return "a removal"
	case j.crmID == "" || j.fresh:
		return "not linked to a CRM record yet"
	case k == nil || k.ID != j.crmID:
		return "its CRM state is not known"
	case !k.Proven():
		return "its CRM state was observed within the second of its last change"
	case f.names.IsProspect(j.object) && f.names.IsConverted(k.Fields):
		return "the " + f.names.Prospect + " was converted"
	}
	for _, name := range f.decisionFields(j) {
		if _, ok := k.Fields[name]; !ok {
			return "its known state lacks " + name
		}
	}
	return ""
}

// decisionFields are the CRM fields build reads of a job's current state.
func (f *flush) decisionFields(j *job) []string {
	var out []string
	obj, described := connector.Object{}, false
	if f.desc != nil {
		obj, described = f.desc.Object(j.object)
	}
	for _, m := range f.maps[j.rec.Type] {
		if _, ok := j.w.Fields[m.Field]; !ok {
			continue
		}
		if _, ok := obj.Field(m.CRMField); described && !ok {
			continue // not on the object: decided without the state
		}
		out = append(out, m.CRMField)
	}
	for _, st := range structural(f, j) {
		if st.reason == "" {
			out = append(out, st.crmField)
		}
	}
	if f.names.IsProspect(j.object) && f.names.Convertible() {
		out = append(out, f.names.Converted)
	}
	return out
}

// tryOneCall sends the flush in one conditional call when it can, and
// records in the batch which path it took and why. Refused records are
// decided again from the state read back in the same call, in a second
// conditional call when that state is proven; what is left goes the read
// path (runLevel).
func (f *flush) tryOneCall(ctx context.Context) error {
	jobs := f.openJobs()
	if len(jobs) == 0 {
		return nil
	}
	for _, j := range jobs {
		if f.missingParent(j) != "" {
			f.path, f.pathReason = synclog.WriteReadFirst, fmt.Sprintf("%s %q waits for a parent", j.rec.Type, j.rec.ConversionID)
			return nil
		}
	}
	if err := f.describe(ctx, jobs); err != nil {
		return err
	}
	if why := f.oneCallReason(jobs); why != "" {
		f.path, f.pathReason = synclog.WriteReadFirst, why
		return nil
	}
	f.path = synclog.WriteOneCall
	for round := 0; round < 2 && len(jobs) > 0; round++ {
		refused, needRead, err := f.oneCall(ctx, jobs)
		if errors.Is(err, connector.ErrUnsupported) {
			f.path, f.pathReason = synclog.WriteReadFirst, "the connector has no conditional update"
			return nil
		}
		if needRead {
			if round == 0 {
				f.path, f.pathReason = synclog.WriteReadFirst, "nothing to write: a decision not to write is confirmed by a read"
			}
			return nil
		}
		if err != nil || refused == 0 {
			return err
		}
		f.path = synclog.WriteOneCallThenRead
		f.pathReason = fmt.Sprintf("%d of %d records changed in the CRM since their known state (412); decided again from the state read back", refused, len(jobs))
		f.e.logger.Info("conditional write refused: records changed in the CRM", slog.Int64("workspace_id", f.c.WorkspaceID),
			slog.Int("refused", refused), slog.Int("records", len(jobs)))
		jobs = slices.DeleteFunc(f.openJobs(), func(j *job) bool { return f.knownReason(j) != "" })
	}
	return nil // what is still open goes the read path
}

func (f *flush) openJobs() []*job {
	var out []*job
	for _, j := range f.jobs {
		if !j.done {
			out = append(out, j)
		}
	}
	return out
}

// snapshot is what build and succeed change of a job, to undo a decision
// taken from a known state that turned out stale.
type snapshot struct {
	crmFields, crmPending map[string]any
	updatedAt             time.Time
	known                 *record.Observation
	observeAfter          bun.NullTime
}

func snap(r *record.Record) snapshot {
	return snapshot{crmFields: maps.Clone(r.CRMFields), crmPending: maps.Clone(r.CRMPending), updatedAt: r.UpdatedAt,
		known: r.CRMKnown, observeAfter: r.CRMObserveAfter}
}

// reopen undoes a job's decision: it goes through the flush again.
func (f *flush) reopen(j *job, s snapshot) {
	r := j.rec
	r.CRMFields, r.CRMPending, r.UpdatedAt, r.CRMKnown, r.CRMObserveAfter = s.crmFields, s.crmPending, s.updatedAt, s.known, s.observeAfter
	f.deleteIDs = slices.DeleteFunc(f.deleteIDs, func(id int64) bool { return slices.Contains(j.w.ItemIDs, id) })
	j.done, j.cur, j.op = false, crmState{}, connector.Operation{}
	j.log = synclog.Record{RecordType: j.rec.Type, ConversionID: j.rec.ConversionID}
}

// oneCall decides the jobs from their known states and writes them in one
// conditional call, with reads after the writes of every job's record and
// of records due to be observed again. A job decided to send nothing is
// checked by that read: its decision stands only if the record's
// LastModified did not move (no write checked it). Jobs whose record
// changed since (412, or moved) are reopened with the state just read;
// refused counts them. When no job has anything to write there is no
// conditional call to carry the check: every job is reopened for the read
// path and needRead is set.
func (f *flush) oneCall(ctx context.Context, jobs []*job) (refused int, needRead bool, err error) {
	var ops, unchecked []*job
	snaps := map[*job]snapshot{}
	for _, j := range jobs {
		snaps[j] = snap(j.rec)
		k := j.rec.CRMKnown
		j.cur = stateOf(connector.Record{ID: k.ID, Fields: k.Fields, LastModified: k.LastModified, LastModifiedByID: k.LastModifiedByID}, j.rec)
		if f.build(j) {
			ops = append(ops, j)
		} else {
			unchecked = append(unchecked, j)
		}
	}
	if len(ops) == 0 {
		for _, j := range unchecked {
			f.reopen(j, snaps[j])
		}
		return 0, true, nil
	}
	if err := f.markSending(ctx, ops); err != nil {
		return 0, false, err
	}
	updates := make([]connector.ConditionalUpdate, len(ops))
	ids := map[string][]string{}
	for i, j := range ops {
		updates[i] = connector.ConditionalUpdate{Object: j.object, ID: j.crmID, Fields: j.op.Fields, UnmodifiedSince: j.rec.CRMKnown.LastModified}
		ids[j.object] = append(ids[j.object], j.crmID)
	}
	for _, j := range unchecked {
		ids[j.object] = append(ids[j.object], j.crmID)
	}
	reads := f.withReobserve(ids, connector.MaxConditionalReads)
	cu, _ := f.conditional()
	resp, err := cu.UpdateIfUnmodified(ctx, connector.ConditionalUpdateRequest{
		Session: f.meter.Session, Updates: updates, Reads: reads})
	if err := f.meter.Observe(ctx, "conditional write", connection.MetaOf(resp), err); err != nil {
		f.reobserving = nil
		for _, j := range unchecked {
			f.reopen(j, snaps[j]) // unconfirmed: nothing is decided for them
		}
		if !errors.Is(err, connector.ErrUnsupported) {
			f.cutOff(ops, err)
		}
		return 0, false, err
	}
	if len(resp.Results) != len(ops) {
		err := fmt.Errorf("conditional write: connector returned %d results for %d updates", len(resp.Results), len(ops))
		f.cutOff(ops, err)
		return 0, false, err
	}
	found := byID(resp.Records)
	for i, j := range ops {
		res := resp.Results[i]
		switch {
		case res.PreconditionFailed:
			refused++
			f.reopen(j, snaps[j])
			if r, ok := found[j.crmID]; ok {
				observed(j.rec, r, resp.ServerTime)
			}
		case res.Error != nil:
			f.fail(j, *res.Error)
		default:
			f.succeed(j, synclog.OutcomeUpdated, j.redirect, j.op.Fields)
			if r, ok := found[j.crmID]; ok {
				observed(j.rec, r, resp.ServerTime) // read back after the write
			}
		}
	}
	for _, j := range unchecked {
		r, ok := found[j.crmID]
		if ok && r.LastModified.Equal(snaps[j].known.LastModified) {
			observed(j.rec, r, resp.ServerTime) // unchanged: the decision stands
			continue
		}
		refused++
		f.reopen(j, snaps[j])
		if ok {
			observed(j.rec, r, resp.ServerTime)
		}
	}
	f.applyReobserved(found, resp.ServerTime)
	return refused, false, nil
}
