package push

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/record"
	"github.com/crmsync/crmsync/internal/synclog"
)

// readCurrent fetches the current CRM state of linked records (one read per
// object), follows converted Leads to their Contacts, and fails the jobs
// whose CRM record is gone.
func (f *flush) readCurrent(ctx context.Context, jobs []*job) error {
	byObject := map[string][]*job{}
	for _, j := range jobs {
		if !j.done && j.crmID != "" && !j.fresh {
			byObject[j.object] = append(byObject[j.object], j)
		}
	}
	objects := make([]string, 0, len(byObject))
	for o := range byObject {
		objects = append(objects, o)
	}
	slices.Sort(objects)
	converted := map[string][]*job{}
	for _, o := range objects {
		js := byObject[o]
		ids := make([]string, 0, len(js))
		for _, j := range js {
			ids = append(ids, j.crmID)
		}
		found, ok := f.prefetched[o]
		if !ok {
			recs, err := f.fetch(ctx, o, ids, nil)
			if err != nil {
				return err
			}
			found = byID(recs)
		}
		for _, j := range js {
			r, ok := found[j.crmID]
			switch {
			case !ok && j.w.Op == outbound.OpRemove:
				f.succeed(j, synclog.OutcomeDeleted, "already gone from the CRM", nil)
			case !ok:
				f.fail(j, connector.RecordError{Code: connector.CodeNotFound, Message: "the CRM record no longer exists (deleted in the CRM?)"})
			case f.names.IsProspect(o) && f.names.IsConverted(r.Fields):
				id := f.names.ConvertedToID(r.Fields)
				converted[id] = append(converted[id], j)
			default:
				j.cur = stateOf(r, j.rec)
				observed(j.rec, r, f.readAt[o])
			}
		}
	}
	if len(converted) == 0 {
		return nil
	}
	if err := f.followConversions(ctx, converted); err != nil {
		return err
	}
	for _, js := range converted {
		for _, j := range js {
			if f.names.IsProspect(j.object) { // the person was not found
				f.fail(j, connector.RecordError{Code: connector.CodeConvertedLead, Message: fmt.Sprintf("%s was converted and its %s cannot be read", f.names.Prospect, f.names.Person)})
			}
		}
	}
	return nil
}

func byID(recs []connector.Record) map[string]connector.Record {
	out := make(map[string]connector.Record, len(recs))
	for _, r := range recs {
		out[r.ID] = r
	}
	return out
}

// prefetch reads the current state of every linked record of the flush, of
// all objects and dependency levels, in one FetchCurrentMany when the
// connector can (five objects of 2,000 records a call on Salesforce, the
// read side of C_min). Without the capability each level reads per object.
func (f *flush) prefetch(ctx context.Context) error {
	bf, ok := connection.Optional[connector.BatchFetcher](f.caps, connector.CapabilityFetchMany, f.crm)
	if !ok {
		return nil
	}
	var linked []*job
	ids := map[string][]string{}
	for _, j := range f.jobs {
		if !j.done && j.crmID != "" {
			linked = append(linked, j)
			ids[j.object] = append(ids[j.object], j.crmID)
		}
	}
	if len(ids) == 0 || (len(ids) < 2 && len(f.reobserve) == 0) {
		return nil // one object: the level's own read is as cheap
	}
	if err := f.describe(ctx, linked); err != nil {
		return err
	}
	// Records due to be observed again ride along: one call reads five
	// objects of 2,000 ids. Fewer, so the flush's own reads always fit.
	reqs := f.withReobserve(ids, 5)
	objects := make([]string, len(reqs))
	for i, r := range reqs {
		objects[i] = r.Object
	}
	resp, err := bf.FetchCurrentMany(ctx, connector.FetchManyRequest{Session: f.meter.Session, Requests: reqs})
	if errors.Is(err, connector.ErrUnsupported) {
		f.reobserving = nil
		return nil
	}
	if err := f.meter.Observe(ctx, "read "+strings.Join(objects, ", "), connection.MetaOf(resp), err); err != nil {
		f.reobserving = nil
		return err
	}
	f.prefetched = make(map[string]map[string]connector.Record, len(objects))
	found := map[string]connector.Record{}
	for i, o := range objects {
		f.prefetched[o] = byID(resp.Results[i])
		f.readAt[o] = resp.ServerTime
		maps.Copy(found, f.prefetched[o])
	}
	f.applyReobserved(found, resp.ServerTime)
	return nil
}

// build decides every field of a job and prepares its operation. It returns
// false when the job needs no write (its outcome is then decided).
func (f *flush) build(j *job) bool {
	if j.w.Op == outbound.OpRemove {
		if j.crmID == "" {
			f.succeed(j, synclog.OutcomeSkipped, "not a campaign member in the CRM", nil)
			return false
		}
		j.op = connector.Operation{Kind: connector.OpDelete, Object: j.object, ID: j.crmID}
		return true
	}
	source := j.w.Fields
	if j.fresh {
		source = j.rec.Fields // a new or newly matched record gets every field
	}
	fields := map[string]any{}
	sentAt := map[string]time.Time{}
	obj, described := connector.Object{}, false
	if f.desc != nil {
		obj, described = f.desc.Object(j.object)
	}
	writable := func(crmField string) (bool, string) {
		if !described {
			return true, ""
		}
		fd, ok := obj.Field(crmField)
		switch {
		case !ok:
			return false, reasonNotOnObject + " " + j.object
		case j.crmID == "" && !fd.Createable, j.crmID != "" && !fd.Updateable:
			return false, reasonNotWriteable
		}
		return true, ""
	}
	mapped := map[string]bool{}
	for _, m := range f.maps[j.rec.Type] {
		mapped[m.Field] = true
		fs, ok := source[m.Field]
		if !ok {
			continue
		}
		if now := j.rec.Fields[m.Field]; !j.fresh && (fs.Superseded || now.Supersedes(fs)) {
			j.log.Fields = append(j.log.Fields, synclog.Field{Field: m.Field, CRMField: m.CRMField, Mode: string(m.Mode), Value: fs.Value, Reason: supersededReason(fs, now, f.c.CRMName())})
			continue
		}
		if ok, why := writable(m.CRMField); !ok {
			j.log.Fields = append(j.log.Fields, synclog.Field{Field: m.Field, CRMField: m.CRMField, Mode: string(m.Mode), Value: fs.Value, Reason: why})
			continue
		}
		d := decideOutbound(m, fs, j.cur, f.c.CRMName())
		j.log.Fields = append(j.log.Fields, synclog.Field{Field: m.Field, CRMField: m.CRMField, Mode: string(m.Mode), Value: d.Value, Sent: d.Send, Reason: d.Reason})
		if d.Send {
			fields[m.CRMField] = d.Value
			sentAt[m.CRMField] = fs.ChangedAt
		}
	}
	for name, st := range structural(f, j) {
		if ok, why := writable(st.crmField); !ok || st.reason != "" {
			if st.reason != "" {
				why = st.reason
			}
			j.log.Fields = append(j.log.Fields, synclog.Field{Field: name, CRMField: st.crmField, Value: st.value, Reason: why})
			continue
		}
		mapped[name] = true
		if j.cur.Exists && record.SameValue(j.cur.Fields[st.crmField], st.value) {
			continue
		}
		fields[st.crmField] = st.value
		sentAt[st.crmField] = j.rec.Fields[name].ChangedAt
		if sentAt[st.crmField].IsZero() {
			sentAt[st.crmField] = f.now
		}
		j.log.Fields = append(j.log.Fields, synclog.Field{Field: name, CRMField: st.crmField, Value: st.value, Sent: true, Reason: "links the record"})
	}
	for name, fs := range j.w.Fields {
		if !mapped[name] && !isStructural(j.rec.Type, name) {
			j.log.Fields = append(j.log.Fields, synclog.Field{Field: name, Value: fs.Value, Reason: "no CRM field mapped"})
		}
	}
	slices.SortFunc(j.log.Fields, func(a, b synclog.Field) int {
		if a.Field < b.Field {
			return -1
		}
		if a.Field > b.Field {
			return 1
		}
		return 0
	})
	j.sentAt = sentAt
	switch {
	case j.crmID != "" && len(fields) == 0:
		f.succeed(j, synclog.OutcomeSkipped, skipReason(j), nil)
		return false
	case j.crmID != "":
		j.op = connector.Operation{Kind: connector.OpUpdate, Object: j.object, ID: j.crmID, Fields: fields}
	case f.extID[j.object] != "" && f.caps.Has(connector.CapabilityUpsert):
		ext := f.extID[j.object]
		delete(fields, ext)
		j.op = connector.Operation{Kind: connector.OpUpsert, Object: j.object, ExternalIDField: ext, ExternalID: j.rec.ConversionID, Fields: fields}
	default:
		j.op = connector.Operation{Kind: connector.OpCreate, Object: j.object, Fields: fields}
	}
	return true
}

func skipReason(j *job) string {
	if j.redirect != "" {
		return j.redirect + "; no field to send"
	}
	return "no field to send"
}

type structuralValue struct {
	crmField string
	value    any
	reason   string // set when the value cannot be sent
}

// taskFields are a task's Conversion fields.
var taskFields = []string{"subject", "status", "dueDate", "description"}

// taskField returns the task object's field that holds Conversion field
// name, per the contract ("" when the contract names none).
func (f *flush) taskField(name string) string {
	switch name {
	case "subject":
		return f.names.TaskSubject
	case "status":
		return f.names.TaskStatus
	case "dueDate":
		return f.names.TaskDue
	case "description":
		return f.names.TaskDescription
	}
	return ""
}

func isStructural(t record.Type, name string) bool {
	switch name {
	case outbound.FieldCompanyID, outbound.FieldCampaignID, outbound.FieldContactID, outbound.FieldOwnerID:
		return true
	}
	return t == record.TypeTask && slices.Contains(taskFields, name)
}

// structural returns the link fields of a job: values that tie records
// together and always go with the write.
func structural(f *flush, j *job) map[string]structuralValue {
	out := map[string]structuralValue{}
	r, n := j.rec, f.names
	switch r.Type {
	case record.TypeContact:
		if _, ok := r.Fields[outbound.FieldCompanyID]; ok && n.IsPerson(j.object) && n.PersonCompany != "" {
			if _, id := f.parentID(r, outbound.FieldCompanyID, record.TypeCompany); id != "" {
				out[outbound.FieldCompanyID] = structuralValue{crmField: n.PersonCompany, value: id}
			} else {
				out[outbound.FieldCompanyID] = structuralValue{crmField: n.PersonCompany, value: stringField(r, outbound.FieldCompanyID), reason: "company is not in the CRM"}
			}
		}
		if _, ok := j.w.Fields[outbound.FieldOwnerID]; ok {
			v := stringField(r, outbound.FieldOwnerID)
			switch {
			case n.ProspectOwner == "":
				out[outbound.FieldOwnerID] = structuralValue{crmField: outbound.FieldOwnerID, value: v, reason: "the CRM has no owner assignment"}
			case !n.IsProspect(j.object):
				out[outbound.FieldOwnerID] = structuralValue{crmField: n.ProspectOwner, value: v, reason: "queues can own " + n.Prospect + " records only"}
			default:
				out[outbound.FieldOwnerID] = structuralValue{crmField: n.ProspectOwner, value: v}
			}
		}
	case record.TypeCampaignMember:
		if j.crmID == "" {
			_, cid := f.parentID(r, outbound.FieldCampaignID, record.TypeCampaign)
			out[outbound.FieldCampaignID] = structuralValue{crmField: n.MemberCampaign, value: cid}
			obj, who := f.parentID(r, outbound.FieldContactID, record.TypeContact)
			field := n.MemberProspect
			if n.IsPerson(obj) || field == "" {
				field = n.MemberPerson
			}
			out[outbound.FieldContactID] = structuralValue{crmField: field, value: who}
		}
	case record.TypeTask:
		if j.crmID == "" {
			_, who := f.parentID(r, outbound.FieldContactID, record.TypeContact)
			out[outbound.FieldContactID] = structuralValue{crmField: n.TaskWho, value: who}
		}
		for _, name := range taskFields {
			crmField := f.taskField(name)
			if crmField == "" {
				continue
			}
			if fs, ok := j.w.Fields[name]; ok || j.fresh {
				if !ok {
					fs = r.Fields[name]
				}
				if fs.Value != nil {
					out[name] = structuralValue{crmField: crmField, value: fs.Value}
				}
			}
		}
	}
	return out
}

// write sends the operations of one level (send: one BulkUpdate, and
// tracked bulk jobs for big groups) and applies each result.
func (f *flush) write(ctx context.Context, jobs []*job) error {
	if len(jobs) == 0 {
		return nil
	}
	if err := f.markSending(ctx, jobs); err != nil {
		return err
	}
	ops := make([]connector.Operation, len(jobs))
	for i, j := range jobs {
		ops[i] = j.op
	}
	results, err := f.send(ctx, ops)
	if err != nil {
		f.cutOff(jobs, err)
		return err
	}
	for i, j := range jobs {
		res := results[i]
		if res.Error != nil {
			f.fail(j, *res.Error)
			continue
		}
		if res.ID != "" {
			j.crmID = res.ID
		}
		outcome := synclog.OutcomeUpdated
		switch {
		case j.op.Kind == connector.OpDelete:
			outcome = synclog.OutcomeDeleted
		case res.Created || j.op.Kind == connector.OpCreate:
			outcome = synclog.OutcomeCreated
		}
		f.succeed(j, outcome, j.redirect, j.op.Fields)
	}
	return nil
}

// cutOff logs the jobs of a write call that failed as a whole: the values
// went out and the CRM may have applied them (markSending kept them as
// pending), so the sync log shows them sent, with an outcome that says it
// is unknown. The jobs stay unfinished: their items remain queued.
func (f *flush) cutOff(jobs []*job, err error) {
	for _, j := range jobs {
		j.cut = true
		j.log.Outcome, j.log.ErrorCode = synclog.OutcomeRetrying, ""
		j.log.Reason = "the write call failed (" + err.Error() + "), so whether the CRM applied it is not known; " +
			"the next flush reads the record again and retries"
		j.log.CRMObject, j.log.CRMID = j.object, j.crmID
	}
}

// markSending commits, before the call, what the write is about to do:
// records about to be created are stamped, so if crmsync dies before it
// learns the outcome the next flush re-matches instead of creating blindly
// again; and the values about to be written are kept as pending, so the
// next flush knows them for crmsync's own if the CRM has them.
func (f *flush) markSending(ctx context.Context, jobs []*job) error {
	var creates []int64
	var updates []*record.Record
	for _, j := range jobs {
		switch j.op.Kind {
		case connector.OpCreate, connector.OpUpsert:
			j.rec.CreateAttemptedAt = bun.NullTime{Time: f.now}
			creates = append(creates, j.rec.ID)
		case connector.OpUpdate:
			if len(j.op.Fields) == 0 {
				continue
			}
			if j.rec.CRMPending == nil {
				j.rec.CRMPending = map[string]any{}
			}
			if j.rec.CRMPendingStamps == nil {
				j.rec.CRMPendingStamps = map[string]record.Stamp{}
			}
			for k, v := range j.op.Fields {
				keepOwnWrite(j, k)
				j.rec.CRMPending[k] = v
				j.rec.CRMPendingStamps[k] = record.WrittenStamp(j.sentAt[k])
			}
			updates = append(updates, j.rec)
		}
	}
	if len(creates) == 0 && len(updates) == 0 {
		return nil
	}
	ids := slices.Clone(creates)
	for _, r := range updates {
		ids = append(ids, r.ID)
	}
	return f.e.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := record.LockIDs(ctx, tx, ids); err != nil {
			return err
		}
		if len(creates) > 0 {
			_, err := tx.NewUpdate().Model((*record.Record)(nil)).Set("create_attempted_at = ?", f.now).
				Where("id IN (?)", bun.List(creates)).Exec(ctx)
			if err != nil {
				return fmt.Errorf("mark %d records as being created: %w", len(creates), err)
			}
		}
		if err := record.Update(ctx, tx, updates, "crm_pending", "crm_pending_stamps", "crm_fields", "crm_stamps"); err != nil {
			return fmt.Errorf("keep the values being written: %w", err)
		}
		return nil
	})
}

// keepOwnWrite moves field k's pending value into the record's snapshot
// when this flush found it in the CRM: it is crmsync's own earlier write
// whose outcome was never recorded (the call died), and the CRM holds it.
// The write about to go replaces the pending value; without this, a CRM
// that keeps the earlier value (the new write fails) would show a value
// crmsync no longer knows as its own, and the next flush would take it
// for an edit made in the CRM at its LastModifiedDate and drop a newer
// Conversion change (found by the reliability soak: a plugin killed
// during a write, then a retry refused with UNABLE_TO_LOCK_ROW).
func keepOwnWrite(j *job, k string) {
	cur, ok := j.cur.Fields[k]
	if !ok {
		return
	}
	st, how := j.cur.Stamp(k, cur, j.cur.LastModified)
	if how != record.StampPending {
		return
	}
	if j.rec.CRMFields == nil {
		j.rec.CRMFields = map[string]any{}
	}
	if j.rec.CRMStamps == nil {
		j.rec.CRMStamps = map[string]record.Stamp{}
	}
	j.rec.CRMFields[k], j.rec.CRMStamps[k] = cur, st
}

// succeed records a written (or deliberately skipped) record: its items
// leave the queue and its CRM link and synced values are kept.
func (f *flush) succeed(j *job, outcome synclog.Outcome, reason string, sent map[string]any) {
	r := j.rec
	if j.w.Op == outbound.OpRemove && outcome != synclog.OutcomeSkipped {
		r.CRMID, r.CRMFields, r.CRMStamps = "", map[string]any{}, map[string]record.Stamp{}
		r.CRMKnown, r.CRMObserveAfter = nil, bun.NullTime{}
		j.crmID = ""
	} else if j.crmID != "" {
		if r.CRMID != j.crmID {
			r.CRMFields, r.CRMStamps = map[string]any{}, map[string]record.Stamp{}
		}
		r.CRMObject, r.CRMID = j.object, j.crmID
		if r.CRMFields == nil {
			r.CRMFields = map[string]any{}
		}
		if r.CRMStamps == nil {
			r.CRMStamps = map[string]record.Stamp{}
		}
		// What was read, stamped as decided (unchanged values keep their
		// stamp), then what was written, stamped with its Conversion time.
		for k, v := range j.cur.Fields {
			r.CRMStamps[k], _ = j.cur.Stamp(k, v, j.cur.LastModified)
			r.CRMFields[k] = v
		}
		for k, v := range sent {
			r.CRMFields[k] = v
			r.CRMStamps[k] = record.WrittenStamp(j.sentAt[k])
		}
		if outcome == synclog.OutcomeCreated || outcome == synclog.OutcomeUpdated {
			f.written(r)
		}
		r.CreateAttemptedAt = bun.NullTime{}
		r.CRMPending = map[string]any{} // the outcome is known now
		r.CRMPendingStamps = map[string]record.Stamp{}
	}
	r.UpdatedAt = f.now
	f.deleteIDs = append(f.deleteIDs, j.w.ItemIDs...)
	f.finish(j, outcome, reason, "")
}

// fail records a per-record failure: retryable ones stay queued with
// backoff, others are parked with the CRM's error.
func (f *flush) fail(j *job, e connector.RecordError) {
	e = explain(f.names, j.object, e)
	if e.Code == connector.CodeConvertedLead {
		// Read again next time: the read follows ConvertedContactId.
		j.rec.CRMObject, j.rec.CRMID = f.names.Prospect, j.crmID
		e.Retryable = true
	}
	if e.Retryable {
		f.backoffs = append(f.backoffs, backoff{ids: j.w.ItemIDs, until: f.now.Add(f.retryDelay(j)), code: e.Code, message: e.Message})
		f.finish(j, synclog.OutcomeRetrying, e.Message, e.Code)
		return
	}
	f.parks = append(f.parks, backoff{ids: j.w.ItemIDs, code: e.Code, message: e.Message})
	f.finish(j, synclog.OutcomeFailed, e.Message, e.Code)
}

func (f *flush) retryDelay(j *job) time.Duration {
	d := f.e.cfg.RetryBase
	for i := 0; i < j.w.Attempts && d < f.e.cfg.RetryMax; i++ {
		d *= 2
	}
	return min(d, f.e.cfg.RetryMax)
}
