-- Change capture for `sync-convex --follow` (docs/contract.md §14, docs/own-data.md §6).
--
-- An outbox written by triggers, read and trimmed by the follower: it works with the table
-- owner's rights (no superuser, no replication role, no wal_level change, which Supabase does
-- not give) and through any pooler, since the follower only runs ordinary statements. Each
-- trigger writes one row naming what changed, never a value: the follower reads the row's
-- current state itself, so many changes of one contact cost one copy, and a change can never
-- be applied out of order.
--
-- This file only adds tables and functions (nothing existing is locked or rewritten). The
-- triggers are created by the first `sync-convex --follow` and dropped by `--capture off`:
-- capture costs every writer a row, and an outbox nobody drains would grow for ever.
-- `search_path` is pinned to the schema the migration runs in, so a writer whose own search
-- path is elsewhere (a psql session writing "schema".contacts) is captured too.

CREATE TABLE IF NOT EXISTS kontak_changes (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    contact_id uuid NULL,
    conversation_id uuid NULL,
    workspace_id uuid NULL,
    key_id uuid NULL,
    -- A TRUNCATE: row triggers do not see it, so everything is copied again.
    truncated boolean NOT NULL DEFAULT false,
    -- When the change was made (the lag is measured from it), not when its transaction began.
    changed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- One value per follow cycle: Convex applies a change only over an older one.
CREATE SEQUENCE IF NOT EXISTS kontak_change_versions;

-- The follower's own row: which copy Convex holds, how far a copy got, how the last cycle went.
-- Locked by each cycle, so two followers never interleave.
CREATE TABLE IF NOT EXISTS kontak_follower (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    destination text NULL,
    epoch text NULL,
    backfill_after uuid NULL,
    backfilled boolean NOT NULL DEFAULT false,
    cycle_at timestamptz NULL,
    applied bigint NOT NULL DEFAULT 0,
    refused bigint NOT NULL DEFAULT 0
);
INSERT INTO kontak_follower DEFAULT VALUES ON CONFLICT DO NOTHING;

CREATE OR REPLACE FUNCTION kontak_capture_contact() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO kontak_changes (contact_id) VALUES (NEW.id);
    END IF;
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND OLD.id <> NEW.id) THEN
        INSERT INTO kontak_changes (contact_id) VALUES (OLD.id);
    END IF;
    RETURN NULL;
END $$;

-- Notes and conversations: their contact, old and new when one moves (a merge).
CREATE OR REPLACE FUNCTION kontak_capture_contact_child() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO kontak_changes (contact_id) VALUES (NEW.contact_id);
    END IF;
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND OLD.contact_id <> NEW.contact_id) THEN
        INSERT INTO kontak_changes (contact_id) VALUES (OLD.contact_id);
    END IF;
    RETURN NULL;
END $$;

-- Messages name their conversation; the follower finds its contact (a conversation deleted
-- with it has sent its contact itself).
CREATE OR REPLACE FUNCTION kontak_capture_message() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO kontak_changes (conversation_id) VALUES (NEW.conversation_id);
    END IF;
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND OLD.conversation_id <> NEW.conversation_id) THEN
        INSERT INTO kontak_changes (conversation_id) VALUES (OLD.conversation_id);
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION kontak_capture_workspace() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO kontak_changes (workspace_id)
    VALUES (CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END);
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION kontak_capture_key() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO kontak_changes (key_id) VALUES (CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END);
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION kontak_capture_truncate() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO kontak_changes (truncated) VALUES (true);
    RETURN NULL;
END $$;
