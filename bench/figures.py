"""The request-path figures of `make bench`, each a ratio (or difference) inside one run, its two sides
alternated request by request on keep-alive connections, the figure being the median over rounds."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from bench import original_pattern
from bench.measure import (
    API_KEY,
    BY_PHONE,
    BY_PHONE_CONVEX,
    Gunicorn,
    KeepAliveClient,
    bsuid_path,
    lookup_path,
    p50_ms,
    summarize_rounds,
)
from bench.statement_log import logged_between, statement_logging
from services.convex.client import LOOKUP_PATH
from services.postgres.store import LOOKUP_SQL
from tools.embedded_pg import EmbeddedPostgres


def measure_overhead(server: Gunicorn, db_url: str, phones: list[list[tuple[str, str]]]) -> dict[str, Any]:
    """Per round, request by request: /healthz, the raw lookup SQL (psycopg, this process), by-phone."""
    client = KeepAliveClient(server.url, {"x-api-key": API_KEY})
    rounds = []
    with psycopg.connect(db_url, autocommit=True, prepare_threshold=0, application_name="kontak-bench") as conn:
        for ws, phone in phones[0][:50]:  # warm the raw side too
            conn.execute(LOOKUP_SQL, {"workspace_id": ws, "phone": phone, "bsuid": None}).fetchone()
        for batch in phones[1:]:
            health, sql, lookup = [], [], []
            for ws, phone in batch:
                health.append(client.get_ok("/healthz")[0])
                started = time.perf_counter()
                row = conn.execute(LOOKUP_SQL, {"workspace_id": ws, "phone": phone, "bsuid": None}).fetchone()
                sql.append(time.perf_counter() - started)
                elapsed, body = client.get_ok(lookup_path(BY_PHONE, ws, phone))
                lookup.append(elapsed)
                assert row is not None and body["found"] is True
            h, s, b = p50_ms(health), p50_ms(sql), p50_ms(lookup)
            rounds.append({"healthz_p50_ms": h, "raw_sql_p50_ms": s, "by_phone_p50_ms": b, "ratio": b / (h + s)})
    client.close()
    return summarize_rounds(rounds, len(phones[1]))


def count_round_trips(pg: EmbeddedPostgres, admin_url: str, lookup: Callable[[str, str], dict],
                      found: list[tuple[str, str]], missing: list[tuple[str, str]],
                      apart: str | None = None) -> dict[str, Any]:
    """Statements the database itself logs for the app's connections (log_statement=all) per
    `lookup(workspace_id, phone)`, found and not found. Statements holding `apart` (the key ring's
    snapshot, which belongs to no lookup) are counted apart, as `key_ring_refreshes`."""
    counts, refreshes = {}, {}
    with statement_logging(admin_url) as conn:
        for label, phones, expect_found in (("found", found, True), ("not_found", missing, False)):
            def lookups(phones: list[tuple[str, str]] = phones, expect_found: bool = expect_found) -> None:
                for workspace, phone in phones:
                    assert lookup(workspace, phone)["found"] is expect_found
            statements = logged_between(conn, pg.log_file, lookups)
            refreshes[label] = sum(apart is not None and apart in text for _kind, text in statements)
            counts[label] = len(statements) - refreshes[label]
    result: dict[str, Any] = {"lookups_each": len(found), "statements_logged": counts}
    if apart is not None:
        result["key_ring_refreshes"] = refreshes
    return result | {"found": counts["found"] / len(found), "not_found": counts["not_found"] / len(missing)}


@contextmanager
def keep_alive(*urls: str) -> Iterator[list[KeepAliveClient]]:
    """One keep-alive connection per URL (the same URL twice: two connections), closed afterwards."""
    clients = [KeepAliveClient(url, {"x-api-key": API_KEY}) for url in urls]
    try:
        yield clients
    finally:
        for client in clients:
            client.close()


def alternated_p50s(client_a: KeepAliveClient, client_b: KeepAliveClient, paths: list[list[tuple[str, str]]],
                    same_answer: bool = False) -> list[tuple[float, float]]:
    """Per round, request by request: each (path on `client_a`, path on `client_b`) pair in turn, both found
    (and with `same_answer`, both the same JSON); the two sides' p50s of every round."""
    p50s = []
    for batch in paths:
        ta, tb = [], []
        for path_a, path_b in batch:
            elapsed_a, body_a = client_a.get_ok(path_a)
            ta.append(elapsed_a)
            elapsed_b, body_b = client_b.get_ok(path_b)
            tb.append(elapsed_b)
            assert body_a["found"] is True and body_b["found"] is True
            assert not same_answer or body_a == body_b, "both sides answer the same JSON"
        p50s.append((p50_ms(ta), p50_ms(tb)))
    return p50s


def measure_scale(small: Gunicorn, large: Gunicorn, small_phones: list, large_phones: list) -> dict[str, Any]:
    """Per round, request by request: a sampled contact on the 10,000 database, then one on the 1,000,000."""
    paths = [[(lookup_path(BY_PHONE, *a), lookup_path(BY_PHONE, *b)) for a, b in zip(sa, sb, strict=True)]
             for sa, sb in zip(small_phones, large_phones, strict=True)]
    with keep_alive(small.url, large.url) as clients:
        p50s = alternated_p50s(*clients, paths)
    rounds = [{"p50_10k_ms": small_p50, "p50_1m_ms": large_p50, "ratio": large_p50 / small_p50}
              for small_p50, large_p50 in p50s]
    return summarize_rounds(rounds, len(small_phones[0]))


def measure_bsuid(server: Gunicorn, identities: list[list[tuple[str, str, str]]]) -> dict[str, Any]:
    """Request by request on ONE keep-alive connection (so one worker and its pool serve both
    sides; two connections to the same server can land on two different workers): a contact by its bsuid
    only and the same contact by its phone only, the side that goes first alternating pair by pair. The
    first batch is untimed warm-up that also checks both answers are found and equal."""
    client = KeepAliveClient(server.url, {"x-api-key": API_KEY})
    for ws, phone, bsuid in identities[0]:
        by_bsuid = client.get_ok(bsuid_path(BY_PHONE, ws, bsuid))[1]
        by_phone = client.get_ok(lookup_path(BY_PHONE, ws, phone))[1]
        assert by_bsuid == by_phone and by_bsuid["found"] is True, "by bsuid and by phone answer the same contact"
    rounds = []
    for batch in identities[1:]:
        times: dict[str, list[float]] = {"bsuid": [], "phone": []}
        for i, (ws, phone, bsuid) in enumerate(batch):
            sides = [("bsuid", bsuid_path(BY_PHONE, ws, bsuid)), ("phone", lookup_path(BY_PHONE, ws, phone))]
            for side, path in sides if i % 2 == 0 else sides[::-1]:
                elapsed, body = client.get_ok(path)
                times[side].append(elapsed)
                assert body["found"] is True
        b, p = p50_ms(times["bsuid"]), p50_ms(times["phone"])
        rounds.append({"bsuid_p50_ms": b, "phone_p50_ms": p, "ratio": b / p})
    client.close()
    return summarize_rounds(rounds, len(identities[1]))


def measure_latency_pattern(server: Gunicorn, phones: list[list[tuple[str, str]]]) -> dict[str, Any]:
    """Through the delay proxy, request by request on one connection: Kontak's by-phone, then the original
    pattern's route, the same JSON."""
    paths = [[(lookup_path(BY_PHONE, ws, phone), lookup_path(original_pattern.ROUTE, ws, phone)) for ws, phone in batch]
             for batch in phones]
    with keep_alive(server.url) as (client,):
        p50s = alternated_p50s(client, client, paths, same_answer=True)
    rounds = [{"kontak_p50_ms": kontak, "original_p50_ms": original, "ratio": original / kontak}
              for kontak, original in p50s]
    return summarize_rounds(rounds, len(phones[0]))


def measure_convex_overhead(server: Gunicorn, standin_url: str, phones: list[list[tuple[str, str]]]) -> dict:
    """Per round, request by request: the stand-in's HTTP action directly, then by-phone-convex through Kontak."""
    paths = [[(lookup_path(LOOKUP_PATH, ws, phone), lookup_path(BY_PHONE_CONVEX, ws, phone)) for ws, phone in batch]
             for batch in phones]
    with keep_alive(standin_url, server.url) as clients:
        p50s = alternated_p50s(*clients, paths, same_answer=True)
    rounds = [{"direct_p50_ms": direct, "proxied_p50_ms": proxied, "difference_ms": proxied - direct}
              for direct, proxied in p50s]
    return summarize_rounds(rounds, len(phones[0]), key="difference_ms")


def measure_floor_p50(server: Gunicorn, floor: Gunicorn, route: str, floor_route: str,
                      phones: list[list[tuple[str, str]]]) -> dict[str, Any]:
    """Per round, request by request: Kontak's `route`, then the floor's `floor_route`, same contact."""
    paths = [[(lookup_path(route, ws, phone), lookup_path(floor_route, ws, phone)) for ws, phone in batch]
             for batch in phones]
    with keep_alive(server.url, floor.url) as clients:
        p50s = alternated_p50s(*clients, paths)
    rounds = [{"kontak_p50_ms": kontak_p50, "floor_p50_ms": floor_p50, "ratio": kontak_p50 / floor_p50}
              for kontak_p50, floor_p50 in p50s]
    return summarize_rounds(rounds, len(phones[0]))
