-- The bulk jobs crmsync opens (internal/push, bulkjob.go; docs/sync.md,
-- "Bulk jobs across a restart"): stored before the job's upload, finished
-- once its results are read or, after a restart, once the connector
-- settles it. A flush of the workspace writes nothing while a job it did
-- not see finish is still being worked. Finished jobs are kept seven days
-- for the overview's Bulk usage.
CREATE TABLE bulk_jobs (
    workspace_id BIGINT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    job_id TEXT NOT NULL,
    object TEXT NOT NULL,
    kind TEXT NOT NULL,
    records INTEGER NOT NULL,
    opened_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    state TEXT NOT NULL DEFAULT '',
    processed INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, job_id)
);
