package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/salesforce/sffake"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/prefs"
	"github.com/crmsync/crmsync/internal/record"
	"github.com/crmsync/crmsync/internal/synclog"
)

// FieldSpec is how the load uses one Conversion field.
type FieldSpec struct {
	Type     record.Type
	Field    string // the Conversion field
	CRMField string // the Salesforce field it maps to
	Mode     prefs.Mode
}

// Checker is the history of a run: every change crmsync accepted, in the
// order it accepted them, and every edit a sales rep made in the org. Check
// compares it with what ended up in Salesforce, in crmsync's queue and in
// its sync logs. It is safe for concurrent use.
type Checker struct {
	specs map[specKey]FieldSpec

	mu       sync.Mutex
	changes  int
	accepted map[fieldKey][]acceptedValue // values in acceptance order
	seeded   map[fieldKey]string          // the value each record was created with
	rep      map[fieldKey]string          // the last value a rep wrote in the org
	// repAt is when the last rep edit of a field happened, as Salesforce
	// stamps it (a LastModifiedDate, to the second): between two seconds
	// when the edit straddled a second boundary.
	repAt map[fieldKey][2]time.Time
	// repDone is when the rep's edit call returned (not truncated): a
	// flush that started before it may have read the record before the
	// edit landed.
	repDone map[fieldKey]time.Time
	// repFrom is when the edit call began, exactly.
	repFrom map[fieldKey]time.Time
}

// acceptedValue is a value crmsync accepted and the time it changed.
type acceptedValue struct {
	v  string
	at time.Time
}

type specKey struct {
	Type  record.Type
	Field string
}

type fieldKey struct {
	Type  record.Type
	ID    string
	Field string
}

// NewChecker returns a Checker for a workspace configured with specs.
func NewChecker(specs []FieldSpec) *Checker {
	c := &Checker{specs: map[specKey]FieldSpec{}, accepted: map[fieldKey][]acceptedValue{},
		seeded: map[fieldKey]string{}, rep: map[fieldKey]string{}, repAt: map[fieldKey][2]time.Time{}, repDone: map[fieldKey]time.Time{},
		repFrom: map[fieldKey]time.Time{}}
	for _, s := range specs {
		c.specs[specKey{s.Type, s.Field}] = s
	}
	return c
}

// Change is one accepted change as the checker sees it: string values only.
type Change struct {
	Type   record.Type
	ID     string
	Fields map[string]string
	// At is when the change happened in Conversion (its changedAt): not
	// necessarily in acceptance order.
	At time.Time
}

// Seeded records changes that created records (the load waits for them to
// reach Salesforce before it sends updates).
func (c *Checker) Seeded(changes []Change) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range changes {
		for f, v := range ch.Fields {
			c.seeded[fieldKey{ch.Type, ch.ID, f}] = v
		}
	}
	c.record(changes)
}

// Accepted records changes crmsync acknowledged, in the order it did.
func (c *Checker) Accepted(changes []Change) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.record(changes)
}

func (c *Checker) record(changes []Change) {
	c.changes += len(changes)
	for _, ch := range changes {
		for f, v := range ch.Fields {
			k := fieldKey{ch.Type, ch.ID, f}
			c.accepted[k] = append(c.accepted[k], acceptedValue{v: v, at: ch.At})
		}
	}
}

// RepEdited records a sales rep's edit of a Conversion-mapped field in the
// org, made between from and to.
func (c *Checker) RepEdited(t record.Type, id, field, value string, from, to time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := fieldKey{t, id, field}
	c.rep[k] = value
	c.repAt[k] = [2]time.Time{from.UTC().Truncate(time.Second), to.UTC().Truncate(time.Second)}
	c.repDone[k] = to.UTC()
	c.repFrom[k] = from.UTC()
}

// Forget drops a rep edit the org refused.
func (c *Checker) Forget(t record.Type, id, field string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.rep, fieldKey{t, id, field})
	delete(c.repAt, fieldKey{t, id, field})
	delete(c.repDone, fieldKey{t, id, field})
	delete(c.repFrom, fieldKey{t, id, field})
}

// newest is the value Conversion keeps of a field: its latest change by
// changedAt, the one accepted last on a tie (docs/sync.md, "Changes that
// arrive out of order").
func newest(values []acceptedValue) acceptedValue {
	best := values[0]
	for _, v := range values[1:] {
		if !best.at.After(v.at) {
			best = v
		}
	}
	return best
}

// racingWrite bounds how long after a rep's edit a write crmsync prepared
// before the edit may land.
const racingWrite = 3 * time.Second

// twoWayWinner is what a TWO_WAY field must end with in Salesforce, by the
// rule of syncmodel and docs/sync.md ("The times compared"): Conversion's
// newest change against the sales rep's last edit, whose time Salesforce
// knows to the second (ties go to Salesforce). The load's rep edits a
// TWO_WAY field only on records where nothing else is edited in the org, so
// the LastModifiedDate crmsync reads for that field is the edit's, except
// when a flush that read the record just before the edit wrote another
// field just after it: the next read then sees the later LastModifiedDate
// of that write, and Salesforce keeps the benefit of the doubt. It returns
// the acceptable values: the rep's alone when Conversion's change is not
// in a later second than the edit (a stale change must never win); both
// within racingWrite after the edit or when the edit's second is
// uncertain.
func (c *Checker) twoWayWinner(k fieldKey, conv acceptedValue) []string {
	rep, ok := c.rep[k]
	if !ok {
		return []string{conv.v}
	}
	at := c.repAt[k]
	convSec := conv.at.UTC().Truncate(time.Second)
	switch {
	case convSec.After(at[1].Add(racingWrite)):
		return []string{conv.v}
	case !convSec.After(at[0]):
		return []string{rep}
	}
	return []string{conv.v, rep}
}

// racedBy reports whether one of a field's sends (the flushes that sent
// it any value) may have raced the rep's edit of it: it started before
// the edit call returned and finished after the edit call began, so it
// may have read before the edit landed and written after.
func (c *Checker) racedBy(k fieldKey, sends []span) bool {
	from, done := c.repFrom[k], c.repDone[k]
	return slices.ContainsFunc(sends, func(s span) bool {
		return s.start.Before(done) && s.end.After(from)
	})
}

// span is when a logged sync ran.
type span struct{ start, end time.Time }

// Changes is how many changes were accepted.
func (c *Checker) Changes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changes
}

// Report is what Check found. A correct run has every counter named in
// Failures at zero.
type Report struct {
	Changes int `json:"changes"`
	Records int `json:"records"`
	// Lost: the last accepted value of a field is not in Salesforce, and
	// the record is neither waiting in the queue nor parked with a reason.
	Lost int `json:"lost"`
	// Waiting and Parked are fields not in Salesforce yet but accounted for.
	Waiting int `json:"waiting"`
	Parked  int `json:"parked"`
	// Duplicates counts Salesforce records created twice for one Conversion
	// record, or created without crmsync knowing of them.
	Duplicates int `json:"duplicates"`
	// ModeViolations: a field's final value contradicts its sync mode.
	ModeViolations int `json:"mode_violations"`
	// Reordered counts writes that sent a field an older value after a
	// newer one.
	Reordered int `json:"reordered"`
	// Replays counts values written again after they had been written (a
	// retried or crash-interrupted write): harmless, reported.
	Replays int `json:"replays"`
	// Raced counts TWO_WAY rep edits overwritten by an older Conversion
	// value that no flush started after the edit sent: its flush read the
	// record before the edit and wrote after it (and may have died before
	// logging it), the window conditional writes close. Reported, not a
	// failure; a flush started after the edit that sends an older value
	// (issue 22) is a mode violation.
	Raced int `json:"raced"`
	// KeptForSalesforce counts TWO_WAY fields where Conversion's change is
	// newer than the rep's edit by the wall clock but a flush logged it as
	// not sent: crmsync knew Salesforce's value by a later LastModifiedDate
	// (its own write racing the edit, or replayed after a crash), and
	// Salesforce keeps the benefit of the doubt. Reported, not a failure.
	KeptForSalesforce int `json:"kept_for_salesforce"`
	// Unlogged: a field's final value reached Salesforce but no sync log
	// mentions it.
	Unlogged int `json:"unlogged"`
	// OverlappingSyncs counts syncs of the connection that ran at once.
	OverlappingSyncs int `json:"overlapping_syncs"`
	// Writes is how many write requests Salesforce received.
	Writes int `json:"write_requests"`

	// Problems describes the first problems found.
	Problems []string `json:"problems,omitempty"`
}

// Failures lists the invariants the report breaks; empty means none.
func (r Report) Failures() []string {
	var out []string
	for name, n := range map[string]int{"lost": r.Lost, "duplicates": r.Duplicates, "mode violations": r.ModeViolations,
		"reordered writes": r.Reordered, "unlogged values": r.Unlogged, "overlapping syncs": r.OverlappingSyncs} {
		if n > 0 {
			out = append(out, fmt.Sprintf("%s: %d", name, n))
		}
	}
	slices.Sort(out)
	return out
}

func (r *Report) problem(format string, args ...any) {
	if len(r.Problems) < 20 {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	}
}

// Value makes a load value: the field's tag, the record's number and a
// sequence number increasing with every change, so a value written to
// Salesforce says which change it came from.
func Value(tag string, record, seq int) string {
	return fmt.Sprintf("%s:%d:%d", tag, record, seq)
}

var valuePattern = regexp.MustCompile(`^([a-z]+):(\d+):(\d+)$`)

// Check compares the history with the final state: Salesforce (org),
// crmsync's records, queue and sync logs for workspaceID.
func (c *Checker) Check(ctx context.Context, db *bun.DB, workspaceID int64, org *sffake.Server) (Report, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := Report{Changes: c.changes}

	var recs []record.Record
	if err := db.NewSelect().Model(&recs).Where("workspace_id = ?", workspaceID).Scan(ctx); err != nil {
		return r, fmt.Errorf("check: load records: %w", err)
	}
	byKey := map[record.Key]*record.Record{}
	known := map[string]bool{} // CRM ids crmsync knows
	for i := range recs {
		byKey[record.Key{Type: recs[i].Type, ID: recs[i].ConversionID}] = &recs[i]
		if recs[i].CRMID != "" {
			known[recs[i].CRMID] = true
		}
	}
	var items []outbound.Item
	if err := db.NewSelect().Model(&items).Where("workspace_id = ?", workspaceID).Scan(ctx); err != nil {
		return r, fmt.Errorf("check: load queue: %w", err)
	}
	queued, parked := map[int64]bool{}, map[int64]bool{}
	for _, it := range items {
		switch {
		case it.State == outbound.StateQueued:
			queued[it.RecordID] = true
		case it.State == outbound.StateFailed && it.ErrorMessage != "":
			parked[it.RecordID] = true
		}
	}
	logged, err := loggedValues(ctx, db, workspaceID)
	if err != nil {
		return r, err
	}
	decided, sends, err := outboundDecisions(ctx, db, workspaceID)
	if err != nil {
		return r, err
	}

	records := map[record.Key]bool{}
	for k, values := range c.accepted {
		rk := record.Key{Type: k.Type, ID: k.ID}
		records[rk] = true
		spec, ok := c.specs[specKey{k.Type, k.Field}]
		if !ok {
			return r, fmt.Errorf("check: no spec for %s.%s", k.Type, k.Field)
		}
		rec := byKey[rk]
		var got any
		var exists bool
		if rec != nil && rec.CRMID != "" {
			var sf map[string]any
			sf, exists = org.Get(rec.CRMObject, rec.CRMID)
			got = sf[spec.CRMField]
		}
		conv := newest(values)
		last := conv.v
		if spec.Mode == prefs.TwoWay {
			want := c.twoWayWinner(k, conv)
			if exists && slices.ContainsFunc(want, func(v string) bool { return record.SameValue(got, v) }) && !record.SameValue(got, last) {
				continue // the rep's newer edit stands
			}
			if exists && !record.SameValue(got, last) && record.SameValue(got, c.rep[k]) {
				if d, ok := decided[logKey{k.Type, k.ID, k.Field, last}]; ok && d.kept {
					r.KeptForSalesforce++
					continue
				}
			}
			if !slices.Contains(want, last) {
				// Conversion's newest change is older than the rep's
				// edit: it must not have overwritten it.
				s, _ := got.(string)
				sent := decided[logKey{k.Type, k.ID, k.Field, s}]
				if !exists || !record.SameValue(got, want[0]) {
					switch {
					case rec != nil && queued[rec.ID]:
						r.Waiting++
					case valuePattern.MatchString(fmt.Sprint(got)) && (sent.sentIn.IsZero() || sent.sentIn.Before(c.repDone[k])):
						// No flush that started after the edit call returned
						// sent it: it may have been decided on a read from
						// before the edit landed (the sent flush's start and
						// the edit are compared on the wall clock, exactly:
						// the edit's LastModifiedDate second would call a
						// flush that started earlier in that second "after").
						r.Raced++
					case valuePattern.MatchString(fmt.Sprint(got)) && c.racedBy(k, sends[k]):
						// An earlier Conversion value, sent by a flush that
						// read before the edit landed, overwrote the edit;
						// Salesforce then held crmsync's own write, which
						// the newer Conversion change rightly replaced.
						r.Raced++
					default:
						r.ModeViolations++
						r.problem("%s %s.%s is TWO_WAY: the rep's edit %q (at %s, call returned %s) is newer than Conversion's %q (changed %s), Salesforce has %v; its sync log: %v",
							k.Type, k.ID, k.Field, want[0], c.repAt[k][0].Format(time.RFC3339), c.repDone[k].Format(time.RFC3339Nano),
							last, conv.at.Format(time.RFC3339Nano), got, sent.history)
					}
				}
				continue
			}
		}
		switch spec.Mode {
		case prefs.AlwaysPreferConversion, prefs.TwoWay:
			if exists && record.SameValue(got, last) {
				if !logged[logKey{k.Type, k.ID, k.Field, last}] {
					r.Unlogged++
					r.problem("%s %s.%s = %q is in Salesforce but in no sync log", k.Type, k.ID, k.Field, last)
				}
				continue
			}
			switch {
			case rec != nil && queued[rec.ID]:
				r.Waiting++
			case rec != nil && parked[rec.ID]:
				r.Parked++
			default:
				r.Lost++
				story, err := fieldStory(ctx, db, workspaceID, k.Type, k.ID, k.Field)
				if err != nil {
					return r, err
				}
				r.problem("lost: %s %s.%s: accepted %q newest (changed %s), Salesforce has %v (record exists: %v); accepted %s; its sync logs:\n%s", k.Type, k.ID, k.Field, last,
					conv.at.Format(time.RFC3339Nano), got, exists, acceptedStory(values), story)
			}
		case prefs.DoNotSync:
			if !record.Blank(got) {
				r.ModeViolations++
				r.problem("%s %s.%s is DO_NOT_SYNC but Salesforce has %v", k.Type, k.ID, k.Field, got)
			}
		case prefs.PreferSalesforceUnlessEmpty, prefs.AlwaysPreferSalesforce:
			want, ok := c.rep[k]
			if !ok && spec.Mode == prefs.PreferSalesforceUnlessEmpty {
				want, ok = c.seeded[k]
			}
			if !ok {
				want, ok = c.seeded[k]
			}
			if !ok || !exists {
				continue // never set before creation: nothing to hold on to
			}
			if !record.SameValue(got, want) {
				r.ModeViolations++
				r.problem("%s %s.%s is %s: want %q (kept from Salesforce), got %v", k.Type, k.ID, k.Field, spec.Mode, want, got)
			}
		}
	}
	r.Records = len(records)

	// Duplicates: every Salesforce record of a loaded object must be one
	// crmsync knows, and no two Conversion records share one.
	objects := map[string]bool{}
	for _, rec := range recs {
		if rec.CRMObject != "" {
			objects[rec.CRMObject] = true
		}
	}
	owners := map[string]int{}
	for _, rec := range recs {
		if rec.CRMID != "" {
			owners[rec.CRMID]++
		}
	}
	for id, n := range owners {
		if n > 1 {
			r.Duplicates += n - 1
			r.problem("Salesforce record %s is linked to %d Conversion records", id, n)
		}
	}
	for obj := range objects {
		for _, sf := range org.All(obj) {
			if id, _ := sf["Id"].(string); !known[id] {
				r.Duplicates++
				r.problem("Salesforce %s %s was created but crmsync does not know it (a duplicate)", obj, id)
			}
		}
	}

	c.checkWrites(&r, org.RequestLog())
	r.OverlappingSyncs, err = overlappingSyncs(ctx, db, workspaceID, &r)
	return r, err
}

// checkWrites walks every write request Salesforce received, in arrival
// order, and follows each load value: per record and field the sequence
// numbers written must never go down.
func (c *Checker) checkWrites(r *Report, log []sffake.Request) {
	type tagged struct {
		tag    string
		record int
	}
	lastSeq := map[tagged]int{}
	for _, req := range log {
		if req.Kind != "write" {
			continue
		}
		r.Writes++
		var body any
		if json.Unmarshal(req.Body, &body) != nil {
			continue
		}
		walkStrings(body, func(s string) {
			m := valuePattern.FindStringSubmatch(s)
			if m == nil {
				return
			}
			rec, _ := strconv.Atoi(m[2])
			seq, _ := strconv.Atoi(m[3])
			k := tagged{m[1], rec}
			prev, seen := lastSeq[k]
			switch {
			case !seen || seq > prev:
				lastSeq[k] = seq
			case seq == prev:
				r.Replays++
			default:
				r.Reordered++
				r.problem("reordered: %s of record %d written with change %d after change %d (%s %s at %s)", m[1], rec, seq, prev,
					req.Method, req.Path, req.Time.Format(time.RFC3339Nano))
			}
		})
	}
}

func walkStrings(v any, fn func(string)) {
	switch x := v.(type) {
	case string:
		fn(x)
	case []any:
		for _, e := range x {
			walkStrings(e, fn)
		}
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			walkStrings(x[k], fn)
		}
	}
}

type logKey struct {
	Type  record.Type
	ID    string
	Field string
	Value string
}

// loggedValues returns every (record, field, value) an outbound sync log
// mentions, sent or not (a value Salesforce already had is logged as such).
func loggedValues(ctx context.Context, db *bun.DB, workspaceID int64) (map[logKey]bool, error) {
	var rows []synclog.Record
	err := db.NewSelect().Model(&rows).Column("record_type", "conversion_id", "fields").
		Where("workspace_id = ?", workspaceID).
		Where("batch_id IN (?)", db.NewSelect().Model((*synclog.Batch)(nil)).Column("id").
			Where("workspace_id = ? AND direction = ?", workspaceID, synclog.Outbound)).
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("check: load sync logs: %w", err)
	}
	out := map[logKey]bool{}
	for _, row := range rows {
		for _, f := range row.Fields {
			if s, ok := f.Value.(string); ok {
				out[logKey{row.RecordType, row.ConversionID, f.Field, s}] = true
			}
		}
	}
	return out, nil
}

// decision is what outbound sync logs say of one value of a field.
type decision struct {
	// sentIn is the start of the latest flush that sent it.
	sentIn time.Time
	// kept: a flush decided not to send it.
	kept bool
	// history is every logged decision on it, for a problem's report.
	history []string
}

// outboundDecisions returns, per (record, field, value), what outbound
// flushes decided.
func outboundDecisions(ctx context.Context, db *bun.DB, workspaceID int64) (map[logKey]decision, map[fieldKey][]span, error) {
	var batches []synclog.Batch
	if err := db.NewSelect().Model(&batches).Column("id", "started_at", "finished_at").
		Where("workspace_id = ? AND direction = ?", workspaceID, synclog.Outbound).Scan(ctx); err != nil {
		return nil, nil, fmt.Errorf("check: load sync batches: %w", err)
	}
	started := map[int64]time.Time{}
	ran := map[int64]span{}
	for _, b := range batches {
		started[b.ID] = b.StartedAt
		ran[b.ID] = span{b.StartedAt, b.FinishedAt}
	}
	var rows []synclog.Record
	err := db.NewSelect().Model(&rows).Column("batch_id", "record_type", "conversion_id", "fields").
		Where("workspace_id = ?", workspaceID).
		Where("batch_id IN (?)", db.NewSelect().Model((*synclog.Batch)(nil)).Column("id").
			Where("workspace_id = ? AND direction = ?", workspaceID, synclog.Outbound)).
		Scan(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("check: load sync logs: %w", err)
	}
	out := map[logKey]decision{}
	sends := map[fieldKey][]span{}
	for _, row := range rows {
		for _, f := range row.Fields {
			s, ok := f.Value.(string)
			if !ok {
				continue
			}
			k := logKey{row.RecordType, row.ConversionID, f.Field, s}
			d := out[k]
			if f.Sent && started[row.BatchID].After(d.sentIn) {
				d.sentIn = started[row.BatchID]
			}
			if f.Sent {
				fk := fieldKey{row.RecordType, row.ConversionID, f.Field}
				sends[fk] = append(sends[fk], ran[row.BatchID])
			}
			d.kept = d.kept || !f.Sent
			d.history = append(d.history, fmt.Sprintf("batch %d started %s sent=%v (%s)",
				row.BatchID, started[row.BatchID].Format(time.RFC3339Nano), f.Sent, f.Reason))
			out[k] = d
		}
	}
	return out, sends, nil
}

// fieldStory is every logged decision on one field of a record, both
// directions, in batch order: a lost value's report.
func fieldStory(ctx context.Context, db *bun.DB, workspaceID int64, t record.Type, id, field string) (string, error) {
	var rows []struct {
		synclog.Record `bun:",extend"`
		Direction      synclog.Direction `bun:"direction"`
		StartedAt      time.Time         `bun:"started_at"`
		FinishedAt     time.Time         `bun:"finished_at"`
	}
	err := db.NewSelect().TableExpr("sync_batch_records AS r").ColumnExpr("r.*, b.direction, b.started_at, b.finished_at").
		Join("JOIN sync_batches AS b ON b.id = r.batch_id").
		Where("r.workspace_id = ? AND r.record_type = ? AND r.conversion_id = ?", workspaceID, t, id).
		OrderExpr("r.batch_id, r.id").Scan(ctx, &rows)
	if err != nil {
		return "", fmt.Errorf("check: load the field's sync logs: %w", err)
	}
	var b strings.Builder
	for _, row := range rows {
		for _, f := range row.Fields {
			if f.Field != field {
				continue
			}
			fmt.Fprintf(&b, "  batch %d %s %s..%s %s: %v sent=%v (%s) %s\n", row.BatchID, row.Direction,
				row.StartedAt.Format("15:04:05.000"), row.FinishedAt.Format("15:04:05.000"), row.Outcome, f.Value, f.Sent, f.Reason, row.Reason)
		}
	}
	return b.String(), nil
}

// acceptedStory lists the newest accepted values of a field with their
// change times.
func acceptedStory(values []acceptedValue) string {
	var parts []string
	for _, v := range values[max(0, len(values)-4):] {
		parts = append(parts, fmt.Sprintf("%s at %s", v.v, v.at.Format("15:04:05.000")))
	}
	return strings.Join(parts, ", ")
}

// overlappingSyncs counts logged syncs (flushes and pulls) of the
// workspace's connection whose running times overlap: the lease allows one
// at a time. Pause records are not syncs.
func overlappingSyncs(ctx context.Context, db *bun.DB, workspaceID int64, r *Report) (int, error) {
	var batches []synclog.Batch
	err := db.NewSelect().Model(&batches).Column("id", "direction", "status", "started_at", "finished_at").
		Where("workspace_id = ? AND status <> ?", workspaceID, synclog.StatusPaused).
		OrderExpr("started_at, id").Scan(ctx)
	if err != nil {
		return 0, fmt.Errorf("check: load sync batches: %w", err)
	}
	n := 0
	var end time.Time
	var endID int64
	for _, b := range batches {
		if b.StartedAt.Before(end) {
			n++
			r.problem("sync batch %d (%s) started at %s, before batch %d finished at %s", b.ID, b.Direction,
				b.StartedAt.Format(time.RFC3339Nano), endID, end.Format(time.RFC3339Nano))
		}
		if b.FinishedAt.After(end) {
			end, endID = b.FinishedAt, b.ID
		}
	}
	return n, nil
}
