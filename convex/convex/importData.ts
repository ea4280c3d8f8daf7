// Internal mutations and queries behind the bulk import and clear HTTP actions
// (handlers/importRoutes.ts). None of them is public.
import { ConvexError, v, type Infer } from "convex/values";
import type { Id } from "./_generated/dataModel";
import { internalMutation, internalQuery, type MutationCtx } from "./_generated/server";
import type { DatabaseReader } from "./_generated/server";
import {
  contactByBsuid,
  contactByPhone,
  conversationOfContact,
  messagesOfConversation,
  notesOfContact,
  workspaceByUuid,
  workspacesByKapsoPhoneId,
} from "./model";
import {
  contactFields,
  conversationFields,
  messageFields,
  noteFields,
  nullable,
  workspaceFields,
  type Message,
  type Note,
} from "./schema";

const workspaceRow = v.object(workspaceFields);
const contactRow = v.object(contactFields);
const noteRow = v.object(noteFields);
const conversationRow = v.object(conversationFields);
const messageRow = v.object(messageFields);

const importOp = v.union(
  v.object({
    kind: v.literal("contact"),
    key: v.number(),
    contact: contactRow,
    conversation: nullable(conversationRow),
    notes: v.array(noteRow),
    messages: v.array(messageRow),
  }),
  v.object({ kind: v.literal("notes"), key: v.number(), notes: v.array(noteRow) }),
  v.object({ kind: v.literal("messages"), key: v.number(), messages: v.array(messageRow) }),
);

/** The identifiers of a contact the import writes (docs/contract.md §4a). */
const contactKey = v.object({ workspace_id: v.string(), phone: nullable(v.string()), bsuid: v.optional(nullable(v.string())) });

export type ContactKey = Infer<typeof contactKey>;

/**
 * The stored contacts an imported contact replaces: the one with its BSUID and the one
 * with its phone. Both, not only the BSUID's: a contact stored by phone that the source
 * has since linked to a BSUID would otherwise stay beside the new one, its phone twice.
 */
async function replacedBy(db: DatabaseReader, key: ContactKey): Promise<Id<"contacts">[]> {
  const byBsuid = key.bsuid ? await contactByBsuid(db, key.workspace_id, key.bsuid) : null;
  const byPhone = key.phone !== null ? await contactByPhone(db, key.workspace_id, key.phone) : null;
  const ids = [byBsuid?._id, byPhone?._id].filter((id): id is Id<"contacts"> => id !== undefined);
  return [...new Set(ids)];
}

/** A contact written by an earlier batch: later batches add its notes and messages. */
const contactRef = v.object({
  key: v.number(),
  contact_id: v.id("contacts"),
  conversation_id: nullable(v.id("conversations")),
});

export type ContactRef = Infer<typeof contactRef>;

/** Workspace ids (UUID strings) among `ids` that are not stored. */
export const missingWorkspaces = internalQuery({
  args: { ids: v.array(v.string()) },
  handler: async (ctx, { ids }) => {
    const missing: string[] = [];
    for (const id of ids) {
      const found = await workspaceByUuid(ctx.db, id);
      if (found === null) missing.push(id);
    }
    return missing;
  },
});

/** Inserts or updates workspaces by their UUID `id`. */
export const upsertWorkspaces = internalMutation({
  args: { workspaces: v.array(workspaceRow) },
  handler: async (ctx, { workspaces }) => {
    for (const w of workspaces) {
      if (w.kapso_phone_id !== null) {
        const holders = await workspacesByKapsoPhoneId(ctx.db, w.kapso_phone_id).take(2);
        if (holders.some((h) => h.id !== w.id)) {
          throw new ConvexError({
            code: "conflict",
            message: `kapso_phone_id of workspace ${w.id} belongs to another workspace`,
          });
        }
      }
      const existing = await workspaceByUuid(ctx.db, w.id);
      if (existing === null) {
        await ctx.db.insert("workspaces", w);
      } else {
        await ctx.db.patch("workspaces", existing._id, w);
      }
    }
    return null;
  },
});

/**
 * Deletes up to `budget` documents of a contact's tree (messages, conversation,
 * notes, then the contact itself). Returns how many it deleted and whether the
 * whole tree is gone.
 */
export async function deleteContactTree(
  ctx: MutationCtx,
  contactId: Id<"contacts">,
  budget: number,
): Promise<{ deleted: number; done: boolean }> {
  let deleted = 0;
  for (;;) {
    const conversation = await conversationOfContact(ctx.db, contactId);
    if (conversation === null) break;
    const messages = await messagesOfConversation(ctx.db, conversation._id).take(budget - deleted);
    for (const m of messages) await ctx.db.delete("messages", m._id);
    deleted += messages.length;
    if (deleted >= budget) return { deleted, done: false };
    await ctx.db.delete("conversations", conversation._id);
    deleted += 1;
  }
  const notes = await notesOfContact(ctx.db, contactId).take(budget - deleted);
  for (const n of notes) await ctx.db.delete("contactNotes", n._id);
  deleted += notes.length;
  if (deleted >= budget) return { deleted, done: false };
  await ctx.db.delete("contacts", contactId);
  return { deleted: deleted + 1, done: true };
}

/**
 * Removes stored contacts that a batch is about to replace when they are too
 * big to be replaced inside insertBatch: at most `limit` documents per call;
 * the caller repeats until `done`.
 */
export const purgeContacts = internalMutation({
  args: {
    contacts: v.array(contactKey),
    limit: v.number(),
  },
  handler: async (ctx, { contacts, limit }) => {
    let deleted = 0;
    let contactsDeleted = 0;
    for (const key of contacts) {
      for (;;) {
        const [existing] = await replacedBy(ctx.db, key);
        if (existing === undefined) break;
        if (deleted >= limit || contactsDeleted >= REPLACED_CONTACTS_LIMIT) return { deleted, done: false };
        contactsDeleted += 1;
        const result = await deleteContactTree(ctx, existing, limit - deleted);
        deleted += result.deleted;
        if (!result.done) return { deleted, done: false };
      }
    }
    return { deleted, done: true };
  },
});

/**
 * Most documents of stored contacts that one insertBatch replaces itself, in
 * the same transaction as the new ones (so a reader sees the old contact or
 * the new one, never neither). Bigger replacements are refused with
 * REPLACE_TOO_LARGE and the caller purges them first with purgeContacts.
 */
export const INLINE_REPLACE_LIMIT = 4000;
export const REPLACE_TOO_LARGE = "replace_too_large";
/**
 * Most stored contacts one insertBatch (or purgeContacts call) deletes: an imported
 * contact may replace two (its BSUID's and its phone's), and each costs index ranges
 * (about 7), which Convex caps at 4,096 per transaction.
 */
export const REPLACED_CONTACTS_LIMIT = 300;

/** Documents in a contact's tree, counting at most up to `cap`. */
async function treeSize(ctx: MutationCtx, contactId: Id<"contacts">, cap: number): Promise<number> {
  let size = 1;
  const conversation = await conversationOfContact(ctx.db, contactId);
  if (conversation !== null) {
    size += 1;
    const messages = await messagesOfConversation(ctx.db, conversation._id).take(Math.max(0, cap - size + 1));
    size += messages.length;
  }
  if (size > cap) return size;
  const notes = await notesOfContact(ctx.db, contactId).take(Math.max(0, cap - size + 1));
  return size + notes.length;
}

/**
 * Deletes the stored contacts a batch's contacts replace, when they are small enough
 * to go in the batch's own transaction; else throws REPLACE_TOO_LARGE.
 */
async function replaceStored(ctx: MutationCtx, contacts: ContactKey[]): Promise<void> {
  const replaced: Id<"contacts">[] = [];
  let replacedDocs = 0;
  for (const contact of contacts) {
    for (const existing of await replacedBy(ctx.db, contact)) {
      if (replaced.includes(existing)) continue;
      replaced.push(existing);
      replacedDocs += await treeSize(ctx, existing, INLINE_REPLACE_LIMIT - replacedDocs + 1);
      if (replacedDocs > INLINE_REPLACE_LIMIT || replaced.length > REPLACED_CONTACTS_LIMIT) {
        throw new ConvexError({ code: REPLACE_TOO_LARGE, message: "purge the replaced contacts first" });
      }
    }
  }
  for (const contactId of replaced) {
    const { done } = await deleteContactTree(ctx, contactId, INLINE_REPLACE_LIMIT + 1);
    if (!done) throw new Error("replaced contact larger than measured");
  }
}

/** Writes one planned batch (see planBatches in dataset.ts). */
export const insertBatch = internalMutation({
  args: { ops: v.array(importOp), refs: v.array(contactRef) },
  handler: async (ctx, { ops, refs }) => {
    // 1. The stored contacts this batch replaces, if they are small enough.
    await replaceStored(ctx, ops.flatMap((op) => (op.kind === "contact" ? [op.contact] : [])));

    // 2. The new documents, in the planned (insertion) order.
    const known = new Map<number, ContactRef>(refs.map((r) => [r.key, r]));
    const workspaceOf = new Map<number, string>();
    const created: ContactRef[] = [];
    const insertNotes = async (ref: ContactRef, workspace_id: string, notes: Note[]) => {
      for (const note of notes) {
        await ctx.db.insert("contactNotes", { workspace_id, contact_id: ref.contact_id, ...note });
      }
    };
    const insertMessages = async (ref: ContactRef, workspace_id: string, messages: Message[]) => {
      if (messages.length === 0) return;
      const conversation_id = ref.conversation_id;
      if (conversation_id === null) {
        throw new Error(`import batch has messages for contact ${ref.key} without a conversation`);
      }
      for (const message of messages) {
        await ctx.db.insert("messages", { workspace_id, conversation_id, ...message });
      }
    };

    for (const op of ops) {
      if (op.kind === "contact") {
        const { contact } = op;
        const contact_id = await ctx.db.insert("contacts", contact);
        const conversation_id =
          op.conversation === null
            ? null
            : await ctx.db.insert("conversations", {
                workspace_id: contact.workspace_id,
                contact_id,
                ...op.conversation,
              });
        const ref: ContactRef = { key: op.key, contact_id, conversation_id };
        known.set(op.key, ref);
        workspaceOf.set(op.key, contact.workspace_id);
        created.push(ref);
        await insertNotes(ref, contact.workspace_id, op.notes);
        await insertMessages(ref, contact.workspace_id, op.messages);
        continue;
      }
      const ref = known.get(op.key);
      if (ref === undefined) throw new Error(`import batch refers to unknown contact ${op.key}`);
      let workspace_id = workspaceOf.get(op.key);
      if (workspace_id === undefined) {
        const contact = await ctx.db.get("contacts", ref.contact_id);
        if (contact === null) throw new Error(`contact ${op.key} vanished during the import`);
        workspace_id = contact.workspace_id;
        workspaceOf.set(op.key, workspace_id);
      }
      if (op.kind === "notes") await insertNotes(ref, workspace_id, op.notes);
      else await insertMessages(ref, workspace_id, op.messages);
    }
    return { created };
  },
});

// apiKeys too: like PostgreSQL, where deleting a workspace deletes its keys. And the follower's
// state and tombstones (docs/contract.md §14): an empty deployment holds no copy.
const CLEAR_ORDER = [
  "messages",
  "contactNotes",
  "conversations",
  "contacts",
  "workspaces",
  "apiKeys",
  "followTombstones",
  "followState",
] as const;

/** Deletes up to `limit` documents of every Kontak table; repeat until `done`. */
export const clearBatch = internalMutation({
  args: { limit: v.number() },
  handler: async (ctx, { limit }) => {
    let deleted = 0;
    for (const table of CLEAR_ORDER) {
      if (deleted >= limit) break;
      const docs = await ctx.db.query(table).take(limit - deleted);
      for (const doc of docs) await ctx.db.delete(doc._id);
      deleted += docs.length;
    }
    let done = true;
    for (const table of CLEAR_ORDER) {
      if ((await ctx.db.query(table).first()) !== null) {
        done = false;
        break;
      }
    }
    return { deleted, done };
  },
});
