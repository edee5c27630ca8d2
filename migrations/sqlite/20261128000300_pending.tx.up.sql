-- Values crmsync is about to write to a CRM record, committed before the
-- write (internal/push): if crmsync dies before it records the outcome,
-- the next flush still knows that a CRM value equal to one of them is its
-- own write and not someone's edit. A JSON object of CRM field to value.
ALTER TABLE records ADD COLUMN crm_pending TEXT NOT NULL DEFAULT '{}';
