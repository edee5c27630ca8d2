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

// bulkJobRow is a bulk job crmsync opened (connector.BulkJobRunner) and has
// not seen finish: stored, in its own transaction, before anything is
// uploaded to it, and deleted once its results are read. A row left by a
// process that died is settled by the next flush of the workspace before it
// writes anything (settleBulkJobs): writing those records again while the
// CRM still works the job would create them twice.
type bulkJobRow struct {
	bun.BaseModel `bun:"table:bulk_jobs"`

	WorkspaceID int64     `bun:"workspace_id,pk"`
	JobID       string    `bun:"job_id,pk"`
	Object      string    `bun:"object,notnull"`
	Kind        string    `bun:"kind,notnull"`
	Records     int       `bun:"records,notnull"`
	OpenedAt    time.Time `bun:"opened_at,notnull"`
}

// bulkSettleWait is how long a flush waits, with nothing written, while a
// bulk job from before a restart is still being worked.
const bulkSettleWait = 10 * time.Second

// settleBulkJobs settles the workspace's bulk jobs left by a flush that
// did not see them finish. It returns how long to wait when one is still
// being worked; the flush then writes nothing (its items stay queued).
func (f *flush) settleBulkJobs(ctx context.Context) (time.Duration, error) {
	var rows []bulkJobRow
	if err := f.e.db.NewSelect().Model(&rows).Where("workspace_id = ?", f.c.WorkspaceID).OrderExpr("opened_at").Scan(ctx); err != nil {
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
	for _, row := range rows {
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
		}
		if _, err := f.e.db.NewDelete().Model(&row).WherePK().Exec(ctx); err != nil {
			return 0, fmt.Errorf("forget bulk job %s: %w", row.JobID, err)
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
	if errors.Is(err, connector.ErrUnsupported) {
		return nil, err
	}
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
	// Forgotten at once, not with the flush's commit: the results are in
	// hand, and a flush that dies from here on leaves its records
	// unconfirmed like any write (they are matched again, not re-created
	// blindly), with no job left running.
	if _, err := f.e.db.NewDelete().Model(row).WherePK().Exec(ctx); err != nil {
		return nil, fmt.Errorf("forget bulk job %s: %w", open.JobID, err)
	}
	return resp.Results, nil
}
