// GET/POST /http/follow/state, POST /http/follow/apply and POST /http/follow/sweep: Convex
// follows PostgreSQL (docs/contract.md §14). Opt-in like the import (CRM_API_KEY, then
// KONTAK_ALLOW_IMPORT=true). Every change is applied in transactions of its own size: the
// workspaces and keys in batches, each contact alone, so no request exceeds Convex's limits.
import { ConvexError } from "convex/values";
import { internal } from "../_generated/api";
import type { ActionCtx } from "../_generated/server";
import { PATHS } from "../contract";
import { DataSetError } from "../datasetRows";
import { parseApply, parseState, parseSweep, type ApplyBody, type FollowState } from "../followBody";
import { EPOCH_MISMATCH } from "../followState";
import { json, readJson } from "../transport";
import { kontakRoute } from "./route";

/** Workspaces or keys written (or deleted) per mutation. */
const ROW_BATCH = 500;
/** Documents a contact's deletion removes per mutation (a larger contact takes several). */
const DELETE_BATCH = 4000;
/** Tombstones trimmed per apply: the trimming keeps pace with the deletions, in bounded steps. */
const TRIM_PER_APPLY = 500;
/** Documents per sweep mutation, and mutations per sweep request (the follower repeats until done). */
const SWEEP_BATCH = 1000;
const SWEEPS_PER_REQUEST = 4;

type Refused = { source_id: string; reason: "too_large" | "invalid" };
type ApplyAnswer = { applied: number; stale: number; refused: Refused[] };
type Outcome = "applied" | "stale";

/** A body refused (400) or a copy that is not the deployment's (409 with the stored epoch); null for a failure. */
function followRefusal(error: unknown): Response | null {
  if (error instanceof DataSetError) return json(400, { error: error.message });
  if (error instanceof ConvexError) {
    const data = error.data as { code?: string; epoch?: string | null };
    if (data?.code === EPOCH_MISMATCH) return json(409, { error: "Epoch mismatch", epoch: data.epoch ?? null });
  }
  return null;
}

const route = (path: string) => kontakRoute({ path, access: "import", known: followRefusal });

/** The state in the documented key order (a Convex function's answer comes back with its keys sorted). */
const stateBody = (state: FollowState) => ({ epoch: state.epoch, backfilled: state.backfilled });

export const stateGetRoute = route(PATHS.follow_state)(async (ctx) => {
  return json(200, stateBody(await ctx.runQuery(internal.followState.getState, {})));
});

export const stateSetRoute = route(PATHS.follow_state)(async (ctx, request) => {
  const read = await readJson(request);
  if (read instanceof Response) return read;
  return json(200, stateBody(await ctx.runMutation(internal.followState.setState, parseState(read.body))));
});

/** Workspaces or keys in batches of ROW_BATCH: the rows written, then the ids deleted. */
async function applyRows<R>(
  rows: R[],
  deleted: string[],
  write: (rows: R[], deleted: string[]) => Promise<{ applied: number; stale: number }>,
  answer: ApplyAnswer,
): Promise<void> {
  const batches: [R[], string[]][] = [];
  for (let i = 0; i < rows.length; i += ROW_BATCH) batches.push([rows.slice(i, i + ROW_BATCH), []]);
  for (let i = 0; i < deleted.length; i += ROW_BATCH) batches.push([[], deleted.slice(i, i + ROW_BATCH)]);
  for (const [written, gone] of batches) {
    const counts = await write(written, gone);
    answer.applied += counts.applied;
    answer.stale += counts.stale;
  }
}

/** A contact's deletion, in as many bounded mutations as its tree needs. */
async function deleteContact(ctx: ActionCtx, body: ApplyBody, source_id: string): Promise<Outcome> {
  const { epoch, version } = body;
  for (;;) {
    const outcome = await ctx.runMutation(internal.followContacts.deleteContact, { epoch, version, source_id, limit: DELETE_BATCH });
    if (outcome !== "partial") return outcome;
  }
}

/** The contacts: deletions first, then the records in request order, each alone. */
async function applyContacts(ctx: ActionCtx, body: ApplyBody, answer: ApplyAnswer): Promise<void> {
  const { epoch, version } = body;
  for (const source_id of body.deleted_contacts) answer[await deleteContact(ctx, body, source_id)] += 1;
  for (const record of body.contacts) {
    const { source_id } = record;
    if ("refused" in record) {
      answer.refused.push({ source_id, reason: record.refused });
      continue;
    }
    const args = { epoch, version, source_id, entry: record.entry };
    const outcome = await ctx.runMutation(internal.followContacts.applyContact, args);
    if (outcome === "too_large") answer.refused.push({ source_id, reason: "too_large" });
    else answer[outcome] += 1;
  }
}

/** One follow cycle's changes: workspaces, then contacts, then keys (docs/contract.md §14). */
async function applyBody(ctx: ActionCtx, body: ApplyBody): Promise<ApplyAnswer> {
  const answer: ApplyAnswer = { applied: 0, stale: 0, refused: [] };
  const { epoch, version } = body;
  await applyRows(body.workspaces, body.deleted_workspaces, (workspaces, deleted) =>
    ctx.runMutation(internal.follow.applyWorkspaces, { epoch, version, workspaces, deleted }), answer);
  await applyContacts(ctx, body, answer);
  await applyRows(body.keys, body.deleted_keys, (keys, deleted) =>
    ctx.runMutation(internal.follow.applyKeys, { epoch, version, keys, deleted }), answer);
  await ctx.runMutation(internal.follow.trimTombstones, { limit: TRIM_PER_APPLY });
  return answer;
}

export const applyRoute = route(PATHS.follow_apply)(async (ctx, request) => {
  const read = await readJson(request);
  if (read instanceof Response) return read;
  const body = parseApply(read.body, Date.now());
  // Checked here for a body with nothing to write as well; every mutation checks it again.
  const { epoch } = await ctx.runQuery(internal.followState.getState, {});
  if (epoch !== body.epoch) return json(409, { error: "Epoch mismatch", epoch });
  return json(200, await applyBody(ctx, body));
});

export const sweepRoute = route(PATHS.follow_sweep)(async (ctx, request) => {
  const read = await readJson(request);
  if (read instanceof Response) return read;
  const { epoch } = parseSweep(read.body);
  let deleted = 0;
  let done = false;
  for (let i = 0; i < SWEEPS_PER_REQUEST && !done; i++) {
    const result = await ctx.runMutation(internal.follow.sweepBatch, { epoch, limit: SWEEP_BATCH });
    deleted += result.deleted;
    done = result.done;
  }
  return json(200, { deleted, done });
});
