-- Storing one webhook delivery in one round trip (docs/webhook.md §4-§7, docs/contract.md §11).
--
-- services/postgres/ingest.py judges every event (docs/webhook.md §3, §7.3: pure checks) and
-- sends the valid ones here as one JSON array; kontak_ingest stores them in payload order,
-- each seeing what the ones before it did, and returns one outcome per event ("stored",
-- "duplicate" or an ignore reason). The cost in round trips is the same for 1 event and for
-- 10,000, so a delivery under the body cap is stored well inside the write deadline however
-- far the database is. The rules are the ones convex/convex/webhook.ts applies in Convex.
--
-- Functions only (CREATE OR REPLACE): no table is locked or rewritten. `search_path` is pinned
-- to the schema the migration runs in (DATABASE_SCHEMA), so the functions find Kontak's tables
-- through a transaction pooler too.

-- §7.5: one conversation from two; the merged contact's messages move to the survivor's.
CREATE OR REPLACE FUNCTION kontak_merge_conversations(survivor uuid, merged uuid) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    kept conversations;
    gone conversations;
BEGIN
    SELECT * INTO kept FROM conversations WHERE contact_id = survivor FOR UPDATE;
    SELECT * INTO gone FROM conversations WHERE contact_id = merged FOR UPDATE;
    IF gone.id IS NULL THEN
        RETURN;
    END IF;
    IF kept.id IS NULL THEN  -- the merged contact's conversation, whole, becomes the survivor's
        UPDATE conversations SET contact_id = survivor WHERE id = gone.id;
        RETURN;
    END IF;
    UPDATE messages SET conversation_id = kept.id WHERE conversation_id = gone.id;
    UPDATE conversations SET
        last_message_at = CASE WHEN gone.last_message_at > kept.last_message_at OR kept.last_message_at IS NULL
                               THEN gone.last_message_at ELSE kept.last_message_at END,
        last_message_preview = CASE WHEN gone.last_message_at > kept.last_message_at
                                         OR (kept.last_message_at IS NULL AND gone.last_message_at IS NOT NULL)
                                    THEN gone.last_message_preview ELSE kept.last_message_preview END,
        unread_count = kept.unread_count + gone.unread_count,
        created_at = LEAST(kept.created_at, gone.created_at)
    WHERE id = kept.id;
END
$$;

-- §7.5: merge two contacts into the older (equal times: `first`), nothing lost; the survivor's id.
-- `want_phone` / `want_bsuid`: the identifiers the survivor must end up with (NULL: its own, else the
-- merged one's).
CREATE OR REPLACE FUNCTION kontak_merge_contacts(first contacts, second contacts, want_phone text, want_bsuid text)
RETURNS uuid LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    survivor contacts;
    merged contacts;
    newer contacts;
    older contacts;
BEGIN
    IF second.created_at < first.created_at THEN
        survivor := second; merged := first;
    ELSE
        survivor := first; merged := second;
    END IF;
    -- Newest first by updated_at (equal: the merged one first), as the legacy import orders them.
    IF merged.updated_at >= survivor.updated_at THEN
        newer := merged; older := survivor;
    ELSE
        newer := survivor; older := merged;
    END IF;
    PERFORM kontak_merge_conversations(survivor.id, merged.id);
    UPDATE contact_notes SET contact_id = survivor.id WHERE contact_id = merged.id;
    DELETE FROM contacts WHERE id = merged.id;
    UPDATE contacts c SET
        name = COALESCE(NULLIF(newer.name, ''), NULLIF(older.name, '')),
        kapso_name = COALESCE(NULLIF(newer.kapso_name, ''), NULLIF(older.kapso_name, '')),
        email = COALESCE(NULLIF(newer.email, ''), NULLIF(older.email, '')),
        -- `new` is the default a webhook gives: a salesperson's status is never lost to it.
        lead_status = COALESCE(NULLIF(NULLIF(newer.lead_status, ''), 'new'), NULLIF(NULLIF(older.lead_status, ''), 'new'),
                               'new'),
        username = COALESCE(NULLIF(newer.username, ''), NULLIF(older.username, '')),
        parent_bsuid = COALESCE(NULLIF(newer.parent_bsuid, ''), NULLIF(older.parent_bsuid, '')),
        lead_score = GREATEST(survivor.lead_score, merged.lead_score),
        tags = ARRAY(SELECT t FROM unnest(newer.tags || older.tags) WITH ORDINALITY AS u(t, n)
                     GROUP BY t ORDER BY min(n)),
        updated_at = GREATEST(survivor.updated_at, merged.updated_at),
        phone = COALESCE(want_phone, survivor.phone, merged.phone),
        bsuid = COALESCE(want_bsuid, survivor.bsuid, merged.bsuid)
    WHERE c.id = survivor.id;
    RETURN survivor.id;
END
$$;

-- §7.4: the contact a message event names — merged, linked or created; its id.
CREATE OR REPLACE FUNCTION kontak_contact_for_message(e jsonb) RETURNS uuid
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    ws uuid := (e->>'workspace_id')::uuid;
    by_bsuid contacts;
    by_phone contacts;
    chosen uuid;
    at timestamptz := to_timestamp((e->>'at_ms')::bigint / 1000.0);
BEGIN
    SELECT * INTO by_bsuid FROM contacts WHERE workspace_id = ws AND contacts.bsuid = e->>'bsuid' FOR UPDATE;
    SELECT * INTO by_phone FROM contacts WHERE workspace_id = ws AND contacts.phone = e->>'phone' FOR UPDATE;
    IF by_bsuid.id IS NOT NULL AND by_phone.id IS NOT NULL AND by_bsuid.id <> by_phone.id THEN
        chosen := kontak_merge_contacts(by_bsuid, by_phone, e->>'phone', e->>'bsuid');
    ELSIF by_bsuid.id IS NULL AND by_phone.id IS NULL THEN
        INSERT INTO contacts (workspace_id, phone, bsuid, parent_bsuid, username, kapso_name, created_at, updated_at)
        VALUES (ws, e->>'phone', e->>'bsuid', e->>'parent_bsuid', e->>'username', e->>'contact_name', at, at)
        RETURNING id INTO chosen;
        RETURN chosen;
    ELSE
        chosen := COALESCE(by_bsuid.id, by_phone.id);
    END IF;
    -- Missing identifiers added; name, username and parent BSUID from the event when it has them.
    UPDATE contacts SET phone = COALESCE(contacts.phone, e->>'phone'), bsuid = COALESCE(contacts.bsuid, e->>'bsuid'),
        kapso_name = COALESCE(e->>'contact_name', kapso_name), username = COALESCE(e->>'username', username),
        parent_bsuid = COALESCE(e->>'parent_bsuid', parent_bsuid)
    WHERE id = chosen;
    RETURN chosen;
END
$$;

-- §4 / §7.7: a message, stored once per (workspace, kapso_message_id).
CREATE OR REPLACE FUNCTION kontak_store_message(e jsonb) RETURNS text
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    ws uuid := (e->>'workspace_id')::uuid;
    at timestamptz := to_timestamp((e->>'at_ms')::bigint / 1000.0);
    contact uuid;
    conversation uuid;
    inserted bigint;
BEGIN
    contact := kontak_contact_for_message(e);
    INSERT INTO conversations (workspace_id, contact_id, status, unread_count, created_at)
    VALUES (ws, contact, 'open', 0, at) ON CONFLICT (contact_id) DO NOTHING RETURNING id INTO conversation;
    IF conversation IS NULL THEN
        SELECT id INTO conversation FROM conversations WHERE contact_id = contact;
    END IF;
    INSERT INTO messages (workspace_id, conversation_id, direction, content, message_type, kapso_message_id,
                          status, error_code, error_title, created_at)
    VALUES (ws, conversation, e->>'direction', e->>'content', e->>'message_type', e->>'kapso_message_id',
            e->>'status', e->>'error_code', e->>'error_title', at)
    ON CONFLICT (workspace_id, kapso_message_id) DO NOTHING RETURNING id INTO inserted;
    IF inserted IS NULL THEN
        RETURN 'duplicate';
    END IF;
    -- An equal time moves the preview too: the later insert is the newer message.
    UPDATE conversations SET
        last_message_preview = CASE WHEN last_message_at IS NULL OR at >= last_message_at
                                    THEN e->>'content' ELSE last_message_preview END,
        last_message_at = GREATEST(last_message_at, at),
        unread_count = unread_count + CASE WHEN e->>'direction' = 'inbound' THEN 1 ELSE 0 END
    WHERE id = conversation;
    RETURN 'stored';
END
$$;

-- §4: status forward only (`status_rank`, `failed_allowed_below_rank` from contract/webhook_rules.json,
-- passed in `rules`); §7.7: a `failed` for an id never stored becomes that failed message.
CREATE OR REPLACE FUNCTION kontak_store_status(e jsonb, rules jsonb) RETURNS text
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    row_id bigint;
    current_status text;
    current_rank int;
    moves boolean;
    next_status text := e->>'status';
BEGIN
    SELECT id, status INTO row_id, current_status FROM messages
    WHERE workspace_id = (e->>'workspace_id')::uuid AND kapso_message_id = e->>'kapso_message_id' FOR UPDATE;
    IF row_id IS NULL THEN
        IF next_status = 'failed' AND e->'unseen' IS NOT NULL AND jsonb_typeof(e->'unseen') = 'object' THEN
            RETURN CASE WHEN e->'unseen' ? 'reason' THEN e->'unseen'->>'reason'
                        ELSE kontak_store_message(e->'unseen') END;
        END IF;
        RETURN 'unknown_message';
    END IF;
    IF next_status IS NULL OR NOT (rules->'meta_statuses') ? next_status THEN
        RETURN 'invalid_status';
    END IF;
    IF current_status = 'failed' THEN
        RETURN 'duplicate';
    END IF;
    current_rank := COALESCE((rules->'status_rank'->>current_status)::int, -1);
    moves := CASE WHEN next_status = 'failed' THEN current_rank < (rules->>'failed_allowed_below_rank')::int
                  ELSE COALESCE((rules->'status_rank'->>next_status)::int, -1) > current_rank END;
    IF moves THEN
        -- A failure's code and title are kept with the message (§7.7); another status carries none.
        UPDATE messages SET status = next_status,
            error_code = CASE WHEN next_status = 'failed' THEN COALESCE(e->>'error_code', error_code) ELSE error_code END,
            error_title = CASE WHEN next_status = 'failed' THEN COALESCE(e->>'error_title', error_title)
                               ELSE error_title END
        WHERE id = row_id;
        RETURN 'stored';
    END IF;
    RETURN 'duplicate';
END
$$;

-- §7.6, §7.7: the contact an identity change or a conversation event names, BSUID first, locked;
-- no linking, no creating (its id is NULL when there is none).
CREATE OR REPLACE FUNCTION kontak_named_contact(ws uuid, named_bsuid text, named_phone text) RETURNS contacts
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    contact contacts;
BEGIN
    SELECT * INTO contact FROM contacts WHERE workspace_id = ws AND bsuid = named_bsuid FOR UPDATE;
    IF contact.id IS NULL THEN
        SELECT * INTO contact FROM contacts WHERE workspace_id = ws AND phone = named_phone FOR UPDATE;
    END IF;
    RETURN contact;
END
$$;

-- §7.6: a phone or BSUID moved to a new value, merging with the contact that holds it.
CREATE OR REPLACE FUNCTION kontak_store_identity_change(e jsonb) RETURNS text
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    ws uuid := (e->>'workspace_id')::uuid;
    contact contacts;
    holder contacts;
    field text := e->>'field';
    value text := e->>'new_value';
BEGIN
    contact := kontak_named_contact(ws, e->>'bsuid', e->>'phone');
    IF contact.id IS NULL THEN
        RETURN 'unknown_contact';
    END IF;
    IF (field = 'phone' AND contact.phone IS NOT DISTINCT FROM value)
       OR (field = 'bsuid' AND contact.bsuid IS NOT DISTINCT FROM value) THEN
        RETURN 'duplicate';
    END IF;
    IF field = 'phone' THEN
        SELECT * INTO holder FROM contacts WHERE workspace_id = ws AND phone = value FOR UPDATE;
    ELSE
        SELECT * INTO holder FROM contacts WHERE workspace_id = ws AND bsuid = value FOR UPDATE;
    END IF;
    IF holder.id IS NOT NULL THEN
        PERFORM kontak_merge_contacts(contact, holder, CASE WHEN field = 'phone' THEN value END,
                                      CASE WHEN field = 'bsuid' THEN value END);
    ELSIF field = 'phone' THEN
        UPDATE contacts SET phone = value WHERE id = contact.id;
    ELSE
        UPDATE contacts SET bsuid = value WHERE id = contact.id;
    END IF;
    RETURN 'stored';
END
$$;

-- §7.7: conversation status forward only by event time.
CREATE OR REPLACE FUNCTION kontak_store_conversation_event(e jsonb) RETURNS text
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    conversation conversations;
    at timestamptz := to_timestamp((e->>'at_ms')::bigint / 1000.0);
BEGIN
    SELECT * INTO conversation FROM conversations
    WHERE contact_id = (kontak_named_contact((e->>'workspace_id')::uuid, e->>'bsuid', e->>'phone')).id FOR UPDATE;
    IF conversation.id IS NULL THEN
        RETURN 'unknown_contact';
    END IF;
    IF conversation.status_at IS NOT NULL AND at <= conversation.status_at THEN
        RETURN 'duplicate';
    END IF;
    UPDATE conversations SET status = e->>'status', status_at = at WHERE id = conversation.id;
    RETURN 'stored';
END
$$;

-- One delivery: the identifiers' advisory locks in the caller's sorted order, then every event in
-- payload order. `lock_keys` are the delivery's identifiers (services/postgres/ingest.py).
CREATE OR REPLACE FUNCTION kontak_ingest(events jsonb, lock_keys bigint[], rules jsonb) RETURNS text[]
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    e jsonb;
    outcomes text[] := '{}';
BEGIN
    PERFORM pg_advisory_xact_lock(k) FROM unnest(lock_keys) AS k;
    FOR e IN SELECT value FROM jsonb_array_elements(events) LOOP
        outcomes := outcomes || CASE e->>'kind'
            WHEN 'message' THEN kontak_store_message(e)
            WHEN 'status' THEN kontak_store_status(e, rules)
            WHEN 'identity' THEN kontak_store_identity_change(e)
            WHEN 'conversation' THEN kontak_store_conversation_event(e)
        END;
    END LOOP;
    RETURN outcomes;
END
$$;
