"""`flask --app app keys create | list | revoke`: keys per workspace (docs/contract.md §13).

A key is shown once, by `keys create`, alone on the last line of its output;
PostgreSQL keeps only its SHA-256. The hashes (never the keys) are also sent
to the Convex deployment at CONVEX_SITE_URL, so the Convex HTTP actions
accept the same keys; `sync-convex` sends them all again.
"""

from __future__ import annotations

from datetime import datetime

import click
import psycopg
from flask import Flask, current_app
from flask.cli import AppGroup

from commands.connection import connect_migrated
from commands.keys import workspace_keys
from services import api_keys
from services.config import is_utf8
from services.errors import ApiError
from services.identity import is_uuid

keys_cli = AppGroup("keys", help="Keys per workspace: create, list, revoke (docs/contract.md §13).")


def _connect() -> psycopg.Connection:
    return connect_migrated(current_app.config, "kontak-keys-cli")


def _argument(value: str, option: str) -> str:
    """An argument as given, or one line saying why not: bytes that are not UTF-8 (Python hands them
    over as surrogate escapes) can be neither stored nor compared."""
    if not is_utf8(value):
        raise click.ClickException(f"{option}: not valid UTF-8")
    return value


def _workspace(value: str | None) -> str | None:
    if value is not None and not is_uuid(_argument(value, "--workspace").strip()):
        raise click.ClickException(f"--workspace: not a UUID: {shown(value)}")
    return value.strip().lower() if value is not None else None


def shown(text: str) -> str:
    """A name as the terminal should see it: control characters (an escape sequence that would recolour
    or rewrite the screen) as escapes, the rest as typed. Quoted, so surrounding spaces show."""
    escaped = "".join(ch if ch.isprintable() else ch.encode("unicode_escape", "backslashreplace").decode("ascii")
                      for ch in text)
    return f'"{escaped}"'


def _to_convex(rows: list[workspace_keys.KeyRow], skip: bool) -> None:
    """Best effort: the key works on Kontak's PostgreSQL routes either way; say plainly if Convex missed it."""
    if skip:
        click.echo("Convex: not sent (--no-convex); run sync-convex to send every key")
        return
    config = current_app.config
    try:
        workspace_keys.push_to_convex(config["CONVEX_SITE_URL"], config["CRM_API_KEY"], rows)
    except ApiError as error:
        click.echo(f"WARNING: Convex not updated ({error}); the Convex route keeps its old view of this key "
                   f"until `flask --app app sync-convex` (or this command) succeeds")
        return
    where = "the local stand-in" if config.get("CONVEX_IS_STANDIN") else config["CONVEX_SITE_URL"]
    click.echo(f"Convex: updated at {where}")


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone().strftime("%Y-%m-%d %H:%M")


@keys_cli.command("create")
@click.option("--workspace", required=True, help="The workspace (UUID) the key reads and writes.")
@click.option("--name", required=True, help="What the key is for, e.g. the client bot's name.")
@click.option("--no-convex", is_flag=True, help="Do not send the key's hash to the Convex deployment.")
def create_command(workspace: str, name: str, no_convex: bool) -> None:
    """Create a key; it is printed once, alone on the last line."""
    if not _argument(name, "--name").strip():
        raise click.ClickException("--name: must not be empty")
    with _connect() as conn:
        try:
            row, key = workspace_keys.create_key(conn, _workspace(workspace), name.strip())
        except ApiError as error:
            raise click.ClickException(str(error)) from None
    click.echo(f"created key {row.id} {shown(row.name)} for workspace {row.workspace_id}")
    _to_convex([row], no_convex)
    click.echo("the key (shown once, only its hash is stored):")
    click.echo(key)


@keys_cli.command("list")
@click.option("--workspace", default=None, help="Only the keys of this workspace (UUID).")
def list_command(workspace: str | None) -> None:
    """Keys with their prefix, name, workspace, dates; never a key or its hash."""
    with _connect() as conn:
        rows = workspace_keys.list_keys(conn, _workspace(workspace))
    header = ("id", "prefix", "name", "workspace", "created", "last used", "revoked")
    table = [header] + [(r.id, r.prefix, shown(r.name)[1:-1], r.workspace_id, _when(r.created_at),
                         _when(r.last_used_at), _when(r.revoked_at)) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    click.echo(f"{len(rows)} key(s), {sum(r.revoked_at is None for r in rows)} active")


@keys_cli.command("revoke")
@click.argument("ident")
@click.option("--no-convex", is_flag=True, help="Do not send the revocation to the Convex deployment.")
def revoke_command(ident: str, no_convex: bool) -> None:
    """Revoke the key with this id (or this prefix, when one key has it)."""
    with _connect() as conn:
        try:
            row = workspace_keys.revoke_key(conn, _argument(ident, "IDENT").strip())
        except ApiError as error:
            raise click.ClickException(str(error)) from None
    click.echo(f"revoked key {row.id} {shown(row.name)} of workspace {row.workspace_id}; every Kontak worker "
               f"refuses it within {api_keys.MAX_AGE_S + 1:.0f} s")
    _to_convex([row], no_convex)


def init_app(app: Flask) -> None:
    app.cli.add_command(keys_cli)
