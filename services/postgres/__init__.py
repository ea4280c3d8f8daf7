"""The PostgreSQL backend: pool.py (connections, deadlines, breaker), store.py (the lookup), ingest.py
(webhook writes), migrations.py and schema_check.py (the schema), bulk.py (seed loads).

Code calls this backend `postgres`. `supabase` (its hosted form) stays only where the contract fixes
the name: the blueprint supabase_contacts, the timing line's `backend=supabase` (docs/contract.md §6),
and the compare/log-summary labels read from those lines.
"""
