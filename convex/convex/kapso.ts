// Kapso webhook payloads (docs/webhook.md §2, §7) read into events.
// Pure functions, no Convex APIs: the HTTP action (handlers/webhook.ts) reads the body,
// judge.ts makes every check that needs no database, the ingest mutation (webhook.ts)
// does the rest and stores. Mirrors services/kapso.py rule for rule; the numbers come
// from contract/webhook_rules.json, read by both.
//
// Three shapes arrive: Meta's raw `whatsapp_business_account` delivery, a batch of v2
// events, and a single v2 (or older v1, wrapped in `data`) event. Each becomes a list of
// message / status / identity-change / conversation / ignored events, in payload order.
import rulesJson from "../../contract/webhook_rules.json";
import { messageKind, readableContent } from "./content";
import { cleanName, cleanText, codePointLength, dict, first, get, isDict, LONE_SURROGATE, list, PY_BLANK, text } from "./pyCompat";
import { codePointPrefix } from "./summary";
import { PLAIN_NUMBERS, type NumberForms } from "./transport";
import type { Dict } from "./pyCompat";

export { cleanText, codePointLength, pyStrip } from "./pyCompat";
export { readableContent } from "./content";

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
  bsuidPattern: new RegExp(rulesJson.bsuid_pattern),
  parentBsuidPattern: new RegExp(rulesJson.parent_bsuid_pattern),
  maxErrorTitleLength: rulesJson.max_error_title_length,
  /** Conversation event name -> the status it sets (§7.7). */
  conversationEvents: new Map<string, string>(Object.entries(rulesJson.conversation_events)),
  /** `system.type` -> the identifier it changes (§7.6). */
  identityChanges: new Map<string, string>(Object.entries(rulesJson.identity_changes)),
  /** More events in one delivery: 413 before any is read (docs/webhook.md §1). */
  maxEventsPerDelivery: rulesJson.max_events_per_delivery,
} as const;

/**
 * Why an event was ignored. Spelled out here so the compiler checks every use; the
 * list must be contract/webhook_rules.json's `ignore_reasons` exactly, which is
 * checked as this module loads (and by tests/contract.test.ts).
 */
export const IGNORE_REASONS = [
  "no_message",
  "unknown_event",
  "unknown_workspace",
  "invalid_phone_number_id",
  "invalid_message_id",
  "invalid_timestamp",
  "invalid_type",
  "invalid_phone",
  "invalid_status",
  "unknown_message",
  "workspace_not_allowed",
  "invalid_bsuid",
  "unknown_contact",
] as const;

export type IgnoreReason = (typeof IGNORE_REASONS)[number];

if (JSON.stringify(IGNORE_REASONS) !== JSON.stringify(rulesJson.ignore_reasons)) {
  throw new Error("kapso.ts IGNORE_REASONS differ from contract/webhook_rules.json ignore_reasons");
}

// ---------------------------------------------------------------------------
// Identifiers and times (§3, §7.1, §7.7)

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

/** A BSUID (§7.1): `ID.13491208655302741918`. The whole string must match, as Python's fullmatch. */
export function isValidBsuid(value: string): boolean {
  return RULES.bsuidPattern.test(value);
}

/** A parent BSUID (§7.1): `ID.ENT.11815799212886844830`. */
export function isValidParentBsuid(value: string): boolean {
  return RULES.parentBsuidPattern.test(value);
}

// §3: optional sign, digits, optional fraction, optional exponent, ASCII
// whitespace around (services/webhook_judge.py `_DECIMAL`).
const DECIMAL = /^[ \t\n\r\f\v]*[+-]?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?[ \t\n\r\f\v]*$/;

/** Python's round() for a float: halves go to the even neighbour. */
function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/** The §3 range: from min_timestamp_seconds to `nowMs` + max_future_seconds, inclusive. */
function inRange(ms: number, nowMs: number): boolean {
  return ms >= RULES.minTimestampSeconds * 1000 && ms <= nowMs + RULES.maxFutureSeconds * 1000;
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

// §7.7: `YYYY-MM-DDTHH:MM:SS[.f…]` then `Z` or `±HH:MM`; ASCII digits only.
const ISO_TIME = /^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?(Z|[+-][0-9]{2}:[0-9]{2})$/;

function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/** Offset minutes east of UTC, or null when hours > 23 or minutes > 59 (not a valid offset). */
function offsetMinutes(zone: string): number | null {
  if (zone === "Z") return 0;
  const hours = Number(zone.slice(1, 3));
  const minutes = Number(zone.slice(4, 6));
  if (hours > 23 || minutes > 59) return null;
  return (zone[0] === "-" ? -1 : 1) * (hours * 60 + minutes);
}

/**
 * An ISO 8601 time of a conversation event (§7.7) as milliseconds since the epoch: a
 * calendar-valid date and time, the fraction cut to milliseconds, the offset applied;
 * null when malformed or outside the §3 range.
 */
export function isoTimeMs(value: string | null, nowMs: number): number | null {
  const m = value === null ? null : ISO_TIME.exec(value);
  if (m === null) return null;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number);
  const dateValid = year >= 1 && month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth(year, month);
  const offset = offsetMinutes(m[8]);
  if (!dateValid || hour > 23 || minute > 59 || second > 59 || offset === null) return null;
  const millis = Number((m[7] ?? "").slice(0, 3).padEnd(3, "0"));
  // setUTCFullYear: Date.UTC would read years 0-99 as 1900-1999.
  const at = new Date(0);
  at.setUTCFullYear(year, month - 1, day);
  at.setUTCHours(hour, minute, second, millis);
  const ms = at.getTime() - offset * 60_000;
  return inRange(ms, nowMs) ? ms : null;
}

// ---------------------------------------------------------------------------
// Events as read (§2, §7): raw values, not yet judged

/** Who an event names (§7.2), as read: raw strings, the username already cleaned. */
export type Identity = {
  phone: string | null;
  bsuid: string | null;
  parent_bsuid: string | null;
  username: string | null;
};

/** A failure's error code and title (§7.7), in their stored form. */
export type FailureError = { code: string | null; title: string | null };

export const NO_ERROR: FailureError = { code: null, title: null };

export type ReadMessage = {
  kind: "message";
  phone_number_id: string | null;
  identity: Identity;
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
  /** Set only on a message whose status is `failed`. */
  error: FailureError;
};

export type ReadStatus = {
  kind: "status";
  phone_number_id: string | null;
  kapso_message_id: string | null;
  /** v2: from the event name; Meta: as sent, checked last (after the message is found). */
  status: string | null;
  error: FailureError;
  /** For `failed`: the outbound message it becomes when no message has its id (§7.7). */
  unseen: ReadMessage | null;
};

/** A `system` message moving a phone or a BSUID to a new value (§7.6). */
export type ReadIdentityChange = {
  kind: "identity";
  phone_number_id: string | null;
  /** The old identity. */
  identity: Identity;
  kapso_message_id: string | null;
  timestamp: unknown;
  message_type: string | null;
  field: "phone" | "bsuid";
  new_value: string | null;
};

/** whatsapp.conversation.created / .ended / .inactive (§7.7). */
export type ReadConversationEvent = {
  kind: "conversation";
  phone_number_id: string | null;
  identity: Identity;
  /** The status it sets. */
  status: string;
  /** ISO 8601, raw. */
  time: string | null;
};

export type Ignored = { kind: "ignored"; reason: IgnoreReason };

export type ReadEvent = ReadMessage | ReadStatus | ReadIdentityChange | ReadConversationEvent | Ignored;

/** Valid JSON, but not an object: the only body shape refused (400). */
/** More events than `max_events_per_delivery` in one delivery (413, docs/webhook.md §1). */
export class TooManyEvents extends Error {
  constructor() {
    super(`Too many events (at most ${rulesJson.max_events_per_delivery} per delivery)`);
    this.name = "TooManyEvents";
  }
}

export class BodyNotObject extends Error {
  constructor() {
    super("Body must be a JSON object");
    this.name = "BodyNotObject";
  }
}

// ---------------------------------------------------------------------------
// Failures (§7.7)

const MAX_SAFE_MAGNITUDE = 2 ** 53;

/**
 * An error code as kept: a JSON integer (not a boolean, not written as `1.0`) below
 * 2^53 in magnitude as its decimal text, or a valid identifier string as sent.
 * NUL and unpaired surrogates make a string code absent: neither backend can store them.
 */
function errorCode(entry: Dict, numbers: NumberForms): string | null {
  const code = get(entry, "code");
  if (typeof code === "number") {
    const integer = Number.isInteger(code) && Math.abs(code) < MAX_SAFE_MAGNITUDE && !numbers(entry, "code");
    return integer ? String(code) : null;
  }
  return typeof code === "string" && isValidIdentifier(code) ? code : null;
}

/** The first entry of an `errors` list: its code, and its title cleaned and cut to max_error_title_length. */
export function failureError(errors: unknown, numbers: NumberForms = PLAIN_NUMBERS): FailureError {
  const all = list(errors);
  const entry = dict(all.length > 0 ? all[0] : undefined);
  const title = text(get(entry, "title"));
  return {
    code: errorCode(entry, numbers),
    title: title === null ? null : codePointPrefix(cleanText(title), RULES.maxErrorTitleLength),
  };
}

// ---------------------------------------------------------------------------
// Shapes -> events (§2, §7.2)

/** The username of §7.1: cleaned, non-blank, at most max_id_length code points. */
function username(value: string | null): string | null {
  const cleaned = cleanName(value);
  return cleaned !== null && codePointLength(cleaned) <= RULES.maxIdLength ? cleaned : null;
}

/** A v2/v1 event's identity (§7.2); the direction picks `from`/`from_user_id` or `to`/`to_user_id`. */
function v2Identity(message: Dict, conversation: Dict, direction: string): Identity {
  const inbound = direction === "inbound";
  return {
    phone: first(get(conversation, "phone_number"), get(message, inbound ? "from" : "to")),
    bsuid: first(
      get(conversation, "business_scoped_user_id"),
      get(message, "business_scoped_user_id"),
      get(message, inbound ? "from_user_id" : "to_user_id"),
    ),
    parent_bsuid: first(get(conversation, "parent_business_scoped_user_id"), get(message, "parent_business_scoped_user_id")),
    username: username(first(get(conversation, "username"), get(message, "username"))),
  };
}

/** A `system` message of a type in identity_changes (§7.6), else null. */
function identityChange(phoneNumberId: string | null, identity: Identity, message: Dict): ReadIdentityChange | null {
  if (messageKind(message) !== "system") return null;
  const system = dict(get(message, "system"));
  const type = get(system, "type");
  const field = typeof type === "string" ? RULES.identityChanges.get(type) : undefined;
  if (field !== "phone" && field !== "bsuid") return null;
  return {
    kind: "identity",
    phone_number_id: phoneNumberId,
    identity,
    kapso_message_id: text(get(message, "id")),
    timestamp: get(message, "timestamp"),
    message_type: first(get(message, "type"), get(message, "message_type")),
    field,
    new_value: text(get(system, field === "phone" ? "wa_id" : "user_id")),
  };
}

/** Everything of a v2 message event but its kind-specific fields. */
type V2Parts = { phoneNumberId: string | null; message: Dict; conversation: Dict; numbers: NumberForms };

/** The v2 status a message carries: `message.kapso.status` when known, else by direction. */
function v2Status(kapso: Dict, direction: string): string {
  const status = get(kapso, "status");
  if (typeof status === "string" && RULES.knownMessageStatuses.has(status)) return status;
  return direction === "inbound" ? "received" : "sent";
}

/** A v2/v1 message (or the identity change it is), with `status` given or from `kapso.status`. */
function v2Message(parts: V2Parts, direction: string, given?: string): ReadMessage | ReadIdentityChange {
  const { phoneNumberId, message, conversation } = parts;
  const identity = v2Identity(message, conversation, direction);
  const change = identityChange(phoneNumberId, identity, message);
  if (change !== null) return change;
  const status = given ?? v2Status(dict(get(message, "kapso")), direction);
  return {
    kind: "message",
    phone_number_id: phoneNumberId,
    identity,
    contact_name: cleanName(first(get(dict(get(conversation, "kapso")), "contact_name"), get(conversation, "contact_name"))),
    kapso_message_id: text(get(message, "id")),
    timestamp: get(message, "timestamp"),
    message_type: first(get(message, "type"), get(message, "message_type")),
    direction,
    content: readableContent(message),
    status,
    error: status === "failed" ? failureError(get(message, "errors"), parts.numbers) : NO_ERROR,
  };
}

/** A v2 status event; a `failed` one carries the outbound failed message it may become (§7.7). */
function v2StatusEvent(parts: V2Parts, status: string): ReadStatus {
  const unseen = status === "failed" ? v2Message(parts, "outbound", "failed") : null;
  return {
    kind: "status",
    phone_number_id: parts.phoneNumberId,
    kapso_message_id: text(get(parts.message, "id")),
    status,
    error: failureError(get(parts.message, "errors"), parts.numbers),
    unseen: unseen?.kind === "message" ? unseen : null,
  };
}

/** A conversation event (§7.7): identity from the conversation alone. */
function v2ConversationEvent(parts: V2Parts, status: string): ReadConversationEvent {
  const { conversation } = parts;
  return {
    kind: "conversation",
    phone_number_id: parts.phoneNumberId,
    identity: v2Identity({}, conversation, "inbound"),
    status,
    time: first(get(conversation, "updated_at"), get(conversation, "last_active_at")),
  };
}

/** The direction a named (or unnamed) v2 event has, or null when it is no message event. */
function v2Direction(name: string | null, message: Dict): string | null {
  const named = name === null ? undefined : RULES.messageEvents.get(name);
  if (named === undefined && !(name === null && Object.keys(message).length > 0)) return null;
  const given = get(dict(get(message, "kapso")), "direction");
  return given === "inbound" || given === "outbound" ? given : (named ?? "inbound");
}

/** A v2 event, or an older (v1) one wrapped in `data`, given its event name (§2.3). */
function readEvent(name: string | null, outer: Dict, numbers: NumberForms): ReadEvent {
  const body = !isDict(get(outer, "message")) && isDict(get(outer, "data")) ? (get(outer, "data") as Dict) : outer;
  const message = dict(get(body, "message"));
  const conversation = dict(get(body, "conversation"));
  const phoneNumberId = first(
    get(body, "phone_number_id"),
    get(conversation, "phone_number_id"),
    get(dict(get(message, "kapso")), "phone_number_id"),
    get(dict(get(body, "whatsapp_config")), "phone_number_id"),
  );
  const parts: V2Parts = { phoneNumberId, message, conversation, numbers };
  const status = name === null ? undefined : RULES.statusEvents.get(name);
  if (status !== undefined) return v2StatusEvent(parts, status);
  const conversationStatus = name === null ? undefined : RULES.conversationEvents.get(name);
  if (conversationStatus !== undefined) return v2ConversationEvent(parts, conversationStatus);
  const direction = v2Direction(name, message);
  return direction === null ? { kind: "ignored", reason: "unknown_event" } : v2Message(parts, direction);
}

/** The `contacts[]` entry a Meta message belongs to (§7.2): the last one matching, else the only one. */
function matchingContact(contacts: unknown[], bsuid: string | null, phone: string | null): Dict {
  const entries = contacts.map(dict);
  for (const [key, wanted] of [["user_id", bsuid], ["wa_id", phone]] as const) {
    if (wanted === null) continue;
    for (let i = entries.length - 1; i >= 0; i--) {
      if (text(get(entries[i], key)) === wanted) return entries[i];
    }
  }
  return entries.length === 1 ? entries[0] : {};
}

/** One Meta `messages[]` entry: an inbound message, or the identity change it is. */
function metaMessage(phoneNumberId: string | null, raw: unknown, contacts: unknown[]): ReadMessage | ReadIdentityChange {
  const message = dict(raw);
  const contact = matchingContact(contacts, text(get(message, "from_user_id")), text(get(message, "from")));
  const profile = dict(get(contact, "profile"));
  const identity: Identity = {
    phone: first(get(message, "from"), get(contact, "wa_id")),
    bsuid: first(get(message, "from_user_id"), get(contact, "user_id")),
    parent_bsuid: first(get(message, "from_parent_user_id"), get(contact, "parent_user_id")),
    username: username(text(get(profile, "username"))),
  };
  const change = identityChange(phoneNumberId, identity, message);
  if (change !== null) return change;
  return {
    kind: "message",
    phone_number_id: phoneNumberId,
    identity,
    contact_name: cleanName(text(get(profile, "name"))),
    kapso_message_id: text(get(message, "id")),
    timestamp: get(message, "timestamp"),
    message_type: text(get(message, "type")),
    direction: "inbound",
    content: readableContent(message),
    status: "received",
    error: NO_ERROR,
  };
}

/** One Meta `message_echoes[]` entry: the business writing from the WhatsApp Business app (§7.7). */
function metaEcho(phoneNumberId: string | null, raw: unknown): ReadMessage {
  const echo = dict(raw);
  return {
    kind: "message",
    phone_number_id: phoneNumberId,
    identity: {
      phone: text(get(echo, "to")),
      bsuid: text(get(echo, "to_user_id")),
      parent_bsuid: text(get(echo, "to_parent_user_id")),
      username: null,
    },
    contact_name: null,
    kapso_message_id: text(get(echo, "id")),
    timestamp: get(echo, "timestamp"),
    message_type: text(get(echo, "type")),
    direction: "outbound",
    content: readableContent(echo),
    status: "sent",
    error: NO_ERROR,
  };
}

/** One Meta `statuses[]` entry; a `failed` one carries the message it may become (§7.7). */
function metaStatus(phoneNumberId: string | null, raw: unknown, numbers: NumberForms): ReadStatus {
  const status = dict(raw);
  const name = text(get(status, "status"));
  const error = failureError(get(status, "errors"), numbers);
  const kapso_message_id = text(get(status, "id"));
  const unseen: ReadMessage | null =
    name !== "failed"
      ? null
      : {
          kind: "message",
          phone_number_id: phoneNumberId,
          identity: {
            phone: text(get(status, "recipient_id")),
            bsuid: text(get(status, "recipient_user_id")),
            parent_bsuid: text(get(status, "recipient_parent_user_id")),
            username: null,
          },
          contact_name: null,
          kapso_message_id,
          timestamp: get(status, "timestamp"),
          message_type: "unknown",
          direction: "outbound",
          content: "",
          status: "failed",
          error,
        };
  return { kind: "status", phone_number_id: phoneNumberId, kapso_message_id, status: name, error, unseen };
}

/** One Meta `changes[].value` (§2.1, §7.2): messages, then echoes, then statuses. */
function metaChange(value: Dict, numbers: NumberForms): ReadEvent[] {
  const phoneNumberId = text(get(dict(get(value, "metadata")), "phone_number_id"));
  const contacts = list(get(value, "contacts"));
  const events: ReadEvent[] = [
    ...list(get(value, "messages")).map((raw) => metaMessage(phoneNumberId, raw, contacts)),
    ...list(get(value, "message_echoes")).map((raw) => metaEcho(phoneNumberId, raw)),
    ...list(get(value, "statuses")).map((raw) => metaStatus(phoneNumberId, raw, numbers)),
  ];
  return events.length > 0 ? events : [{ kind: "ignored", reason: "no_message" }];
}

/** Each Meta `entry[].changes[].value` of a delivery, in payload order (§2.1). */
function metaChanges(payload: Dict): Dict[] {
  return list(get(payload, "entry")).flatMap((entry) =>
    list(get(dict(entry), "changes")).map((change) => dict(get(dict(change), "value"))),
  );
}

function isBatch(payload: Dict, batchHeader: string | null): boolean {
  return get(payload, "batch") === true || (batchHeader ?? "").toLowerCase() === "true";
}

/**
 * How many events `parseDelivery` would read, counted without reading them
 * (services/kapso.py `count_events`): a Meta change counts its messages, echoes
 * and statuses, at least 1; a batch its `data` items; anything else 1.
 */
export function countEvents(payload: Dict, batchHeader: string | null): number {
  if (get(payload, "object") === "whatsapp_business_account") {
    let count = 0;
    for (const value of metaChanges(payload)) {
      const held = ["messages", "message_echoes", "statuses"].reduce((n, key) => n + list(get(value, key)).length, 0);
      count += Math.max(1, held);
    }
    return count;
  }
  return isBatch(payload, batchHeader) ? list(get(payload, "data")).length : 1;
}

/**
 * The events of one request body (already parsed JSON), given the
 * X-Webhook-Event and X-Webhook-Batch headers, in payload order; never empty.
 * Throws BodyNotObject for JSON that is not an object, TooManyEvents over
 * `max_events_per_delivery` (before any event is read).
 * `numbers` tells integers from floats where JSON.parse cannot (transport.ts).
 */
export function parseDelivery(
  payload: unknown,
  eventHeader: string | null,
  batchHeader: string | null,
  numbers: NumberForms = PLAIN_NUMBERS,
): ReadEvent[] {
  if (!isDict(payload)) throw new BodyNotObject();
  if (countEvents(payload, batchHeader) > RULES.maxEventsPerDelivery) throw new TooManyEvents();
  let events: ReadEvent[];
  if (get(payload, "object") === "whatsapp_business_account") {
    events = metaChanges(payload).flatMap((value) => metaChange(value, numbers));
  } else if (isBatch(payload, batchHeader)) {
    const name = first(eventHeader, get(payload, "type"));
    events = list(get(payload, "data")).map((item) => readEvent(name, dict(item), numbers));
  } else {
    events = [readEvent(first(eventHeader, get(payload, "event"), get(payload, "type")), payload, numbers)];
  }
  // A delivery that yields nothing is still one ignored event: the answer's counts are never all 0.
  return events.length > 0 ? events : [{ kind: "ignored", reason: "no_message" }];
}

/**
 * One line per reason a delivery's events were ignored for, with their count, in
 * order of first occurrence (services/webhook_judge.py `log_ignored`): never content,
 * phone, BSUID, username or ids, and 10,000 ignored events cost one line, not 10,000.
 */
export function logIgnored(reasons: readonly string[]): void {
  const counts = new Map<string, number>();
  for (const reason of reasons) counts.set(reason, (counts.get(reason) ?? 0) + 1);
  for (const [reason, count] of counts) console.warn(`webhook events ignored reason=${reason} count=${count}`);
}
