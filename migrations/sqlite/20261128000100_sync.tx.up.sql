CREATE TABLE crm_connections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id BIGINT NOT NULL UNIQUE REFERENCES workspaces (id) ON DELETE CASCADE,
    connector TEXT NOT NULL,
    config TEXT NOT NULL,
    credentials BLOB,
    status TEXT NOT NULL,
    status_reason TEXT NOT NULL DEFAULT '',
    identity_user_id TEXT NOT NULL DEFAULT '',
    identity_username TEXT NOT NULL DEFAULT '',
    identity_org_id TEXT NOT NULL DEFAULT '',
    instance_url TEXT NOT NULL DEFAULT '',
    paused_by_user BOOLEAN NOT NULL DEFAULT FALSE,
    api_used BIGINT,
    api_max BIGINT,
    api_observed_at TIMESTAMP,
    daily_limit BIGINT,
    last_flush_at TIMESTAMP,
    lease_owner TEXT NOT NULL DEFAULT '',
    lease_until TIMESTAMP,
    pause_reason TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE object_sync_preferences (
    workspace_id BIGINT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    record_type TEXT NOT NULL,
    write_enabled BOOLEAN NOT NULL,
    read_enabled BOOLEAN NOT NULL,
    create_as TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (workspace_id, record_type)
);

CREATE TABLE field_mappings (
    workspace_id BIGINT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    record_type TEXT NOT NULL,
    field TEXT NOT NULL,
    crm_field TEXT NOT NULL,
    mode TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (workspace_id, record_type, field)
);

CREATE TABLE records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id BIGINT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    type TEXT NOT NULL,
    conversion_id TEXT NOT NULL,
    crm_object TEXT NOT NULL DEFAULT '',
    crm_id TEXT NOT NULL DEFAULT '',
    fields TEXT NOT NULL,
    crm_fields TEXT NOT NULL,
    crm_modstamp TIMESTAMP,
    create_attempted_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (workspace_id, type, conversion_id)
);

CREATE INDEX records_crm_id ON records (workspace_id, crm_id) WHERE crm_id <> '';

CREATE TABLE outbound_items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id BIGINT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    record_id BIGINT NOT NULL REFERENCES records (id) ON DELETE CASCADE,
    record_type TEXT NOT NULL,
    op TEXT NOT NULL,
    fields TEXT NOT NULL,
    source TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP,
    error_code TEXT NOT NULL DEFAULT '',
    error_message TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL
);

CREATE INDEX outbound_items_queue ON outbound_items (workspace_id, state, id);
CREATE INDEX outbound_items_record ON outbound_items (record_id);

CREATE TABLE sync_batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id BIGINT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    direction TEXT NOT NULL,
    status TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP NOT NULL,
    created INTEGER NOT NULL DEFAULT 0,
    updated INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    waiting INTEGER NOT NULL DEFAULT 0,
    api_calls INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX sync_batches_workspace ON sync_batches (workspace_id, id);

CREATE TABLE sync_batch_records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id BIGINT NOT NULL REFERENCES sync_batches (id) ON DELETE CASCADE,
    workspace_id BIGINT NOT NULL,
    record_type TEXT NOT NULL,
    conversion_id TEXT NOT NULL,
    crm_object TEXT NOT NULL DEFAULT '',
    crm_id TEXT NOT NULL DEFAULT '',
    outcome TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    error_code TEXT NOT NULL DEFAULT '',
    fields TEXT NOT NULL
);

CREATE INDEX sync_batch_records_batch ON sync_batch_records (batch_id);
CREATE INDEX sync_batch_records_record ON sync_batch_records (workspace_id, record_type, conversion_id);

CREATE TABLE api_calls (
    workspace_id BIGINT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    hour TIMESTAMP NOT NULL,
    calls BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, hour)
);
