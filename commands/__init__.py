"""The Flask CLI (`flask --app app <command>`): one package per command group, each with its `cli`
module (the commands and their `init_app(app)`) and the code only that group uses.

- db/: `db upgrade | check | import-legacy`
- keys/: `keys create | list | revoke`
- sync/: `sync-convex`
- compare/: `seed`, `compare`, `log-summary`
- verdict/: `verdict` (docs/contract.md §15, from the shadow lines of a log)

connection.py is the PostgreSQL connection the db, keys and sync-convex commands share. What tests and
benchmarks use as well lives in services/ (the Convex admin client, the data-set loader).
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from commands.compare import cli as compare_cli
    from commands.db import cli as db_cli
    from commands.keys import cli as keys_cli
    from commands.sync import cli as sync_cli
    from commands.verdict import cli as verdict_cli

    for group in (compare_cli, db_cli, sync_cli, keys_cli, verdict_cli):
        group.init_app(app)
