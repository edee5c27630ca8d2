-- Capability-aware routing (docs/connectors.md, "Routing"): the CRM
-- objects the connection's connector describes, saved when it connects (a
-- JSON array of object names; NULL for connections from before, which
-- route every record type as they did), and, per workspace and record
-- type, the changes kept local because the connector does not describe
-- the type's object.
ALTER TABLE crm_connections ADD COLUMN crm_objects TEXT;

CREATE TABLE unsupported_changes (
    workspace_id BIGINT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    record_type TEXT NOT NULL,
    changes BIGINT NOT NULL,
    last_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (workspace_id, record_type)
);
