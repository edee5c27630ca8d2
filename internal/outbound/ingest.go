package outbound

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
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
// Concurrent calls for one workspace share that transaction (group.go).
type Ingester struct {
	db       *bun.DB
	sched    Scheduler
	notifier Notifier
	observer GroupObserver
	logger   *slog.Logger
	now      func() time.Time

	maxWaiting, maxGroup int

	mu        sync.Mutex
	lanes     map[int64]*lane // by workspace
	waiting   int             // calls waiting in all lanes
	commitAvg time.Duration   // recent transaction duration
}

// NewIngester returns an Ingester. notifier may be nil.
func NewIngester(db *bun.DB, sched Scheduler, notifier Notifier, opts ...Option) *Ingester {
	in := &Ingester{db: db, sched: sched, notifier: notifier, now: time.Now,
		maxWaiting: DefaultMaxWaiting, maxGroup: DefaultMaxGroupChange, lanes: map[int64]*lane{}}
	for _, o := range opts {
		o(in)
	}
	return in
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
		} else if strings.IndexByte(c.ID, 0) >= 0 {
			add(i, "", `record id contains a NUL character (\u0000)`)
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
				if strings.IndexByte(v, 0) >= 0 {
					add(i, name, `value contains a NUL character (\u0000), which Salesforce does not accept`)
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

// Ingest validates changes and applies them whole or not at all. It
// returns once the transaction holding them committed: invalid changes are
// refused before they join a transaction (an *InputError), a refused call
// gets an *OverloadedError, and a failed transaction ErrNotCommitted.
func (in *Ingester) Ingest(ctx context.Context, workspaceID int64, changes []Change) (IngestResult, error) {
	if err := Validate(changes, in.now().UTC()); err != nil {
		return IngestResult{}, err
	}
	c := &call{changes: changes, arrived: in.now(), done: make(chan callOutcome, 1)}
	if err := in.enqueue(workspaceID, c); err != nil {
		if in.observer != nil {
			in.observer.CallRejected()
		}
		return IngestResult{}, err
	}
	select {
	case out := <-c.done:
		return out.res, out.err
	case <-ctx.Done():
		if in.withdraw(workspaceID, c) {
			return IngestResult{}, fmt.Errorf("ingest %d changes for workspace %d: nothing applied: %w", len(changes), workspaceID, ctx.Err())
		}
	}
	// Already in a transaction: its outcome is the answer.
	out := <-c.done
	return out.res, out.err
}

// ingestTx applies changes in one transaction and reports, per change,
// whether it queued an item. The changes may come from several calls (a
// group), in arrival order: each record's changes merge in that order.
func (in *Ingester) ingestTx(ctx context.Context, workspaceID int64, changes []Change, now time.Time) ([]bool, error) {
	queued := make([]bool, len(changes))
	err := in.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		objs, err := prefs.Objects(ctx, tx, workspaceID)
		if err != nil {
			return err
		}
		routing, err := prefs.LoadRouting(ctx, tx, workspaceID)
		if err != nil {
			return err
		}
		recs, err := loadRecords(ctx, tx, workspaceID, changes, now)
		if err != nil {
			return err
		}
		var items []Item
		unsupported := map[record.Type]int64{}
		for i, c := range changes {
			if !objs[c.Type].WriteEnabled {
				continue
			}
			if !routing.Supported(c.Type) {
				// Kept local and counted: the connector has no object
				// for it, so sending it would only park a failure.
				unsupported[c.Type]++
				continue
			}
			op := c.Op
			if op == "" {
				op = OpUpsert
			}
			queued[i] = true
			r := recs[record.Key{Type: c.Type, ID: c.ID}]
			items = append(items, Item{WorkspaceID: workspaceID, RecordID: r.ID,
				RecordType: c.Type, Op: op, Fields: markSuperseded(fieldStates(c, now), r), Source: c.Source, State: StateQueued, CreatedAt: now})
		}
		if len(unsupported) > 0 {
			if err := prefs.CountUnsupported(ctx, tx, workspaceID, unsupported, now); err != nil {
				return err
			}
		}
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
		return nil, fmt.Errorf("ingest %d changes for workspace %d: %w", len(changes), workspaceID, err)
	}
	return queued, nil
}

// fieldStates is what a change says of each of its fields.
func fieldStates(c Change, now time.Time) record.Fields {
	fs := make(record.Fields, len(c.Fields))
	for name, f := range c.Fields {
		at := f.ChangedAt
		if at.IsZero() {
			at = now
		}
		fs[name] = record.FieldState{Value: normalize(f.Value), ChangedAt: at.UTC(), Source: c.Source}
	}
	return fs
}

// markSuperseded marks the fields of a change that the record, with every
// change of the call (of its group, under group commit) merged, holds a
// newer value of (record.FieldState.
// Supersedes): the item keeps them for the sync log, and they are never
// sent.
func markSuperseded(fs record.Fields, r *record.Record) record.Fields {
	for name, st := range fs {
		if r.Fields[name].Supersedes(st) {
			st.Superseded = true
			fs[name] = st
		}
	}
	return fs
}

// merge applies a change to a record (record.Fields.Keep per field).
func merge(r *record.Record, c Change, now time.Time) {
	r.UpdatedAt = now
	for name, st := range fieldStates(c, now) {
		r.Fields.Keep(name, st)
	}
}

// loadRecords merges the changes into the records they touch and stores
// them, so concurrent ingests of one record merge one after the other, and
// returns the records by key. Records that do not exist yet are inserted
// first (ON CONFLICT DO NOTHING, in key order); those a concurrent ingest
// created first, and all others, are then locked in id order (record.Lock),
// the order every writer of records uses. An ingest waits for another only
// on a row that one holds, and it holds none while it waits on an insert, so
// concurrent ingests never deadlock and never fail on each other's inserts.
func loadRecords(ctx context.Context, tx bun.Tx, workspaceID int64, changes []Change, now time.Time) (map[record.Key]*record.Record, error) {
	byKey := make(map[record.Key][]Change, len(changes))
	keys := make([]record.Key, 0, len(changes))
	for _, c := range changes {
		k := record.Key{Type: c.Type, ID: c.ID}
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], c)
	}
	ids, err := record.IDsByKeys(ctx, tx, workspaceID, keys)
	if err != nil {
		return nil, err
	}
	out := make(map[record.Key]*record.Record, len(keys))
	var fresh []*record.Record
	for _, k := range keys {
		if _, ok := ids[k]; ok {
			continue
		}
		r := &record.Record{WorkspaceID: workspaceID, Type: k.Type, ConversionID: k.ID,
			Fields: record.Fields{}, CRMFields: map[string]any{}, CRMPending: map[string]any{}, CreatedAt: now}
		for _, c := range byKey[k] {
			merge(r, c, now)
		}
		fresh = append(fresh, r)
	}
	inserted, err := insertRecords(ctx, tx, fresh)
	if err != nil {
		return nil, err
	}
	var lost []record.Key // created by a concurrent ingest first
	for _, r := range fresh {
		k := record.Key{Type: r.Type, ID: r.ConversionID}
		if id, ok := inserted[k]; ok {
			r.ID = id
			out[k] = r
		} else {
			lost = append(lost, k)
		}
	}
	if len(lost) > 0 {
		more, err := record.IDsByKeys(ctx, tx, workspaceID, lost)
		if err != nil {
			return nil, err
		}
		if len(more) != len(lost) {
			return nil, fmt.Errorf("%d records neither inserted nor found", len(lost)-len(more))
		}
		maps.Copy(ids, more)
	}
	locked, err := record.Lock(ctx, tx, workspaceID, slices.Collect(maps.Values(ids)))
	if err != nil {
		return nil, err
	}
	existing := make([]*record.Record, 0, len(locked))
	for _, r := range locked {
		k := record.Key{Type: r.Type, ID: r.ConversionID}
		for _, c := range byKey[k] {
			merge(r, c, now)
		}
		out[k] = r
		existing = append(existing, r)
	}
	if len(out) != len(keys) {
		return nil, fmt.Errorf("%d records vanished while ingesting", len(keys)-len(out))
	}
	// One statement per 500 records, not one per record.
	return out, record.Update(ctx, tx, existing, "fields", "updated_at")
}

// insertRecords inserts new records in key order, skipping those that exist
// by then, and returns the ids of the rows it inserted.
func insertRecords(ctx context.Context, tx bun.Tx, recs []*record.Record) (map[record.Key]int64, error) {
	slices.SortFunc(recs, func(a, b *record.Record) int {
		return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.ConversionID, b.ConversionID))
	})
	out := make(map[record.Key]int64, len(recs))
	for chunk := range chunks(recs, 500) {
		var rows []struct {
			ID           int64       `bun:"id"`
			Type         record.Type `bun:"type"`
			ConversionID string      `bun:"conversion_id"`
		}
		err := tx.NewInsert().Model(&chunk).On("CONFLICT (workspace_id, type, conversion_id) DO NOTHING").
			Returning("id, type, conversion_id").Scan(ctx, &rows)
		if err != nil {
			return nil, fmt.Errorf("insert %d records: %w", len(chunk), err)
		}
		for _, r := range rows {
			out[record.Key{Type: r.Type, ID: r.ConversionID}] = r.ID
		}
	}
	return out, nil
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
