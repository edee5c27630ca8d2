// Package synclog is the sync log: one batch per flush or pull, with a row
// per record and, inside it, the decision taken for every field. It answers
// "what happened to my change, and why" for users.
package synclog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/internal/record"
)

// Direction of a batch.
type Direction string

const (
	Outbound Direction = "OUTBOUND"
	Inbound  Direction = "INBOUND"
)

// Status of a batch.
type Status string

const (
	// StatusSucceeded: every record was written, skipped or is waiting.
	StatusSucceeded Status = "SUCCEEDED"
	// StatusPartial: some records failed and some succeeded (written or
	// skipped).
	StatusPartial Status = "PARTIAL"
	// StatusFailed: the whole call failed (items stay queued), or every
	// record failed.
	StatusFailed Status = "FAILED"
	// StatusPaused: nothing was sent because syncing is paused (limit,
	// expired connection, by hand); logged once per pause episode.
	StatusPaused Status = "PAUSED"
)

// Outcome of one record in a batch.
type Outcome string

const (
	OutcomeCreated  Outcome = "CREATED"
	OutcomeUpdated  Outcome = "UPDATED"
	OutcomeDeleted  Outcome = "DELETED"
	OutcomeSkipped  Outcome = "SKIPPED"
	OutcomeFailed   Outcome = "FAILED"
	OutcomeRetrying Outcome = "RETRYING"
	OutcomeWaiting  Outcome = "WAITING"
)

// Write paths of an outbound batch.
const (
	// WriteOneCall: the records' state was known and provably current; the
	// writes went as conditional updates in one call, without a read.
	WriteOneCall = "ONE_CALL"
	// WriteReadFirst: the batch read the records' state, then wrote.
	WriteReadFirst = "READ_THEN_WRITE"
	// WriteOneCallThenRead: conditional updates were refused for records
	// changed in the CRM since; those were read and decided again.
	WriteOneCallThenRead = "ONE_CALL_THEN_READ"
)

// Batch is one flush or pull (a row of sync_batches).
type Batch struct {
	bun.BaseModel `bun:"table:sync_batches"`

	ID          int64     `bun:"id,pk,autoincrement"`
	WorkspaceID int64     `bun:"workspace_id,notnull"`
	Direction   Direction `bun:"direction,notnull"`
	Status      Status    `bun:"status,notnull"`
	Message     string    `bun:"message,notnull"`
	StartedAt   time.Time `bun:"started_at,notnull"`
	FinishedAt  time.Time `bun:"finished_at,notnull"`
	Created     int       `bun:"created,notnull"`
	Updated     int       `bun:"updated,notnull"`
	Deleted     int       `bun:"deleted,notnull"`
	Skipped     int       `bun:"skipped,notnull"`
	Failed      int       `bun:"failed,notnull"`
	Waiting     int       `bun:"waiting,notnull"`
	APICalls    int       `bun:"api_calls,notnull"`
	// WritePath says how an outbound batch learned the CRM's state (one of
	// the WritePath constants, empty when it wrote nothing), and
	// WritePathReason why it needed a read.
	WritePath       string `bun:"write_path,notnull"`
	WritePathReason string `bun:"write_path_reason,notnull"`

	Records []*Record `bun:"-"`
}

// Record is what happened to one record in a batch.
type Record struct {
	bun.BaseModel `bun:"table:sync_batch_records"`

	ID           int64       `bun:"id,pk,autoincrement"`
	BatchID      int64       `bun:"batch_id,notnull"`
	WorkspaceID  int64       `bun:"workspace_id,notnull"`
	RecordType   record.Type `bun:"record_type,notnull"`
	ConversionID string      `bun:"conversion_id,notnull"`
	CRMObject    string      `bun:"crm_object,notnull"`
	CRMID        string      `bun:"crm_id,notnull"`
	Outcome      Outcome     `bun:"outcome,notnull"`
	Reason       string      `bun:"reason,notnull"`
	ErrorCode    string      `bun:"error_code,notnull"`
	Fields       []Field     `bun:"fields,type:text,notnull"`
}

// Field is the decision taken for one field.
type Field struct {
	Field    string `json:"field"`
	CRMField string `json:"crmField"`
	Mode     string `json:"mode"`
	Value    any    `json:"value"`
	Sent     bool   `json:"sent"`
	Reason   string `json:"reason"`
}

// Count tallies b's counters from its records and, unless already set,
// derives its status: SUCCEEDED when no record failed, PARTIAL when some
// failed and some succeeded (written or skipped), FAILED when none
// succeeded. A PARTIAL or FAILED batch without a message gets one saying
// how many records failed, how many will be retried, and why the first
// did.
func (b *Batch) Count() {
	b.Created, b.Updated, b.Deleted, b.Skipped, b.Failed, b.Waiting = 0, 0, 0, 0, 0, 0
	for _, r := range b.Records {
		switch r.Outcome {
		case OutcomeCreated:
			b.Created++
		case OutcomeUpdated:
			b.Updated++
		case OutcomeDeleted:
			b.Deleted++
		case OutcomeSkipped:
			b.Skipped++
		case OutcomeFailed, OutcomeRetrying:
			b.Failed++
		case OutcomeWaiting:
			b.Waiting++
		}
	}
	if b.Status == "" {
		succeeded := b.Created + b.Updated + b.Deleted + b.Skipped
		switch {
		case b.Failed == 0:
			b.Status = StatusSucceeded
		case succeeded > 0:
			b.Status = StatusPartial
		default:
			b.Status = StatusFailed
		}
	}
	if b.Message == "" && b.Failed > 0 && (b.Status == StatusPartial || b.Status == StatusFailed) {
		b.Message = b.failureSummary()
	}
}

// failureSummary says, in one line, what failed in b: "2 of 5 records
// failed (1 parked as a failed item, 1 will be retried); first: CONTACT
// c1: REQUIRED_FIELD_MISSING: ...".
func (b *Batch) failureSummary() string {
	var parked, retrying int
	var first *Record
	for _, r := range b.Records {
		switch r.Outcome {
		case OutcomeFailed:
			parked++
		case OutcomeRetrying:
			retrying++
		default:
			continue
		}
		if first == nil {
			first = r
		}
	}
	msg := fmt.Sprintf("%d of %d records failed", b.Failed, len(b.Records))
	if b.Failed == len(b.Records) {
		msg = fmt.Sprintf("all %d records failed", b.Failed)
		if b.Failed == 1 {
			msg = "the only record failed"
		}
	}
	var parts []string
	if parked > 0 {
		parts = append(parts, plural(parked, "parked as a failed item", "parked as failed items"))
	}
	if retrying > 0 {
		parts = append(parts, plural(retrying, "will be retried", "will be retried"))
	}
	if len(parts) > 0 {
		msg += " (" + strings.Join(parts, ", ") + ")"
	}
	if first != nil {
		why := first.Reason
		if first.ErrorCode != "" && !strings.HasPrefix(why, first.ErrorCode) {
			why = strings.TrimSuffix(first.ErrorCode+": "+why, ": ")
		}
		msg += fmt.Sprintf("; first: %s %s: %s", first.RecordType, first.ConversionID, why)
	}
	return msg
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// Write stores a batch and its records.
func Write(ctx context.Context, db bun.IDB, b *Batch) error {
	if _, err := db.NewInsert().Model(b).Returning("id").Exec(ctx); err != nil {
		return fmt.Errorf("write sync batch: %w", err)
	}
	for i := 0; i < len(b.Records); i += 500 {
		chunk := b.Records[i:min(i+500, len(b.Records))]
		for _, r := range chunk {
			r.BatchID, r.WorkspaceID = b.ID, b.WorkspaceID
			if r.Fields == nil {
				r.Fields = []Field{}
			}
		}
		if _, err := db.NewInsert().Model(&chunk).Exec(ctx); err != nil {
			return fmt.Errorf("write records of sync batch %d: %w", b.ID, err)
		}
	}
	return nil
}

// Filter narrows a listing of batches. Zero fields do not filter.
type Filter struct {
	Direction    Direction
	Status       Status
	RecordType   record.Type
	ConversionID string
	From, To     time.Time
}

// List returns a workspace's batches, newest first, with ids below before
// (0 = from the newest), at most limit.
func List(ctx context.Context, db bun.IDB, workspaceID int64, f Filter, before int64, limit int) ([]*Batch, error) {
	var out []*Batch
	q := db.NewSelect().Model(&out).Where("workspace_id = ?", workspaceID)
	if before > 0 {
		q = q.Where("id < ?", before)
	}
	if f.Direction != "" {
		q = q.Where("direction = ?", f.Direction)
	}
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if !f.From.IsZero() {
		q = q.Where("started_at >= ?", f.From.UTC())
	}
	if !f.To.IsZero() {
		q = q.Where("started_at < ?", f.To.UTC())
	}
	if f.RecordType != "" || f.ConversionID != "" {
		sub := db.NewSelect().Model((*Record)(nil)).Column("batch_id").Where("workspace_id = ?", workspaceID)
		if f.RecordType != "" {
			sub = sub.Where("record_type = ?", f.RecordType)
		}
		if f.ConversionID != "" {
			sub = sub.Where("conversion_id = ?", f.ConversionID)
		}
		q = q.Where("id IN (?)", sub)
	}
	if err := q.OrderExpr("id DESC").Limit(int64(limit)).Scan(ctx); err != nil {
		return nil, fmt.Errorf("list sync batches of workspace %d: %w", workspaceID, err)
	}
	return out, nil
}

// Get returns one of a workspace's batches with its records.
func Get(ctx context.Context, db bun.IDB, workspaceID, id int64) (*Batch, error) {
	b, err := Find(ctx, db, workspaceID, id)
	if err != nil {
		return nil, err
	}
	recs, err := Records(ctx, db, workspaceID, []int64{id})
	if err != nil {
		return nil, err
	}
	b.Records = recs[id]
	return b, nil
}

// Find returns one of a workspace's batches without its records
// (sql.ErrNoRows, wrapped, when there is none).
func Find(ctx context.Context, db bun.IDB, workspaceID, id int64) (*Batch, error) {
	b := new(Batch)
	if err := db.NewSelect().Model(b).Where("workspace_id = ? AND id = ?", workspaceID, id).Scan(ctx); err != nil {
		return nil, fmt.Errorf("get sync batch %d: %w", id, err)
	}
	return b, nil
}

// RecordPage returns a page of one batch's records in the order they were
// logged: at most limit, with ids above after (0 = from the first).
func RecordPage(ctx context.Context, db bun.IDB, workspaceID, batchID, after int64, limit int) ([]*Record, error) {
	rs := []*Record{}
	err := db.NewSelect().Model(&rs).Where("workspace_id = ? AND batch_id = ? AND id > ?", workspaceID, batchID, after).
		OrderExpr("id").Limit(int64(limit)).Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("load records of sync batch %d: %w", batchID, err)
	}
	return rs, nil
}

// Records returns the records of several batches, keyed by batch id.
func Records(ctx context.Context, db bun.IDB, workspaceID int64, batchIDs []int64) (map[int64][]*Record, error) {
	out := make(map[int64][]*Record, len(batchIDs))
	if len(batchIDs) == 0 {
		return out, nil
	}
	var rs []*Record
	err := db.NewSelect().Model(&rs).Where("workspace_id = ? AND batch_id IN (?)", workspaceID, bun.List(batchIDs)).
		OrderExpr("id").Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("load sync batch records: %w", err)
	}
	for _, r := range rs {
		out[r.BatchID] = append(out[r.BatchID], r)
	}
	return out, nil
}

// History returns the latest log rows of one record, newest first.
func History(ctx context.Context, db bun.IDB, workspaceID int64, t record.Type, conversionID string, limit int) ([]*Record, error) {
	var rs []*Record
	err := db.NewSelect().Model(&rs).
		Where("workspace_id = ? AND record_type = ? AND conversion_id = ?", workspaceID, t, conversionID).
		OrderExpr("id DESC").Limit(int64(limit)).Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("load sync history of %s %q: %w", t, conversionID, err)
	}
	return rs, nil
}

// Latest returns the time the workspace's last batch finished (zero if none).
func Latest(ctx context.Context, db bun.IDB, workspaceID int64) (time.Time, error) {
	var b Batch
	err := db.NewSelect().Model(&b).Column("finished_at").Where("workspace_id = ?", workspaceID).
		OrderExpr("id DESC").Limit(1).Scan(ctx)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return time.Time{}, nil
		}
		return time.Time{}, fmt.Errorf("latest sync batch of workspace %d: %w", workspaceID, err)
	}
	return b.FinishedAt, nil
}

// CallTime sums the API calls and the wall time of a workspace's latest
// outbound batches that made calls (at most limit, started at or after
// since): the org's measured time per call, flush work included, that the
// forecast divides out. Zero calls when nothing was measured.
func CallTime(ctx context.Context, db bun.IDB, workspaceID int64, since time.Time, limit int) (calls int, took time.Duration, err error) {
	var rows []Batch
	err = db.NewSelect().Model(&rows).Column("started_at", "finished_at", "api_calls").
		Where("workspace_id = ? AND direction = ? AND api_calls > 0 AND started_at >= ?", workspaceID, Outbound, since.UTC()).
		OrderExpr("id DESC").Limit(int64(limit)).Scan(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("measure call time of workspace %d: %w", workspaceID, err)
	}
	for _, b := range rows {
		calls += b.APICalls
		took += max(b.FinishedAt.Sub(b.StartedAt), 0)
	}
	return calls, took, nil
}

// Finished counts the records a workspace's outbound batches finished
// since a time: written (created, updated, deleted), skipped with nothing
// to send, or parked as failed, each of which took the record's items out
// of the queue. Records that will be retried or wait for a parent are not
// finished. A record finished by two batches counts twice.
type Finished struct {
	// Records counts those of batches that finished at or after since;
	// Recent, of those that finished at or after recentFrom too.
	Records, Recent int64
}

// FinishedSince counts the records the workspace's outbound batches
// finished at or after since, and of them those finished at or after
// recentFrom (see Finished). The batch counters say everything but parked
// failures (failed also counts records that will be retried), which are
// counted from the rows of the few batches with failures. One read of the
// sync_batches_finished index range.
func FinishedSince(ctx context.Context, db bun.IDB, workspaceID int64, since, recentFrom time.Time) (Finished, error) {
	var f Finished
	perBatch := db.NewSelect().TableExpr("sync_batches AS b").
		ColumnExpr("b.finished_at").
		ColumnExpr("b.created + b.updated + b.deleted + b.skipped + CASE WHEN b.failed > 0 THEN "+
			"(SELECT COUNT(*) FROM sync_batch_records AS r WHERE r.batch_id = b.id AND r.outcome = ?) ELSE 0 END AS n", OutcomeFailed).
		Where("b.workspace_id = ? AND b.direction = ? AND b.finished_at >= ?", workspaceID, Outbound, since.UTC())
	err := db.NewSelect().TableExpr("(?) AS f", perBatch).
		ColumnExpr("COALESCE(SUM(n), 0) AS records").
		ColumnExpr("COALESCE(SUM(CASE WHEN finished_at >= ? THEN n ELSE 0 END), 0) AS recent", recentFrom.UTC()).
		Scan(ctx, &f.Records, &f.Recent)
	if err != nil {
		return f, fmt.Errorf("count finished records of workspace %d: %w", workspaceID, err)
	}
	return f, nil
}
