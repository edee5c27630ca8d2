package salesforce

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/crmsync/crmsync/connectors/connector"
)

// OpenBulkJob implements connector.BulkJobRunner: it creates a Bulk API 2.0
// ingest job (state Open) and uploads nothing. A job the org refuses (an
// object the Bulk API does not take, an exhausted Bulk allocation) is an
// ErrUnsupported error: write those records by BulkUpdate.
func (c *Connector) OpenBulkJob(ctx context.Context, req connector.OpenBulkJobRequest) (*connector.OpenBulkJobResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr("salesforce open bulk job", err)
	}
	if _, ok := bulkOperations[req.Kind]; !ok {
		return nil, connector.Errorf(connector.KindInvalid, "salesforce open bulk job: unknown operation kind %q", req.Kind)
	}
	if !validIdent(req.Object) || (req.Kind == connector.OpUpsert) != (req.ExternalIDField != "") ||
		(req.ExternalIDField != "" && !validIdent(req.ExternalIDField)) {
		return nil, connector.Errorf(connector.KindInvalid, "salesforce open bulk job: object %q, external-id field %q", req.Object, req.ExternalIDField)
	}
	cl, err := c.begin(ctx, req.Session)
	if err != nil {
		return nil, err
	}
	id, ok, err := cl.createJob(ctx, &group{kind: req.Kind, object: req.Object, ext: req.ExternalIDField})
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, connector.Errorf(connector.KindUnsupported, "salesforce: the org refused a Bulk API job for %s %s", req.Kind, req.Object)
	}
	return &connector.OpenBulkJobResponse{JobID: id, Meta: cl.meta()}, nil
}

// RunBulkJob implements connector.BulkJobRunner: it uploads the operations
// to the open job, closes it, polls it with back-off and reads its results,
// as BulkUpdate does for a group above the threshold.
func (c *Connector) RunBulkJob(ctx context.Context, req connector.RunBulkJobRequest) (*connector.BulkUpdateResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr("salesforce run bulk job", err)
	}
	if !ValidID(req.JobID) {
		return nil, connector.Errorf(connector.KindInvalid, "salesforce run bulk job: %q is not a job id", req.JobID)
	}
	ops := req.Operations
	for _, op := range ops[min(1, len(ops)):] {
		if op.Kind != ops[0].Kind || op.Object != ops[0].Object || op.ExternalIDField != ops[0].ExternalIDField {
			return nil, connector.Errorf(connector.KindInvalid, "salesforce run bulk job %s: operations of several kinds or objects (%s %s, %s %s)",
				req.JobID, ops[0].Kind, ops[0].Object, op.Kind, op.Object)
		}
	}
	cl, err := c.begin(ctx, req.Session)
	if err != nil {
		return nil, err
	}
	results := make([]connector.Result, len(ops))
	groups, err := cl.plan(ctx, ops, results)
	if err != nil {
		return nil, err
	}
	if len(groups) == 0 { // every operation refused before the upload
		cl.abortJob(ctx, req.JobID)
		return &connector.BulkUpdateResponse{Results: results, Meta: cl.meta()}, nil
	}
	job := &ingestJob{g: groups[0], id: req.JobID, rows: map[string][]int{}}
	if err := cl.uploadJob(ctx, job, ops); err != nil {
		return nil, err
	}
	info, err := cl.waitJob(ctx, job)
	if err != nil {
		return nil, err
	}
	dups, err := cl.finishJob(ctx, job, info, ops, results)
	if err != nil {
		return nil, err
	}
	cl.resolveMembers(ctx, dups, ops, results)
	return &connector.BulkUpdateResponse{Results: results, Meta: cl.meta()}, nil
}

// SettleBulkJob implements connector.BulkJobRunner: an Open job (never
// closed: nothing of it is written) is aborted; a job the org no longer
// has (jobs are deleted seven days after they end) is done.
func (c *Connector) SettleBulkJob(ctx context.Context, req connector.SettleBulkJobRequest) (*connector.SettleBulkJobResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr("salesforce settle bulk job", err)
	}
	if !ValidID(req.JobID) {
		return nil, connector.Errorf(connector.KindInvalid, "salesforce settle bulk job: %q is not a job id", req.JobID)
	}
	cl, err := c.begin(ctx, req.Session)
	if err != nil {
		return nil, err
	}
	resp, err := cl.send(ctx, "bulk job status", request{method: "GET", path: "/jobs/ingest/" + req.JobID})
	if err != nil {
		return nil, err
	}
	if resp.status == http.StatusNotFound {
		return &connector.SettleBulkJobResponse{Done: true, State: "unknown", Meta: cl.meta()}, nil
	}
	if resp.status/100 != 2 {
		return nil, apiError("bulk job status", resp.status, resp.body)
	}
	var info jobInfo
	if err := json.Unmarshal(resp.body, &info); err != nil {
		return nil, connector.Errorf(connector.KindUnavailable, "salesforce bulk job status: unreadable answer: %s", excerpt(string(resp.body), 200))
	}
	out := &connector.SettleBulkJobResponse{State: info.State, Processed: int64(info.NumberRecordsProcessed), Failed: int64(info.NumberRecordsFailed)}
	switch info.State {
	case "Open":
		if err := cl.do(ctx, "bulk abort job", request{method: "PATCH", path: "/jobs/ingest/" + req.JobID, body: map[string]string{"state": "Aborted"}}, nil); err != nil {
			return nil, err
		}
		out.Done, out.State = true, "Aborted"
	case "JobComplete", "Failed", "Aborted":
		out.Done = true
	}
	out.Meta = cl.meta()
	return out, nil
}
