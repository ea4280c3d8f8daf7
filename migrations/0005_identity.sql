-- WhatsApp identity beyond the phone number (docs/contract.md §4a, docs/webhook.md §7).
-- Built to run on a live database: every statement here is a catalogue change
-- (nullable columns without defaults, DROP NOT NULL, a CHECK added NOT VALID), so
-- the table locks are held for milliseconds and no row is rewritten or scanned.
-- The lock wait is kept under a second: a lookup queued behind this file's
-- ACCESS EXCLUSIVE request waits at most that long, and a busy table makes the
-- upgrade fail cleanly (run it again) instead of stalling the service.
SET LOCAL lock_timeout = '800ms';
ALTER TABLE contacts ALTER COLUMN phone DROP NOT NULL;
ALTER TABLE contacts ADD COLUMN IF NOT EXISTS bsuid text NULL;
ALTER TABLE contacts ADD COLUMN IF NOT EXISTS parent_bsuid text NULL;
ALTER TABLE contacts ADD COLUMN IF NOT EXISTS username text NULL;
ALTER TABLE contacts DROP CONSTRAINT IF EXISTS contacts_phone_or_bsuid;
ALTER TABLE contacts ADD CONSTRAINT contacts_phone_or_bsuid
    CHECK (phone IS NOT NULL OR bsuid IS NOT NULL) NOT VALID;
-- A failure's error code and title (docs/webhook.md §7.7).
ALTER TABLE messages ADD COLUMN IF NOT EXISTS error_code text NULL;
ALTER TABLE messages ADD COLUMN IF NOT EXISTS error_title text NULL;
-- The time of the conversation event that set `status` (forward only by event time).
ALTER TABLE conversations ADD COLUMN IF NOT EXISTS status_at timestamptz(3) NULL;
