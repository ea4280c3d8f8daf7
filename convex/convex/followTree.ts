// A contact's tree as the follower writes it (docs/contract.md §14): the stored conversation,
// notes and messages become the record's, keeping the longest stored prefix that already
// holds the record's rows in the order the lookup reads them. Plain code over a MutationCtx,
// used by followContacts.ts; the reads are counted against a budget first, so that a tree
// too large for one transaction is refused before anything is written.
import type { Doc, Id } from "./_generated/dataModel";
import type { DatabaseReader, MutationCtx } from "./_generated/server";
import type { ContactEntry } from "./dataset";
import { documentBytes } from "./datasetRows";
import { conversationsOfContact, messagesOfConversation, notesOfContact } from "./model";
import { messageFields, noteFields, type Conversation } from "./schema";

/**
 * What reading the stored trees one contact replaces may cost, well inside Convex's 32,000
 * documents and 16 MiB read per transaction; the same documents may be deleted, inside the
 * 16,000 documents and 16 MiB written (with the record's own RECORD_BUDGET, followBody.ts).
 */
export const STORED_BUDGET = { documents: 4000, bytes: 6 * 1024 * 1024 } as const;

/** The stored trees are larger than STORED_BUDGET: the record is refused (`too_large`). */
export class TreeTooLarge extends Error {
  constructor() {
    super("stored tree over the budget of one transaction");
    this.name = "TreeTooLarge";
  }
}

/** The documents and bytes read so far, against STORED_BUDGET. */
export class ReadBudget {
  private documents = 0;
  private bytes = 0;

  /** Every document of `query`, counted one by one: the read stops as soon as the budget is spent. */
  async collect<T>(query: AsyncIterable<T>): Promise<T[]> {
    const found: T[] = [];
    for await (const doc of query) {
      this.count(doc);
      found.push(doc);
    }
    return found;
  }

  count(doc: unknown): void {
    this.documents += 1;
    this.bytes += documentBytes(doc);
    if (this.documents > STORED_BUDGET.documents || this.bytes > STORED_BUDGET.bytes) throw new TreeTooLarge();
  }
}

type StoredConversation = { conversation: Doc<"conversations">; messages: Doc<"messages">[] };

/** A stored contact with its conversations (one, unless the data are wrong) and notes, in lookup order. */
export type StoredTree = {
  contact: Doc<"contacts">;
  conversations: StoredConversation[];
  notes: Doc<"contactNotes">[];
};

/** The stored tree of `contact`, read within `budget` (TreeTooLarge past it). */
export async function readTree(db: DatabaseReader, contact: Doc<"contacts">, budget: ReadBudget): Promise<StoredTree> {
  budget.count(contact);
  const conversations: StoredConversation[] = [];
  for (const conversation of await budget.collect(conversationsOfContact(db, contact._id))) {
    conversations.push({ conversation, messages: await budget.collect(messagesOfConversation(db, conversation._id)) });
  }
  return { contact, conversations, notes: await budget.collect(notesOfContact(db, contact._id)) };
}

/** Deletes a tree read by readTree: its messages, conversations, notes, then the contact. */
export async function deleteTree(ctx: MutationCtx, tree: StoredTree): Promise<void> {
  for (const stored of tree.conversations) await deleteConversation(ctx, stored);
  for (const note of tree.notes) await ctx.db.delete("contactNotes", note._id);
  await ctx.db.delete("contacts", tree.contact._id);
}

async function deleteConversation(ctx: MutationCtx, stored: StoredConversation): Promise<void> {
  for (const message of stored.messages) await ctx.db.delete("messages", message._id);
  await ctx.db.delete("conversations", stored.conversation._id);
}

/** Do the stored row's fields equal the record's (a field absent from an older document reads as null)? */
function sameFields(stored: Record<string, unknown>, record: Record<string, unknown>, fields: readonly string[]): boolean {
  return fields.every((f) => (stored[f] ?? null) === (record[f] ?? null));
}

const NOTE_FIELDS = ["workspace_id", ...Object.keys(noteFields)];
const MESSAGE_FIELDS = ["workspace_id", ...Object.keys(messageFields)];
const CONVERSATION_FIELDS = ["workspace_id", "contact_id", "status", "unread_count", "last_message_at", "last_message_preview", "created_at", "status_at"];

/**
 * The plan that makes a stored list (in lookup order: created_at, then insertion) the record's
 * (oldest first, ties in PostgreSQL id order): the longest stored prefix whose rows sit at the
 * record's times is kept (a row whose other fields differ, a status say, is patched in place:
 * its position is its time and its insertion, which stay); the rest is deleted, and the
 * record's rest inserted in order, after every kept row. The list then reads as the record,
 * ties in record order, as PostgreSQL's created_at DESC, id DESC reads them.
 */
export function planList<S extends { created_at: number }, R extends { created_at: number }>(stored: S[], record: R[]) {
  let kept = 0;
  while (kept < stored.length && kept < record.length && stored[kept].created_at === record[kept].created_at) kept++;
  return {
    kept: stored.slice(0, kept).map((s, i) => [s, record[i]] as const),
    removed: stored.slice(kept),
    inserted: record.slice(kept),
  };
}

type Table = "contactNotes" | "messages";

type Row = { _id: Id<"contactNotes"> | Id<"messages">; created_at: number };

/** Writes `planList`'s plan: the kept rows patched where they differ, the rest deleted, the record's rest inserted. */
async function writeList<R extends { created_at: number }>(
  ctx: MutationCtx,
  table: "contactNotes" | "messages",
  stored: Row[],
  record: R[],
  owner: Record<string, unknown>,
): Promise<void> {
  const fields = table === "messages" ? MESSAGE_FIELDS : NOTE_FIELDS;
  const plan = planList(stored, record);
  for (const [s, r] of plan.kept) {
    const row = { ...owner, ...r };
    if (!sameFields(s, row, fields)) await ctx.db.patch(s._id, row as never);
  }
  for (const s of plan.removed) await ctx.db.delete(s._id);
  for (const r of plan.inserted) await ctx.db.insert(table, { ...owner, ...r } as never);
}

/** The stored conversation becomes the record's (kept and patched, inserted, or deleted), with its messages. */
async function writeConversation(
  ctx: MutationCtx,
  stored: StoredConversation[],
  owner: { workspace_id: string; contact_id: Id<"contacts"> },
  conversation: Conversation | null,
  messages: ContactEntry["messages"],
): Promise<void> {
  const [kept, ...extra] = conversation === null ? [] : stored;
  for (const gone of conversation === null ? stored : extra) await deleteConversation(ctx, gone);
  if (conversation === null) return;
  const row = { ...owner, ...conversation };
  let conversation_id: Id<"conversations">;
  if (kept === undefined) {
    conversation_id = await ctx.db.insert("conversations", row);
  } else {
    conversation_id = kept.conversation._id;
    if (!sameFields(kept.conversation, row, CONVERSATION_FIELDS)) await ctx.db.patch("conversations", conversation_id, row);
  }
  await writeList(ctx, "messages", kept?.messages ?? [], messages, { workspace_id: owner.workspace_id, conversation_id });
}

/**
 * Makes the children of contact `contact_id` (already written) the entry's: `stored` is the
 * contact's tree before (null: a new contact). Children of a contact that moved workspace
 * take its new workspace_id.
 */
export async function writeChildren(
  ctx: MutationCtx,
  stored: StoredTree | null,
  contact_id: Id<"contacts">,
  entry: ContactEntry,
): Promise<void> {
  const { workspace_id } = entry.contact;
  await writeConversation(ctx, stored?.conversations ?? [], { workspace_id, contact_id }, entry.conversation, entry.messages);
  await writeList(ctx, "contactNotes", stored?.notes ?? [], entry.notes, { workspace_id, contact_id });
}
