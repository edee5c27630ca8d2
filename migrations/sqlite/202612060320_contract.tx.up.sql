-- The data contract (connectors/connector, DataContract; docs/connectors.md,
-- "The data contract"): how the connection's connector maps Conversion's
-- record types onto its objects, saved as JSON when it connects. NULL for
-- connections made before, and for connectors that declare none: both mean
-- Salesforce's shape, as before.
ALTER TABLE crm_connections ADD COLUMN crm_contract TEXT;
