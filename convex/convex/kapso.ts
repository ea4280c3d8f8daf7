// Kapso webhook payloads (docs/webhook.md §2-§3) read into events and judged.
// Pure functions, no Convex APIs: the HTTP action (handlers/webhook.ts) reads the body and
// does every check that needs no database, the ingest mutation (webhook.ts)
// does the rest and stores. Mirrors services/kapso.py rule for rule; the
// numbers come from contract/webhook_rules.json, read by both.
//
// Three shapes arrive: Meta's raw `whatsapp_business_account` delivery, a
// batch of v2 events, and a single v2 (or older v1, wrapped in `data`) event.
// Each becomes a list of message / status / ignored events, in payload order.
import rulesJson from "../../contract/webhook_rules.json";
import { normalizePhone } from "./phones";

// ---------------------------------------------------------------------------
// The shared rules

export const RULES = {
  maxIdLength: rulesJson.max_id_length,
  maxTypeLength: rulesJson.max_type_length,
  /** Longest subscription challenge echoed (GET /webhook/kapso). */
  maxChallengeLength: rulesJson.max_challenge_length,
  minTimestampSeconds: rulesJson.min_timestamp_seconds,
  maxFutureSeconds: rulesJson.max_future_seconds,
  summaryPrefixChars: rulesJson.summary_prefix_chars,
  /** Statuses a Meta `statuses[]` entry may carry (§3 invalid_status). */
  metaStatuses: new Set<string>(rulesJson.meta_statuses),
  knownMessageStatuses: new Set<string>(rulesJson.known_message_statuses),
  statusRank: new Map<string, number>(Object.entries(rulesJson.status_rank)),
  failedAllowedBelowRank: rulesJson.failed_allowed_below_rank,
  messageEvents: new Map<string, string>(Object.entries(rulesJson.message_events)),
  statusEvents: new Map<string, string>(Object.entries(rulesJson.status_events)),
  ignoreReasons: new Set<string>(rulesJson.ignore_reasons),
} as const;

export type IgnoreReason =
  | "no_message"
  | "unknown_event"
  | "unknown_workspace"
  | "invalid_phone_number_id"
  | "invalid_message_id"
  | "invalid_timestamp"
  | "invalid_type"
  | "invalid_phone"
  | "invalid_status"
  | "unknown_message"
  | "workspace_not_allowed";

// ---------------------------------------------------------------------------
// Events as read (§2): raw values, not yet judged

export type ReadMessage = {
  kind: "message";
  phone_number_id: string | null;
  phone: string | null;
  /** Cleaned; null when blank. */
  contact_name: string | null;
  kapso_message_id: string | null;
  timestamp: unknown;
  /** null: absent, read as "text". */
  message_type: string | null;
  direction: string;
  /** Cleaned. */
  content: string;
  status: string;
};

export type ReadStatus = {
  kind: "status";
  phone_number_id: string | null;
  kapso_message_id: string | null;
  /** v2: from the event name; Meta: as sent, checked last (after the message is found). */
  status: string | null;
};

export type Ignored = { kind: "ignored"; reason: IgnoreReason };

export type ReadEvent = ReadMessage | ReadStatus | Ignored;

/** Valid JSON, but not an object: the only body shape refused (400). */
export class BodyNotObject extends Error {
  constructor() {
    super("Body must be a JSON object");
    this.name = "BodyNotObject";
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

/** `_list(value)`: a JSON array, or nothing (a string or object where a list belongs is not iterated). */
function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
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

/** A non-blank string (§2), else null: any other JSON type counts as absent. */
function text(value: unknown): string | null {
  return typeof value === "string" && !PY_BLANK.test(value) ? value : null;
}

/** The first non-blank string of `values`. */
function first(...values: unknown[]): string | null {
  for (const value of values) {
    const t = text(value);
    if (t !== null) return t;
  }
  return null;
}

// A surrogate not part of a pair: JavaScript strings can hold one (JSON
// "\ud800"), PostgreSQL and Convex cannot store it.
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const LONE_SURROGATES = new RegExp(LONE_SURROGATE.source, "g");

/**
 * NUL removed, unpaired surrogates replaced by U+FFFD (§4): what both
 * backends store for content, contact names and previews.
 */
export function cleanText(value: string): string {
  return value.replace(/\u0000/g, "").replace(LONE_SURROGATES, "\ufffd");
}

/** A contact name, cleaned; blank once cleaned counts as no name. */
function cleanName(value: string | null): string | null {
  return value === null ? null : text(cleanText(value));
}

/** Python's len(): code points, a lone surrogate counting as one. */
export function codePointLength(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

/** 1..`maxLength` code points, not blank, no NUL, no unpaired surrogate (§3). */
export function isValidIdentifier(value: string | null, maxLength: number = RULES.maxIdLength): value is string {
  // Checked in UTF-16 units first: more than 2×max units is more than max code points.
  if (value === null || value.length === 0 || value.length > 2 * maxLength) return false;
  return (
    codePointLength(value) <= maxLength &&
    !PY_BLANK.test(value) &&
    !value.includes("\u0000") &&
    !LONE_SURROGATE.test(value)
  );
}

// §3: optional sign, digits, optional fraction, optional exponent, ASCII
// whitespace around (services/kapso.py `_DECIMAL`).
const DECIMAL = /^[ \t\n\r\f\v]*[+-]?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?[ \t\n\r\f\v]*$/;

/** Python's round() for a float: halves go to the even neighbour. */
function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/**
 * Unix seconds (a JSON number or a decimal string) as milliseconds, half to
 * even; null unless between min_timestamp_seconds and `nowMs` +
 * max_future_seconds (§3). IEEE doubles, as Python's float().
 */
export function timestampMs(value: unknown, nowMs: number): number | null {
  let seconds: number;
  if (typeof value === "number") {
    seconds = value;
  } else if (typeof value === "string") {
    if (!DECIMAL.test(value)) return null;
    seconds = Number(value.trim());
  } else {
    return null; // booleans, null, lists, objects
  }
  if (!Number.isFinite(seconds) || seconds < RULES.minTimestampSeconds) return null;
  if (seconds * 1000 > nowMs + RULES.maxFutureSeconds * 1000) return null;
  return roundHalfEven(seconds * 1000);
}

// ---------------------------------------------------------------------------
// Readable content (§4)

/** What a person would read for this WhatsApp message, whatever its type, cleaned. */
export function readableContent(message: Dict): string {
  return cleanText(describe(message));
}

function capitalizeFirst(kind: string): string {
  const firstPoint = kind.codePointAt(0);
  if (firstPoint === undefined) return kind;
  const head = String.fromCodePoint(firstPoint);
  return head.toUpperCase() + kind.slice(head.length);
}

function describe(message: Dict): string {
  const kind = text(get(message, "type")) ?? "text";
  const part = dict(get(message, kind));
  const kapso = dict(get(message, "kapso"));
  if (kind === "text") return text(get(part, "body")) ?? text(get(kapso, "content")) ?? "";
  if ((kind === "image" || kind === "video" || kind === "document") && text(get(part, "caption")) !== null) {
    return get(part, "caption") as string;
  }
  if (kind === "audio") {
    const transcript = get(kapso, "transcript");
    return text(transcript) ?? text(get(dict(transcript), "text")) ?? text(get(kapso, "content")) ?? "[Audio]";
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
    const reply = Object.keys(button).length > 0 ? button : dict(get(part, "list_reply"));
    return text(get(reply, "title")) ?? "[Interactive]";
  }
  if (kind === "button") return text(get(part, "text")) ?? "[Button]";
  if (kind === "contacts") return "[Contact]";
  return `[${capitalizeFirst(kind)}]`;
}

// ---------------------------------------------------------------------------
// Shapes -> events (§2)

/** A v2 event, or an older (v1) one wrapped in `data`, given its event name (§2.3). */
function readEvent(name: string | null, outer: Dict): ReadEvent {
  const body = !isDict(get(outer, "message")) && isDict(get(outer, "data")) ? (get(outer, "data") as Dict) : outer;
  const message = dict(get(body, "message"));
  const conversation = dict(get(body, "conversation"));
  const kapso = dict(get(message, "kapso"));
  const phoneNumberId = first(
    get(body, "phone_number_id"),
    get(conversation, "phone_number_id"),
    get(kapso, "phone_number_id"),
    get(dict(get(body, "whatsapp_config")), "phone_number_id"),
  );
  const statusName = name === null ? undefined : RULES.statusEvents.get(name);
  if (statusName !== undefined) {
    return { kind: "status", phone_number_id: phoneNumberId, kapso_message_id: text(get(message, "id")), status: statusName };
  }
  let direction: string;
  const named = name === null ? undefined : RULES.messageEvents.get(name);
  if (named !== undefined) direction = named;
  else if (name === null && Object.keys(message).length > 0) direction = "inbound";
  else return { kind: "ignored", reason: "unknown_event" };
  const kapsoDirection = get(kapso, "direction");
  if (kapsoDirection === "inbound" || kapsoDirection === "outbound") direction = kapsoDirection;
  const kapsoStatus = get(kapso, "status");
  const status =
    typeof kapsoStatus === "string" && RULES.knownMessageStatuses.has(kapsoStatus)
      ? kapsoStatus
      : direction === "inbound"
        ? "received"
        : "sent";
  return {
    kind: "message",
    phone_number_id: phoneNumberId,
    phone: first(get(conversation, "phone_number"), get(message, direction === "inbound" ? "from" : "to")),
    contact_name: cleanName(first(get(dict(get(conversation, "kapso")), "contact_name"), get(conversation, "contact_name"))),
    kapso_message_id: text(get(message, "id")),
    timestamp: get(message, "timestamp"),
    message_type: text(get(message, "type")),
    direction,
    content: readableContent(message),
    status,
  };
}

/** One Meta `changes[].value` (§2.1). */
function metaChange(value: Dict): ReadEvent[] {
  const phoneNumberId = text(get(dict(get(value, "metadata")), "phone_number_id"));
  const contacts = list(get(value, "contacts"));
  // wa_id -> profile name; a later contact with the same wa_id wins (even without a name).
  const names = new Map<string | null, string | null>();
  for (const c of contacts) {
    names.set(text(get(dict(c), "wa_id")), text(get(dict(get(dict(c), "profile")), "name")));
  }
  const onlyWaId = contacts.length === 1 ? text(get(dict(contacts[0]), "wa_id")) : null;
  const events: ReadEvent[] = [];
  for (const raw of list(get(value, "messages"))) {
    const message = dict(raw);
    const phone = text(get(message, "from")) ?? onlyWaId;
    events.push({
      kind: "message",
      phone_number_id: phoneNumberId,
      phone,
      contact_name: cleanName(phone !== null ? (names.get(phone) ?? null) : null),
      kapso_message_id: text(get(message, "id")),
      timestamp: get(message, "timestamp"),
      message_type: text(get(message, "type")),
      direction: "inbound",
      content: readableContent(message),
      status: "received",
    });
  }
  for (const raw of list(get(value, "statuses"))) {
    const status = dict(raw);
    events.push({
      kind: "status",
      phone_number_id: phoneNumberId,
      kapso_message_id: text(get(status, "id")),
      status: text(get(status, "status")),
    });
  }
  return events.length > 0 ? events : [{ kind: "ignored", reason: "no_message" }];
}

/**
 * The events of one request body (already parsed JSON), given the
 * X-Webhook-Event and X-Webhook-Batch headers, in payload order; never empty.
 * Throws BodyNotObject for JSON that is not an object; every object is read.
 */
export function parseDelivery(payload: unknown, eventHeader: string | null, batchHeader: string | null): ReadEvent[] {
  if (!isDict(payload)) throw new BodyNotObject();
  let events: ReadEvent[];
  if (get(payload, "object") === "whatsapp_business_account") {
    events = [];
    for (const entry of list(get(payload, "entry"))) {
      for (const change of list(get(dict(entry), "changes"))) {
        events.push(...metaChange(dict(get(dict(change), "value"))));
      }
    }
  } else if (get(payload, "batch") === true || (batchHeader ?? "").toLowerCase() === "true") {
    const name = first(eventHeader, get(payload, "type"));
    events = list(get(payload, "data")).map((item) => readEvent(name, dict(item)));
  } else {
    events = [readEvent(first(eventHeader, get(payload, "event"), get(payload, "type")), payload)];
  }
  // A delivery that yields nothing is still one ignored event: the answer's counts are never all 0.
  return events.length > 0 ? events : [{ kind: "ignored", reason: "no_message" }];
}

// ---------------------------------------------------------------------------
// Judging one event (§3), the part that needs no database

/**
 * What the ingest mutation receives for one event: every string well formed
 * (Convex stores no unpaired surrogate) and every check that needs no
 * database already made. `reason` is the first such check the event failed;
 * the mutation reports it only after the workspace checks, which come first.
 */
export type PreparedEvent =
  | { kind: "ignored"; reason: IgnoreReason }
  | { kind: "rejected"; phone_number_id: string | null; reason: IgnoreReason }
  | {
      kind: "message";
      phone_number_id: string | null;
      /** E.164. */
      phone: string;
      contact_name: string | null;
      kapso_message_id: string;
      direction: string;
      content: string;
      message_type: string;
      status: string;
      /** The message's own time, milliseconds since the epoch. */
      created_at: number;
    }
  | {
      kind: "status";
      phone_number_id: string | null;
      kapso_message_id: string;
      /** null: not one of RULES.metaStatuses (invalid_status, checked after unknown_message). */
      status: string | null;
    };

/**
 * The §3 checks of `event` that need no database, in their order. An
 * invalid phone number id comes first of all, so it is final here.
 */
export function prepareEvent(event: ReadEvent, region: string, nowMs: number): PreparedEvent {
  if (event.kind === "ignored") return event;
  if (event.phone_number_id !== null && !isValidIdentifier(event.phone_number_id)) {
    return { kind: "ignored", reason: "invalid_phone_number_id" };
  }
  const phone_number_id = event.phone_number_id;
  const reject = (reason: IgnoreReason): PreparedEvent => ({ kind: "rejected", phone_number_id, reason });
  if (!isValidIdentifier(event.kapso_message_id)) return reject("invalid_message_id");
  const kapso_message_id = event.kapso_message_id;
  if (event.kind === "status") {
    const status = event.status !== null && RULES.metaStatuses.has(event.status) ? event.status : null;
    return { kind: "status", phone_number_id, kapso_message_id, status };
  }
  const created_at = timestampMs(event.timestamp, nowMs);
  if (created_at === null) return reject("invalid_timestamp");
  if (event.message_type !== null && !isValidIdentifier(event.message_type, RULES.maxTypeLength)) {
    return reject("invalid_type");
  }
  const phone = event.phone === null ? null : normalizePhone(event.phone, region);
  if (phone === null) return reject("invalid_phone");
  return {
    kind: "message",
    phone_number_id,
    phone,
    contact_name: event.contact_name,
    kapso_message_id,
    direction: event.direction,
    content: event.content,
    message_type: event.message_type ?? "text",
    status: event.status,
    created_at,
  };
}

/** One line per ignored event, naming only the reason: never content, phone or ids. */
export function logIgnored(reason: string): void {
  console.warn(`webhook event ignored reason=${reason}`);
}
