-- Inbound sync (internal/inbound): where each object's change feed stands,
-- when each workspace was last pulled, and the lookups that link CRM
-- records to Conversion records by email and website.

CREATE TABLE inbound_cursors (
    workspace_id BIGINT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    crm_object TEXT NOT NULL,
    -- source names the connector and org the cursor belongs to; a cursor of
    -- another org is never used.
    source TEXT NOT NULL,
    next_cursor TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (workspace_id, crm_object)
);

CREATE TABLE inbound_pulls (
    workspace_id BIGINT PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    last_pull_at TIMESTAMP NOT NULL
);

-- CRM records a pull skipped (no email, converted Lead, ...), with the
-- SystemModstamp skipped: a look-back re-read of the same version is not
-- logged again.
CREATE TABLE inbound_skips (
    workspace_id BIGINT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    crm_id TEXT NOT NULL,
    crm_modstamp TIMESTAMP NOT NULL,
    PRIMARY KEY (workspace_id, crm_id)
);

CREATE INDEX records_email ON records (workspace_id, type, lower(json_extract(fields, '$.email.v')));
CREATE INDEX records_website ON records (workspace_id, type, lower(json_extract(fields, '$.website.v')));
