"""The Convex backend as the request path reaches it: client.py (the lookup through its HTTP action).
The bulk import the commands use is commands/convex_admin.py."""
