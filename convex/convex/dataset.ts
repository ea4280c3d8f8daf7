// The Kontak data-set format (contract/demo_data.json): parsing, validation and
// planning of the batches in which the bulk import writes it. Pure code, no
// database access, shared by the HTTP action and the tests.
// Rows are the schema's own types, derived from its validators (schema.ts).
import rules from "../../contract/webhook_rules.json";
import type { Contact, Conversation, Message, Note, Workspace } from "./schema";

export type ContactEntry = {
  contact: Contact;
  /** Oldest first: the order in which they are inserted. */
  notes: Note[];
  conversation: Conversation | null;
  /** Oldest first: the order in which they are inserted. */
  messages: Message[];
};

/**
 * A row of the data set the import left out, with why (the answer's `refused`): the
 * rest of the data set is stored. `contact` is the index of the row's contact entry in
 * the request's `contacts`; `index` the note's index in its `notes`, or the message's in
 * its `conversation.messages` (null for a contact or a conversation); `rows` how many
 * rows are left out with it (a contact's notes, conversation and messages; a
 * conversation's messages). `error` names where and what, never a value.
 */
export type Refusal = {
  contact: number;
  row: "contact" | "note" | "conversation" | "message";
  index: number | null;
  reason: RefusalReason;
  error: string;
  rows: number;
};

/**
 * too_large: a document over Convex's size limit (1 MiB; 900,000 bytes here, with margin)
 * or an array over its 8,192 items; invalid: a value the schema cannot hold (a tag that
 * is null or no string, a phone that is not E.164, …); duplicate: a contact or message id
 * met earlier in the same request.
 */
export type RefusalReason = "too_large" | "invalid" | "duplicate";

export type DataSet = { workspaces: Workspace[]; contacts: ContactEntry[]; refused: Refusal[] };

export type DataSetCounts = {
  workspaces: number;
  contacts: number;
  notes: number;
  conversations: number;
  messages: number;
};

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

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const E164 = /^\+[1-9][0-9]{1,14}$/;
/** docs/webhook.md §7.1, from contract/webhook_rules.json. */
const BSUID = new RegExp(rules.bsuid_pattern);
const PARENT_BSUID = new RegExp(rules.parent_bsuid_pattern);
const ISO =
  /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})$/;
/** Convex documents are limited to 1 MiB; stay below with some margin. */
export const MAX_DOCUMENT_BYTES = 900_000;
/** Convex arrays hold at most 8,192 values. */
export const MAX_ARRAY_ITEMS = 8192;

export function isUuid(s: string): boolean {
  return UUID.test(s);
}

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

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function object(value: unknown, where: string): Record<string, unknown> {
  if (!isObject(value)) throw new DataSetError(`${where}: must be an object`);
  return value;
}

function array(value: unknown, where: string, absent: "allowed" | "required"): unknown[] {
  if (value === undefined && absent === "allowed") return [];
  if (!Array.isArray(value)) throw new DataSetError(`${where}: must be an array`);
  return value;
}

function string(value: unknown, where: string, fallback?: string): string {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== "string") throw new DataSetError(`${where}: must be a string`);
  return value;
}

function nullableString(value: unknown, where: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== "string") throw new DataSetError(`${where}: must be a string or null`);
  return value;
}

function integer(value: unknown, where: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new DataSetError(`${where}: must be an integer from ${min} to ${max}`);
  }
  return value;
}

function timestamp(value: unknown, where: string, fallback?: number): number {
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
    throw new DataSetError(`${where}: too large for one document (${bytes} bytes, at most ${MAX_DOCUMENT_BYTES})`, "too_large");
  }
}

/** A UUID string, lower-cased (PostgreSQL's uuid compares without case). */
function uuid(value: unknown, where: string): string {
  const id = string(value, where).toLowerCase();
  if (!isUuid(id)) throw new DataSetError(`${where}: must be a UUID`);
  return id;
}

/** The objects of the optional array `value`, each with where it is (`name[i]`). */
function objects(value: unknown, name: string): [Record<string, unknown>, string][] {
  return array(value, name, "allowed").map((item, i) => {
    const at = `${name}[${i}]`;
    return [object(item, at), at];
  });
}

/** Adds `key` to `seen`; a key seen before is the error `problem`. */
function claimOnce(seen: Set<string>, key: string, problem: string): void {
  if (seen.has(key)) throw new DataSetError(problem, "duplicate");
  seen.add(key);
}

/** A workspace row of the data set. */
function parseWorkspace(w: Record<string, unknown>, at: string, now: number): Workspace {
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
function parseContact(c: Record<string, unknown>, at: string, now: number): Contact {
  const workspace_id = uuid(c.workspace_id, `${at}.workspace_id`);
  const phone = nullableString(c.phone, `${at}.phone`);
  if (phone !== null && !E164.test(phone)) throw new DataSetError(`${at}.phone: must be an E.164 number`);
  const bsuid = identifier(c.bsuid, `${at}.bsuid`, BSUID, "a BSUID");
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
    parent_bsuid: identifier(c.parent_bsuid, `${at}.parent_bsuid`, PARENT_BSUID, "a parent BSUID"),
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

function parseNote(n: unknown, nat: string, now: number): Note {
  const note = object(n, nat);
  const row = {
    content: string(note.content, `${nat}.content`),
    created_at: timestamp(note.created_at, `${nat}.created_at`, now),
  };
  checkSize(row, nat);
  return row;
}

function parseMessage(m: unknown, mat: string): Message {
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
function parseConversation(conv: Record<string, unknown>, cat: string, contactCreatedAt: number, messages: Message[]) {
  const newest = messages.reduce<number | null>((acc, m) => (acc === null || m.created_at > acc ? m.created_at : acc), null);
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

type Seen = { contacts: Set<string>; messages: Set<string> };
/** Records one refused row of the contact entry being read. */
type Refuse = (refusal: Omit<Refusal, "contact">) => void;

/** `parse()`, or null once `refuse` has been told why its row is refused. */
function attempt<T>(parse: () => T, refuse: (error: DataSetError) => void): T | null {
  try {
    return parse();
  } catch (error) {
    if (!(error instanceof DataSetError)) throw error;
    refuse(error);
    return null;
  }
}

/** Refuses a second contact with the same (workspace, phone) or (workspace, BSUID). */
function claimContact(contact: Contact, at: string, seen: Seen): void {
  const { workspace_id, phone, bsuid } = contact;
  const keys = [phone !== null ? `${workspace_id} phone ${phone}` : null, bsuid ? `${workspace_id} bsuid ${bsuid}` : null];
  const names = ["phone", "bsuid"];
  keys.forEach((key, i) => {
    if (key !== null && seen.contacts.has(key)) {
      throw new DataSetError(`${at}: duplicate contact (workspace_id, ${names[i]})`, "duplicate");
    }
  });
  for (const key of keys) if (key !== null) seen.contacts.add(key);
}

/** Rows a contact entry holds: the contact, its notes, its conversation and messages. */
function entryRows(c: unknown): number {
  if (!isObject(c)) return 1;
  const notes = Array.isArray(c.notes) ? c.notes.length : 0;
  const conv = c.conversation;
  const messages = isObject(conv) && Array.isArray(conv.messages) ? conv.messages.length : 0;
  return 1 + notes + (isObject(conv) ? 1 + messages : 0);
}

/** The contact of an entry, its lists checked; claimed in `seen` only when it is stored. */
function parseEntryContact(c: unknown, at: string, now: number, seen: Seen): Contact {
  const entry = object(c, at);
  const contact = parseContact(entry, at, now);
  array(entry.notes, `${at}.notes`, "allowed");
  if (entry.conversation !== undefined && entry.conversation !== null) {
    const conv = object(entry.conversation, `${at}.conversation`);
    array(conv.messages, `${at}.conversation.messages`, "allowed");
  }
  claimContact(contact, at, seen);
  return contact;
}

/**
 * A conversation and the messages that can be stored (oldest first), each other message
 * refused; null when the conversation itself is refused (and its messages with it).
 */
function parseConversationEntry(conv: Record<string, unknown>, cat: string, contact: Contact, seen: Seen, refuse: Refuse) {
  const messages: Message[] = [];
  const claimed = new Set<string>();
  array(conv.messages, `${cat}.messages`, "allowed").forEach((m, j) => {
    const mat = `${cat}.messages[${j}]`;
    const row = attempt(
      () => {
        const message = parseMessage(m, mat);
        if (message.kapso_message_id === null) return message;
        const key = `${contact.workspace_id} ${message.kapso_message_id}`;
        if (seen.messages.has(key) || claimed.has(key)) {
          throw new DataSetError(`${mat}.kapso_message_id: duplicate in the workspace`, "duplicate");
        }
        claimed.add(key);
        return message;
      },
      (e) => refuse({ row: "message", index: j, reason: e.reason, error: e.message, rows: 1 }),
    );
    if (row !== null) messages.push(row);
  });
  const conversation = attempt(
    () => parseConversation(conv, cat, contact.created_at, messages),
    (e) => refuse({ row: "conversation", index: null, reason: e.reason, error: e.message, rows: 1 + messages.length }),
  );
  if (conversation === null) return null;
  for (const key of claimed) seen.messages.add(key);
  return { conversation, messages };
}

/**
 * One contact entry: the contact, its notes, its conversation and messages, without the
 * rows Convex cannot take (each given to `refuse`); null when the contact itself is refused.
 */
function parseContactEntry(c: unknown, at: string, now: number, seen: Seen, refuse: Refuse): ContactEntry | null {
  const contact = attempt(
    () => parseEntryContact(c, at, now, seen),
    (e) => refuse({ row: "contact", index: null, reason: e.reason, error: e.message, rows: entryRows(c) }),
  );
  if (contact === null) return null;
  const entry = c as Record<string, unknown>;
  const notes: Note[] = [];
  array(entry.notes, `${at}.notes`, "allowed").forEach((n, j) => {
    const nat = `${at}.notes[${j}]`;
    const note = attempt(
      () => parseNote(n, nat, now),
      (e) => refuse({ row: "note", index: j, reason: e.reason, error: e.message, rows: 1 }),
    );
    if (note !== null) notes.push(note);
  });
  if (entry.conversation === undefined || entry.conversation === null) return { contact, notes, conversation: null, messages: [] };
  const cat = `${at}.conversation`;
  const held = parseConversationEntry(entry.conversation as Record<string, unknown>, cat, contact, seen, refuse);
  return held === null ? { contact, notes, conversation: null, messages: [] } : { contact, notes, ...held };
}

/**
 * Validates a decoded JSON body and converts its timestamps to milliseconds. The body
 * and its workspaces must be right (else DataSetError: 400); a contact, note,
 * conversation or message that cannot be stored is left out and listed in `refused`.
 */
export function parseDataSet(raw: unknown, now: number = Date.now()): DataSet {
  const body = object(raw, "body");
  const workspaces: Workspace[] = [];
  const workspaceIds = new Set<string>();
  const kapsoPhoneIds = new Set<string>();
  for (const [w, at] of objects(body.workspaces, "workspaces")) {
    const row = parseWorkspace(w, at, now);
    claimOnce(workspaceIds, row.id, `${at}.id: duplicate workspace`);
    if (row.kapso_phone_id !== null) {
      claimOnce(kapsoPhoneIds, row.kapso_phone_id, `${at}.kapso_phone_id: used by two workspaces`);
    }
    workspaces.push(row);
  }
  const contacts: ContactEntry[] = [];
  const refused: Refusal[] = [];
  const seen: Seen = { contacts: new Set<string>(), messages: new Set<string>() };
  array(body.contacts, "contacts", "allowed").forEach((c, i) => {
    const entry = parseContactEntry(c, `contacts[${i}]`, now, seen, (r) => refused.push({ contact: i, ...r }));
    if (entry !== null) contacts.push(entry);
  });
  return { workspaces, contacts, refused };
}

export function countDataSet(data: DataSet): DataSetCounts {
  let notes = 0;
  let conversations = 0;
  let messages = 0;
  for (const entry of data.contacts) {
    notes += entry.notes.length;
    if (entry.conversation !== null) conversations += 1;
    messages += entry.messages.length;
  }
  return {
    workspaces: data.workspaces.length,
    contacts: data.contacts.length,
    notes,
    conversations,
    messages,
  };
}

// ---------------------------------------------------------------------------
// Batching. One batch is written by one mutation. A contact whose documents do
// not fit in what is left of a batch continues in the next one ("notes" and
// "messages" operations referring to it by key), so even a contact with more
// documents than one mutation may write is imported, in insertion order.

/** Contact document, its conversation, and the first of its notes and messages. */
export type ContactOp = {
  kind: "contact";
  key: number;
  contact: Contact;
  conversation: Conversation | null;
  notes: Note[];
  messages: Message[];
};
export type NotesOp = { kind: "notes"; key: number; notes: Note[] };
export type MessagesOp = { kind: "messages"; key: number; messages: Message[] };
export type ImportOp = ContactOp | NotesOp | MessagesOp;

export type BatchLimits = { maxDocuments: number; maxBytes: number; maxContacts: number };

/**
 * Default per-mutation budget, well inside Convex's per-mutation limits:
 * 16,000 documents and 16 MiB written (a batch may also delete up to 4,000
 * replaced documents), 4,096 index queries (about 9 per contact when it
 * replaces a stored one), and 8,192 elements per array argument.
 */
export const DEFAULT_BATCH_LIMITS: BatchLimits = {
  maxDocuments: 4000,
  maxBytes: 4 * 1024 * 1024,
  maxContacts: 250,
};

export function planBatches(
  contacts: readonly ContactEntry[],
  limits: BatchLimits = DEFAULT_BATCH_LIMITS,
): ImportOp[][] {
  const batches: ImportOp[][] = [];
  let ops: ImportOp[] = [];
  let documents = 0;
  let bytes = 0;
  let heads = 0;

  const fits = (docs: number, size: number, head: number) =>
    documents + docs <= limits.maxDocuments &&
    bytes + size <= limits.maxBytes &&
    heads + head <= limits.maxContacts;
  const flush = () => {
    if (ops.length > 0) batches.push(ops);
    ops = [];
    documents = 0;
    bytes = 0;
    heads = 0;
  };
  const take = (docs: number, size: number, head = 0) => {
    if (!fits(docs, size, head)) flush();
    documents += docs;
    bytes += size;
    heads += head;
  };

  contacts.forEach((entry, key) => {
    const headDocs = entry.conversation === null ? 1 : 2;
    take(headDocs, documentBytes(entry.contact) + documentBytes(entry.conversation), 1);
    const head: ContactOp = {
      kind: "contact",
      key,
      contact: entry.contact,
      conversation: entry.conversation,
      notes: [],
      messages: [],
    };
    ops.push(head);

    // A note or message joins the previous op of its contact unless that op holds the other
    // kind (or a flush closed it); otherwise it starts an op of its own.
    const appendable = <K extends "notes" | "messages">(other: K) => {
      const last = ops[ops.length - 1];
      const open = last !== undefined && last.key === key && last.kind !== other;
      return open ? (last as Exclude<ImportOp, { kind: K }>) : null;
    };
    for (const note of entry.notes) {
      take(1, documentBytes(note));
      const last = appendable("messages");
      if (last !== null) last.notes.push(note);
      else ops.push({ kind: "notes", key, notes: [note] });
    }
    for (const message of entry.messages) {
      take(1, documentBytes(message));
      const last = appendable("notes");
      if (last !== null) last.messages.push(message);
      else ops.push({ kind: "messages", key, messages: [message] });
    }
  });
  flush();
  return batches;
}
