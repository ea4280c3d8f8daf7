"""sync-convex's verification of a copy: counts per workspace and table (the deployment's COUNTS_PATH,
which pages through its indexes), then sampled lookups through both of Kontak's routes, by BSUID when
the contact has one, else by phone, which must answer the same status and JSON. Any difference, or a
deployment without COUNTS_PATH, is a mismatch (the command exits 1).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from services.convex.admin import ConvexAdmin
from services.identity import mask_bsuid
from services.phones import mask_phone
from services.postgres.dataset import Sampled

COUNTS_PATH = ConvexAdmin.COUNTS_PATH
TABLES = ConvexAdmin.COUNTED_TABLES
PG_COUNTS_SQL = """
SELECT w.id::text,
       (SELECT count(*) FROM contacts t WHERE t.workspace_id = w.id),
       (SELECT count(*) FROM contact_notes t WHERE t.workspace_id = w.id),
       (SELECT count(*) FROM conversations t WHERE t.workspace_id = w.id),
       (SELECT count(*) FROM messages t WHERE t.workspace_id = w.id)
FROM workspaces w ORDER BY w.id"""


@dataclass
class Verification:
    lines: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    counts_checked: bool = False

    @property
    def ok(self) -> bool:
        return not self.mismatches


def postgres_counts(conn: psycopg.Connection) -> dict[str, dict[str, int]]:
    return {ws: dict(zip(TABLES, counts, strict=True)) for ws, *counts in conn.execute(PG_COUNTS_SQL).fetchall()}


def convex_counts(admin: ConvexAdmin, workspace_id: str) -> dict[str, int] | None:
    """The deployment's counts for one workspace, or None when it has no count endpoint (404)."""
    return admin.counts(workspace_id)


def verify_counts(conn: psycopg.Connection, admin: ConvexAdmin, report: Verification) -> None:
    """Every table of every PostgreSQL workspace: the same number of documents in Convex, or a mismatch."""
    started = time.perf_counter()
    expected_all = postgres_counts(conn)
    equal = 0
    for ws, expected in expected_all.items():
        actual = convex_counts(admin, ws)
        if actual is None:
            report.mismatches.append(f"counts: the deployment has no {COUNTS_PATH}: deploy the Convex functions "
                                     "of this version (npx convex deploy) so the copy can be verified")
            return
        report.counts_checked = True
        differ = [table for table in TABLES if expected[table] != actual[table]]
        for table in differ:
            report.mismatches.append(f"counts workspace {ws} {table}: postgres {expected[table]:,} "
                                     f"convex {actual[table]:,}")
        if not differ:
            equal += 1
    totals = {table: sum(c[table] for c in expected_all.values()) for table in TABLES}
    report.lines.append(f"counts: {equal} of {len(expected_all)} workspace(s) equal in every table "
                        f"(postgres {', '.join(f'{totals[t]:,} {t}' for t in TABLES)}) "
                        f"in {time.perf_counter() - started:.1f} s")


def verify_lookups(get: Callable[[str, dict[str, str]], tuple[int, Any]], probes: list[Sampled],
                   report: Verification) -> None:
    """Each probe through /api/contacts/by-phone and /by-phone-convex, by its BSUID when it has one (the
    identifier both lookups try first), else by its phone: equal status and JSON."""
    differing = 0
    for workspace_id, phone, bsuid in probes:
        query = {"bsuid": bsuid} if bsuid is not None else {"phone": phone}
        postgres = get("/api/contacts/by-phone", {**query, "workspace_id": workspace_id})
        convex = get("/api/contacts/by-phone-convex", {**query, "workspace_id": workspace_id})
        if postgres != convex or postgres[0] != 200:
            differing += 1
            who = mask_bsuid(bsuid) if bsuid is not None else mask_phone(phone)
            report.mismatches.append(f"lookup {workspace_id} {who}: postgres {postgres[0]} "
                                     f"{json.dumps(postgres[1])[:300]} / convex {convex[0]} "
                                     f"{json.dumps(convex[1])[:300]}")
    report.lines.append(f"lookups: {len(probes) - differing} of {len(probes)} equal on both routes")
