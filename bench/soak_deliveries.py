"""The soak's deliveries (bench/soak.py): every sender's greeting, then singles and batches whose senders
overlap, in random order, with replays, poison events (docs/webhook.md section 3) and message-less
events mixed in, each signed as Kapso signs."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from bench.deliveries import signed_headers

SECRET = "soak-webhook-secret"
PHONE_NUMBER_ID = "soak-phone-id"
BASE_TIME = 1_768_000_000  # 2026-01-09: every valid message time is in the past
PHRASES = ["Halo kak, mau tanya", "Berapa biaya kuliah di Australia?", "Saya mau ke UK", "ada beasiswa?",
           "IELTS saya 6.5", "visa butuh berapa lama?", "MBA atau master?", "S1 di Kanada", "ok", "terima kasih",
           "bisa telepon besok?", "untuk adik saya, bukan untuk saya", "masuk bulan depan"]
POISON_KINDS = ["nul_id", "long_id", "huge_id", "surrogate_id", "future", "before_2000", "huge_timestamp",
                "bad_phone", "unknown_workspace", "nul_type"]


@dataclass
class Message:
    id: str
    sender: int
    time: int
    content: str


@dataclass
class Delivery:
    key: str
    raw: bytes
    headers: dict[str, str]
    valid: int  # events that pass section 3
    poison: int  # events that are ignored
    label: str
    attempts: list[tuple[str, float]] = field(default_factory=list)  # (status, seconds) per attempt
    started: list[float] = field(default_factory=list)  # monotonic start of each attempt
    answer: dict | None = None
    convex: tuple[str, dict | None] | None = None


def phone(sender: int) -> str:
    return f"+62813{sender:08d}"


def v2(message_id: str, seconds, sender_phone: str, content: str, name: str, *, kind: str = "text",
       phone_number_id: str = PHONE_NUMBER_ID) -> dict:
    return {"message": {"id": message_id, "timestamp": seconds if isinstance(seconds, str) else str(seconds),
                        "type": kind, "text": {"body": content},
                        "kapso": {"direction": "inbound", "status": "received"}},
            "conversation": {"id": f"conv-{sender_phone}", "phone_number": sender_phone,
                             "phone_number_id": phone_number_id, "kapso": {"contact_name": name}},
            "is_new_conversation": False, "phone_number_id": phone_number_id}


def poison_event(kind: str, n: int, rng: random.Random, senders: int) -> dict:
    """An event docs/webhook.md section 3 ignores; placeholders are spelled out in the raw text later."""
    sender = rng.randrange(senders)
    p, name, ok_time = phone(sender), f"Kontak {sender}", str(BASE_TIME + 10)
    return {
        "nul_id": lambda: v2(f"poison-nul-\u0000-{n}", ok_time, p, "racun visa", name),
        "long_id": lambda: v2(f"poison-long-{n}-".ljust(257, "x"), ok_time, p, "racun visa", name),
        "huge_id": lambda: v2(f"poison-huge-{n}-" + "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789",
                                                                         k=4096)), ok_time, p, "racun", name),
        "surrogate_id": lambda: v2(f"poison-sur-@SURROGATE@-{n}", ok_time, p, "racun visa", name),
        "future": lambda: v2(f"poison-future-{n}", "99999999999", p, "racun visa", name),
        "before_2000": lambda: v2(f"poison-old-{n}", "946684799", p, "racun visa", name),
        "huge_timestamp": lambda: v2(f"poison-hugets-{n}", "@HUGE_TIMESTAMP@", p, "racun visa", name),
        "bad_phone": lambda: v2(f"poison-phone-{n}", ok_time, "12", "racun visa", name),
        "unknown_workspace": lambda: v2(f"poison-ws-{n}", ok_time, p, "racun visa", name,
                                        phone_number_id="nobody-has-this-id"),
        "nul_type": lambda: v2(f"poison-type-{n}", ok_time, p, "racun visa", name, kind="te\u0000xt"),
    }[kind]()


def encode(body: dict) -> bytes:
    text = json.dumps(body)
    text = text.replace("@SURROGATE@", "\\udc00").replace('"@HUGE_TIMESTAMP@"', "1" + "0" * 399)
    return text.encode()


def make_delivery(key: str, body: dict, valid: int, poison: int, label: str, batch: bool) -> Delivery:
    raw = encode(body)
    return Delivery(key, raw, {**signed_headers(raw, SECRET, batch), "X-Idempotency-Key": key}, valid, poison, label)


def plan(messages_total: int, senders: int, seed: int) -> tuple[list[Delivery], list[Delivery], list[Message]]:
    """(greetings, main deliveries in sending order, every valid message)."""
    rng = random.Random(seed)
    # Each sender's first message is its greeting, delivered before the rest, so a contact's
    # created_at is the same whatever order the concurrent deliveries commit in.
    messages = [Message(f"wamid.soak-{s}-0", s, BASE_TIME + s, "Halo, saya Kontak " + str(s)) for s in range(senders)]
    rest_times = rng.sample(range(BASE_TIME + senders, BASE_TIME + senders + 10 * messages_total),
                            messages_total - senders)
    for i, seconds in enumerate(rest_times):
        sender = rng.randrange(senders)
        messages.append(Message(f"wamid.soak-{sender}-{i + 1}", sender, seconds, rng.choice(PHRASES)))
    event = {m.id: v2(m.id, m.time, phone(m.sender), m.content, f"Kontak {m.sender}") for m in messages}
    greetings = [make_delivery(f"greet-{m.sender}", event[m.id], 1, 0, "greeting", False) for m in messages[:senders]]

    rest = messages[senders:]
    rng.shuffle(rest)  # batches mix senders and times
    main: list[Delivery] = []
    poison_n = 0
    i = 0
    while i < len(rest):
        size = 1 if rng.random() < 0.3 else rng.randint(2, 25)
        chunk, i = rest[i:i + size], i + size
        events = [event[m.id] for m in chunk]
        poison = 0
        if rng.random() < 0.15:  # a poison event somewhere in the delivery
            events.insert(rng.randrange(len(events) + 1), poison_event(rng.choice(POISON_KINDS), poison_n, rng,
                                                                       senders))
            poison, poison_n = 1, poison_n + 1
        key = f"main-{len(main)}"
        if len(events) == 1:
            main.append(make_delivery(key, events[0], len(chunk), poison, "single", False))
        else:
            main.append(make_delivery(key, {"type": "whatsapp.message.received", "batch": True, "data": events},
                                      len(chunk), poison, "batch", True))
    for n in range(len(main) // 20):  # deliveries that are nothing but poison or carry no message
        kind = rng.choice([*POISON_KINDS, "conversation", "project"])
        if kind == "conversation":
            body = {"event": "whatsapp.conversation.ended", "conversation": {"id": "c", "phone_number": phone(0)},
                    "phone_number_id": PHONE_NUMBER_ID}
        elif kind == "project":
            body = {"event": "whatsapp.phone_number.created", "phone_number_id": PHONE_NUMBER_ID}
        else:
            body, poison_n = poison_event(kind, poison_n, rng, senders), poison_n + 1
        main.append(make_delivery(f"poison-only-{n}", body, 0, 1, "poison only", False))
    replays = [Delivery(d.key, d.raw, d.headers, d.valid, d.poison, "replay")
               for d in rng.sample(main, len(main) // 10)]
    main += replays
    rng.shuffle(main)
    return greetings, main, messages
