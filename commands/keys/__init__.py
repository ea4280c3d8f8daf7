"""`flask --app app keys create | list | revoke` (cli.py): keys per workspace, docs/contract.md §13.
workspace_keys.py writes and reads them in PostgreSQL and sends their hashes to Convex; the request
path's side (the key ring) is services/api_keys.py."""
