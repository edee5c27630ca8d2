-- Conditional writes (internal/push/known.go, docs/sync.md): the CRM
-- state of a record as crmsync last observed it, a JSON object with the
-- fields read, LastModifiedDate, LastModifiedById and the CRM's clock at
-- the observation (NULL: unknown); and when a record crmsync wrote (or
-- observed within the second of its last change) should be read again, so
-- that a later call can carry the read for free.
ALTER TABLE records ADD COLUMN crm_known TEXT;
ALTER TABLE records ADD COLUMN crm_observe_after TIMESTAMPTZ;
CREATE INDEX records_observe ON records (workspace_id, crm_observe_after) WHERE crm_observe_after IS NOT NULL;
-- Whether a sync-log batch went in one call or needed a read, and why.
ALTER TABLE sync_batches ADD COLUMN write_path TEXT NOT NULL DEFAULT '';
ALTER TABLE sync_batches ADD COLUMN write_path_reason TEXT NOT NULL DEFAULT '';
