-- kontak:no-transaction
-- Built CONCURRENTLY: these tables may already hold a live project's rows,
-- and a plain CREATE INDEX would block their writes while it builds.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS contact_notes_workspace_legacy_id
    ON contact_notes (workspace_id, legacy_id);
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS messages_workspace_legacy_id
    ON messages (workspace_id, legacy_id);
