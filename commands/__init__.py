"""Flask CLI commands: `flask --app app seed | compare | log-summary`."""
