package outbound

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/internal/prefs"
	"github.com/crmsync/crmsync/internal/record"
)

// MaxChanges is the most changes one Ingest call accepts.
const MaxChanges = 5000

// Change is one change made in Conversion.
type Change struct {
	Type record.Type
	// ID is the Conversion record id. For campaign members it is derived
	// from the campaign and contact ids (see MemberID).
	ID     string
	Fields map[string]FieldChange
	Source record.Source
	// Op is OpUpsert (the default) or OpRemove (a contact leaving a campaign).
	Op Op
}

// FieldChange is a field's new value (nil clears it) and when it changed;
// a zero ChangedAt means now.
type FieldChange struct {
	Value     any
	ChangedAt time.Time
}

// Structural fields link records to each other; they are always sent, not
// governed by field modes.
const (
	FieldCompanyID  = "companyId"  // CONTACT → COMPANY (Contact.AccountId)
	FieldCampaignID = "campaignId" // CAMPAIGN_MEMBER → CAMPAIGN
	FieldContactID  = "contactId"  // CAMPAIGN_MEMBER, TASK → CONTACT
	FieldOwnerID    = "ownerId"    // CONTACT: Lead.OwnerId (queue assignment)
)

// MemberID is the Conversion id of a campaign membership.
func MemberID(campaignID, contactID string) string { return campaignID + "/" + contactID }

// Problem is what is wrong with one change.
type Problem struct {
	Index   int
	Field   string
	Message string
}

// InputError lists every problem found in a batch of changes. Nothing of the
// batch was applied.
type InputError struct {
	Problems []Problem
}

func (e *InputError) Error() string {
	msgs := make([]string, 0, min(len(e.Problems), 5))
	for _, p := range e.Problems[:min(len(e.Problems), 5)] {
		where := fmt.Sprintf("change %d", p.Index)
		if p.Field != "" {
			where += " field " + p.Field
		}
		msgs = append(msgs, where+": "+p.Message)
	}
	more := ""
	if len(e.Problems) > 5 {
		more = fmt.Sprintf(" (and %d more)", len(e.Problems)-5)
	}
	return "invalid changes: " + strings.Join(msgs, "; ") + more
}

// Scheduler schedules a flush of a workspace's queue in the transaction
// that queued the items, so a committed item always has a flush coming.
type Scheduler interface {
	ScheduleFlushTx(ctx context.Context, tx bun.Tx, workspaceID int64) error
}

// Notifier learns that a workspace's queue changed (for live overviews).
type Notifier interface {
	QueueChanged(ctx context.Context, workspaceID int64)
}

// Ingester accepts changes: it updates records and queues items for the
// types written to the CRM, in one transaction with the flush job.
type Ingester struct {
	db       *bun.DB
	sched    Scheduler
	notifier Notifier
	now      func() time.Time
}

// NewIngester returns an Ingester. notifier may be nil.
func NewIngester(db *bun.DB, sched Scheduler, notifier Notifier) *Ingester {
	return &Ingester{db: db, sched: sched, notifier: notifier, now: time.Now}
}

// IngestResult says what an Ingest call did.
type IngestResult struct {
	Accepted int
	Queued   int
}

var fieldName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,63}$`)

// Validate checks a batch of changes and returns an *InputError listing
// every problem, or nil.
func Validate(changes []Change, now time.Time) error {
	var probs []Problem
	add := func(i int, field, format string, args ...any) {
		probs = append(probs, Problem{Index: i, Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if len(changes) > MaxChanges {
		return &InputError{Problems: []Problem{{Index: MaxChanges, Message: fmt.Sprintf("at most %d changes per call, got %d", MaxChanges, len(changes))}}}
	}
	for i, c := range changes {
		if !c.Type.Valid() {
			add(i, "", "unknown record type %q", c.Type)
		}
		if c.ID == "" || len(c.ID) > 255 {
			add(i, "", "record id must be 1 to 255 characters")
		}
		if !c.Source.Valid() {
			add(i, "", "unknown source %q", c.Source)
		}
		if c.Op != "" && c.Op != OpUpsert && c.Op != OpRemove {
			add(i, "", "unknown operation %q", c.Op)
		}
		if c.Op == OpRemove && c.Type != record.TypeCampaignMember {
			add(i, "", "only campaign memberships can be removed")
		}
		if c.Op != OpRemove && len(c.Fields) == 0 {
			add(i, "", "no fields changed")
		}
		for name, f := range c.Fields {
			if !fieldName.MatchString(name) {
				add(i, name, "invalid field name")
				continue
			}
			switch v := f.Value.(type) {
			case nil, bool, float64, int, int64:
			case string:
				if len(v) > 32_000 {
					add(i, name, "value longer than 32,000 characters")
				}
			default:
				add(i, name, "value must be a string, number, boolean or null")
			}
			if f.ChangedAt.After(now.Add(time.Hour)) {
				add(i, name, "changedAt %s is in the future", f.ChangedAt.Format(time.RFC3339))
			}
		}
	}
	if len(probs) > 0 {
		return &InputError{Problems: probs}
	}
	return nil
}

// Ingest validates changes and applies them whole or not at all.
func (in *Ingester) Ingest(ctx context.Context, workspaceID int64, changes []Change) (IngestResult, error) {
	now := in.now().UTC()
	if err := Validate(changes, now); err != nil {
		return IngestResult{}, err
	}
	var res IngestResult
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		res, err = in.ingestTx(ctx, workspaceID, changes, now)
		if err == nil || !retryable(err) {
			break
		}
		// A concurrent ingest created one of the same records first (the
		// retry sees it and merges into it), or PostgreSQL broke a lock
		// cycle with the flush's commit: the whole transaction is retried.
	}
	if err == nil && res.Queued > 0 && in.notifier != nil {
		in.notifier.QueueChanged(ctx, workspaceID)
	}
	return res, err
}

func (in *Ingester) ingestTx(ctx context.Context, workspaceID int64, changes []Change, now time.Time) (IngestResult, error) {
	res := IngestResult{Accepted: len(changes)}
	err := in.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		objs, err := prefs.Objects(ctx, tx, workspaceID)
		if err != nil {
			return err
		}
		recs, err := lockRecords(ctx, tx, workspaceID, changes)
		if err != nil {
			return err
		}
		// Merge every change into its record, latest change per field wins.
		itemFields := make([]record.Fields, len(changes))
		for i, c := range changes {
			key := record.Key{Type: c.Type, ID: c.ID}
			r := recs[key]
			if r == nil {
				r = &record.Record{WorkspaceID: workspaceID, Type: c.Type, ConversionID: c.ID,
					Fields: record.Fields{}, CRMFields: map[string]any{}, CRMPending: map[string]any{}, CreatedAt: now}
				recs[key] = r
			}
			r.UpdatedAt = now
			fs := make(record.Fields, len(c.Fields))
			for name, f := range c.Fields {
				at := f.ChangedAt
				if at.IsZero() {
					at = now
				}
				st := record.FieldState{Value: normalize(f.Value), ChangedAt: at.UTC(), Source: c.Source}
				fs[name] = st
				if prev, ok := r.Fields[name]; !ok || !prev.ChangedAt.After(st.ChangedAt) {
					r.Fields[name] = st
				}
			}
			itemFields[i] = fs
		}
		if err := saveRecords(ctx, tx, workspaceID, recs); err != nil {
			return err
		}
		var items []Item
		for i, c := range changes {
			if !objs[c.Type].WriteEnabled {
				continue
			}
			op := c.Op
			if op == "" {
				op = OpUpsert
			}
			items = append(items, Item{WorkspaceID: workspaceID, RecordID: recs[record.Key{Type: c.Type, ID: c.ID}].ID,
				RecordType: c.Type, Op: op, Fields: itemFields[i], Source: c.Source, State: StateQueued, CreatedAt: now})
		}
		res.Queued = len(items)
		if len(items) == 0 {
			return nil
		}
		for chunk := range chunks(items, 1000) {
			if _, err := tx.NewInsert().Model(&chunk).Exec(ctx); err != nil {
				return fmt.Errorf("queue %d items: %w", len(chunk), err)
			}
		}
		return in.sched.ScheduleFlushTx(ctx, tx, workspaceID)
	})
	if err != nil {
		return IngestResult{}, fmt.Errorf("ingest %d changes for workspace %d: %w", len(changes), workspaceID, err)
	}
	return res, nil
}

// lockRecords loads the records the changes touch, locking them on
// PostgreSQL so concurrent ingests of one record merge one after the other
// (SQLite serializes writers anyway).
func lockRecords(ctx context.Context, tx bun.Tx, workspaceID int64, changes []Change) (map[record.Key]*record.Record, error) {
	seen := make(map[record.Key]bool, len(changes))
	byType := map[record.Type][]string{}
	for _, c := range changes {
		k := record.Key{Type: c.Type, ID: c.ID}
		if !seen[k] {
			seen[k] = true
			byType[c.Type] = append(byType[c.Type], c.ID)
		}
	}
	out := make(map[record.Key]*record.Record, len(seen))
	// Lock in one global order (type, then id) so concurrent ingests never
	// wait on each other in a cycle.
	types := make([]record.Type, 0, len(byType))
	for t := range byType {
		types = append(types, t)
	}
	slices.Sort(types)
	for _, t := range types {
		ids := byType[t]
		slices.Sort(ids)
		for chunk := range chunks(ids, 500) {
			var rs []*record.Record
			q := tx.NewSelect().Model(&rs).Where("workspace_id = ? AND type = ?", workspaceID, t).
				Where("conversion_id IN (?)", bun.List(chunk)).OrderExpr("id")
			if tx.Dialect().Name().String() == "pg" {
				q = q.For("UPDATE")
			}
			if err := q.Scan(ctx); err != nil {
				return nil, fmt.Errorf("load %s records: %w", t, err)
			}
			for _, r := range rs {
				out[record.Key{Type: r.Type, ID: r.ConversionID}] = r
			}
		}
	}
	return out, nil
}

func saveRecords(ctx context.Context, tx bun.Tx, workspaceID int64, recs map[record.Key]*record.Record) error {
	var fresh, existing []*record.Record
	for _, r := range recs {
		if r.ID == 0 {
			fresh = append(fresh, r)
		} else {
			existing = append(existing, r)
		}
	}
	for chunk := range chunks(fresh, 500) {
		if _, err := tx.NewInsert().Model(&chunk).Returning("id").Exec(ctx); err != nil {
			return fmt.Errorf("insert %d records: %w", len(chunk), err)
		}
	}
	// One statement per chunk (UPDATE ... FROM VALUES), not one per record.
	for chunk := range chunks(existing, 500) {
		if _, err := tx.NewUpdate().Model(&chunk).Column("fields", "updated_at").Bulk().Exec(ctx); err != nil {
			return fmt.Errorf("update %d records: %w", len(chunk), err)
		}
	}
	return nil
}

// normalize makes integer values float64, as JSON decoding would.
func normalize(v any) any {
	switch n := v.(type) {
	case int:
		return float64(n)
	case int64:
		return float64(n)
	}
	return v
}

// retryable reports a transaction failure that a retry resolves: a unique
// violation from a concurrent insert of the same record, or a deadlock.
func retryable(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "UNIQUE constraint failed") || strings.Contains(msg, "SQLSTATE 23505") ||
		strings.Contains(msg, "duplicate key value") || strings.Contains(msg, "SQLSTATE 40P01")
}

// UserFacing marks the error as safe and useful to show to API clients.
func (*InputError) UserFacing() {}
