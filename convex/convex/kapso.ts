// Kapso webhook payloads (SPEC section 7) read into plain events. Pure
// functions, no Convex APIs: the HTTP action parses, the ingest mutation
// (webhook.ts) stores. Mirrors services/kapso.py rule for rule; both run
// contract/webhook_scenario.json.
//
// Three shapes arrive: a v2 event (event name in X-Webhook-Event), a batch of
// v2 events, and Meta's raw `whatsapp_business_account` delivery. Each becomes
// a list of message / status / ignored events, in payload order.

export const STATUS_EVENTS = new Set([
  "whatsapp.message.delivered",
  "whatsapp.message.read",
  "whatsapp.message.failed",
]);
export const MESSAGE_EVENTS: ReadonlyMap<string, "inbound" | "outbound"> = new Map([
  ["whatsapp.message.received", "inbound"],
  ["whatsapp.message.sent", "outbound"],
]);

export type MessageEvent = {
  kind: "message";
  phone_number_id: string | null;
  /** E.164 or WhatsApp digits, as Kapso sent it. */
  phone: string | null;
  contact_name: string | null;
  kapso_message_id: string;
  direction: string;
  content: string;
  message_type: string;
  status: string;
  /** The message's own time, milliseconds since the epoch. */
  created_at: number;
};

export type StatusEvent = {
  kind: "status";
  phone_number_id: string | null;
  kapso_message_id: string;
  status: string;
};

/** Acknowledged and counted, never stored (the reason is for tests only). */
export type IgnoredEvent = { kind: "ignored"; reason: string };

export type KapsoEvent = MessageEvent | StatusEvent | IgnoredEvent;

/** The body is JSON, but none of the shapes Kontak reads. */
export class UnsupportedPayload extends Error {
  constructor() {
    super("Unsupported payload");
    this.name = "UnsupportedPayload";
  }
}

// ---------------------------------------------------------------------------
// Python semantics the reference relies on.

type Dict = Record<string, unknown>;

function isDict(value: unknown): value is Dict {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** `value if isinstance(value, dict) else {}` */
function dict(value: unknown): Dict {
  return isDict(value) ? value : {};
}

/** `d.get(key)`: own properties only ("constructor" is not a key of {}). */
function get(d: Dict, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(d, key) ? d[key] : undefined;
}

// Python's str.isspace() characters (str.strip() removes these); unlike JS
// \s it includes U+001C..U+001F and U+0085 and excludes U+FEFF.
const PY_SPACE = "\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const PY_BLANK = new RegExp(`^[${PY_SPACE}]*$`);
const PY_STRIP = new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, "g");

/** Python's str.strip(). */
export function pyStrip(s: string): string {
  return s.replace(PY_STRIP, "");
}

/** `value if isinstance(value, str) and value.strip() else None` (not stripped). */
function text(value: unknown): string | null {
  return typeof value === "string" && !PY_BLANK.test(value) ? value : null;
}

/** Python truthiness of a JSON value. */
function truthy(value: unknown): boolean {
  if (value === undefined || value === null || value === false || value === 0 || value === "") return false;
  if (Array.isArray(value)) return value.length > 0;
  if (isDict(value)) return Object.keys(value).length > 0;
  return true;
}

/** `_list(value)`: a JSON array, or nothing (a string or object where a list belongs is not iterated). */
function iterate(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

// Python's float() grammar for decimal strings (digits may be grouped by "_").
const DIGITS = "[0-9](?:_?[0-9])*";
const PY_FLOAT = new RegExp(`^[+-]?(?:${DIGITS}(?:\\.(?:${DIGITS})?)?|\\.${DIGITS})(?:[eE][+-]?${DIGITS})?$`);

/** Python's round() for a float: halves go to the even neighbour. */
function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/** WhatsApp times are Unix seconds, as a string or a number; null when unusable. */
export function timestampMs(value: unknown): number | null {
  let seconds: number;
  if (typeof value === "number") {
    seconds = value;
  } else if (typeof value === "string") {
    const s = pyStrip(value);
    // "inf" and "nan" are floats to Python too, but outside the range below.
    if (!PY_FLOAT.test(s)) return null;
    seconds = Number(s.replace(/_/g, ""));
  } else {
    return null; // booleans, null, lists, objects
  }
  if (!(seconds > 0 && seconds < 1e11)) return null;
  return roundHalfEven(seconds * 1000);
}

// ---------------------------------------------------------------------------
// Readable content

/** What a person would read for this WhatsApp message, whatever its type (NULs dropped). */
export function readableContent(message: Dict): string {
  return describe(message).replace(/\u0000/g, "");
}

function capitalizeFirst(kind: string): string {
  const first = kind.codePointAt(0);
  if (first === undefined) return kind;
  const head = String.fromCodePoint(first);
  return head.toUpperCase() + kind.slice(head.length);
}

function describe(message: Dict): string {
  const kind = text(get(message, "type")) ?? "message";
  const part = dict(get(message, kind));
  if (kind === "text") return text(get(part, "body")) ?? "";
  if ((kind === "image" || kind === "video" || kind === "document") && text(get(part, "caption")) !== null) {
    return get(part, "caption") as string;
  }
  if (kind === "document") {
    const filename = text(get(part, "filename"));
    return filename !== null ? `[Document: ${filename}]` : "[Document]";
  }
  if (kind === "location") {
    const name = text(get(part, "name"));
    return name !== null ? `[Location: ${name}]` : "[Location]";
  }
  if (kind === "reaction") {
    const emoji = text(get(part, "emoji"));
    return emoji !== null ? `[Reaction: ${emoji}]` : "[Reaction]";
  }
  if (kind === "interactive") {
    const button = dict(get(part, "button_reply"));
    const reply = truthy(button) ? button : dict(get(part, "list_reply"));
    return text(get(reply, "title")) ?? "[Interactive]";
  }
  if (kind === "button") return text(get(part, "text")) ?? "[Button]";
  if (kind === "contacts") return "[Contact]";
  return `[${capitalizeFirst(kind)}]`;
}

// ---------------------------------------------------------------------------
// The shapes

function v2Event(event: string | null, payload: Dict): KapsoEvent {
  const message = dict(get(payload, "message"));
  const conversation = dict(get(payload, "conversation"));
  const phoneNumberId = text(get(payload, "phone_number_id")) ?? text(get(conversation, "phone_number_id"));
  const kapso = dict(get(message, "kapso"));
  const messageId = text(get(message, "id"));
  const kapsoDirection = get(kapso, "direction");
  if (event === null && truthy(message)) {
    event = kapsoDirection !== "outbound" ? "whatsapp.message.received" : "whatsapp.message.sent";
  }
  if (event !== null && STATUS_EVENTS.has(event)) {
    if (messageId === null) return { kind: "ignored", reason: "status without a message id" };
    return {
      kind: "status",
      phone_number_id: phoneNumberId,
      kapso_message_id: messageId,
      status: event.slice(event.lastIndexOf(".") + 1),
    };
  }
  const fallback = event === null ? undefined : MESSAGE_EVENTS.get(event);
  if (fallback === undefined) return { kind: "ignored", reason: `event ${event || "unknown"}` };
  const direction = kapsoDirection === "inbound" || kapsoDirection === "outbound" ? kapsoDirection : fallback;
  const counterpart = direction === "inbound" ? get(message, "from") : get(message, "to");
  const createdAt = timestampMs(get(message, "timestamp"));
  if (messageId === null || createdAt === null) {
    return { kind: "ignored", reason: "message without an id or a time" };
  }
  return {
    kind: "message",
    phone_number_id: phoneNumberId,
    phone: text(get(conversation, "phone_number")) ?? text(counterpart),
    contact_name: text(get(dict(get(conversation, "kapso")), "contact_name")),
    kapso_message_id: messageId,
    direction,
    content: readableContent(message),
    message_type: text(get(message, "type")) ?? "text",
    status: text(get(kapso, "status")) ?? (direction === "inbound" ? "received" : "sent"),
    created_at: createdAt,
  };
}

function metaEvents(payload: Dict): KapsoEvent[] {
  const events: KapsoEvent[] = [];
  for (const entry of iterate(get(payload, "entry"))) {
    for (const change of iterate(get(dict(entry), "changes"))) {
      const value = dict(get(dict(change), "value"));
      const phoneNumberId = text(get(dict(get(value, "metadata")), "phone_number_id"));
      // wa_id -> profile name; a later contact with the same wa_id wins. Only
      // string keys matter: the lookup below is by a message's `from`, and a
      // message whose `from` is not a string has no phone and is ignored.
      const names = new Map<string, string | null>();
      for (const c of iterate(get(value, "contacts"))) {
        const contact = dict(c);
        const waId = get(contact, "wa_id");
        const name = text(get(dict(get(contact, "profile")), "name"));
        if (typeof waId === "string") names.set(waId, name);
      }
      for (const raw of iterate(get(value, "messages"))) {
        const message = dict(raw);
        const createdAt = timestampMs(get(message, "timestamp"));
        const messageId = text(get(message, "id"));
        if (messageId === null || createdAt === null) {
          events.push({ kind: "ignored", reason: "message without an id or a time" });
          continue;
        }
        const from = get(message, "from");
        events.push({
          kind: "message",
          phone_number_id: phoneNumberId,
          phone: text(from),
          contact_name: typeof from === "string" ? (names.get(from) ?? null) : null,
          kapso_message_id: messageId,
          direction: "inbound",
          content: readableContent(message),
          message_type: text(get(message, "type")) ?? "text",
          status: "received",
          created_at: createdAt,
        });
      }
      for (const raw of iterate(get(value, "statuses"))) {
        const status = dict(raw);
        const id = text(get(status, "id"));
        const state = text(get(status, "status"));
        if (id !== null && state !== null) {
          events.push({ kind: "status", phone_number_id: phoneNumberId, kapso_message_id: id, status: state });
        } else {
          events.push({ kind: "ignored", reason: "status without an id" });
        }
      }
    }
  }
  return events;
}

/**
 * The events of one webhook request body (already parsed JSON), given the
 * X-Webhook-Event and X-Webhook-Batch headers. Throws UnsupportedPayload.
 */
export function parseDelivery(
  payload: unknown,
  eventHeader: string | null,
  batchHeader: string | null,
): KapsoEvent[] {
  if (!isDict(payload)) throw new UnsupportedPayload();
  if (get(payload, "object") === "whatsapp_business_account" && Array.isArray(get(payload, "entry"))) {
    return metaEvents(payload);
  }
  const isBatch = get(payload, "batch") === true || (batchHeader ?? "").toLowerCase() === "true";
  if (isBatch) {
    const data = get(payload, "data");
    if (!Array.isArray(data)) throw new UnsupportedPayload();
    const event = text(eventHeader) ?? text(get(payload, "type"));
    return data.map((item) => v2Event(event, dict(item)));
  }
  if (isDict(get(payload, "message")) || isDict(get(payload, "conversation"))) {
    return [v2Event(text(eventHeader), payload)];
  }
  throw new UnsupportedPayload();
}

// ---------------------------------------------------------------------------
// The raw body

/** Deeper nesting is refused as invalid JSON (Python's decoder stops near 1,000). */
export const MAX_JSON_DEPTH = 900;

function decodeUnits(bytes: Uint8Array, width: 2 | 4, littleEndian: boolean): string | null {
  if (bytes.length % width !== 0) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const parts: string[] = [];
  let chunk: number[] = [];
  for (let i = 0; i < bytes.length; i += width) {
    if (width === 2) {
      chunk.push(view.getUint16(i, littleEndian));
    } else {
      const cp = view.getUint32(i, littleEndian);
      if (cp > 0x10ffff) return null;
      if (cp > 0xffff) chunk.push(0xd800 + ((cp - 0x10000) >> 10), 0xdc00 + ((cp - 0x10000) & 0x3ff));
      else chunk.push(cp);
    }
    if (chunk.length >= 4096) {
      parts.push(String.fromCharCode(...chunk));
      chunk = [];
    }
  }
  parts.push(String.fromCharCode(...chunk));
  return parts.join("");
}

const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * The body as text, in the encoding Python's json.loads detects for bytes
 * (UTF-8 with or without BOM, UTF-16, UTF-32); null when it does not decode.
 */
export function decodeBody(b: Uint8Array): string | null {
  const starts = (...prefix: number[]) => prefix.every((x, i) => b[i] === x);
  try {
    if (starts(0x00, 0x00, 0xfe, 0xff)) return decodeUnits(b.subarray(4), 4, false);
    if (starts(0xff, 0xfe, 0x00, 0x00)) return decodeUnits(b.subarray(4), 4, true);
    if (starts(0xfe, 0xff)) return decodeUnits(b.subarray(2), 2, false);
    if (starts(0xff, 0xfe)) return decodeUnits(b.subarray(2), 2, true);
    if (starts(0xef, 0xbb, 0xbf)) return UTF8.decode(b.subarray(3));
    if (b.length >= 4) {
      if (b[0] === 0) return b[1] ? decodeUnits(b, 2, false) : decodeUnits(b, 4, false);
      if (b[1] === 0) return b[2] || b[3] ? decodeUnits(b, 2, true) : decodeUnits(b, 4, true);
    } else if (b.length === 2) {
      if (b[0] === 0) return decodeUnits(b, 2, false);
      if (b[1] === 0) return decodeUnits(b, 2, true);
    }
    return UTF8.decode(b);
  } catch {
    return null;
  }
}

/** True when arrays/objects nest deeper than `limit` (strings are skipped). */
export function nestedTooDeep(s: string, limit: number = MAX_JSON_DEPTH): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return true;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return false;
}

/** The parsed body, or undefined for anything Python's json.loads(bytes) would refuse. */
export function parseJsonBody(bytes: Uint8Array): unknown {
  const s = decodeBody(bytes);
  // A BOM left after decoding is an error to json.loads(str).
  if (s === null || s.startsWith("\ufeff") || nestedTooDeep(s)) return undefined;
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
}
