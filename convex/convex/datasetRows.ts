// The rows of a Kontak data set (contract/demo_data.json), each read and checked on its
// own: field readers, timestamps, document sizes, and the workspace, contact, note,
// message and conversation rows. Pure code, no database access; dataset.ts reads whole
// contact entries with these. Rows are the schema's own types (schema.ts).
import { FORMATS, isUuid, RULES } from "./contract";
import type { Contact, Conversation, Message, Note, Workspace } from "./schema";

/**
 * too_large: a document over Convex's size limit (1 MiB; 900,000 bytes here, with margin)
 * or an array over its 8,192 items; invalid: a value the schema cannot hold (a tag that
 * is null or no string, a phone that is not E.164, …); duplicate: a contact or message id
 * met earlier in the same request.
 */
export type RefusalReason = "too_large" | "invalid" | "duplicate";

/**
 * A problem with the submitted data set: answered with HTTP 400 when it is the body's or
 * a workspace's; a contact's, note's, conversation's or message's refuses that row only.
 */
export class DataSetError extends Error {
  constructor(
    message: string,
    readonly reason: RefusalReason = "invalid",
  ) {
    super(message);
    this.name = "DataSetError";
  }
}

const ISO = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})$/;
/** Convex documents are limited to 1 MiB; stay below with some margin. */
export const MAX_DOCUMENT_BYTES = 900_000;
/** Convex arrays hold at most 8,192 values. */
export const MAX_ARRAY_ITEMS = 8192;

/**
 * An ISO-8601 timestamp with an explicit offset (or an integer number of
 * milliseconds) as milliseconds since the epoch; sub-millisecond digits are
 * truncated.
 */
export function parseTimestamp(value: unknown, where: string): number {
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) {
      throw new DataSetError(`${where}: must be an integer number of milliseconds`);
    }
    return value;
  }
  if (typeof value !== "string") {
    throw new DataSetError(`${where}: must be an ISO-8601 timestamp`);
  }
  const m = ISO.exec(value);
  if (m === null) {
    throw new DataSetError(`${where}: must be an ISO-8601 timestamp with a time zone`);
  }
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  const ms = frac === undefined ? 0 : Number((frac + "00").slice(0, 3));
  const local = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), ms);
  const check = new Date(local);
  if (
    check.getUTCFullYear() !== Number(y) ||
    check.getUTCMonth() !== Number(mo) - 1 ||
    check.getUTCDate() !== Number(d) ||
    Number(h) > 23 ||
    Number(mi) > 59 ||
    Number(s) > 59
  ) {
    throw new DataSetError(`${where}: not a valid date and time`);
  }
  let offsetMinutes = 0;
  if (zone !== "Z") {
    const digits = zone.replace(":", "");
    const sign = digits[0] === "-" ? -1 : 1;
    offsetMinutes = sign * (Number(digits.slice(1, 3)) * 60 + Number(digits.slice(3, 5)));
  }
  return local - offsetMinutes * 60_000;
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function object(value: unknown, where: string): Record<string, unknown> {
  if (!isObject(value)) throw new DataSetError(`${where}: must be an object`);
  return value;
}

export function array(value: unknown, where: string, absent: "allowed" | "required"): unknown[] {
  if (value === undefined && absent === "allowed") return [];
  if (!Array.isArray(value)) throw new DataSetError(`${where}: must be an array`);
  return value;
}

export function string(value: unknown, where: string, fallback?: string): string {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== "string") throw new DataSetError(`${where}: must be a string`);
  return value;
}

export function nullableString(value: unknown, where: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== "string") throw new DataSetError(`${where}: must be a string or null`);
  return value;
}

export function integer(value: unknown, where: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new DataSetError(`${where}: must be an integer from ${min} to ${max}`);
  }
  return value;
}

export function timestamp(value: unknown, where: string, fallback?: number): number {
  if (value === undefined && fallback !== undefined) return fallback;
  if (value === undefined) throw new DataSetError(`${where}: is required`);
  return parseTimestamp(value, where);
}

function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** Estimated stored size of a document, including system fields and ids. */
export function documentBytes(row: unknown): number {
  return utf8Length(JSON.stringify(row)) + 100;
}

function checkSize(row: unknown, where: string): void {
  const bytes = documentBytes(row);
  if (bytes > MAX_DOCUMENT_BYTES) {
    throw new DataSetError(
      `${where}: too large for one document (${bytes} bytes, at most ${MAX_DOCUMENT_BYTES})`,
      "too_large",
    );
  }
}

/** A UUID string, lower-cased (PostgreSQL's uuid compares without case). */
export function uuid(value: unknown, where: string): string {
  const id = string(value, where).toLowerCase();
  if (!isUuid(id)) throw new DataSetError(`${where}: must be a UUID`);
  return id;
}

/** The objects of the optional array `value`, each with where it is (`name[i]`). */
export function objects(value: unknown, name: string): [Record<string, unknown>, string][] {
  return array(value, name, "allowed").map((item, i) => {
    const at = `${name}[${i}]`;
    return [object(item, at), at];
  });
}

/** Adds `key` to `seen`; a key seen before is the error `problem`. */
export function claimOnce(seen: Set<string>, key: string, problem: string): void {
  if (seen.has(key)) throw new DataSetError(problem, "duplicate");
  seen.add(key);
}

/** A workspace row of the data set. */
export function parseWorkspace(w: Record<string, unknown>, at: string, now: number): Workspace {
  const row: Workspace = {
    id: uuid(w.id, `${at}.id`),
    name: string(w.name, `${at}.name`),
    kapso_phone_id: nullableString(w.kapso_phone_id, `${at}.kapso_phone_id`),
    created_at: timestamp(w.created_at, `${at}.created_at`, now),
  };
  checkSize(row, at);
  return row;
}

/** An optional string that must match `pattern` when present (docs/webhook.md §7.1). */
function identifier(value: unknown, where: string, pattern: RegExp, what: string): string | null {
  const s = nullableString(value, where);
  if (s !== null && !pattern.test(s)) throw new DataSetError(`${where}: must be ${what}`);
  return s;
}

/** A contact row of the data set: a phone (E.164) or a BSUID, or both (docs/contract.md §4a). */
export function parseContact(c: Record<string, unknown>, at: string, now: number): Contact {
  const workspace_id = uuid(c.workspace_id, `${at}.workspace_id`);
  const phone = nullableString(c.phone, `${at}.phone`);
  if (phone !== null && !FORMATS.e164.test(phone)) throw new DataSetError(`${at}.phone: must be an E.164 number`);
  const bsuid = identifier(c.bsuid, `${at}.bsuid`, RULES.bsuidPattern, "a BSUID");
  if (phone === null && bsuid === null) throw new DataSetError(`${at}: needs a phone or a bsuid`);
  const tags = array(c.tags, `${at}.tags`, "allowed").map((t, j) => string(t, `${at}.tags[${j}]`));
  if (tags.length > MAX_ARRAY_ITEMS) {
    throw new DataSetError(`${at}.tags: more than ${MAX_ARRAY_ITEMS} items`, "too_large");
  }
  const created_at = timestamp(c.created_at, `${at}.created_at`, now);
  const contact: Contact = {
    workspace_id,
    phone,
    bsuid,
    parent_bsuid: identifier(c.parent_bsuid, `${at}.parent_bsuid`, RULES.parentBsuidPattern, "a parent BSUID"),
    username: nullableString(c.username, `${at}.username`),
    name: nullableString(c.name, `${at}.name`),
    kapso_name: nullableString(c.kapso_name, `${at}.kapso_name`),
    email: nullableString(c.email, `${at}.email`),
    lead_status: string(c.lead_status, `${at}.lead_status`, "new"),
    lead_score: integer(c.lead_score, `${at}.lead_score`, 0, 0, 100),
    tags,
    created_at,
    updated_at: timestamp(c.updated_at, `${at}.updated_at`, created_at),
  };
  checkSize(contact, at);
  return contact;
}

export function parseNote(n: unknown, nat: string, now: number): Note {
  const note = object(n, nat);
  const row = {
    content: string(note.content, `${nat}.content`),
    created_at: timestamp(note.created_at, `${nat}.created_at`, now),
  };
  checkSize(row, nat);
  return row;
}

export function parseMessage(m: unknown, mat: string): Message {
  const msg = object(m, mat);
  const direction = string(msg.direction, `${mat}.direction`);
  if (direction !== "inbound" && direction !== "outbound") {
    throw new DataSetError(`${mat}.direction: must be "inbound" or "outbound"`);
  }
  const row: Message = {
    direction,
    content: nullableString(msg.content, `${mat}.content`),
    message_type: string(msg.message_type, `${mat}.message_type`, "text"),
    kapso_message_id: nullableString(msg.kapso_message_id, `${mat}.kapso_message_id`),
    status: nullableString(msg.status, `${mat}.status`),
    created_at: timestamp(msg.created_at, `${mat}.created_at`),
    error_code: nullableString(msg.error_code, `${mat}.error_code`),
    error_title: nullableString(msg.error_title, `${mat}.error_title`),
  };
  checkSize(row, mat);
  return row;
}

/** A timestamp field that may be absent (`absent`), null, or a time. */
function optionalTimestamp(value: unknown, where: string, absent: number | null): number | null {
  if (value === undefined) return absent;
  return value === null ? null : timestamp(value, where);
}

/** A contact's conversation row; last_message_at defaults to the newest of its stored messages. */
export function parseConversation(
  conv: Record<string, unknown>,
  cat: string,
  contactCreatedAt: number,
  messages: Message[],
) {
  const newest = messages.reduce<number | null>(
    (acc, m) => (acc === null || m.created_at > acc ? m.created_at : acc),
    null,
  );
  const conversation: Conversation = {
    status: string(conv.status, `${cat}.status`, "open"),
    unread_count: integer(conv.unread_count, `${cat}.unread_count`, 0, 0, Number.MAX_SAFE_INTEGER),
    last_message_at: optionalTimestamp(conv.last_message_at, `${cat}.last_message_at`, newest),
    last_message_preview: nullableString(conv.last_message_preview, `${cat}.last_message_preview`),
    created_at: timestamp(conv.created_at, `${cat}.created_at`, contactCreatedAt),
    status_at: optionalTimestamp(conv.status_at, `${cat}.status_at`, null),
  };
  checkSize(conversation, cat);
  return conversation;
}
