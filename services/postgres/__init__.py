"""The PostgreSQL backend: pool.py (connections, deadlines, breaker), store.py (the lookup), ingest.py
(webhook writes), migrations.py (the schema), dataset.py (a data set loaded in one transaction, contacts
sampled from it) and bulk.py (large data sets, COPY).

Code calls this backend `postgres`. `supabase` (its hosted form) stays only where the contract fixes
the name: the blueprint supabase_contacts, the timing line's `backend=supabase` (docs/contract.md §6),
and the compare/log-summary labels read from those lines.
"""
