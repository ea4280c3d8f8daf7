"""The side-by-side comparison of the two lookup routes (the compare command).

Parity first: every sampled request must get the same status and the same
JSON from both routes, or there is no verdict. Then both routes are timed
interleaved, one request to each in turn, so drift on this shared machine
hits both alike.
"""

from __future__ import annotations

import difflib
import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import phonenumbers
import psycopg
import requests

from commands import synthetic

ROUTES = {"supabase": "/api/contacts/by-phone", "convex": "/api/contacts/by-phone-convex"}
NOT_FOUND_PREFIX = "+62838"  # an Indonesian mobile range the generator never uses
NOT_FOUND_BSUID_PREFIX = "BR."  # a country the generator gives no BSUID


@dataclass(frozen=True)
class Probe:
    phone: str | None
    workspace_id: str
    label: str
    bsuid: str | None = None  # asked first when both are given (docs/contract.md §4a)

    @property
    def params(self) -> dict[str, str]:
        identifiers = {"phone": self.phone, "bsuid": self.bsuid}
        return {**{k: v for k, v in identifiers.items() if v is not None}, "workspace_id": self.workspace_id}


class Sampled(NamedTuple):
    """A stored contact drawn for probing: where it lives and its identifiers (one may be None)."""

    workspace_id: str
    phone: str | None
    bsuid: str | None


def phone_forms(e164: str, default_region: str = "ID") -> list[tuple[str, str]]:
    """Every way docs/contract.md §4 says a caller may write this number."""
    number = phonenumbers.parse(e164)
    forms = [("e164", e164), ("wa digits", e164[1:]), ("00 prefix", "00" + e164[1:]),
             ("international", phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL))]
    if phonenumbers.region_code_for_number(number) == default_region:
        forms.append(("national", phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)))
    return forms


def bsuid_probes(workspace_id: str, bsuid: str, other: str | None) -> list[Probe]:
    """A contact known by its BSUID: found by it alone, and beside a phone nobody has (BSUID first); not found
    in `other`, a workspace that does not hold it."""
    probes = [Probe(None, workspace_id, "found/bsuid", bsuid),
              Probe(f"{NOT_FOUND_PREFIX}00000000", workspace_id, "found/bsuid beside an unknown phone", bsuid)]
    if other is not None:
        probes.append(Probe(None, other, "not found/other workspace (bsuid)", bsuid))
    return probes


def sample_probes(seed: int, contacts: int, samples: int, default_region: str = "ID") -> list[Probe]:
    """Found contacts in every phone form (or by BSUID, the username-only ones), and not-found ones
    (unknown number, unknown BSUID, other workspace)."""
    rng = random.Random(f"compare:{seed}")
    ids = synthetic.workspace_ids(seed)
    probes: list[Probe] = []
    for index in rng.sample(range(contacts), min(samples, contacts)):
        head = synthetic.contact_head(seed, index, ids)
        other = ids[(ids.index(head.workspace_id) + 1) % len(ids)]
        if head.bsuid is not None:
            probes += bsuid_probes(head.workspace_id, head.bsuid, other)
            continue
        probes += [Probe(text, head.workspace_id, f"found/{form}") for form, text in phone_forms(head.phone,
                                                                                                 default_region)]
        probes.append(Probe(head.phone, other, "not found/other workspace"))
    for _ in range(max(1, samples // 4)):
        probes.append(Probe(f"{NOT_FOUND_PREFIX}{rng.randrange(10**8):08d}", ids[0], "not found/unknown number"))
    probes.append(Probe(None, ids[0], "not found/unknown bsuid", f"{NOT_FOUND_BSUID_PREFIX}{rng.randrange(10**12)}"))
    return probes


def _holds(conn: psycopg.Connection, workspace_id: str, column: str, value: str) -> bool:
    return conn.execute(f"SELECT 1 FROM contacts WHERE workspace_id = %s AND {column} = %s",
                        (workspace_id, value)).fetchone() is not None


def probes_from_db(conn: psycopg.Connection, samples: int, default_region: str = "ID",
                   seed: float = 0.42) -> list[Probe]:
    """Like `sample_probes`, but the contacts are drawn from what PostgreSQL holds (real data).

    A contact with a BSUID is probed by it as well as by its phone (when it has one). Not-found
    probes: each sampled identifier in another workspace that does not hold it, and unknown
    numbers checked absent from the workspace asked.
    """
    drawn = sample_contacts(conn, samples, seed)
    workspaces = [row[0] for row in conn.execute("SELECT id::text FROM workspaces ORDER BY id")]
    rng = random.Random(f"compare-db:{seed}")
    probes: list[Probe] = []
    for workspace_id, phone, bsuid in drawn:
        others = [w for w in workspaces if w != workspace_id] or [str(uuid.UUID(int=rng.getrandbits(128)))]
        other = rng.choice(others)
        if bsuid is not None:
            probes += bsuid_probes(workspace_id, bsuid, None if _holds(conn, other, "bsuid", bsuid) else other)
        if phone is None:
            continue
        probes += [Probe(text, workspace_id, f"found/{form}") for form, text in phone_forms(phone, default_region)]
        if not _holds(conn, other, "phone", phone):
            probes.append(Probe(phone, other, "not found/other workspace"))
    for workspace_id in [s.workspace_id for s in drawn[: max(1, samples // 4)]]:
        phone = f"{NOT_FOUND_PREFIX}{rng.randrange(10**8):08d}"
        if not _holds(conn, workspace_id, "phone", phone):
            probes.append(Probe(phone, workspace_id, "not found/unknown number"))
    return probes


def sample_contacts(conn: psycopg.Connection, count: int, seed: float | None = None) -> list[Sampled]:
    """`count` random stored contacts (one scan); `seed` in [-1, 1] repeats a draw."""
    with conn.transaction():
        if seed is not None:
            conn.execute("SELECT setseed(%s)", (seed,))
        rows = conn.execute("SELECT workspace_id::text, phone, bsuid FROM contacts ORDER BY random() LIMIT %s",
                            (count,)).fetchall()
    return [Sampled(*row) for row in rows]


def _server_timing(header: str | None) -> tuple[float | None, float | None]:
    """backend and app durations from `Server-Timing: backend;dur=…, app;dur=…`."""
    values: dict[str, float] = {}
    for part in (header or "").split(","):
        name, _, rest = part.strip().partition(";dur=")
        try:
            values[name] = float(rest)
        except ValueError:
            continue
    return values.get("backend"), values.get("app")


class Client:
    def __init__(self, base_url: str, api_key: str, timeout: float = 10) -> None:
        self.base_url, self.timeout = base_url.rstrip("/"), timeout
        self.session = requests.Session()
        self.session.headers["x-api-key"] = api_key

    def get(self, route: str, probe: Probe, request_id: str | None = None) -> requests.Response:
        headers = {"X-Request-ID": request_id} if request_id else None
        return self.session.get(self.base_url + ROUTES[route], timeout=self.timeout, headers=headers,
                                params=probe.params)


def _body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def check_parity(client: Client, probes: list[Probe]) -> list[str]:
    """A readable diff for every probe the two routes answer differently."""
    differences = []
    for probe in probes:
        a, b = client.get("supabase", probe), client.get("convex", probe)
        left = json.dumps({"status": a.status_code, "body": _body(a)}, indent=2, ensure_ascii=False)
        right = json.dumps({"status": b.status_code, "body": _body(b)}, indent=2, ensure_ascii=False)
        if left != right:
            diff = difflib.unified_diff(left.splitlines(), right.splitlines(), "by-phone", "by-phone-convex",
                                        lineterm="")
            differences.append(f"{probe.label} workspace={probe.workspace_id}:\n" + "\n".join(diff))
    return differences


@dataclass
class Samples:
    latency_ms: list[float] = field(default_factory=list)
    server_backend_ms: list[float] = field(default_factory=list)
    server_app_ms: list[float] = field(default_factory=list)
    errors: int = 0


def measure(make_client: Callable[[], Client], probes: list[Probe], requests_per_route: int, concurrency: int,
            warmup: int, run_id: str) -> dict[str, Samples]:
    """Each step sends one request to each route, the order alternating step by step.

    Timed requests carry `X-Request-ID: <run_id>-t<step>`, so `log-summary
    --request-id <run_id>-t` reads exactly these requests back from the log.
    """
    results = {route: Samples() for route in ROUTES}
    lock = threading.Lock()
    counter = iter(range(warmup + requests_per_route))

    def worker() -> None:
        client = make_client()
        while True:
            with lock:
                step = next(counter, None)
            if step is None:
                return
            probe = probes[step % len(probes)]
            order = list(ROUTES) if step % 2 == 0 else list(reversed(ROUTES))
            for route in order:
                phase = "w" if step < warmup else "t"
                started = time.perf_counter()
                try:
                    response = client.get(route, probe, f"{run_id}-{phase}{step}")
                    ok = response.status_code == 200
                except requests.RequestException:
                    response, ok = None, False
                elapsed = (time.perf_counter() - started) * 1000
                if step < warmup:
                    continue
                backend, app = _server_timing(response.headers.get("Server-Timing") if response else None)
                with lock:
                    sample = results[route]
                    if not ok:
                        sample.errors += 1
                        continue
                    sample.latency_ms.append(elapsed)
                    if backend is not None and app is not None:
                        sample.server_backend_ms.append(backend)
                        sample.server_app_ms.append(app)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
