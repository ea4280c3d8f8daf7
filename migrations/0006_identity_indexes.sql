-- kontak:no-transaction
-- The scan that proves every existing contact has a phone or a BSUID takes only
-- SHARE UPDATE EXCLUSIVE (reads and writes go on), and the BSUID index is built
-- CONCURRENTLY: neither blocks a lookup or a webhook on a live table.
ALTER TABLE contacts VALIDATE CONSTRAINT contacts_phone_or_bsuid;
-- One contact per (workspace, BSUID) where present; also the lookup's index by BSUID.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS contacts_workspace_bsuid
    ON contacts (workspace_id, bsuid) WHERE bsuid IS NOT NULL;
