package push

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/contract"
	"github.com/crmsync/crmsync/internal/limits"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/prefs"
	"github.com/crmsync/crmsync/internal/record"
	"github.com/crmsync/crmsync/internal/synclog"
)

// levels orders writes by dependency: companies and campaigns first, then
// contacts (a person carries its company reference), then campaign
// members and tasks (they reference both).
var levels = map[record.Type]int{
	record.TypeCompany: 0, record.TypeCampaign: 0,
	record.TypeContact:        1,
	record.TypeCampaignMember: 2, record.TypeTask: 2,
}

// job is one record's coalesced write, followed through the flush.
type job struct {
	w     outbound.Write
	rec   *record.Record
	level int

	object string
	crmID  string
	// fresh is true when the CRM record was found by matching in this
	// flush (or is about to be created): the whole record is synced, not
	// only the fields of the queued changes.
	fresh bool
	cur   crmState
	// redirect notes why the job writes elsewhere than the record's link.
	redirect string

	op connector.Operation
	// sentAt holds, per CRM field of op, the time of the Conversion change
	// its value comes from: the stamp of the value once written.
	sentAt map[string]time.Time
	log    synclog.Record
	done   bool
	// cut is set on a job whose write call failed as a whole after it was
	// sent: the CRM may or may not have applied it. It is logged (the
	// operator and the audit see what went out) but not finished: its
	// items stay queued and the next flush reads the record again.
	cut bool
	// quiet is set on a job still waiting for its parent after an earlier
	// flush logged it waiting: the sync log says so once, not every pass.
	quiet bool
	// matched says how match found the CRM record (empty: not matched);
	// linked that the record was linked to it before the flush.
	matched MatchedBy
	linked  bool
}

// flush is the state of one flush of one connection.
type flush struct {
	e     *Engine
	c     *connection.Connection
	crm   connector.Connector
	meter *connection.Meter
	now   time.Time
	// pace is the bucket as the flush found it (pacing on).
	pace Pace
	// claimLimit is the most items the flush claims (claim.go), and
	// claimed how many it did.
	claimLimit, claimed int

	// routing is which record types the connection takes, with its data
	// contract; names are the contract's objects and role fields
	// (internal/contract). Both are read once per flush: the connection
	// stores them as JSON.
	routing prefs.Routing
	names   contract.Names
	objs    map[record.Type]prefs.ObjectPreference
	maps    map[record.Type][]prefs.FieldMapping
	desc    *connector.Description
	caps    connection.Capabilities // what the connector announced: asked before any optional call
	extID   map[string]string
	records map[record.Key]*record.Record

	jobs []*job
	// pending are built jobs whose writes are not sent yet.
	pending []*job
	// prefetched holds, per object, the current state of linked records
	// read up front for every level (nil when read level by level).
	prefetched map[string]map[string]connector.Record

	deleteIDs []int64
	backoffs  []backoff
	parks     []backoff
	// waited are the records whose items an earlier flush held back for
	// a missing parent.
	waited map[int64]bool

	// reobserve are records of the workspace due to be observed again
	// (known.go); reobserving those a pending read carries, and
	// observedAgain those observed, saved with the flush.
	reobserve, reobserving, observedAgain []*record.Record
	// readAt is, per object, the CRM's clock when the flush read it.
	readAt map[string]time.Time
	// path and pathReason are the batch's write path and why it read.
	path, pathReason string
	// dryRun is set on a dry run's flush: it matches and reads, decides,
	// and writes nothing (dryrun.go).
	dryRun bool
}

type backoff struct {
	ids           []int64
	until         time.Time
	code, message string
}

func (e *Engine) newFlush(ctx context.Context, c *connection.Connection) (*flush, error) {
	crm, err := e.connectors.Connector(ctx, c.Connector)
	if err != nil {
		return nil, fmt.Errorf("connector %q: %w", c.Connector, err)
	}
	meter, err := e.conns.NewMeter(c)
	if err != nil {
		return nil, err
	}
	routing := prefs.RoutingOf(c)
	return &flush{e: e, c: c, crm: crm, meter: meter, now: e.now().UTC(), claimLimit: e.cfg.MaxItems, routing: routing, names: contract.Of(routing.Contract),
		extID: externalIDFields(c.Config), records: map[record.Key]*record.Record{}, readAt: map[string]time.Time{}}, nil
}

func (f *flush) run(ctx context.Context) (*Result, error) {
	if f.e.cfg.Pace.Enabled {
		var err error
		if f.pace, err = f.e.pace(ctx, f.e.db, f.c, f.now); err != nil {
			return nil, err
		}
		if f.pace.Wait > 0 {
			// Checked before the claim, which a dry bucket would waste:
			// whatever is queued waits and coalesces.
			return &Result{Wait: f.pace.Wait}, nil
		}
	}
	if wait, err := f.settleBulkJobs(ctx); err != nil || wait > 0 {
		// A bulk job from before a restart is still being worked: what
		// it writes must be known before its records are matched again.
		if err == nil {
			err = f.commit(ctx, nil) // the settle call's count
		}
		if err != nil {
			return nil, err
		}
		return &Result{Wait: wait}, nil
	}
	items, err := outbound.Claim(ctx, f.e.db, f.c.WorkspaceID, f.now, f.claimLimit)
	if err != nil {
		return nil, err
	}
	f.claimed = len(items)
	if len(items) == 0 {
		return &Result{}, f.e.Resume(ctx, f.c)
	}
	batch := &synclog.Batch{WorkspaceID: f.c.WorkspaceID, Direction: synclog.Outbound, StartedAt: f.now}
	if err := f.plan(ctx, items); err != nil {
		return nil, err
	}
	if caps, err := f.e.descs.Capabilities(ctx, f.c, f.crm); err == nil {
		// The budget checks plan the connector's bulk path as the forecast
		// does; a failure is the connector's and is met again below.
		f.caps = caps
	}
	if reason, detail, err := f.checkBudget(ctx); err != nil || reason != PauseNone {
		if err != nil {
			return nil, err
		}
		return f.e.Pause(ctx, f.c, synclog.Outbound, reason, detail)
	}
	if f.pace.Enabled && f.pace.Spent+int64(f.plannedCalls()) > f.pace.BudgetPerDay {
		// The daily limit is checked above; this is the share budget: the
		// batch waits until enough calls leave the window.
		return &Result{Wait: untilNextHour(f.now)}, nil
	}
	// Only a batch that goes ahead ends a pause episode: a batch refused
	// by its budget continues the one the gate let through.
	if err := f.e.Resume(ctx, f.c); err != nil {
		return nil, err
	}
	if err := f.loadReobserve(ctx); err != nil {
		return nil, err
	}
	var callErr error
	if f.caps, callErr = f.e.descs.Capabilities(ctx, f.c, f.crm); callErr == nil {
		callErr = f.tryOneCall(ctx)
	}
	if callErr == nil && len(f.openJobs()) > 0 {
		callErr = f.prefetch(ctx)
		for level := 0; level <= 2 && callErr == nil; level++ {
			callErr = f.runLevel(ctx, level)
		}
		if callErr == nil {
			callErr = f.writePending(ctx)
		}
	}
	if errors.Is(callErr, connector.ErrRateLimited) {
		// Hold further calls at the gate until a fresh reading says otherwise.
		if err := f.markSpent(ctx); err != nil {
			return nil, err
		}
	}
	if callErr != nil && errors.Is(callErr, connector.ErrCredentials) {
		if err := f.e.conns.MarkExpired(ctx, f.c, callErr.Error()); err != nil {
			return nil, err
		}
	}
	for _, j := range f.jobs {
		if (!j.done && !j.cut) || j.quiet {
			continue
		}
		batch.Records = append(batch.Records, &j.log)
		if f.waited[j.rec.ID] && j.log.Outcome != synclog.OutcomeWaiting {
			f.e.logger.Info("record released: its parent reached the CRM", slog.Int64("workspace_id", f.c.WorkspaceID),
				slog.String("record_type", string(j.rec.Type)), slog.String("record_id", j.rec.ConversionID), slog.String("outcome", string(j.log.Outcome)))
		}
	}
	if len(batch.Records) == 0 && callErr == nil {
		// Only records still waiting, already logged as such: a new
		// sync-log batch would repeat a non-event.
		batch = nil
	}
	if batch == nil {
		if err := f.commit(ctx, nil); err != nil {
			return nil, err
		}
		return &Result{More: len(items) == f.claimLimit}, nil
	}
	batch.FinishedAt = f.e.now().UTC()
	batch.APICalls = f.meter.Calls
	if f.meter.Calls > 0 {
		batch.WritePath, batch.WritePathReason = f.path, f.pathReason
	}
	batch.Count()
	if callErr != nil {
		batch.Status = synclog.StatusFailed
		batch.Message = callErr.Error()
	}
	if err := f.commit(ctx, batch); err != nil {
		return nil, err
	}
	f.e.notify(ctx, batch)
	f.e.logger.Info("flush done", slog.Int64("workspace_id", f.c.WorkspaceID), slog.Int("items", len(items)),
		slog.Int("records", len(f.jobs)), slog.Int("api_calls", f.meter.Calls), slog.String("status", string(batch.Status)),
		slog.String("write_path", batch.WritePath), slog.String("write_path_reason", batch.WritePathReason))
	res := &Result{Batch: batch, More: len(items) == f.claimLimit}
	if errors.Is(callErr, connector.ErrCredentials) {
		pr, err := f.e.Pause(ctx, f.c, synclog.Outbound, PauseConnectionExpired, "")
		if err != nil {
			return nil, err
		}
		res.Paused = pr.Paused
		return res, nil
	}
	if callErr != nil {
		return res, fmt.Errorf("flush workspace %d: %w", f.c.WorkspaceID, callErr)
	}
	return res, nil
}

// plan loads what the flush needs and builds one job per record.
func (f *flush) plan(ctx context.Context, items []outbound.Item) error {
	f.waited = map[int64]bool{}
	for _, it := range items {
		if it.ErrorCode == outbound.CodeWaitingForParent {
			f.waited[it.RecordID] = true
		}
	}
	writes := outbound.Coalesce(items)
	ids := make([]int64, len(writes))
	for i, w := range writes {
		ids[i] = w.RecordID
	}
	recs, err := record.ByIDs(ctx, f.e.db, f.c.WorkspaceID, ids)
	if err != nil {
		return err
	}
	return f.planWrites(ctx, writes, recs)
}

// planWrites builds one job per coalesced write of the given records.
func (f *flush) planWrites(ctx context.Context, writes []outbound.Write, recs map[int64]*record.Record) error {
	var err error
	if f.objs, err = prefs.Objects(ctx, f.e.db, f.c.WorkspaceID); err != nil {
		return err
	}
	f.maps = map[record.Type][]prefs.FieldMapping{}
	for _, w := range writes {
		if _, ok := f.maps[w.RecordType]; ok {
			continue
		}
		if f.maps[w.RecordType], err = prefs.Fields(ctx, f.e.db, f.routing.Contract, f.c.WorkspaceID, w.RecordType); err != nil {
			return err
		}
	}
	var parents []record.Key
	for _, w := range writes {
		r := recs[w.RecordID]
		if r == nil { // the record is gone: nothing to write
			f.deleteIDs = append(f.deleteIDs, w.ItemIDs...)
			continue
		}
		f.records[record.Key{Type: r.Type, ID: r.ConversionID}] = r
		j := &job{w: w, rec: r, level: levels[r.Type], object: r.CRMObject, crmID: r.CRMID, linked: r.CRMID != ""}
		j.log = synclog.Record{RecordType: r.Type, ConversionID: r.ConversionID}
		if j.object == "" {
			j.object = f.objectFor(r.Type)
		}
		if !f.objs[r.Type].WriteEnabled {
			f.finish(j, synclog.OutcomeSkipped, "writing to the CRM is off for "+string(r.Type), "")
			f.deleteIDs = append(f.deleteIDs, w.ItemIDs...)
		} else if !f.routing.Supported(r.Type) {
			// Queued before the connection changed to a connector
			// without the type's object: kept local, never a failure.
			f.finish(j, synclog.OutcomeSkipped, f.routing.Why(r.Type), "")
			f.deleteIDs = append(f.deleteIDs, w.ItemIDs...)
		}
		f.jobs = append(f.jobs, j)
		parents = append(parents, parentKeys(r)...)
	}
	var missing []record.Key
	for _, k := range parents {
		if _, ok := f.records[k]; !ok {
			missing = append(missing, k)
		}
	}
	loaded, err := record.ByKeys(ctx, f.e.db, f.c.WorkspaceID, missing)
	if err != nil {
		return err
	}
	for k, r := range loaded {
		f.records[k] = r
	}
	return nil
}

// objectFor is the object a new record of type t is created in: a contact
// in the prospect object unless the workspace creates contacts as persons
// or the CRM has no prospect object.
func (f *flush) objectFor(t record.Type) string {
	n := f.names
	switch t {
	case record.TypeContact:
		if f.objs[t].CreateAs == prefs.CreateAsContact || n.Prospect == "" {
			return n.Person
		}
		return n.Prospect
	case record.TypeCompany:
		return n.Company
	case record.TypeCampaign:
		return n.Campaign
	case record.TypeCampaignMember:
		return n.Member
	case record.TypeTask:
		return n.Task
	}
	return ""
}

// describedWith lists the objects a write to object describes: object,
// and the person object for prospects that may have been converted.
func (f *flush) describedWith(object string) []string {
	if f.names.IsProspect(object) && f.names.Convertible() {
		return []string{object, f.names.Person}
	}
	return []string{object}
}

func parentKeys(r *record.Record) []record.Key {
	var out []record.Key
	add := func(field string, t record.Type) {
		if s, ok := r.Fields[field].Value.(string); ok && s != "" {
			out = append(out, record.Key{Type: t, ID: s})
		}
	}
	switch r.Type {
	case record.TypeContact:
		add(outbound.FieldCompanyID, record.TypeCompany)
	case record.TypeCampaignMember:
		add(outbound.FieldCampaignID, record.TypeCampaign)
		add(outbound.FieldContactID, record.TypeContact)
	case record.TypeTask:
		add(outbound.FieldContactID, record.TypeContact)
	}
	return out
}

// runLevel takes the jobs of one dependency level through match, read and
// decide; their writes join the pending ones. Pending writes are sent first
// only when a job of this level needs the CRM id of a record they create:
// in the steady state (updates) every level goes out in one BulkUpdate. A
// returned error is a whole-call connector failure.
func (f *flush) runLevel(ctx context.Context, level int) error {
	var jobs []*job
	for _, j := range f.jobs {
		if !j.done && j.level == level {
			jobs = append(jobs, j)
		}
	}
	if len(jobs) == 0 {
		return nil
	}
	if f.needsPendingCreates(jobs) {
		if err := f.writePending(ctx); err != nil {
			return err
		}
	}
	jobs = f.waitForParents(jobs)
	if err := f.describe(ctx, jobs); err != nil {
		return err
	}
	if err := f.match(ctx, jobs); err != nil {
		return err
	}
	if err := f.readCurrent(ctx, jobs); err != nil {
		return err
	}
	for _, j := range jobs {
		if !j.done && f.build(j) {
			f.pending = append(f.pending, j)
		}
	}
	return nil
}

// needsPendingCreates reports whether a job depends on a record that a
// pending write is about to create.
func (f *flush) needsPendingCreates(jobs []*job) bool {
	creating := map[int64]bool{}
	for _, p := range f.pending {
		if p.op.Kind == connector.OpCreate || p.op.Kind == connector.OpUpsert {
			creating[p.rec.ID] = true
		}
	}
	if len(creating) == 0 {
		return false
	}
	for _, j := range jobs {
		for _, k := range parentKeys(j.rec) {
			if r := f.records[k]; r != nil && creating[r.ID] {
				return true
			}
		}
	}
	return false
}

// writePending sends the pending writes in one BulkUpdate (a dry run
// only pretends to: dryrun.go).
func (f *flush) writePending(ctx context.Context) error {
	ops := f.pending
	f.pending = nil
	if f.dryRun {
		pretendCreated(ops)
		return nil
	}
	return f.write(ctx, ops)
}

// waitForParents parks jobs whose parent has no CRM id yet as waiting; it
// returns the jobs that can go on.
func (f *flush) waitForParents(jobs []*job) []*job {
	out := jobs[:0]
	for _, j := range jobs {
		if missing := f.missingParent(j); missing != "" {
			f.finish(j, synclog.OutcomeWaiting, "waiting for "+missing+" to reach the CRM", "")
			f.backoffs = append(f.backoffs, backoff{ids: j.w.ItemIDs, until: f.now.Add(f.e.cfg.WaitDelay),
				code: outbound.CodeWaitingForParent, message: "waiting for " + missing})
			j.quiet = f.waited[j.rec.ID]
			if !j.quiet {
				f.e.logger.Info("record waiting for its parent", slog.Int64("workspace_id", f.c.WorkspaceID),
					slog.String("record_type", string(j.rec.Type)), slog.String("record_id", j.rec.ConversionID), slog.String("parent", missing))
			}
			continue
		}
		out = append(out, j)
	}
	return out
}

func (f *flush) missingParent(j *job) string {
	if j.w.Op == outbound.OpRemove && j.crmID != "" {
		return ""
	}
	for _, k := range parentKeys(j.rec) {
		if k.Type == record.TypeCompany && (!f.names.IsPerson(j.object) || f.names.PersonCompany == "") {
			continue // prospects name their company as text
		}
		p := f.records[k]
		if p == nil {
			if k.Type == record.TypeCompany {
				continue // an unknown company is not a dependency: AccountId stays unset
			}
			return fmt.Sprintf("%s %q (unknown to crmsync)", k.Type, k.ID)
		}
		if p.CRMID == "" {
			return fmt.Sprintf("%s %q", k.Type, k.ID)
		}
	}
	return ""
}

func (f *flush) finish(j *job, outcome synclog.Outcome, reason, code string) {
	j.done = true
	j.log.Outcome, j.log.Reason, j.log.ErrorCode = outcome, reason, code
	j.log.CRMObject, j.log.CRMID = j.object, j.crmID
}

// describe loads the describes of the objects the jobs write, from the
// engine's cache when fresh.
func (f *flush) describe(ctx context.Context, jobs []*job) error {
	if f.desc == nil {
		f.desc = &connector.Description{}
		for _, o := range f.e.descs.Objects(f.c) {
			f.desc.Objects = append(f.desc.Objects, o)
		}
	}
	var want []string
	need := func(name string) {
		if _, ok := f.desc.Object(name); !ok && !slices.Contains(want, name) {
			want = append(want, name)
		}
	}
	for _, j := range jobs {
		for _, o := range f.describedWith(j.object) {
			need(o) // converted prospects redirect to their person
		}
	}
	if len(want) == 0 {
		return nil
	}
	d, err := f.crm.Describe(ctx, connector.DescribeRequest{Session: f.meter.Session, Objects: want})
	if err := f.meter.Observe(ctx, "describe", connection.MetaOf(d), err); err != nil {
		return err
	}
	f.desc.Objects = append(f.desc.Objects, d.Objects...)
	f.e.descs.Add(f.c, d)
	return nil
}

// commit records every outcome and the sync log (batch, unless nil) in one
// transaction.
func (f *flush) commit(ctx context.Context, batch *synclog.Batch) error {
	return f.e.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := outbound.Delete(ctx, tx, f.deleteIDs); err != nil {
			return err
		}
		for _, b := range f.backoffs {
			if err := outbound.Backoff(ctx, tx, b.ids, b.until, b.code, b.message); err != nil {
				return err
			}
		}
		for _, b := range f.parks {
			if err := outbound.Park(ctx, tx, b.ids, b.code, b.message); err != nil {
				return err
			}
		}
		if err := limits.Record(ctx, tx, f.c.WorkspaceID, f.now, f.meter.Calls); err != nil {
			return err
		}
		if err := f.spend(ctx, tx); err != nil {
			return err
		}
		if batch != nil {
			if err := synclog.Write(ctx, tx, batch); err != nil {
				return err
			}
		}
		// Last, so the records' row locks, which ingests wait for, are
		// held for as short a time as possible.
		return f.saveRecords(ctx, tx)
	})
}

// saveRecords stores the CRM link and synced values of every finished job's
// record: rows locked in id order (record.LockIDs), then one UPDATE ... FROM
// VALUES per 500 records (record.Update).
func (f *flush) saveRecords(ctx context.Context, tx bun.Tx) error {
	byID := map[int64]*record.Record{}
	for _, j := range f.jobs {
		if j.done && j.rec.ID != 0 {
			byID[j.rec.ID] = j.rec
		}
	}
	// Records observed again were loaded with only their links
	// (loadReobserve): their observation is all that is written back.
	var observed []*record.Record
	onlyObserved := map[int64]bool{}
	for _, r := range f.observedAgain {
		if _, mine := byID[r.ID]; !mine {
			byID[r.ID] = r
			observed = append(observed, r)
			onlyObserved[r.ID] = true
		}
	}
	if len(byID) == 0 {
		return nil
	}
	ids := slices.Sorted(maps.Keys(byID))
	if err := record.LockIDs(ctx, tx, ids); err != nil {
		return err
	}
	var recs []*record.Record
	for _, id := range ids {
		if !onlyObserved[id] {
			recs = append(recs, byID[id])
		}
	}
	if err := record.Update(ctx, tx, recs, "crm_object", "crm_id", "crm_fields", "crm_pending",
		"crm_stamps", "crm_pending_stamps", "create_attempted_at", "crm_known", "crm_observe_after", "updated_at"); err != nil {
		return err
	}
	return record.Update(ctx, tx, observed, "crm_known", "crm_observe_after")
}

// checkBudget refuses to start a batch whose planned calls would cross the
// crmsync daily limit.
func (f *flush) checkBudget(ctx context.Context) (PauseReason, string, error) {
	if !f.c.DailyLimit.Valid {
		return PauseNone, "", nil
	}
	used, err := limits.Used(ctx, f.e.db, f.c.WorkspaceID, f.now)
	if err != nil {
		return PauseNone, "", err
	}
	planned := f.plannedCalls()
	if used+int64(planned) > f.c.DailyLimit.Int64 {
		return PauseConversionLimit, fmt.Sprintf("the next batch needs about %d calls and %d of %d are left",
			planned, max(f.c.DailyLimit.Int64-used, 0), f.c.DailyLimit.Int64), nil
	}
	return PauseNone, "", nil
}

// plannedCalls estimates the calls of this flush before it starts, as
// the Salesforce connector spends them: the describes of objects the
// engine has not described yet (one call for all of them when no record
// waits for a parent, as tryOneCall describes up front; else one per
// dependency level; a connector answering from its own cache spends none,
// but crmsync counts every describe); the reads of linked records (2,000
// ids a retrieve, five retrieves a call, all objects and levels together);
// the matching queries of unlinked records (plannedMatchCalls); and the
// writes (plannedWriteCalls).
func (f *flush) plannedCalls() int {
	return f.callsPlanned(f.e.descs.Objects(f.c)).total()
}

// callPlan is the calls a flush plans: by REST (describes, reads,
// matching queries, sObject Collections writes) and by the connector's
// bulk path (connector.CapabilityBulk: Bulk API 2.0 jobs on Salesforce).
type callPlan struct {
	REST, Bulk int
	// BulkJobs is how many bulk jobs the Bulk calls run.
	BulkJobs int
	// Writes are the planned writes, per BulkUpdate and group: the
	// forecast times them (forecast.go).
	Writes []plannedWrite
}

// plannedWrite is one group of a planned BulkUpdate: records operations
// of one kind on one object (those of jobs), sent as one bulk job or by
// REST.
type plannedWrite struct {
	kind    connector.OpKind
	object  string
	records int
	bulk    bool
	jobs    []*job
}

func (p callPlan) total() int { return p.REST + p.Bulk }

func (p callPlan) add(q callPlan) callPlan {
	return callPlan{REST: p.REST + q.REST, Bulk: p.Bulk + q.Bulk, BulkJobs: p.BulkJobs + q.BulkJobs, Writes: slices.Concat(p.Writes, q.Writes)}
}

// Per-call capacities of the Salesforce connector that plannedCalls counts with.
const (
	idsPerRetrieve     = 2000
	retrievesPerCall   = 5
	writesPerCall      = 1000
	queryBytesPerCall  = 5 * 11_800 // five SOQL queries of 12,000 URL-encoded bytes, less their SELECT
	queryBytesPerValue = 9          // quotes and comma around each literal, URL-encoded
	// bulkJobCalls is what one Bulk API 2.0 ingest job costs the
	// connector (connectors/salesforce/bulk.go): create, upload and close
	// (writes), one status poll and the successful results' download
	// (reads). A job the org works for longer is polled more (the polls
	// back off from 1 s to 15 s: a 100 s job about 10 times); one with
	// failed rows downloads those too.
	bulkJobCalls = 5
)

// callsPlanned is plannedCalls with the objects already described given:
// the forecast (forecast.go) plans flushes after the first one, whose
// describes are paid by then.
func (f *flush) callsPlanned(cached map[string]connector.Object) callPlan {
	describes := map[int]bool{}
	linked := map[string]int{}
	upfront := true
	for _, j := range f.jobs {
		if j.done {
			continue
		}
		for _, o := range f.describedWith(j.object) {
			if _, ok := cached[o]; !ok {
				describes[j.level] = true
			}
		}
		if j.crmID != "" {
			linked[j.object]++
		}
		if f.missingParent(j) != "" {
			upfront = false // tryOneCall does not describe; each level does
		}
	}
	calls := len(describes)
	if upfront {
		calls = min(calls, 1)
	}
	retrieves := 0
	for _, n := range linked {
		retrieves += ceilDiv(n, idsPerRetrieve)
	}
	calls += ceilDiv(retrieves, retrievesPerCall)
	for level := 0; level <= 2; level++ {
		calls += f.plannedMatchCalls(level)
	}
	return callPlan{REST: calls}.add(f.plannedWriteCalls())
}

// plannedMatchCalls counts the queries matching a level's unlinked
// records (match.go): the values each matcher looks up, packed into IN
// lists.
func (f *flush) plannedMatchCalls(level int) int {
	values := map[string][]string{} // per query: the values
	for _, j := range f.jobs {
		if j.done || j.level != level || j.crmID != "" {
			continue
		}
		r := j.rec
		switch r.Type {
		case record.TypeContact:
			if e := strings.ToLower(stringField(r, "email")); e != "" {
				for _, o := range []string{f.names.Person, f.names.Prospect} {
					if o != "" {
						values[o+".email"] = append(values[o+".email"], e)
					}
				}
			}
		case record.TypeCompany, record.TypeCampaign:
			if ext := f.extID[j.object]; ext != "" {
				values[j.object+"."+ext] = append(values[j.object+"."+ext], r.ConversionID)
			} else if d := record.Domain(stringField(r, "website")); d != "" && r.Type == record.TypeCompany && f.names.CompanyDomain != "" {
				values[j.object+".domain"] = append(values[j.object+".domain"], websiteValues(d)...)
			}
			if n := stringField(r, "name"); n != "" && !r.CreateAttemptedAt.IsZero() {
				values[j.object+".name"] = append(values[j.object+".name"], n)
			}
		case record.TypeCampaignMember:
			values[j.object+".campaign"] = append(values[j.object+".campaign"], stringField(r, outbound.FieldCampaignID))
		case record.TypeTask:
			if !r.CreateAttemptedAt.IsZero() {
				values[j.object+".who"] = append(values[j.object+".who"], stringField(r, outbound.FieldContactID))
			}
		}
	}
	calls := 0
	for _, vs := range values {
		bytes := 0
		for _, v := range slices.Compact(slices.Sorted(slices.Values(vs))) {
			bytes += len(url.QueryEscape(v)) + queryBytesPerValue
		}
		calls += ceilDiv(bytes, queryBytesPerCall)
	}
	return calls
}

// plannedWriteCalls counts the calls of the flush's writes: writes of
// every level go out in one BulkUpdate, except that a level with a record
// whose parent an earlier level creates sends the pending ones first
// (needsPendingCreates). Records an earlier flush of a forecast creates
// are not written again: the create sent the whole record as it stands,
// these changes included (the flush reads them and finds nothing to send).
func (f *flush) plannedWriteCalls() callPlan {
	var plan callPlan
	var pending []*job
	creating := map[int64]bool{}
	for level := 0; level <= 2; level++ {
		var jobs []*job
		for _, j := range f.jobs {
			if !j.done && j.level == level {
				jobs = append(jobs, j)
			}
		}
		if f.dependsOn(jobs, creating) {
			plan = plan.add(f.plannedSend(pending))
			pending, creating = nil, map[int64]bool{}
		}
		for _, j := range jobs {
			if j.superseded() || j.crmID == linkedByEarlierFlush {
				continue // read, decided, and not written (build)
			}
			pending = append(pending, j)
			if j.crmID == "" {
				creating[j.rec.ID] = true
			}
		}
	}
	return plan.add(f.plannedSend(pending))
}

// writeGroup is what the connector groups a BulkUpdate's operations by.
type writeGroup struct {
	kind   connector.OpKind
	object string
}

// plannedSend counts the calls of one BulkUpdate of jobs: the operations
// of one kind on one object beyond the connection's bulk threshold
// (announced with connector.CapabilityBulk) as one bulk job, the rest by
// sObject Collections, writesPerCall operations a call.
func (f *flush) plannedSend(jobs []*job) callPlan {
	groups := map[writeGroup][]*job{}
	var order []writeGroup
	for _, j := range jobs {
		g := writeGroup{f.plannedOp(j), j.object}
		if groups[g] == nil {
			order = append(order, g)
		}
		groups[g] = append(groups[g], j)
	}
	threshold, bulk := f.caps.BulkThreshold()
	var plan callPlan
	rest := 0
	for _, g := range order {
		js := groups[g]
		if bulk && len(js) > threshold {
			plan.Bulk += bulkJobCalls
			plan.BulkJobs++
			plan.Writes = append(plan.Writes, plannedWrite{kind: g.kind, object: g.object, records: len(js), bulk: true, jobs: js})
			continue
		}
		rest += len(js)
		plan.Writes = append(plan.Writes, plannedWrite{kind: g.kind, object: g.object, records: len(js), jobs: js})
	}
	plan.REST = ceilDiv(rest, writesPerCall)
	return plan
}

// plannedOp is the kind of operation build will make of a job, as far as
// the plan can tell: an unlinked record that matching finds is updated,
// not created, which the plan cannot know.
func (f *flush) plannedOp(j *job) connector.OpKind {
	switch {
	case j.w.Op == outbound.OpRemove:
		return connector.OpDelete
	case j.crmID != "":
		return connector.OpUpdate
	case f.extID[j.object] != "" && f.caps.Has(connector.CapabilityUpsert):
		return connector.OpUpsert
	}
	return connector.OpCreate
}

// dependsOn reports whether a job has a parent among the records being
// created.
func (f *flush) dependsOn(jobs []*job, creating map[int64]bool) bool {
	if len(creating) == 0 {
		return false
	}
	for _, j := range jobs {
		for _, k := range parentKeys(j.rec) {
			if r := f.records[k]; r != nil && creating[r.ID] {
				return true
			}
		}
	}
	return false
}

// superseded reports a linked record whose queued changes are all
// superseded by newer values in Conversion: build sends none of them.
func (j *job) superseded() bool {
	if j.crmID == "" || j.fresh || j.w.Op == outbound.OpRemove || len(j.w.Fields) == 0 {
		return false
	}
	for name, fs := range j.w.Fields {
		if !fs.Superseded && !j.rec.Fields[name].Supersedes(fs) {
			return false
		}
	}
	return true
}

func ceilDiv(n, d int) int { return (n + d - 1) / d }

// markSpent stores a spent allowance after the CRM refused a call for it.
func (f *flush) markSpent(ctx context.Context) error {
	used, maxCalls := f.c.APIUsed.Int64, f.c.APIMax.Int64
	if maxCalls <= 0 || used < maxCalls {
		maxCalls = max(maxCalls, 1)
		used = maxCalls
	}
	return f.e.conns.Observe(ctx, f.c, connector.Meta{Usage: &connector.Usage{Used: used, Max: maxCalls, ObservedAt: f.e.now().UTC()}})
}
