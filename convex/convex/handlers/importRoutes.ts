// POST /http/import, POST /http/import/clear and GET /http/import/counts (opt-in:
// KONTAK_ALLOW_IMPORT=true; CRM_API_KEY only). The import writes a data set
// (dataset.ts) in planned batches through importData.ts's mutations.
import { ConvexError } from "convex/values";
import { internal } from "../_generated/api";
import type { ActionCtx } from "../_generated/server";
import { isUuid, PATHS } from "../contract";
import { COUNTED_TABLES, type CountedTable } from "../counts";
import { countDataSet, parseDataSet, type DataSet, type DataSetCounts, type Refusal } from "../dataset";
import { DataSetError } from "../datasetRows";
import { planBatches, type ImportOp } from "../importPlan";
import { REPLACE_TOO_LARGE, type ContactKey, type ContactRef } from "../importData";
import { pyStrip } from "../pyCompat";
import { json, readJson } from "../transport";
import { kontakRoute } from "./route";

/** Documents deleted per mutation by the purge and clear steps (and index queries stay < 4,096). */
const DELETE_BATCH = 4000;
/** Mutations one clear request runs before answering (the client repeats until done). */
const CLEAR_BATCHES_PER_REQUEST = 10;
/** Workspaces upserted (or looked up) per function call. */
const WORKSPACE_BATCH = 1000;

class ImportRejected extends Error {}

/**
 * The import's answer: the rows stored per table and, when any row was left out, `refused`
 * (dataset.ts `Refusal`, in request order). Only present when not empty, so that every
 * other value of the answer is a count.
 */
type ImportAnswer = DataSetCounts & { refused?: Refusal[] };

/** Refuses (400) contacts of a workspace neither in the body nor stored; upserts the body's workspaces. */
async function writeWorkspaces(ctx: ActionCtx, data: DataSet): Promise<void> {
  const bodyWorkspaces = new Set(data.workspaces.map((w) => w.id));
  const external = [...new Set(data.contacts.map((c) => c.contact.workspace_id))].filter(
    (id) => !bodyWorkspaces.has(id),
  );
  for (let i = 0; i < external.length; i += WORKSPACE_BATCH) {
    const missing = await ctx.runQuery(internal.importData.missingWorkspaces, {
      ids: external.slice(i, i + WORKSPACE_BATCH),
    });
    if (missing.length > 0) throw new ImportRejected(`Unknown workspace_id: ${missing[0]}`);
  }
  for (let i = 0; i < data.workspaces.length; i += WORKSPACE_BATCH) {
    await ctx.runMutation(internal.importData.upsertWorkspaces, {
      workspaces: data.workspaces.slice(i, i + WORKSPACE_BATCH),
    });
  }
}

/** Writes one planned batch (one mutation); `refs` holds the contacts earlier batches created. */
async function writeBatch(ctx: ActionCtx, ops: ImportOp[], refs: Map<number, ContactRef>): Promise<void> {
  const headKeys = new Set<number>();
  const replaced: ContactKey[] = [];
  for (const op of ops) {
    if (op.kind !== "contact") continue;
    headKeys.add(op.key);
    const { workspace_id, phone, bsuid } = op.contact;
    replaced.push({ workspace_id, phone, bsuid: bsuid ?? null });
  }
  const needed = [...new Set(ops.filter((op) => !headKeys.has(op.key)).map((op) => op.key))];
  const batchRefs = needed.map((key) => {
    const ref = refs.get(key);
    if (ref === undefined) throw new Error(`import plan refers to contact ${key} before it exists`);
    return ref;
  });
  const insert = () => ctx.runMutation(internal.importData.insertBatch, { ops, refs: batchRefs });
  let result;
  try {
    // Replaces stored contacts in the same transaction when they are small.
    result = await insert();
  } catch (error) {
    if (!(error instanceof ConvexError) || (error.data as { code?: string })?.code !== REPLACE_TOO_LARGE) {
      throw error;
    }
    // Too much to replace at once: delete the stored contacts in bounded steps first.
    for (;;) {
      const purge = await ctx.runMutation(internal.importData.purgeContacts, { contacts: replaced, limit: DELETE_BATCH });
      if (purge.done) break;
    }
    result = await insert();
  }
  for (const ref of result.created) refs.set(ref.key, ref);
}

/**
 * Writes a validated data set; contacts already stored are replaced. A refused contact
 * replaces nothing: what the deployment held under its phone or BSUID stays as it was.
 */
async function importDataSet(ctx: ActionCtx, data: DataSet): Promise<ImportAnswer> {
  await writeWorkspaces(ctx, data);
  const refs = new Map<number, ContactRef>();
  for (const ops of planBatches(data.contacts)) await writeBatch(ctx, ops, refs);
  const counts = countDataSet(data);
  return data.refused.length === 0 ? counts : { ...counts, refused: data.refused };
}

/** A data set the import refuses (400), or null for any other error. */
function importRefusal(error: unknown): Response | null {
  if (error instanceof DataSetError || error instanceof ImportRejected) {
    return json(400, { error: error.message });
  }
  if (error instanceof ConvexError) {
    const data = error.data as { code?: string; message?: string } | string;
    const message = typeof data === "string" ? data : (data.message ?? "Conflict");
    return json(400, { error: message });
  }
  return null;
}

const importing = kontakRoute({ path: PATHS.import, access: "import", known: importRefusal });

export const importRoute = importing(async (ctx, request) => {
  const read = await readJson(request);
  if (read instanceof Response) return read;
  return json(200, await importDataSet(ctx, parseDataSet(read.body)));
});

export const clearRoute = kontakRoute({ path: PATHS.import_clear, access: "import" })(async (ctx) => {
  let deleted = 0;
  let done = false;
  for (let i = 0; i < CLEAR_BATCHES_PER_REQUEST && !done; i++) {
    const result = await ctx.runMutation(internal.importData.clearBatch, { limit: DELETE_BATCH });
    deleted += result.deleted;
    done = result.done;
  }
  return json(200, { deleted, done });
});

/** One table's documents of one workspace, counted page by page (counts.ts). */
async function countTable(ctx: ActionCtx, table: CountedTable, workspace_id: string): Promise<number> {
  let count = 0;
  let cursor: string | null = null;
  for (;;) {
    const page: { count: number; isDone: boolean; continueCursor: string } = await ctx.runQuery(
      internal.counts.countPage,
      { table, workspace_id, cursor },
    );
    count += page.count;
    if (page.isDone) return count;
    cursor = page.continueCursor;
  }
}

/**
 * GET /http/import/counts?workspace_id=…, sync-convex's verification:
 * {"contacts": n, "notes": n, "conversations": n, "messages": n} for one workspace
 * (zeros for one not stored), counted so that no single query reads more than Convex
 * allows, whatever the workspace's size.
 */
export const countsRoute = kontakRoute({ path: PATHS.import_counts, access: "import" })(async (ctx, request) => {
  const rawWorkspace = pyStrip(new URL(request.url).searchParams.get("workspace_id") ?? "");
  if (rawWorkspace === "") return json(400, { error: "Missing workspace_id parameter" });
  if (!isUuid(rawWorkspace)) return json(400, { error: "Invalid workspace_id" });
  const workspace_id = rawWorkspace.toLowerCase();
  const counts = {} as Record<CountedTable, number>;
  for (const table of COUNTED_TABLES) counts[table] = await countTable(ctx, table, workspace_id);
  return json(200, counts);
});
