package memcrm

import (
	"context"

	"github.com/crmsync/crmsync/connectors/connector"
)

// Bulk job states, named as Salesforce's Bulk API 2.0 names them;
// JobUnknown is what SettleBulkJob reports for an id the org never gave.
const (
	JobOpen       = "Open"
	JobInProgress = "InProgress"
	JobComplete   = "JobComplete"
	JobAborted    = "Aborted"
	JobUnknown    = "unknown"
)

// What a bulk job costs, as on Salesforce: one call opens it; running it
// uploads, closes, polls once and downloads the results; settling reads
// (or aborts) it.
const (
	openJobCalls   = 1
	runJobCalls    = 4
	settleJobCalls = 1
	bulkJobCalls   = openJobCalls + runJobCalls
)

// bulkJob is one job of an org, guarded by the org's mutex.
type bulkJob struct {
	object, extIDField string
	kind               connector.OpKind
	state              string
	processed, failed  int64
	// A run that lost its connection (Faults.BulkJobCrashAfter) leaves the
	// rows it did not write, the faults to write them with and the settles
	// still to find the job in progress.
	lost    bool
	pending []connector.Operation
	faults  Faults
	polls   int
}

// bulkUpdateCalls is what a BulkUpdate of ops costs: each group of more
// than the bulk threshold operations of one kind on one object is a job,
// the rest go 200 a call.
func (c *CRM) bulkUpdateCalls(ops []connector.Operation) int64 {
	type group struct {
		kind   connector.OpKind
		object string
	}
	sizes := map[group]int{}
	for _, op := range ops {
		sizes[group{op.Kind, op.Object}]++
	}
	var calls int64
	rest := 0
	for _, n := range sizes {
		if c.bulkThreshold > 0 && n > c.bulkThreshold {
			calls += bulkJobCalls
			continue
		}
		rest += n
	}
	return calls + int64((rest+199)/200)
}

func (c *CRM) bulkJobsOn(method string) error {
	if c.bulkThreshold == 0 {
		return connector.Errorf(connector.KindUnsupported, "memcrm %s: bulk jobs are off (memcrm.WithBulkJobs turns them on)", method)
	}
	return nil
}

// OpenBulkJob implements connector.BulkJobRunner. It costs one API call.
func (c *CRM) OpenBulkJob(ctx context.Context, req connector.OpenBulkJobRequest) (*connector.OpenBulkJobResponse, error) {
	if err := c.bulkJobsOn("open bulk job"); err != nil {
		return nil, err
	}
	cl, err := c.begin(ctx, "OpenBulkJob", req.Session)
	if err != nil {
		return nil, err
	}
	def, ok := c.objects[req.Object]
	if !ok {
		return nil, connector.Errorf(connector.KindInvalid, "memcrm open bulk job: INVALID_TYPE: sObject type %q is not supported", req.Object)
	}
	switch req.Kind {
	case connector.OpCreate, connector.OpUpdate, connector.OpDelete:
		if req.ExternalIDField != "" {
			return nil, connector.Errorf(connector.KindInvalid, "memcrm open bulk job: a %s job has no external id field (%q)", req.Kind, req.ExternalIDField)
		}
	case connector.OpUpsert:
		if f, ok := def.Field(req.ExternalIDField); !ok || !f.ExternalID {
			return nil, connector.Errorf(connector.KindInvalid, "memcrm open bulk job: INVALID_FIELD: %q is not an external id field of %s", req.ExternalIDField, req.Object)
		}
	default:
		return nil, connector.Errorf(connector.KindInvalid, "memcrm open bulk job: unknown operation kind %q", req.Kind)
	}
	meta, err := cl.org.charge(openJobCalls)
	if err != nil {
		return nil, err
	}
	o := cl.org
	o.mu.Lock()
	defer o.mu.Unlock()
	id := o.nextID("BulkJob")
	o.jobs[id] = &bulkJob{object: req.Object, extIDField: req.ExternalIDField, kind: req.Kind, state: JobOpen}
	return &connector.OpenBulkJobResponse{JobID: id, Meta: meta}, nil
}

// RunBulkJob implements connector.BulkJobRunner: it writes the operations
// as BulkUpdate does and answers with their results. It costs four API
// calls whatever the job's size. Faults.BulkJobCrashAfter makes it fail
// part way, leaving the job InProgress.
func (c *CRM) RunBulkJob(ctx context.Context, req connector.RunBulkJobRequest) (*connector.BulkUpdateResponse, error) {
	if err := c.bulkJobsOn("run bulk job"); err != nil {
		return nil, err
	}
	cl, err := c.begin(ctx, "RunBulkJob", req.Session)
	if err != nil {
		return nil, err
	}
	job, err := cl.org.claimJob(req.JobID, req.Operations)
	if err != nil {
		return nil, err
	}
	meta, err := cl.org.charge(runJobCalls)
	if err != nil {
		cl.org.reopenJob(job)
		return nil, err
	}
	results := make([]connector.Result, 0, len(req.Operations))
	for i, op := range req.Operations {
		if n := cl.faults.BulkJobCrashAfter; n > 0 && i == n {
			break
		}
		results = append(results, cl.org.apply(cl.faults, op))
	}
	if n := cl.faults.BulkJobCrashAfter; n > 0 {
		cl.org.loseJob(job, results, req.Operations[len(results):], cl.faults)
		return nil, connector.Errorf(connector.KindUnavailable, "memcrm run bulk job %s: connection lost after %d of %d rows (injected); the job goes on",
			req.JobID, len(results), len(req.Operations))
	}
	cl.org.finishJob(job, results)
	return &connector.BulkUpdateResponse{Results: results, Meta: meta}, nil
}

// SettleBulkJob implements connector.BulkJobRunner: an open job is
// aborted, a finished one reported, an unknown one is done. A job a run
// lost (Faults.BulkJobCrashAfter) stays in progress for
// Faults.BulkJobSettlePolls settles, then the next writes its remaining
// rows. It costs one API call.
func (c *CRM) SettleBulkJob(ctx context.Context, req connector.SettleBulkJobRequest) (*connector.SettleBulkJobResponse, error) {
	if err := c.bulkJobsOn("settle bulk job"); err != nil {
		return nil, err
	}
	cl, err := c.begin(ctx, "SettleBulkJob", req.Session)
	if err != nil {
		return nil, err
	}
	meta, err := cl.org.charge(settleJobCalls)
	if err != nil {
		return nil, err
	}
	resp := cl.org.settleJob(req.JobID)
	resp.Meta = meta
	return resp, nil
}

// claimJob moves an open job to InProgress for a run of ops, which must
// all have the job's kind and object.
func (o *Org) claimJob(id string, ops []connector.Operation) (*bulkJob, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	job, ok := o.jobs[id]
	switch {
	case !ok:
		return nil, connector.Errorf(connector.KindInvalid, "memcrm run bulk job: NOT_FOUND: no job %q", id)
	case job.state != JobOpen:
		return nil, connector.Errorf(connector.KindInvalid, "memcrm run bulk job: job %s is not open (state %s)", id, job.state)
	case len(ops) == 0:
		return nil, connector.Errorf(connector.KindInvalid, "memcrm run bulk job %s: no operations to upload", id)
	}
	for i, op := range ops {
		if op.Kind != job.kind || op.Object != job.object || op.ExternalIDField != job.extIDField {
			return nil, connector.Errorf(connector.KindInvalid, "memcrm run bulk job %s: operation %d is %s %s (external id field %q), the job's are %s %s (%q)",
				id, i, op.Kind, op.Object, op.ExternalIDField, job.kind, job.object, job.extIDField)
		}
	}
	job.state = JobInProgress
	return job, nil
}

// reopenJob undoes claimJob when the run could not start.
func (o *Org) reopenJob(job *bulkJob) {
	o.mu.Lock()
	defer o.mu.Unlock()
	job.state = JobOpen
}

func (o *Org) finishJob(job *bulkJob, results []connector.Result) {
	o.mu.Lock()
	defer o.mu.Unlock()
	job.count(results)
	job.state = JobComplete
}

func (o *Org) loseJob(job *bulkJob, written []connector.Result, pending []connector.Operation, f Faults) {
	o.mu.Lock()
	defer o.mu.Unlock()
	job.count(written)
	job.lost, job.pending, job.faults, job.polls = true, pending, f, f.BulkJobSettlePolls
}

func (j *bulkJob) count(results []connector.Result) {
	for _, r := range results {
		j.processed++
		if r.Error != nil {
			j.failed++
		}
	}
}

// settleJob is SettleBulkJob's answer for job id.
func (o *Org) settleJob(id string) *connector.SettleBulkJobResponse {
	o.mu.Lock()
	defer o.mu.Unlock()
	job, ok := o.jobs[id]
	if !ok {
		return &connector.SettleBulkJobResponse{Done: true, State: JobUnknown}
	}
	switch {
	case job.state == JobOpen:
		job.state = JobAborted
	case job.state == JobInProgress && job.lost && job.polls > 0:
		job.polls--
	case job.state == JobInProgress && job.lost:
		for _, op := range job.pending {
			job.count([]connector.Result{o.writeLocked(o.integrationUser, job.faults, op)})
		}
		job.pending, job.state = nil, JobComplete
	}
	return &connector.SettleBulkJobResponse{Done: job.state != JobInProgress, State: job.state, Processed: job.processed, Failed: job.failed}
}
