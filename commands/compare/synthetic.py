"""A deterministic synthetic CRM data set (the seed command).

Contact `i` of seed `s` depends only on (s, i), so any slice of the data
set can be regenerated on its own: the seeder streams millions of contacts
without holding them, and `compare` re-derives the phones it samples.
Records use the data-set format of contract/demo_data.json.

Every USERNAME_ONLY_EVERY-th contact is a WhatsApp user who hides the number
behind a username (docs/contract.md §4a): no phone, a BSUID and a username;
when it has no CRM name it has no profile name either, so the lookup's name
falls back to the username. A username-only contact still draws its phone
(then drops it), so every other contact's draws, and its phone, stay the same.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import phonenumbers

DEFAULT_SEED = 20260101
WORKSPACE_COUNT = 3
_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)

FIRST_NAMES = ["Budi", "Siti", "Agus", "Dewi", "Rina", "Andi", "Putri", "Rizky", "Nur", "Fajar", "Ayu", "Dimas",
               "Intan", "Bayu", "Sri", "Hendra", "Wulan", "Yusuf", "Maya", "Eko", "Lestari", "Arif", "Mega", "Joko"]
LAST_NAMES = ["Santoso", "Wijaya", "Pratama", "Saputra", "Lestari", "Hidayat", "Nugroho", "Kurniawan", "Sari",
              "Setiawan", "Halim", "Tanoto", "Siregar", "Nasution", "Harahap", "Gunawan", "Susanto", "Putra"]
STATUSES = ["new", "contacted", "warm", "hot", "cold", "won", "lost"]
TAGS = ["vip", "jakarta", "surabaya", "bandung", "medan", "s1", "s2", "parent", "referral", "webinar", "ads"]
NOTES = ["Called, asked to follow up next week", "Interested in scholarships", "Budget around 300 juta",
         "Prefers WhatsApp over calls", "Parent is the decision maker", "Sent brochure for partner campuses",
         "Wants to start in September intake", "Asked about IELTS preparation", "Visa appointment booked",
         "Comparing us with another agency", "Catatan: minta dihubungi sore hari", "Sudah transfer DP"]
# Topic words, and ordinary words that merely contain a keyword (untuk, bukan, masuk, visanya).
MESSAGES = ["Halo kak, mau tanya info kuliah di luar negeri", "Berapa biaya kuliah di Australia?",
            "Saya tertarik kuliah S1 di UK", "Ada beasiswa untuk S2 ke Kanada?", "Is the IELTS required for a visa?",
            "Minimal skor TOEFL berapa ya?", "I'm looking at MBA programs in England",
            "Apakah bisa bantu proses visa?", "Terima kasih infonya kak", "Bukan untuk saya, untuk adik saya",
            "Kapan jadwal masuk kuliah?", "Can you send the bachelor programme list?",
            "Masih bingung pilih jurusan", "Oke kak, nanti saya kabari lagi", "Visanya kira-kira berapa lama?",
            "Boleh minta brosur master di Inggris?", "Hello, what scholarships are available in Canada?",
            "Baik, saya tunggu informasinya", "Is an undergraduate degree in Aussie cheaper?", "Siap kak 🙏"]
REPLIES = ["Halo! Dengan senang hati kami bantu", "Untuk biaya, kami kirimkan rinciannya ya",
           "Sure, here is the programme list", "Beasiswa tersedia untuk beberapa kampus",
           "Kami bisa bantu persiapan IELTS", "Proses visa biasanya 3-4 minggu", "Noted, thank you!"]
# (country code, national prefixes, digits after the prefix): valid mobile ranges.
COUNTRIES = [
    ("62", ["811", "812", "813", "821", "822", "852", "853", "857", "858", "877", "878", "896"], 8),
    ("60", ["12", "13", "16", "17", "19"], 7),
    ("65", ["8", "9"], 7),
    ("61", ["4"], 8),
    ("44", ["7400", "7700", "7900"], 6),
    ("1", ["2025", "4155", "6465"], 6),
]
COUNTRY_WEIGHTS = [85, 5, 3, 3, 2, 2]
REGIONS = {"62": "ID", "60": "MY", "65": "SG", "61": "AU", "44": "GB", "1": "US"}  # a BSUID's country code
USERNAME_ONLY_EVERY = 10


def workspace_ids(seed: int = DEFAULT_SEED) -> list[str]:
    rng = random.Random(f"workspaces:{seed}")
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(WORKSPACE_COUNT)]


def workspaces(seed: int = DEFAULT_SEED) -> list[dict[str, Any]]:
    return [{"id": ws, "name": f"Synthetic agency {n + 1}", "kapso_phone_id": f"synthetic-{seed}-{n + 1}",
             "created_at": _iso(_EPOCH)} for n, ws in enumerate(workspace_ids(seed))]


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _phone(index: int, rng: random.Random) -> str:
    """Distinct per index: the suffix is a bijection of the index within its digit space.

    A number outside the ranges phonenumbers knows as valid falls back to an
    Indonesian mobile with the same kind of suffix (always valid, still distinct).
    """
    code, prefixes, digits = rng.choices(COUNTRIES, COUNTRY_WEIGHTS)[0]
    prefix = rng.choice(prefixes)
    phone = f"+{code}{prefix}{(index * 7_919_317 + 12_345) % 10**digits:0{digits}d}"  # 7,919,317: prime
    if code != "62" and not phonenumbers.is_valid_number(phonenumbers.parse(phone)):
        phone = f"+62812{(index * 7_919_317 + 12_345) % 10**8:08d}"
    return phone


@dataclass(frozen=True)
class ContactHead:
    """What `compare` needs of a contact: where it lives and how it is found (a phone, or a BSUID)."""

    workspace_id: str
    phone: str | None
    bsuid: str | None = None


def is_username_only(index: int) -> bool:
    return index % USERNAME_ONLY_EVERY == USERNAME_ONLY_EVERY - 1


def _bsuid(index: int, phone: str) -> str:
    """Distinct per index (a bijection within 20 digits), with the country of the number it hides."""
    code = next(code for code, _, _ in COUNTRIES if phone.startswith("+" + code))
    # 982,451,653 is prime (coprime with 9 * 10**19): 20 digits, no leading zero, one per index.
    return f"{REGIONS[code]}.{10**19 + (index * 982_451_653 + 7_654_321) % (9 * 10**19)}"


def contact_head(seed: int, index: int, workspaces_: list[str]) -> ContactHead:
    rng = random.Random(f"{seed}:{index}")
    return _head(index, rng, workspaces_)


def _head(index: int, rng: random.Random, workspaces_: list[str]) -> ContactHead:
    # The phone is drawn for every contact, so the draws after it are the same either way.
    workspace_id, phone = workspaces_[index % len(workspaces_)], _phone(index, rng)
    if is_username_only(index):
        return ContactHead(workspace_id, None, _bsuid(index, phone))
    return ContactHead(workspace_id, phone)


def contact(seed: int, index: int, workspaces_: list[str]) -> dict[str, Any]:
    """Contact `index` with its notes and conversation (data-set format)."""
    rng = random.Random(f"{seed}:{index}")
    head = _head(index, rng, workspaces_)
    full_name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
    only_profile = rng.random() < 0.25
    created = _EPOCH + timedelta(milliseconds=rng.randrange(0, 600 * 86_400_000))
    record: dict[str, Any] = {
        "workspace_id": head.workspace_id, "phone": head.phone,
        "name": None if only_profile else full_name,
        "kapso_name": full_name.split()[0] if only_profile or rng.random() < 0.5 else None,
        "email": None if rng.random() < 0.6 else f"{full_name.lower().replace(' ', '.')}{index}@example.com",
        "lead_status": rng.choice(STATUSES), "lead_score": rng.randrange(0, 101),
        "tags": rng.sample(TAGS, rng.choice([0, 0, 1, 1, 2, 3])),
        "created_at": _iso(created), "updated_at": _iso(created),
        "notes": _notes(rng, created), "conversation": _conversation(rng, created),
    }
    if head.bsuid is not None:
        record["bsuid"], record["username"] = head.bsuid, f"{full_name.lower().replace(' ', '_')}{index}"
        if record["name"] is None:
            record["kapso_name"] = None  # the answer's name is then the username (docs/contract.md §3)
    return record


def _skewed(rng: random.Random, maximum: int, mean: float) -> int:
    return min(maximum, int(rng.expovariate(1 / mean)))


def _notes(rng: random.Random, created: datetime) -> list[dict[str, Any]]:
    moment, notes = created, []
    for _ in range(_skewed(rng, 20, 2.0)):
        # Whole minutes: equal timestamps happen, and insertion order must break the tie.
        moment += timedelta(minutes=rng.randrange(0, 3) * rng.randrange(1, 4000))
        notes.append({"content": rng.choice(NOTES), "created_at": _iso(moment)})
    return notes


def _conversation(rng: random.Random, created: datetime) -> dict[str, Any] | None:
    if rng.random() < 0.2:
        return None
    moment, messages = created, []
    for _ in range(_skewed(rng, 50, 6.0)):
        moment += timedelta(milliseconds=rng.randrange(1000, 3 * 86_400_000))
        inbound = rng.random() < 0.6
        messages.append({"direction": "inbound" if inbound else "outbound",
                         "content": rng.choice(MESSAGES if inbound else REPLIES), "message_type": "text",
                         "kapso_message_id": f"wamid.syn-{rng.getrandbits(64):016x}",
                         "status": "received" if inbound else "read", "created_at": _iso(moment)})
    return {"status": rng.choice(["open", "open", "closed"]),
            "unread_count": sum(m["direction"] == "inbound" for m in messages[-3:]),
            "last_message_at": messages[-1]["created_at"] if messages else None,
            "last_message_preview": messages[-1]["content"] if messages else None,
            "created_at": _iso(created), "messages": messages}


def contacts(seed: int, count: int, start: int = 0) -> Iterator[dict[str, Any]]:
    ids = workspace_ids(seed)
    for index in range(start, count):
        yield contact(seed, index, ids)


def heads(seed: int, count: int) -> Iterator[ContactHead]:
    ids = workspace_ids(seed)
    for index in range(count):
        yield contact_head(seed, index, ids)
