// The follower's state and the version rule (docs/contract.md §14): which copy of PostgreSQL
// the deployment holds (its epoch), and whether a change is newer than what is stored and
// than a deletion's tombstone. Internal: reached through handlers/follow.ts only.
import { ConvexError, v } from "convex/values";
import { internalMutation, internalQuery, type MutationCtx } from "./_generated/server";
import type { DatabaseReader } from "./_generated/server";
import type { FollowState } from "./followBody";
import { followStateDoc, tombstoneOf } from "./model";
import { nullable } from "./schema";

/** The code of the ConvexError a follower's mutation throws when the stored epoch is not its own. */
export const EPOCH_MISMATCH = "epoch_mismatch";

/** Which kind of row a tombstone names. */
export type FollowKind = "contact" | "workspace" | "key";

/** What one change did: written, or older than what is stored (nothing changed). */
export type Outcome = "applied" | "stale";

async function readState(db: DatabaseReader): Promise<FollowState> {
  const doc = await followStateDoc(db);
  return doc === null ? { epoch: null, backfilled: false } : { epoch: doc.epoch, backfilled: doc.backfilled };
}

export const getState = internalQuery({
  args: {},
  handler: async (ctx): Promise<FollowState> => readState(ctx.db),
});

/** Sets the state (one document; any other is removed) and answers it. */
export const setState = internalMutation({
  args: { epoch: nullable(v.string()), backfilled: v.boolean() },
  handler: async (ctx, state): Promise<FollowState> => {
    const docs = await ctx.db.query("followState").take(10);
    const [kept, ...extra] = docs;
    for (const doc of extra) await ctx.db.delete("followState", doc._id);
    if (kept === undefined) await ctx.db.insert("followState", state);
    else await ctx.db.replace("followState", kept._id, state);
    return state;
  },
});

/**
 * Throws EPOCH_MISMATCH (with the stored epoch) unless the deployment holds copy `epoch`. Each
 * of the follower's mutations checks it in its own transaction: a copy started while a request
 * was being applied stops that request at its next write.
 */
export async function checkEpoch(db: DatabaseReader, epoch: string): Promise<void> {
  const stored = (await readState(db)).epoch;
  if (stored !== epoch) throw new ConvexError({ code: EPOCH_MISMATCH, epoch: stored });
}

/**
 * Is a change of `version` newer than every stored row it would overwrite (a row with no
 * version, written by the import or the webhook, is older than any) and than the row's
 * tombstone, if any?
 */
export async function isNewer(
  db: DatabaseReader,
  version: number,
  kind: FollowKind,
  source_id: string,
  stored: readonly { sync_version?: number }[],
): Promise<boolean> {
  if (stored.some((doc) => doc.sync_version !== undefined && doc.sync_version >= version)) return false;
  const tombstone = await tombstoneOf(db, kind, source_id);
  return tombstone === null || tombstone.version < version;
}

/** Records the deletion of a row at `version` (a newer change of it is then the only one to bring it back). */
export async function bury(ctx: MutationCtx, kind: FollowKind, source_id: string, version: number): Promise<void> {
  const existing = await tombstoneOf(ctx.db, kind, source_id);
  const row = { kind, source_id, version, deleted_at: Date.now() };
  if (existing === null) await ctx.db.insert("followTombstones", row);
  else await ctx.db.replace("followTombstones", existing._id, row);
}

/** Removes a row's tombstone once a newer change wrote it again (its stamp now says more). */
export async function unbury(ctx: MutationCtx, kind: FollowKind, source_id: string): Promise<void> {
  const existing = await tombstoneOf(ctx.db, kind, source_id);
  if (existing !== null) await ctx.db.delete("followTombstones", existing._id);
}

/** The stamps of a row the follower writes. */
export function stamps(epoch: string, version: number) {
  return { sync_epoch: epoch, sync_version: version };
}
