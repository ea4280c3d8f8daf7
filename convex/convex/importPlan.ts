// Batching of the import (handlers/importRoutes.ts). One batch is written by one
// mutation. A contact whose documents do not fit in what is left of a batch continues in
// the next one ("notes" and "messages" operations referring to it by key), so even a
// contact with more documents than one mutation may write is imported, in insertion order.
import type { ContactEntry } from "./dataset";
import { documentBytes } from "./datasetRows";
import type { Contact, Conversation, Message, Note } from "./schema";

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

/** The batches being planned, and what the open one holds. */
class Planner {
  readonly batches: ImportOp[][] = [];
  private ops: ImportOp[] = [];
  private documents = 0;
  private bytes = 0;
  private heads = 0;

  constructor(private readonly limits: BatchLimits) {}

  /** Closes the open batch (an empty one is dropped). */
  flush(): void {
    if (this.ops.length > 0) this.batches.push(this.ops);
    this.ops = [];
    this.documents = 0;
    this.bytes = 0;
    this.heads = 0;
  }

  /** Counts `docs` documents of `size` bytes and `head` contacts in the open batch, first closing it when they do not fit. */
  private take(docs: number, size: number, head = 0): void {
    const { maxDocuments, maxBytes, maxContacts } = this.limits;
    const fits =
      this.documents + docs <= maxDocuments && this.bytes + size <= maxBytes && this.heads + head <= maxContacts;
    if (!fits) this.flush();
    this.documents += docs;
    this.bytes += size;
    this.heads += head;
  }

  /**
   * The op a note or message of contact `key` joins: the open batch's last op when it is
   * that contact's and holds no row of the `other` kind; else null (it starts an op of its own).
   */
  private joinable<K extends "notes" | "messages">(key: number, other: K): Exclude<ImportOp, { kind: K }> | null {
    const last = this.ops[this.ops.length - 1];
    const open = last !== undefined && last.key === key && last.kind !== other;
    return open ? (last as Exclude<ImportOp, { kind: K }>) : null;
  }

  /** One contact entry: its head (contact and conversation), then its notes, then its messages. */
  add(entry: ContactEntry, key: number): void {
    this.take(entry.conversation === null ? 1 : 2, documentBytes(entry.contact) + documentBytes(entry.conversation), 1);
    const { contact, conversation } = entry;
    this.ops.push({ kind: "contact", key, contact, conversation, notes: [], messages: [] });
    for (const note of entry.notes) {
      this.take(1, documentBytes(note));
      const last = this.joinable(key, "messages");
      if (last !== null) last.notes.push(note);
      else this.ops.push({ kind: "notes", key, notes: [note] });
    }
    for (const message of entry.messages) {
      this.take(1, documentBytes(message));
      const last = this.joinable(key, "notes");
      if (last !== null) last.messages.push(message);
      else this.ops.push({ kind: "messages", key, messages: [message] });
    }
  }
}

/** The contacts' documents in batches within `limits`, in insertion order. */
export function planBatches(
  contacts: readonly ContactEntry[],
  limits: BatchLimits = DEFAULT_BATCH_LIMITS,
): ImportOp[][] {
  const planner = new Planner(limits);
  contacts.forEach((entry, key) => planner.add(entry, key));
  planner.flush();
  return planner.batches;
}
