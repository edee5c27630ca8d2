-- When each CRM value crmsync knows became true (internal/record.Stamp):
-- per CRM field of crm_fields and of crm_pending, a JSON object of
-- {"at": time, "w": true when it is the time of the Conversion change
-- crmsync wrote, absent when it is the LastModifiedDate crmsync read}.
-- Rows from before have none: their values' times are taken from the
-- next read (LastModifiedDate), the safe side.
ALTER TABLE records ADD COLUMN crm_stamps TEXT NOT NULL DEFAULT '{}';
ALTER TABLE records ADD COLUMN crm_pending_stamps TEXT NOT NULL DEFAULT '{}';
