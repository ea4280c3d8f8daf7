"""`flask --app app verdict LOG`: docs/contract.md §15's verdict from the shadow lines of a gunicorn log."""
