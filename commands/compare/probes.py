"""What compare asks both routes: sampled contacts in every way a caller may write them, and
identifiers nobody has (docs/contract.md §4, §4a). From the synthetic seed, or drawn from what
PostgreSQL holds (real data).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass

import phonenumbers
import psycopg

from commands.compare import synthetic
from services.postgres.dataset import sample_contacts

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
