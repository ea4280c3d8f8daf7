"""The benchmarks' data: databases of synthetic contacts (the seed command's data set, COPY in parallel
processes) and the contacts sampled from them for each figure; a durable PostgreSQL holding a small data set."""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from commands.compare import synthetic
from services.postgres.bulk import copy_contacts, replace_workspaces
from services.postgres.dataset import load_dataset
from services.postgres.migrations import upgrade
from tools.embedded_pg import EmbeddedPostgres
from tools.servers import free_port

SEED = synthetic.DEFAULT_SEED


def _seed_range(url: str, start: int, end: int) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return copy_contacts(conn, synthetic.contacts(SEED, end, start))["contacts"]


def seed_database(admin_url: str, url: str, name: str, count: int, processes: int) -> float:
    """Create database `name` with `count` synthetic contacts (COPY, `processes` in parallel); VACUUM ANALYZE."""
    started = time.perf_counter()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    with psycopg.connect(url, autocommit=True) as conn:
        upgrade(conn)
        replace_workspaces(conn, synthetic.workspaces(SEED))
    bounds = [count * i // processes for i in range(processes + 1)]
    with ProcessPoolExecutor(processes) as pool:
        loaded = sum(pool.map(_seed_range, [url] * processes, bounds[:-1], bounds[1:]))
    assert loaded == count
    with psycopg.connect(url, autocommit=True) as conn:
        # What autovacuum leaves behind on a settled database: hint bits, visibility map, statistics.
        conn.execute("VACUUM (ANALYZE)")
    return time.perf_counter() - started


def sample_phones(count: int, k: int, rng: random.Random) -> list[tuple[str, str]]:
    """`k` distinct sampled contacts that have a phone (the seed's username-only contacts have none)."""
    ids = synthetic.workspace_ids(SEED)
    phones: list[tuple[str, str]] = []
    for index in rng.sample(range(count), min(count, 2 * k)):
        head = synthetic.contact_head(SEED, index, ids)
        if head.phone is not None:
            phones.append((head.workspace_id, head.phone))
            if len(phones) == k:
                return phones
    raise ValueError(f"fewer than {k} contacts with a phone among {count:,}")


def missing_phones(k: int, rng: random.Random) -> list[tuple[str, str]]:
    """Possible Indonesian numbers in a range the synthetic data never uses (+62 899…)."""
    ids = synthetic.workspace_ids(SEED)
    return [(ids[i % len(ids)], f"+62899{rng.randrange(10**8):08d}") for i in range(k)]


def give_bsuids(url: str) -> int:
    """Every contact with a phone and no BSUID gets one: `ID.` and 20 digits, the E.164
    phone's digits zero-padded on the left: unique per workspace as the phone is, and never one of the
    seed's own (20 digits without a leading zero, on its username-only contacts). The probed contacts then
    have both identifiers, and the BSUID index is as big as the phone's. VACUUM
    ANALYZE after, as on a settled database. Returns the contacts updated."""
    with psycopg.connect(url, autocommit=True) as conn:
        updated = conn.execute("""UPDATE contacts SET bsuid = 'ID.' || lpad(ltrim(phone, '+'), 20, '0')
                                  WHERE bsuid IS NULL AND phone IS NOT NULL""").rowcount
        conn.execute("VACUUM (ANALYZE) contacts")
    return updated


def sample_identities(url: str, k: int, rng: random.Random) -> list[tuple[str, str, str]]:
    """`k` distinct sampled contacts as (workspace_id, phone, bsuid), each holding both (give_bsuids first)."""
    with psycopg.connect(url, autocommit=True) as conn:
        both = [(str(ws), phone, bsuid) for ws, phone, bsuid in conn.execute(
            "SELECT workspace_id, phone, bsuid FROM contacts WHERE phone IS NOT NULL AND bsuid IS NOT NULL "
            "ORDER BY workspace_id, phone")]
    return rng.sample(both, k)


def chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def prepare_database(url: str, dataset: dict[str, Any]) -> None:
    """Kontak's schema (every migration) and `dataset` (contract/demo_data.json's format) in `url`."""
    with psycopg.connect(url, autocommit=True) as conn:
        upgrade(conn)
        load_dataset(conn, dataset)


@contextmanager
def durable_postgres(dataset: dict[str, Any]) -> Iterator[tuple[Path, EmbeddedPostgres]]:
    """A temporary directory and, in it, an embedded PostgreSQL that is durable (fsync on, as in
    production) holding `dataset`: (the directory, the server)."""
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        postgres = EmbeddedPostgres(tmp / "pg", free_port())
        try:
            postgres.start()
            prepare_database(postgres.url, dataset)
            yield tmp, postgres
        finally:
            postgres.stop()


@contextmanager
def bench_cluster() -> Iterator[tuple[Path, EmbeddedPostgres, str]]:
    """A temporary directory and a throwaway embedded PostgreSQL (fsync off) in it: (tmp, pg, admin URL)."""
    with tempfile.TemporaryDirectory(prefix="kontak-bench-") as tmp_name:
        tmp = Path(tmp_name)
        pg = EmbeddedPostgres(tmp / "pg", free_port(), durable=False)
        admin_url = pg.start()
        try:
            yield tmp, pg, admin_url
        finally:
            pg.stop()


def database_url(admin_url: str, name: str) -> str:
    return admin_url.rsplit("/", 1)[0] + f"/{name}"
