-- Bulk jobs crmsync opened and has not seen finish (internal/push,
-- bulkjob.go; docs/sync.md, "Bulk jobs across a restart"): stored before
-- the job's upload, deleted once its results are read or, after a
-- restart, once the connector settles it. A flush of the workspace writes
-- nothing while one of them is still being worked.
CREATE TABLE bulk_jobs (
    workspace_id BIGINT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    job_id TEXT NOT NULL,
    object TEXT NOT NULL,
    kind TEXT NOT NULL,
    records INTEGER NOT NULL,
    opened_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (workspace_id, job_id)
);
