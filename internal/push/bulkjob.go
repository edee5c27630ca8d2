package push

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/internal/connection"
)

// bulkJobRow is a bulk job crmsync opened (connector.BulkJobRunner): stored,
// in its own transaction, before anything is uploaded to it, and finished
// once its results are read. An unfinished row left by a process that died
// is settled by the next flush of the workspace before it writes anything
// (settleBulkJobs): writing those records again while the CRM still works
// the job would create them twice. Finished rows are kept bulkJobsKept for
// the overview (BulkUsage).
type bulkJobRow struct {
	bun.BaseModel `bun:"table:bulk_jobs"`

	WorkspaceID int64        `bun:"workspace_id,pk"`
	JobID       string       `bun:"job_id,pk"`
	Object      string       `bun:"object,notnull"`
	Kind        string       `bun:"kind,notnull"`
	Records     int          `bun:"records,notnull"`
	OpenedAt    time.Time    `bun:"opened_at,notnull"`
	FinishedAt  bun.NullTime `bun:"finished_at"`
	// State is the CRM's last word on the job ("settled: Aborted", ...);
	// Processed and Failed count its rows.
	State             string `bun:"state,notnull"`
	Processed, Failed int64  `bun:",notnull"`
}

// bulkJobsKept is how long finished bulk jobs are kept.
const bulkJobsKept = 7 * 24 * time.Hour

// finishBulkJob records that a job writes nothing more, and forgets jobs
// finished over bulkJobsKept ago.
func (f *flush) finishBulkJob(ctx context.Context, row *bulkJobRow, state string, processed, failed int64) error {
	row.FinishedAt, row.State, row.Processed, row.Failed = bun.NullTime{Time: f.e.now().UTC()}, state, processed, failed
	if _, err := f.e.db.NewUpdate().Model(row).Column("finished_at", "state", "processed", "failed").WherePK().Exec(ctx); err != nil {
		return fmt.Errorf("finish bulk job %s: %w", row.JobID, err)
	}
	_, err := f.e.db.NewDelete().Model((*bulkJobRow)(nil)).
		Where("workspace_id = ? AND finished_at < ?", f.c.WorkspaceID, row.FinishedAt.Time.Add(-bulkJobsKept)).Exec(ctx)
	if err != nil {
		return fmt.Errorf("prune bulk jobs of workspace %d: %w", f.c.WorkspaceID, err)
	}
	return nil
}

// bulkSettleWait is how long a flush waits, with nothing written, while a
// bulk job from before a restart is still being worked.
const bulkSettleWait = 10 * time.Second

// settleBulkJobs settles the workspace's bulk jobs left by a flush that
// did not see them finish. It returns how long to wait when one is still
// being worked; the flush then writes nothing (its items stay queued).
func (f *flush) settleBulkJobs(ctx context.Context) (time.Duration, error) {
	var rows []bulkJobRow
	if err := f.e.db.NewSelect().Model(&rows).Where("workspace_id = ? AND finished_at IS NULL", f.c.WorkspaceID).OrderExpr("opened_at").Scan(ctx); err != nil {
		return 0, fmt.Errorf("read bulk jobs of workspace %d: %w", f.c.WorkspaceID, err)
	}
	if len(rows) == 0 {
		return 0, nil
	}
	caps, err := f.e.descs.Capabilities(ctx, f.c, f.crm)
	if err != nil {
		return 0, err
	}
	runner, ok := connection.Optional[connector.BulkJobRunner](caps, connector.CapabilityBulkJobs, f.crm)
	for i := range rows {
		row := &rows[i]
		state, processed, failed := "not settled: the connector no longer runs bulk jobs", int64(0), int64(0)
		log := f.e.logger.With(slog.Int64("workspace_id", f.c.WorkspaceID), slog.String("job", row.JobID),
			slog.String("object", row.Object), slog.Int("records", row.Records))
		if !ok {
			// The connection's connector changed: nobody can ask.
			log.Warn("bulk job left by an earlier flush cannot be settled: the connector no longer runs bulk jobs; its records are read again")
		} else {
			resp, err := runner.SettleBulkJob(ctx, connector.SettleBulkJobRequest{Session: f.meter.Session, JobID: row.JobID})
			if err := f.meter.Observe(ctx, "settle bulk job", connection.MetaOf(resp), err); err != nil {
				return 0, err
			}
			if !resp.Done {
				log.Info("waiting for a bulk job opened before a restart: the CRM is still working it", slog.String("state", resp.State))
				return bulkSettleWait, nil
			}
			log.Info("bulk job opened before a restart is settled; its records are read again", slog.String("state", resp.State),
				slog.Int64("processed", resp.Processed), slog.Int64("failed", resp.Failed))
			state, processed, failed = "settled after a restart: "+resp.State, resp.Processed, resp.Failed
		}
		if err := f.finishBulkJob(ctx, row, state, processed, failed); err != nil {
			return 0, err
		}
	}
	return 0, nil
}

// send writes ops and answers one result per operation, in order. With a
// connector that runs bulk jobs (connector.BulkJobRunner), the operations
// of one kind on one object beyond the bulk threshold go as one tracked
// job each, the rest in one BulkUpdate; otherwise all go in one
// BulkUpdate. An error means no operation's outcome is known.
func (f *flush) send(ctx context.Context, ops []connector.Operation) ([]connector.Result, error) {
	runner, tracked := connection.Optional[connector.BulkJobRunner](f.caps, connector.CapabilityBulkJobs, f.crm)
	threshold, bulk := f.caps.BulkThreshold()
	type groupKey struct {
		kind          connector.OpKind
		object, extID string
	}
	groups := map[groupKey][]int{}
	var order []groupKey
	if tracked && bulk {
		for i, op := range ops {
			k := groupKey{op.Kind, op.Object, op.ExternalIDField}
			if _, ok := groups[k]; !ok {
				order = append(order, k)
			}
			groups[k] = append(groups[k], i)
		}
	}
	results := make([]connector.Result, len(ops))
	var rest []int
	for _, k := range order {
		idx := groups[k]
		if len(idx) <= threshold {
			rest = append(rest, idx...)
			continue
		}
		part := make([]connector.Operation, len(idx))
		for i, j := range idx {
			part[i] = ops[j]
		}
		res, err := f.runBulkJob(ctx, runner, part)
		if errors.Is(err, connector.ErrUnsupported) {
			rest = append(rest, idx...) // the CRM refused the job: its per-record API
			continue
		}
		if err != nil {
			return nil, err
		}
		for i, j := range idx {
			results[j] = res[i]
		}
	}
	if len(order) == 0 {
		rest = make([]int, len(ops))
		for i := range ops {
			rest[i] = i
		}
	}
	if len(rest) == 0 {
		return results, nil
	}
	part := make([]connector.Operation, len(rest))
	for i, j := range rest {
		part[i] = ops[j]
	}
	resp, err := f.crm.BulkUpdate(ctx, connector.BulkUpdateRequest{Session: f.meter.Session, Operations: part})
	if err := f.meter.Observe(ctx, "write", connection.MetaOf(resp), err); err != nil {
		return nil, err
	}
	if len(resp.Results) != len(part) {
		return nil, fmt.Errorf("write: connector returned %d results for %d operations", len(resp.Results), len(part))
	}
	for i, j := range rest {
		results[j] = resp.Results[i]
	}
	return results, nil
}

// runBulkJob writes ops (one kind, one object) as one tracked bulk job: it
// opens the job, stores its id, runs it, and forgets it once its results
// are read. A job whose run fails stays stored: the next flush settles it
// before writing its records again.
func (f *flush) runBulkJob(ctx context.Context, runner connector.BulkJobRunner, ops []connector.Operation) ([]connector.Result, error) {
	op := ops[0]
	open, err := runner.OpenBulkJob(ctx, connector.OpenBulkJobRequest{Session: f.meter.Session, Object: op.Object, Kind: op.Kind, ExternalIDField: op.ExternalIDField})
	// A job the CRM refuses (ErrUnsupported, which send sends by
	// BulkUpdate instead) still cost its call.
	if err := f.meter.Observe(ctx, "open bulk job", connection.MetaOf(open), err); err != nil {
		return nil, err
	}
	row := &bulkJobRow{WorkspaceID: f.c.WorkspaceID, JobID: open.JobID, Object: op.Object, Kind: string(op.Kind), Records: len(ops), OpenedAt: f.e.now().UTC()}
	if _, err := f.e.db.NewInsert().Model(row).Exec(ctx); err != nil {
		return nil, fmt.Errorf("store bulk job %s: %w", open.JobID, err)
	}
	resp, err := runner.RunBulkJob(ctx, connector.RunBulkJobRequest{Session: f.meter.Session, JobID: open.JobID, Operations: ops})
	if err := f.meter.Observe(ctx, "bulk job", connection.MetaOf(resp), err); err != nil {
		return nil, err
	}
	if len(resp.Results) != len(ops) {
		return nil, fmt.Errorf("bulk job %s: connector returned %d results for %d operations", open.JobID, len(resp.Results), len(ops))
	}
	// Finished at once, not with the flush's commit: the results are in
	// hand, and a flush that dies from here on leaves its records
	// unconfirmed like any write (they are matched again, not re-created
	// blindly), with no job left running.
	var failed int64
	for _, r := range resp.Results {
		if r.Error != nil {
			failed++
		}
	}
	if err := f.finishBulkJob(ctx, row, "results read", int64(len(ops)), failed); err != nil {
		return nil, err
	}
	return resp.Results, nil
}

// BulkUsage is a workspace's use of the CRM's bulk API through tracked
// jobs over the last 24 hours (docs/sync.md, "Bulk jobs across a
// restart").
type BulkUsage struct {
	// Running counts the jobs not finished yet (being worked, or left by
	// a process that died and not settled yet).
	Running int
	// Jobs and Records count the jobs opened in the last 24 hours and the
	// records they carried; Batches estimates what they cost of the
	// CRM's daily bulk allocation (Salesforce counts a Bulk API 2.0 job
	// as one batch per 10,000 records: DailyBulkApiBatches, 15,000 a day).
	Jobs    int
	Records int64
	Batches int64
}

// GetBulkUsage reads the workspace's BulkUsage at now.
func GetBulkUsage(ctx context.Context, db bun.IDB, workspaceID int64, now time.Time) (BulkUsage, error) {
	var rows []bulkJobRow
	err := db.NewSelect().Model(&rows).Column("records", "finished_at").
		Where("workspace_id = ? AND (opened_at >= ? OR finished_at IS NULL)", workspaceID, now.UTC().Add(-24*time.Hour)).Scan(ctx)
	if err != nil {
		return BulkUsage{}, fmt.Errorf("read bulk jobs of workspace %d: %w", workspaceID, err)
	}
	var u BulkUsage
	for _, r := range rows {
		if r.FinishedAt.IsZero() {
			u.Running++
		}
		u.Jobs++
		u.Records += int64(r.Records)
		u.Batches += int64(ceilDiv(r.Records, bulkBatchRecords))
	}
	return u, nil
}

// bulkBatchRecords is how many records of a Bulk API 2.0 job count as one
// batch of Salesforce's daily allocation.
const bulkBatchRecords = 10_000
