package connector

import "context"

// BulkJobRunner is the optional capability of running a big write as a job
// crmsync can find again after a restart (Salesforce: a Bulk API 2.0 ingest
// job). A connector that implements it announces [CapabilityBulkJobs], with
// [CapabilityBulk] and Description.BulkThreshold. crmsync then opens each
// job itself and stores its id before anything is uploaded; after a
// restart it settles a job it did not see finish, and reads the records
// again, instead of writing them a second time while the CRM still works
// the first job. Without it, crmsync sends every write by BulkUpdate, and
// the connector may use the bulk API inside that call.
type BulkJobRunner interface {
	// OpenBulkJob opens a job for operations of one kind on one object (an
	// upsert names the external-id field). Nothing is written until
	// RunBulkJob; a job never run is discarded by SettleBulkJob.
	OpenBulkJob(ctx context.Context, req OpenBulkJobRequest) (*OpenBulkJobResponse, error)
	// RunBulkJob uploads the operations to the open job, closes it, waits
	// until the CRM has worked it (honouring ctx) and answers with one
	// Result per operation, in order, as BulkUpdate does: rows the job did
	// not process are retryable errors. Every operation has the job's kind
	// and object (ErrInvalid otherwise). A Go error means the outcome of
	// every operation is unknown; the job may still be running.
	RunBulkJob(ctx context.Context, req RunBulkJobRequest) (*BulkUpdateResponse, error)
	// SettleBulkJob makes sure a job writes nothing crmsync does not know
	// of: a job never closed is aborted; a closed one is reported as it is.
	// Done is false while the CRM still works the job (call again later).
	// A job the CRM does not know (any more) is done.
	SettleBulkJob(ctx context.Context, req SettleBulkJobRequest) (*SettleBulkJobResponse, error)
}

// OpenBulkJobRequest opens a bulk job.
type OpenBulkJobRequest struct {
	Session Session
	Object  string
	Kind    OpKind
	// ExternalIDField names the field of an OpUpsert job's records.
	ExternalIDField string
}

// OpenBulkJobResponse names the opened job.
type OpenBulkJobResponse struct {
	JobID string
	Meta
}

// RunBulkJobRequest runs an open job with its operations.
type RunBulkJobRequest struct {
	Session    Session
	JobID      string
	Operations []Operation
}

// SettleBulkJobRequest asks for a job to be settled.
type SettleBulkJobRequest struct {
	Session Session
	JobID   string
}

// SettleBulkJobResponse is a job's state once settled.
type SettleBulkJobResponse struct {
	// Done: the job writes nothing more (finished, failed, aborted, or
	// unknown to the CRM).
	Done bool
	// State is the CRM's name for the job's state, for the sync log.
	State string
	// Processed and Failed count the job's rows so far.
	Processed, Failed int64
	Meta
}
