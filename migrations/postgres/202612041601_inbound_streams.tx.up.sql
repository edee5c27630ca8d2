-- Streaming inbound (internal/inbound, docs/inbound.md): where each
-- object's change stream stands, stored in the transaction that applies
-- the stream's changes, and the state of each workspace's stream.

CREATE TABLE inbound_streams (
    workspace_id BIGINT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    crm_object TEXT NOT NULL,
    -- source names the connector and org the position belongs to, as for
    -- inbound_cursors.
    source TEXT NOT NULL,
    position TEXT NOT NULL,
    -- last_commit_at is the CRM commit time of the newest change applied.
    last_commit_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (workspace_id, crm_object)
);

-- One row per workspace whose inbound sync streamed at least once. The
-- lease keeps one replica streaming a workspace; mode says how inbound
-- runs now: STREAMING, CATCHING_UP or POLLING (reason says why).
CREATE TABLE inbound_stream_state (
    workspace_id BIGINT PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    mode TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    lease_owner TEXT NOT NULL DEFAULT '',
    lease_until TIMESTAMPTZ,
    events_applied BIGINT NOT NULL DEFAULT 0,
    fallbacks BIGINT NOT NULL DEFAULT 0,
    last_fallback_reason TEXT NOT NULL DEFAULT '',
    last_event_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ NOT NULL
);
