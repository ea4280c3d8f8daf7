// The Kontak data-set format (contract/demo_data.json): a whole data set read into
// contact entries, each row the import cannot store left out and listed with why.
// Pure code, no database access, shared by the HTTP action and the tests; the rows
// themselves are read by datasetRows.ts, the import's batches planned by importPlan.ts.
import {
  array,
  claimOnce,
  DataSetError,
  isObject,
  object,
  objects,
  parseContact,
  parseConversation,
  parseMessage,
  parseNote,
  parseWorkspace,
  type RefusalReason,
} from "./datasetRows";
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

export type DataSet = { workspaces: Workspace[]; contacts: ContactEntry[]; refused: Refusal[] };

export type DataSetCounts = {
  workspaces: number;
  contacts: number;
  notes: number;
  conversations: number;
  messages: number;
};

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
  const keys = [
    phone !== null ? `${workspace_id} phone ${phone}` : null,
    bsuid ? `${workspace_id} bsuid ${bsuid}` : null,
  ];
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
function parseConversationEntry(
  conv: Record<string, unknown>,
  cat: string,
  contact: Contact,
  seen: Seen,
  refuse: Refuse,
) {
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
  if (entry.conversation === undefined || entry.conversation === null)
    return { contact, notes, conversation: null, messages: [] };
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
