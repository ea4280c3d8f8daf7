// The follower's contacts (docs/contract.md §14): one contact per transaction, written with its
// tree (followTree.ts) or deleted with it. Internal: reached through handlers/follow.ts only.
import { v } from "convex/values";
import type { Doc } from "./_generated/dataModel";
import { internalMutation, type MutationCtx } from "./_generated/server";
import type { DatabaseReader } from "./_generated/server";
import type { ContactEntry } from "./dataset";
import { deleteContactTree } from "./importData";
import { checkEpoch, bury, isNewer, stamps, unbury } from "./followState";
import { deleteTree, readTree, ReadBudget, TreeTooLarge, writeChildren, type StoredTree } from "./followTree";
import { contactsBySourceId } from "./model";
import { contactFields, conversationFields, messageFields, noteFields, nullable } from "./schema";

/** Rows one index read may return where one is expected: more means data this code never wrote. */
const FEW = 20;

const entryArg = v.object({
  contact: v.object(contactFields),
  notes: v.array(v.object(noteFields)),
  conversation: nullable(v.object(conversationFields)),
  messages: v.array(v.object(messageFields)),
});

/** Stored contacts of the entry's workspace holding its phone or BSUID under another source_id. */
async function holders(db: DatabaseReader, entry: ContactEntry, source_id: string): Promise<Doc<"contacts">[]> {
  const { workspace_id, phone, bsuid } = entry.contact;
  const found = new Map<string, Doc<"contacts">>();
  if (phone !== null) {
    const byPhone = db.query("contacts").withIndex("by_workspace_phone", (q) => q.eq("workspace_id", workspace_id).eq("phone", phone));
    for (const doc of await byPhone.take(FEW)) found.set(doc._id, doc);
  }
  if (bsuid) {
    const byBsuid = db.query("contacts").withIndex("by_workspace_bsuid", (q) => q.eq("workspace_id", workspace_id).eq("bsuid", bsuid));
    for (const doc of await byBsuid.take(FEW)) found.set(doc._id, doc);
  }
  return [...found.values()].filter((doc) => doc.source_id !== source_id);
}

type Read = { own: StoredTree | null; replaced: StoredTree[] };

/** The stored trees a contact's record replaces: its own (the first by source_id) and every other to delete. */
async function readReplaced(db: DatabaseReader, mine: Doc<"contacts">[], others: Doc<"contacts">[]): Promise<Read> {
  const budget = new ReadBudget();
  const [first, ...duplicates] = mine;
  const own = first === undefined ? null : await readTree(db, first, budget);
  const replaced: StoredTree[] = [];
  for (const doc of [...duplicates, ...others]) replaced.push(await readTree(db, doc, budget));
  return { own, replaced };
}

/** Writes the contact document, stamped; its _id is kept when it is stored. */
async function writeContact(ctx: MutationCtx, own: StoredTree | null, row: Record<string, unknown>) {
  const doc = row as Doc<"contacts">;
  if (own === null) return await ctx.db.insert("contacts", doc);
  await ctx.db.replace("contacts", own.contact._id, doc);
  return own.contact._id;
}

/**
 * One contact record, in one transaction: stale when a stored row of it, its tombstone or a
 * contact it would replace is as new; refused (`too_large`, nothing written) when the trees it
 * replaces do not fit one transaction; else the stored contacts of its workspace holding its
 * phone or BSUID under another source_id are deleted with their trees (PostgreSQL's uniqueness
 * says they are stale) and its own tree becomes the record's.
 */
export const applyContact = internalMutation({
  args: { epoch: v.string(), version: v.number(), source_id: v.string(), entry: entryArg },
  handler: async (ctx, { epoch, version, source_id, entry }): Promise<"applied" | "stale" | "too_large"> => {
    await checkEpoch(ctx.db, epoch);
    const mine = await contactsBySourceId(ctx.db, source_id).take(FEW);
    if (!(await isNewer(ctx.db, version, "contact", source_id, mine))) return "stale";
    const others = await holders(ctx.db, entry, source_id);
    if (others.some((doc) => doc.sync_version !== undefined && doc.sync_version > version)) return "stale";
    let read: Read;
    try {
      read = await readReplaced(ctx.db, mine, others);
    } catch (error) {
      if (error instanceof TreeTooLarge) return "too_large";
      throw error;
    }
    for (const tree of read.replaced) await deleteTree(ctx, tree);
    const contact_id = await writeContact(ctx, read.own, { ...entry.contact, source_id, ...stamps(epoch, version) });
    await writeChildren(ctx, read.own, contact_id, entry);
    await unbury(ctx, "contact", source_id);
    return "applied";
  },
});

/**
 * Deletes a contact with its notes, conversation and messages, at most `limit` documents per
 * call: `partial` asks the caller to call again (children go first, the contact last, as the
 * import's purge does; only a contact larger than one transaction takes more than one call).
 */
export const deleteContact = internalMutation({
  args: { epoch: v.string(), version: v.number(), source_id: v.string(), limit: v.number() },
  handler: async (ctx, { epoch, version, source_id, limit }): Promise<"applied" | "stale" | "partial"> => {
    await checkEpoch(ctx.db, epoch);
    const mine = await contactsBySourceId(ctx.db, source_id).take(FEW);
    if (!(await isNewer(ctx.db, version, "contact", source_id, mine))) return "stale";
    let deleted = 0;
    for (const doc of mine) {
      const result = await deleteContactTree(ctx, doc._id, limit - deleted);
      deleted += result.deleted;
      if (!result.done) return "partial";
    }
    await bury(ctx, "contact", source_id, version);
    return "applied";
  },
});
