-- Keys per workspace (docs/contract.md §13): only a SHA-256 of each key is kept
-- (the keys are random 256-bit secrets, so a slow hash would add nothing).
-- A new, empty table: creating it locks no existing table's rows.
CREATE TABLE IF NOT EXISTS api_keys (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name text NOT NULL,
    key_hash text NOT NULL UNIQUE,
    -- The key's first characters, to tell keys apart in `keys list`; too short to use.
    prefix text NOT NULL,
    created_at timestamptz(3) NOT NULL DEFAULT now(),
    -- Coarse: each worker writes it at most once a minute per key.
    last_used_at timestamptz(3) NULL,
    revoked_at timestamptz(3) NULL
);
CREATE INDEX IF NOT EXISTS api_keys_workspace ON api_keys (workspace_id);
