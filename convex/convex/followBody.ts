// The bodies of the follower's routes (docs/contract.md §14), read and checked before anything
// is written. Pure code, no database access. A body that is wrong as a whole (not an object,
// a wrong type, an unknown key, a version that is no integer, …) is a DataSetError: 400. A
// contact record that is right as an envelope but whose data Convex cannot hold whole is
// `refused` with its source_id: the follower reports it and the other records are applied.
import { parseKeys } from "./apiKeys";
import type { ContactEntry } from "./dataset";
import {
  array,
  claimOnce,
  DataSetError,
  documentBytes,
  object,
  objects,
  parseContact,
  parseConversation,
  parseMessage,
  parseNote,
  parseWorkspace,
  uuid,
  type RefusalReason,
} from "./datasetRows";
import type { ApiKey, Workspace } from "./schema";

/** Longest epoch accepted: this deployment's own bound, not a shared rule. */
const EPOCH_MAX_LENGTH = 200;
/** Most key rows per apply, as POST /http/keys accepts. */
const KEYS_ACCEPTED = 1000;

/**
 * The most one contact record may hold: documents (the contact, its notes, its conversation and
 * messages) and their bytes. Written in one transaction with the stored tree it replaces
 * (followTree.ts), well inside Convex's 16,000 documents and 16 MiB written per transaction.
 */
export const RECORD_BUDGET = { documents: 4000, bytes: 4 * 1024 * 1024 } as const;

export type FollowState = { epoch: string | null; backfilled: boolean };

/** A contact record: its entry, or why it is refused whole. */
export type ContactRecord =
  | { source_id: string; entry: ContactEntry }
  | { source_id: string; refused: Exclude<RefusalReason, "duplicate"> };

export type ApplyBody = {
  epoch: string;
  version: number;
  workspaces: Workspace[];
  deleted_workspaces: string[];
  contacts: ContactRecord[];
  deleted_contacts: string[];
  keys: ApiKey[];
  deleted_keys: string[];
};

const APPLY_KEYS = ["epoch", "version", "workspaces", "deleted_workspaces", "contacts", "deleted_contacts", "keys", "deleted_keys"];

/** The object `raw` with no key but `allowed`, else a DataSetError. */
function strictObject(raw: unknown, where: string, allowed: readonly string[]): Record<string, unknown> {
  const body = object(raw, where);
  const unknown = Object.keys(body).find((k) => !allowed.includes(k));
  if (unknown !== undefined) throw new DataSetError(`${where}: unknown field ${JSON.stringify(unknown.slice(0, 40))}`);
  return body;
}

function epochOf(value: unknown, where: string): string {
  if (typeof value !== "string" || value.length === 0 || value.length > EPOCH_MAX_LENGTH) {
    throw new DataSetError(`${where}: must be a string of 1 to ${EPOCH_MAX_LENGTH} characters`);
  }
  return value;
}

/** A POST /http/follow/state body: `{"epoch": string|null, "backfilled": bool}`. */
export function parseState(raw: unknown): FollowState {
  const body = strictObject(raw, "body", ["epoch", "backfilled"]);
  if (typeof body.backfilled !== "boolean") throw new DataSetError("backfilled: must be true or false");
  return { epoch: body.epoch === null ? null : epochOf(body.epoch, "epoch"), backfilled: body.backfilled };
}

/** A POST /http/follow/sweep body: `{"epoch": string}`. */
export function parseSweep(raw: unknown): { epoch: string } {
  const body = strictObject(raw, "body", ["epoch"]);
  return { epoch: epochOf(body.epoch, "epoch") };
}

/** A change's version: a non-negative integer that a double holds exactly (PostgreSQL's bigint as JSON). */
function versionOf(value: unknown): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new DataSetError("version: must be an integer from 0 to 2^53-1");
  }
  return value;
}

/** A list of UUIDs (lower-cased), each once in `seen`. */
function uuids(value: unknown, name: string, seen: Set<string>): string[] {
  return array(value, name, "allowed").map((item, i) => {
    const id = uuid(item, `${name}[${i}]`);
    claimOnce(seen, id, `${name}[${i}]: named twice`);
    return id;
  });
}

/** Documents and bytes of an entry, against RECORD_BUDGET. */
function fitsBudget(entry: ContactEntry): boolean {
  const rows: unknown[] = [entry.contact, ...entry.notes, ...entry.messages];
  if (entry.conversation !== null) rows.push(entry.conversation);
  if (rows.length > RECORD_BUDGET.documents) return false;
  let bytes = 0;
  for (const row of rows) bytes += documentBytes(row);
  return bytes <= RECORD_BUDGET.bytes;
}

/** A contact record's data, whole (any row Convex cannot take is a DataSetError for the record). */
function parseEntry(c: Record<string, unknown>, at: string, now: number): ContactEntry {
  const contact = parseContact(c, at, now);
  const notes = array(c.notes, `${at}.notes`, "allowed").map((n, j) => parseNote(n, `${at}.notes[${j}]`, now));
  if (c.conversation === undefined || c.conversation === null) return { contact, notes, conversation: null, messages: [] };
  const cat = `${at}.conversation`;
  const conv = object(c.conversation, cat);
  const messages = array(conv.messages, `${cat}.messages`, "allowed").map((m, j) => parseMessage(m, `${cat}.messages[${j}]`));
  return { contact, notes, conversation: parseConversation(conv, cat, contact.created_at, messages), messages };
}

/** One contact record: the envelope (an object with a source_id) must be right, its data may be refused. */
function parseContactRecord(c: Record<string, unknown>, at: string, now: number, seen: Set<string>): ContactRecord {
  const source_id = uuid(c.source_id, `${at}.source_id`);
  claimOnce(seen, source_id, `${at}.source_id: named twice`);
  // Counted before reading the rows: a record far over the budget is not read at all.
  const notes = Array.isArray(c.notes) ? c.notes.length : 0;
  const conv = c.conversation as { messages?: unknown } | null | undefined;
  const messages = Array.isArray(conv?.messages) ? conv.messages.length : 0;
  if (1 + notes + messages > RECORD_BUDGET.documents) return { source_id, refused: "too_large" };
  try {
    const entry = parseEntry(c, at, now);
    return fitsBudget(entry) ? { source_id, entry } : { source_id, refused: "too_large" };
  } catch (error) {
    if (!(error instanceof DataSetError)) throw error;
    return { source_id, refused: error.reason === "too_large" ? "too_large" : "invalid" };
  }
}

/** Key rows as POST /http/keys reads them (apiKeys.ts), their ids UUIDs, each once in `seen`. */
function parseKeyRows(value: unknown, seen: Set<string>): ApiKey[] {
  const parsed = parseKeys({ keys: array(value, "keys", "allowed") }, KEYS_ACCEPTED);
  if (typeof parsed === "string") throw new DataSetError(`keys: ${parsed}`);
  return parsed.keys.map((key, i) => {
    const id = uuid(key.id, `keys[${i}].id`);
    claimOnce(seen, id, `keys[${i}].id: named twice`);
    return { ...key, id };
  });
}

/** A POST /http/follow/apply body (docs/contract.md §14); `now` fills the data set's defaults. */
export function parseApply(raw: unknown, now: number): ApplyBody {
  const body = strictObject(raw, "body", APPLY_KEYS);
  const epoch = epochOf(body.epoch, "epoch");
  const version = versionOf(body.version);
  const workspaceIds = new Set<string>();
  const workspaces = objects(body.workspaces, "workspaces").map(([w, at]) => {
    const row = parseWorkspace(w, at, now);
    claimOnce(workspaceIds, row.id, `${at}.id: named twice`);
    return row;
  });
  const deleted_workspaces = uuids(body.deleted_workspaces, "deleted_workspaces", workspaceIds);
  const contactIds = new Set<string>();
  const contacts = objects(body.contacts, "contacts").map(([c, at]) => parseContactRecord(c, at, now, contactIds));
  const deleted_contacts = uuids(body.deleted_contacts, "deleted_contacts", contactIds);
  const keyIds = new Set<string>();
  const keys = parseKeyRows(body.keys, keyIds);
  const deleted_keys = uuids(body.deleted_keys, "deleted_keys", keyIds);
  return { epoch, version, workspaces, deleted_workspaces, contacts, deleted_contacts, keys, deleted_keys };
}
