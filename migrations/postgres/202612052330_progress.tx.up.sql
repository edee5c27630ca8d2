-- Progress of a backlog (internal/overview/progress.go, docs/sync.md,
-- "Progress"): the overview and every metrics scrape sum the outbound
-- batches a workspace finished since its oldest queued item was queued.
-- sync_batches is never pruned, so without this index that read would
-- walk every batch the workspace ever logged.
CREATE INDEX sync_batches_finished ON sync_batches (workspace_id, direction, finished_at);
