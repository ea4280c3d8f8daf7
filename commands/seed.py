"""`flask --app app seed`: one synthetic data set into both backends."""

from __future__ import annotations

import time
from itertools import islice

import click
import psycopg
from flask import Flask, current_app
from flask.cli import with_appcontext
from tqdm import tqdm

from commands import synthetic
from commands.convex_admin import ConvexAdmin
from services.errors import ApiError
from services.postgres.bulk import copy_contacts, empty_all, replace_workspaces
from services.postgres.migrations import upgrade

CONVEX_BATCH = 200  # contacts per import request; the import splits further per mutation


def _report(name: str, rows: int, seconds: float) -> None:
    click.echo(f"{name}: {rows:,} rows in {seconds:.1f} s ({rows / max(seconds, 1e-9):,.0f} rows/s)")


def seed_postgres(seed: int, count: int, reset: bool) -> None:
    started = time.perf_counter()
    with psycopg.connect(current_app.config["DATABASE_URL"], autocommit=True) as conn:
        upgrade(conn, current_app.config["DATABASE_SCHEMA"])
        if reset:
            empty_all(conn)
        replace_workspaces(conn, synthetic.workspaces(seed))
        with tqdm(total=count, unit=" contacts", desc="PostgreSQL") as bar:
            totals = copy_contacts(conn, synthetic.contacts(seed, count),
                                   on_chunk=lambda counts: bar.update(counts["contacts"]))
        conn.execute("ANALYZE")
    _report("PostgreSQL", sum(totals.values()) + synthetic.WORKSPACE_COUNT, time.perf_counter() - started)


def seed_convex(seed: int, count: int, reset: bool) -> None:
    config = current_app.config
    admin = ConvexAdmin(config["CONVEX_SITE_URL"], config["CRM_API_KEY"] or "")
    if config["CONVEX_IS_STANDIN"]:
        click.echo("Convex: the local stand-in (convex-test in memory), not a Convex deployment")
    started, rows = time.perf_counter(), 0
    if reset:
        admin.clear()
    workspaces = synthetic.workspaces(seed)
    records = synthetic.contacts(seed, count)
    with tqdm(total=count, unit=" contacts", desc="Convex") as bar:
        while batch := list(islice(records, CONVEX_BATCH)):
            counts = admin.import_dataset({"workspaces": workspaces, "contacts": batch})
            rows += sum(counts.values())
            bar.update(len(batch))
        if count == 0:
            rows += sum(admin.import_dataset({"workspaces": workspaces, "contacts": []}).values())
    _report("Convex", rows, time.perf_counter() - started)


@click.command("seed")
@click.option("--seed", "seed", type=int, default=synthetic.DEFAULT_SEED, show_default=True,
              help="Random seed: the same seed and size give the same data.")
@click.option("--contacts", "count", type=click.IntRange(0, 10_000_000), default=10_000, show_default=True,
              help="How many contacts to generate.")
@click.option("--reset", is_flag=True, help="Empty both backends first.")
@click.option("--backend", type=click.Choice(["both", "postgres", "convex"]), default="both", show_default=True,
              help="Which backends to load.")
@with_appcontext
def seed_command(seed: int, count: int, reset: bool, backend: str) -> None:
    """Generate a deterministic CRM data set and load it into PostgreSQL (COPY)
    and Convex (the batched import), with a progress bar each."""
    try:
        if backend in ("both", "postgres"):
            seed_postgres(seed, count, reset)
        if backend in ("both", "convex"):
            seed_convex(seed, count, reset)
    except (ApiError, psycopg.OperationalError) as error:
        raise click.ClickException(str(error)) from None
    ids = synthetic.workspace_ids(seed)
    click.echo(f"workspaces: {', '.join(ids)}")


def init_app(app: Flask) -> None:
    app.cli.add_command(seed_command)
