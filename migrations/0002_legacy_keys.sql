-- Keys of rows imported from the original CRM (`db import-legacy`): a re-run
-- finds what it already wrote instead of writing it twice. Nullable, no
-- default: adding them is a catalogue change, it rewrites no row.
ALTER TABLE contact_notes ADD COLUMN IF NOT EXISTS legacy_id text NULL;
ALTER TABLE messages ADD COLUMN IF NOT EXISTS legacy_id text NULL;
