package push

import (
	"context"
	"fmt"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/internal/limits"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/synclog"
)

// MatchedBy says how a dry run found a record's CRM record.
type MatchedBy string

const (
	// MatchedByLink: the record was linked to its CRM record already.
	MatchedByLink MatchedBy = "LINKED"
	// MatchedByEmail: a Contact or Lead with the contact's email (or the
	// Contact a converted Lead became).
	MatchedByEmail MatchedBy = "EMAIL"
	// MatchedByExternalID: the configured external-id field holds the
	// Conversion id.
	MatchedByExternalID MatchedBy = "EXTERNAL_ID"
	// MatchedByWebsite: an Account with the company's website domain.
	MatchedByWebsite MatchedBy = "WEBSITE"
	// MatchedByName: the exact name, after a create whose outcome is unknown.
	MatchedByName MatchedBy = "NAME"
	// MatchedByMembership: the contact is already a member of the campaign.
	MatchedByMembership MatchedBy = "CAMPAIGN_MEMBER"
	// MatchedBySubject: a task of the contact with the same subject, after
	// a create whose outcome is unknown.
	MatchedBySubject MatchedBy = "SUBJECT"
	// MatchedNew: nothing found; the flush would create the record.
	MatchedNew MatchedBy = "NEW"
)

// DryRunAction is what a flush would do with a record.
type DryRunAction string

const (
	ActionCreate DryRunAction = "CREATE"
	ActionUpdate DryRunAction = "UPDATE"
	ActionDelete DryRunAction = "DELETE"
	// ActionNone: no call for the record (no field to send, writing off
	// for its type, not a member to remove); Reason says why.
	ActionNone DryRunAction = "NONE"
	// ActionWait: the record waits for a parent that is not in the CRM
	// and not created by this batch.
	ActionWait DryRunAction = "WAIT"
	// ActionFail: the flush would fail the record (its CRM record was
	// deleted, a converted Lead's Contact cannot be read).
	ActionFail DryRunAction = "FAIL"
)

// createdInDryRun stands in for the CRM id of a record a dry run would
// create, so the records of later levels that reference it plan as they
// would after the create.
const createdInDryRun = "(created by this batch)"

// DryRunRecord is what a flush would do with one record of a dry run.
type DryRunRecord struct {
	Log       synclog.Record // type, id, CRM object and id, reason and field decisions, as the sync log would say
	Action    DryRunAction
	MatchedBy MatchedBy
}

// DryRun is the outcome of a dry run: per record, in the order of their
// first change, and the API calls it made.
type DryRun struct {
	Records  []DryRunRecord
	APICalls int
}

// DryRun validates changes exactly as ingest does (an *outbound.InputError
// listing every problem), previews what ingest would store for them
// (outbound.PreviewIngest), and runs the flush's identity, read and decide
// steps on that (docs/sync.md, "Dry run"): it matches
// unlinked records against the CRM and reads the current state of linked
// and matched ones (real API calls, counted against crmsync's daily
// count and returned), decides every field with the flush's decide
// functions, and writes nothing: no queue item, record, sync log or CRM
// write. It refuses when syncing is paused for any reason but a user's
// pause (the CRM cannot be asked, or its budget is spent).
func (e *Engine) DryRun(ctx context.Context, workspaceID int64, changes []outbound.Change) (*DryRun, error) {
	p, err := outbound.PreviewIngest(ctx, e.db, workspaceID, changes, e.now().UTC())
	if err != nil {
		return nil, err
	}
	c, err := e.conns.Get(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	reason, detail, err := e.Gate(ctx, c)
	if err != nil {
		return nil, err
	}
	if reason != PauseNone && reason != PauseByUser {
		return nil, &DryRunRefused{Reason: reason, Detail: detail}
	}
	f, err := e.newFlush(ctx, c)
	if err != nil {
		return nil, err
	}
	f.dryRun = true
	err = f.planWrites(ctx, outbound.Coalesce(p.Items), p.Records)
	if err == nil {
		f.caps, err = e.descs.Capabilities(ctx, c, f.crm)
	}
	if err == nil {
		err = f.prefetch(ctx)
	}
	for level := 0; level <= 2 && err == nil; level++ {
		err = f.runLevel(ctx, level)
	}
	if rerr := limits.Record(ctx, e.db, workspaceID, f.now, f.meter.Calls); rerr != nil {
		return nil, rerr
	}
	if err != nil {
		return nil, fmt.Errorf("dry run for workspace %d: %w", workspaceID, err)
	}
	out := &DryRun{APICalls: f.meter.Calls}
	for _, j := range f.jobs {
		out.Records = append(out.Records, dryRunRecord(j))
	}
	return out, nil
}

// DryRunRefused is the error of a dry run refused because syncing is
// paused.
type DryRunRefused struct {
	Reason PauseReason
	Detail string
}

func (e *DryRunRefused) Error() string {
	msg := "dry run refused: syncing is paused (" + string(e.Reason) + ")"
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// UserFacing marks the error as safe to show to API clients.
func (*DryRunRefused) UserFacing() {}

// Code is the error's GraphQL extension code.
func (*DryRunRefused) Code() string { return "SYNC_PAUSED" }

// pretendCreated stands in for a dry run's writes that later levels
// depend on: each record about to be created gets createdInDryRun as its
// CRM id, in memory only.
func pretendCreated(jobs []*job) {
	for _, j := range jobs {
		if j.op.Kind == connector.OpCreate || j.op.Kind == connector.OpUpsert {
			j.rec.CRMObject, j.rec.CRMID = j.object, createdInDryRun
		}
	}
}

func dryRunRecord(j *job) DryRunRecord {
	r := DryRunRecord{Log: j.log, MatchedBy: j.matched}
	r.Log.CRMObject, r.Log.CRMID = j.object, j.crmID
	switch {
	case j.linked:
		r.MatchedBy = MatchedByLink
	case r.MatchedBy == "":
		r.MatchedBy = MatchedNew
	}
	if j.done {
		switch j.log.Outcome {
		case synclog.OutcomeWaiting:
			r.Action = ActionWait
		case synclog.OutcomeFailed, synclog.OutcomeRetrying:
			r.Action = ActionFail
		default:
			r.Action = ActionNone
		}
		return r
	}
	switch j.op.Kind {
	case connector.OpCreate, connector.OpUpsert:
		r.Action, r.Log.Reason = ActionCreate, "would create"
	case connector.OpDelete:
		r.Action, r.Log.Reason = ActionDelete, "would remove"
	default:
		r.Action, r.Log.Reason = ActionUpdate, "would update"
	}
	if j.redirect != "" {
		r.Log.Reason += "; " + j.redirect
	}
	return r
}
