package graph

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/crmsync/crmsync/graph/model"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/inbound"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/overview"
	"github.com/crmsync/crmsync/internal/prefs"
	"github.com/crmsync/crmsync/internal/record"
	"github.com/crmsync/crmsync/internal/synclog"
)

// maxPageSize bounds every paginated list.
const maxPageSize = 100

func pageSize(first *int, def int) (int, error) {
	if first == nil {
		return def, nil
	}
	if *first < 1 || *first > maxPageSize {
		return 0, &Error{CodeBadUserInput, fmt.Sprintf("first must be between 1 and %d, got %d", maxPageSize, *first)}
	}
	return *first, nil
}

// Cursors are opaque to clients: base64 of "<kind>:<id>".
func encodeCursor(kind string, id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + ":" + strconv.FormatInt(id, 10)))
}

func decodeCursor(kind string, after *string) (int64, error) {
	if after == nil || *after == "" {
		return 0, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(*after)
	prefix := kind + ":"
	if err == nil && strings.HasPrefix(string(raw), prefix) {
		if id, err := strconv.ParseInt(strings.TrimPrefix(string(raw), prefix), 10, 64); err == nil && id > 0 {
			return id, nil
		}
	}
	return 0, &Error{CodeBadUserInput, fmt.Sprintf("after %q is not a cursor of this list", *after)}
}

func toJSON(v any) model.JSON {
	b, err := json.Marshal(v)
	if err != nil {
		return model.JSON("null")
	}
	return model.JSON(b)
}

func connectionModel(c *connection.Connection) *model.CrmConnection {
	return &model.CrmConnection{
		ID: c.ID, Connector: c.Connector, Status: c.Status, StatusReason: c.StatusReason,
		Identity:  &model.CrmIdentity{UserID: c.IdentityUserID, Username: c.IdentityUsername, OrgID: c.IdentityOrgID, InstanceURL: c.InstanceURL},
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
	}
}

func objectPrefModel(p prefs.ObjectPreference, routing prefs.Routing) *model.ObjectSyncPreference {
	return &model.ObjectSyncPreference{RecordType: p.RecordType, WriteEnabled: p.WriteEnabled, Supported: routing.Supported(p.RecordType),
		ReadEnabled: p.ReadEnabled, CreateAs: p.CreateAs}
}

func fieldPrefModel(m prefs.FieldMapping) *model.FieldSyncPreference {
	return &model.FieldSyncPreference{RecordType: m.RecordType, Field: m.Field, CrmField: m.CRMField, Mode: m.Mode}
}

func batchModel(b *synclog.Batch) *model.SyncBatch {
	out := &model.SyncBatch{
		ID: b.ID, Direction: b.Direction, Status: b.Status, Message: b.Message,
		StartedAt: b.StartedAt, FinishedAt: b.FinishedAt, Created: b.Created, Updated: b.Updated, Deleted: b.Deleted,
		Skipped: b.Skipped, Failed: b.Failed, Waiting: b.Waiting, APICalls: b.APICalls,
	}
	if b.WritePath != "" {
		out.WritePath = &b.WritePath
	}
	if b.WritePathReason != "" {
		out.WritePathReason = &b.WritePathReason
	}
	return out
}

// batchRecordCount is how many records a batch logged: every record has
// exactly one outcome, and each outcome has its counter.
func batchRecordCount(b *model.SyncBatch) int {
	return b.Created + b.Updated + b.Deleted + b.Skipped + b.Failed + b.Waiting
}

func batchRecordModel(r *synclog.Record) *model.SyncBatchRecord {
	out := &model.SyncBatchRecord{RecordType: r.RecordType, RecordID: r.ConversionID, CrmObject: r.CRMObject,
		CrmID: r.CRMID, Outcome: r.Outcome, Reason: r.Reason, ErrorCode: r.ErrorCode,
		Fields: make([]*model.FieldDecision, 0, len(r.Fields))}
	for _, f := range r.Fields {
		out.Fields = append(out.Fields, &model.FieldDecision{Field: f.Field, CrmField: f.CRMField, Mode: f.Mode,
			Value: toJSON(f.Value), Sent: f.Sent, Reason: f.Reason})
	}
	return out
}

func overviewModel(o overview.Overview) *model.SyncOverview {
	out := &model.SyncOverview{
		ConversionDailyLimit: &model.ConversionDailyLimit{Used: int(o.ConversionUsed)},
		CrmDailyLimit:        &model.CRMDailyLimit{},
		QueuedBatchItems:     o.Queued - o.Waiting,
		WaitingItems:         o.Waiting,
		FailedItems:          o.Failed,
		Paused:               o.Paused,
	}
	for _, t := range record.AllTypes {
		out.QueuedByRecordType = append(out.QueuedByRecordType, &model.QueuedCount{RecordType: t, Queued: o.QueuedByType[t]})
	}
	for _, h := range o.CallsByHour {
		out.APICallsByHour = append(out.APICallsByHour, &model.HourlyCalls{Hour: h.Hour, Calls: int(h.Calls)})
	}
	if o.ConversionLimit != nil {
		l := int(*o.ConversionLimit)
		out.ConversionDailyLimit.Limit = &l
	}
	if o.CRMUsed != nil {
		u := int(*o.CRMUsed)
		out.CrmDailyLimit.Used = &u
	}
	if o.CRMMax != nil {
		m := int(*o.CRMMax)
		out.CrmDailyLimit.Max = &m
	}
	if !o.CRMObservedAt.IsZero() {
		out.CrmDailyLimit.ObservedAt = &o.CRMObservedAt
	}
	out.SalesforceDailyLimit = &model.SalesforceDailyLimit{Used: out.CrmDailyLimit.Used, Max: out.CrmDailyLimit.Max, ObservedAt: out.CrmDailyLimit.ObservedAt}
	if !o.OldestQueued.IsZero() {
		out.OldestQueuedAt = &o.OldestQueued
	}
	if !o.LastBatchAt.IsZero() {
		out.LastBatchAt = &o.LastBatchAt
	}
	if p := o.Pace; p.Enabled {
		out.Pacing = &model.SyncPacing{BudgetPerDay: int(p.BudgetPerDay), BudgetSource: p.Source, Spent: int(p.Spent),
			Tokens: p.Tokens, Burst: p.Burst, CallsPerHour: p.Rate * 3600, WaitSeconds: p.Wait.Seconds()}
	}
	if o.PauseReason != "" {
		r := model.PauseReason(o.PauseReason)
		if r == model.PauseReasonSalesforceLimit && o.Connector != "salesforce" {
			r = model.PauseReasonCrmLimit // the product speaks of Salesforce only for Salesforce
		}
		out.PauseReason = &r
	}
	out.Inbound = inboundModel(o.Inbound, time.Now())
	out.ConnectionStatusReason = o.ConnectionStatusReason
	out.UnsupportedRecordTypes = []*model.UnsupportedRecordType{}
	for _, u := range o.Unsupported {
		m := &model.UnsupportedRecordType{RecordType: u.RecordType, Changes: int(u.Changes)}
		if !u.LastAt.IsZero() {
			at := u.LastAt
			m.LastChangeAt = &at
		}
		out.UnsupportedRecordTypes = append(out.UnsupportedRecordTypes, m)
	}
	if o.ConnectionStatus != "" {
		s := o.ConnectionStatus
		out.ConnectionStatus = &s
	}
	out.Bulk = &model.BulkUsage{RunningJobs: o.Bulk.Running, Jobs: o.Bulk.Jobs, Records: int(o.Bulk.Records), Batches: int(o.Bulk.Batches)}
	if p := o.Progress; p != nil {
		out.Progress = &model.SyncProgress{RecordsDone: int(p.Done), RecordsRemaining: int(p.Remaining), RecordsTotal: int(p.Total()),
			RecordsPerMinute: p.PerMinute, Since: p.Since}
		if !p.ETA.IsZero() {
			eta := p.ETA
			out.Progress.Eta = &eta
		}
	}
	return out
}

// changesOf converts recordChanges input to domain changes, collecting every
// problem at once.
func changesOf(input []*model.RecordChangeInput, now time.Time) ([]outbound.Change, error) {
	if len(input) > outbound.MaxChanges {
		return nil, &outbound.InputError{Problems: []outbound.Problem{{Index: outbound.MaxChanges,
			Message: fmt.Sprintf("at most %d changes per call, got %d", outbound.MaxChanges, len(input))}}}
	}
	out := make([]outbound.Change, 0, len(input))
	var probs []outbound.Problem
	for i, in := range input {
		src := record.Source(in.Source)
		if in.RecordType == record.TypeCampaignMember {
			if in.Membership == nil {
				probs = append(probs, outbound.Problem{Index: i, Message: "a CAMPAIGN_MEMBER change names a membership"})
				continue
			}
			m := in.Membership
			c, err := outbound.Membership(m.CampaignID, m.ContactID, m.Action, m.Status, src, now)
			if err != nil {
				probs = append(probs, outbound.Problem{Index: i, Message: err.Error()})
				continue
			}
			out = append(out, c)
			continue
		}
		if in.RecordType == record.TypeTask {
			probs = append(probs, outbound.Problem{Index: i, Message: "tasks are created with runWorkflowAction"})
			continue
		}
		c := outbound.Change{Type: in.RecordType, Source: src, Fields: make(map[string]outbound.FieldChange, len(in.Fields))}
		if in.RecordID != nil {
			c.ID = *in.RecordID
		}
		for _, f := range in.Fields {
			var v any
			if len(f.Value) > 0 {
				if err := json.Unmarshal(f.Value, &v); err != nil {
					probs = append(probs, outbound.Problem{Index: i, Field: f.Name, Message: "value is not JSON"})
					continue
				}
			}
			if _, dup := c.Fields[f.Name]; dup {
				probs = append(probs, outbound.Problem{Index: i, Field: f.Name, Message: "field named twice"})
				continue
			}
			fc := outbound.FieldChange{Value: v, ChangedAt: now}
			if f.ChangedAt != nil {
				fc.ChangedAt = *f.ChangedAt
			}
			c.Fields[f.Name] = fc
		}
		out = append(out, c)
	}
	if len(probs) > 0 {
		return nil, &outbound.InputError{Problems: probs}
	}
	return out, nil
}

func (r *Resolver) overviewOf(ctx context.Context) (*model.SyncOverview, error) {
	ws, err := WorkspaceID(ctx)
	if err != nil {
		return nil, err
	}
	o, err := r.Overview.Get(ctx, ws, time.Now())
	if err != nil {
		return nil, err
	}
	return overviewModel(o), nil
}

func inboundModel(st *inbound.StreamState, now time.Time) *model.InboundSync {
	out := &model.InboundSync{Mode: inbound.ModePolling, Reason: "never streamed"}
	if st == nil {
		return out
	}
	mode, reason := st.Effective(now)
	out.Mode, out.Reason = mode, reason
	out.StreamEvents, out.Fallbacks, out.LastFallbackReason = int(st.EventsApplied), int(st.Fallbacks), st.LastFallbackReason
	if !st.LastEventAt.IsZero() {
		t := st.LastEventAt.Time
		out.LastEventAt = &t
	}
	if mode == inbound.ModeStreaming && !st.LastCommitAt.IsZero() {
		lag := max(now.Sub(st.LastCommitAt).Seconds(), 0)
		out.StreamLagSeconds = &lag
	}
	return out
}
