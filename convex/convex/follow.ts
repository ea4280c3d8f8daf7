// The follower's workspaces and keys, its tombstones' trimming and the sweep of what another
// copy wrote (docs/contract.md §14). Contacts are in followContacts.ts, the state and the
// version rule in followState.ts. Internal: reached through handlers/follow.ts only.
import { v } from "convex/values";
import type { Doc, Id } from "./_generated/dataModel";
import { internalMutation, type MutationCtx } from "./_generated/server";
import type { DatabaseReader } from "./_generated/server";
import { deleteContactTree } from "./importData";
import { bury, checkEpoch, isNewer, stamps, unbury, type FollowKind } from "./followState";
import { keysByHash, keysByUuid, workspacesByKapsoPhoneId } from "./model";
import { apiKeyFields, workspaceFields } from "./schema";

/** Rows one index read may return where one is expected: more means data this code never wrote. */
const FEW = 20;
/** How long a deletion is remembered (docs/contract.md §14: ten minutes). */
export const TOMBSTONE_MS = 10 * 60 * 1000;

type Counts = { applied: number; stale: number };

function count(counts: Counts, outcome: "applied" | "stale"): void {
  counts[outcome] += 1;
}

/**
 * Deletes the stored rows of a deleted workspace or key and remembers the deletion, unless
 * a stored row or tombstone is as new.
 */
async function deleteRows(
  ctx: MutationCtx,
  kind: FollowKind,
  rows: { _id: Id<"workspaces"> | Id<"apiKeys">; sync_version?: number }[],
  id: string,
  version: number,
): Promise<"applied" | "stale"> {
  if (!(await isNewer(ctx.db, version, kind, id, rows))) return "stale";
  for (const row of rows) await ctx.db.delete(row._id);
  await bury(ctx, kind, id, version);
  return "applied";
}

function workspacesByUuid(db: DatabaseReader, id: string) {
  return db.query("workspaces").withIndex("by_uuid", (q) => q.eq("id", id)).take(FEW);
}

/** One workspace, by its id. Another workspace holding its kapso_phone_id loses it (PostgreSQL's uniqueness). */
async function upsertWorkspace(ctx: MutationCtx, epoch: string, version: number, w: Doc<"workspaces">) {
  const mine = await workspacesByUuid(ctx.db, w.id);
  if (!(await isNewer(ctx.db, version, "workspace", w.id, mine))) return "stale";
  const holders = w.kapso_phone_id === null ? [] : await workspacesByKapsoPhoneId(ctx.db, w.kapso_phone_id).take(FEW);
  const others = holders.filter((h) => h.id !== w.id);
  if (others.some((h) => h.sync_version !== undefined && h.sync_version > version)) return "stale";
  for (const other of others) await ctx.db.patch("workspaces", other._id, { kapso_phone_id: null });
  const [first, ...duplicates] = mine;
  for (const duplicate of duplicates) await ctx.db.delete("workspaces", duplicate._id);
  const row = { ...w, ...stamps(epoch, version) };
  if (first === undefined) await ctx.db.insert("workspaces", row);
  else await ctx.db.replace("workspaces", first._id, row);
  await unbury(ctx, "workspace", w.id);
  return "applied";
}

/** Workspaces written and deleted (a deleted workspace goes alone: its contacts and keys come as deletes of their own). */
export const applyWorkspaces = internalMutation({
  args: { epoch: v.string(), version: v.number(), workspaces: v.array(v.object(workspaceFields)), deleted: v.array(v.string()) },
  handler: async (ctx, { epoch, version, workspaces, deleted }): Promise<Counts> => {
    await checkEpoch(ctx.db, epoch);
    const counts = { applied: 0, stale: 0 };
    for (const w of workspaces) count(counts, await upsertWorkspace(ctx, epoch, version, w as Doc<"workspaces">));
    for (const id of deleted) {
      count(counts, await deleteRows(ctx, "workspace", await workspacesByUuid(ctx.db, id), id, version));
    }
    return counts;
  },
});

/** One key, by its id. Another key row with its hash is stale (PostgreSQL's uniqueness) and goes. */
async function upsertKey(ctx: MutationCtx, epoch: string, version: number, key: Doc<"apiKeys">) {
  const mine = await keysByUuid(ctx.db, key.id).take(FEW);
  if (!(await isNewer(ctx.db, version, "key", key.id, mine))) return "stale";
  const others = (await keysByHash(ctx.db, key.key_hash).take(FEW)).filter((k) => k.id !== key.id);
  if (others.some((k) => k.sync_version !== undefined && k.sync_version > version)) return "stale";
  const [first, ...duplicates] = mine;
  for (const gone of [...others, ...duplicates]) await ctx.db.delete("apiKeys", gone._id);
  const row = { ...key, ...stamps(epoch, version) };
  if (first === undefined) await ctx.db.insert("apiKeys", row);
  else await ctx.db.replace("apiKeys", first._id, row);
  await unbury(ctx, "key", key.id);
  return "applied";
}

/** Keys written and deleted: a deleted or revoked key stops authenticating with this transaction. */
export const applyKeys = internalMutation({
  args: { epoch: v.string(), version: v.number(), keys: v.array(v.object(apiKeyFields)), deleted: v.array(v.string()) },
  handler: async (ctx, { epoch, version, keys, deleted }): Promise<Counts> => {
    await checkEpoch(ctx.db, epoch);
    const counts = { applied: 0, stale: 0 };
    for (const key of keys) count(counts, await upsertKey(ctx, epoch, version, key as Doc<"apiKeys">));
    for (const id of deleted) {
      count(counts, await deleteRows(ctx, "key", await keysByUuid(ctx.db, id).take(FEW), id, version));
    }
    return counts;
  },
});

/** Deletes up to `limit` tombstones older than TOMBSTONE_MS; answers how many. */
export const trimTombstones = internalMutation({
  args: { limit: v.number() },
  handler: async (ctx, { limit }): Promise<number> => {
    const cutoff = Date.now() - TOMBSTONE_MS;
    const old = await ctx.db
      .query("followTombstones")
      .withIndex("by_deleted_at", (q) => q.lt("deleted_at", cutoff))
      .take(limit);
    for (const tombstone of old) await ctx.db.delete("followTombstones", tombstone._id);
    return old.length;
  },
});

type Swept = "contacts" | "workspaces" | "apiKeys";

/**
 * Rows of `table` not written under `epoch`: those before it in the by_sync_epoch index (rows
 * with no epoch sort first) and those after it.
 */
function notOf<T extends Swept>(db: DatabaseReader, table: T, epoch: string, side: "before" | "after") {
  // `as never`: TypeScript cannot name a field's type over a generic table; sync_epoch is a string in each.
  const value = epoch as never;
  return db
    .query(table)
    .withIndex("by_sync_epoch", (q) => (side === "before" ? q.lt("sync_epoch", value) : q.gt("sync_epoch", value)));
}

const SWEPT: readonly Swept[] = ["contacts", "workspaces", "apiKeys"];
const SIDES = ["before", "after"] as const;
/** Contacts one sweep call deletes at most: each costs a few index ranges (4,096 per transaction). */
const SWEPT_CONTACTS = 300;

/** Is any row of another copy left? */
async function anyLeft(db: DatabaseReader, epoch: string): Promise<boolean> {
  for (const table of SWEPT) {
    for (const side of SIDES) if ((await notOf(db, table, epoch, side).first()) !== null) return true;
  }
  return false;
}

/** Deletes up to `limit` documents of rows another copy wrote (contacts with their trees); repeat until `done`. */
export const sweepBatch = internalMutation({
  args: { epoch: v.string(), limit: v.number() },
  handler: async (ctx, { epoch, limit }): Promise<{ deleted: number; done: boolean }> => {
    await checkEpoch(ctx.db, epoch);
    let deleted = 0;
    let contacts = 0;
    for (const side of SIDES) {
      for (const contact of await notOf(ctx.db, "contacts", epoch, side).take(SWEPT_CONTACTS - contacts)) {
        if (deleted >= limit) return { deleted, done: false };
        contacts += 1;
        const result = await deleteContactTree(ctx, contact._id, limit - deleted);
        deleted += result.deleted;
        if (!result.done) return { deleted, done: false };
      }
    }
    for (const table of ["workspaces", "apiKeys"] as const) {
      for (const side of SIDES) {
        const rows = await notOf(ctx.db, table, epoch, side).take(Math.max(0, limit - deleted));
        for (const row of rows) await ctx.db.delete(table, row._id);
        deleted += rows.length;
      }
    }
    return { deleted, done: !(await anyLeft(ctx.db, epoch)) };
  },
});
