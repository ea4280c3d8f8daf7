"""`flask --app app sync-convex` (cli.py): everything in PostgreSQL copied into the Convex deployment
(postgres_to_convex.py), resumably, then verified (verification.py)."""
