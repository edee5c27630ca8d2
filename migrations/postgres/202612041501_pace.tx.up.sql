-- Budget pacing of outbound flushes (internal/push/pace.go, docs/sync.md):
-- each connection's token bucket, in API calls. pace_tokens is the bucket's
-- content at pace_at; pace_rate (calls per second) is the refill rate the
-- last flush computed from the budget left in the rolling 24 hours. All
-- three are written by the flush that holds the connection's lease, so the
-- bucket is shared by every replica. NULL pace_at means a full bucket.
-- pace_burst and pace_budget (calls per 24 hours) are what that flush
-- used, so the overview and the metrics show the pace without the engine.
ALTER TABLE crm_connections ADD COLUMN pace_tokens DOUBLE PRECISION;
ALTER TABLE crm_connections ADD COLUMN pace_rate DOUBLE PRECISION;
ALTER TABLE crm_connections ADD COLUMN pace_at TIMESTAMPTZ;
ALTER TABLE crm_connections ADD COLUMN pace_burst DOUBLE PRECISION;
ALTER TABLE crm_connections ADD COLUMN pace_budget BIGINT;
