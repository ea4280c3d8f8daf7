"""The Convex backend: client.py (the lookup through its HTTP action, on the request path) and admin.py
(the deployment's bulk import, clear and counts, for the commands, the tests and the benchmarks)."""
