// HTTP actions: the only public entry points of the Kontak Convex functions.
import { httpRouter, type RoutableMethod } from "convex/server";
import { ConvexError } from "convex/values";
import { internal } from "./_generated/api";
import type { Id } from "./_generated/dataModel";
import { httpAction, type ActionCtx } from "./_generated/server";
import {
  countDataSet,
  DataSetError,
  parseDataSet,
  planBatches,
  type DataSet,
  type DataSetCounts,
} from "./dataset";
import { authenticate, parseKeys, workspaceOfKey } from "./apiKeys";
import { checkApiKey, constantTimeEqual, importAllowed, json } from "./httpUtil";
import { COUNTED_TABLES, type CountedTable } from "./counts";
import { REPLACE_TOO_LARGE } from "./importData";
import {
  BodyNotObject,
  codePointLength,
  logIgnored,
  parseDelivery,
  parseJsonBody,
  prepareEvent,
  pyStrip,
  RULES,
} from "./kapso";
import { defaultRegion, normalizePhone } from "./phones";
import { planIngest } from "./ingestPlan";
import type { Outcome } from "./webhook";

const LOOKUP_PATH = "/http/contacts/getByPhone";
const IMPORT_PATH = "/http/import";
const CLEAR_PATH = "/http/import/clear";
const COUNTS_PATH = "/http/import/counts";
const WEBHOOK_PATH = "/webhook/kapso";
const KEYS_PATH = "/http/keys";
/** Key rows per POST /http/keys (services/api_keys.py sends 500). */
const KEYS_BATCH = 1000;

/** Documents deleted per mutation by the purge and clear steps (and index queries stay < 4,096). */
const DELETE_BATCH = 4000;
/** Mutations one clear request runs before answering (the client repeats until done). */
const CLEAR_BATCHES_PER_REQUEST = 10;
/** Workspaces upserted (or looked up) per function call. */
const WORKSPACE_BATCH = 1000;

function logFailure(route: string, error: unknown): void {
  // Only the error's class: messages may quote arguments (phones, contents).
  const kind = error instanceof Error ? error.name : typeof error;
  console.error(`kontak http action failed route=${route} error=${kind}`);
}

// ---------------------------------------------------------------------------
// GET /http/contacts/getByPhone?phone=…&workspace_id=…

type LookupResult =
  | { found: false; context: null }
  | {
      found: true;
      contact: {
        name: string | null;
        lead_status: string;
        lead_score: number;
        tags: string[];
        is_returning: boolean;
        first_contact_date: string;
      };
      notes: string[];
      conversation_summary: string | null;
      last_interaction: string | null;
    };

/** The SPEC section 3 body with its keys in the documented order. */
function lookupBody(r: LookupResult): unknown {
  if (!r.found) return { found: false, context: null };
  return {
    found: true,
    contact: {
      name: r.contact.name,
      lead_status: r.contact.lead_status,
      lead_score: r.contact.lead_score,
      tags: r.contact.tags,
      is_returning: r.contact.is_returning,
      first_contact_date: r.contact.first_contact_date,
    },
    notes: r.notes,
    conversation_summary: r.conversation_summary,
    last_interaction: r.last_interaction,
  };
}

/** A canonical 8-4-4-4-12 UUID in any case (services/lookup.py `_UUID`). */
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

const getByPhone = httpAction(async (ctx, request) => {
  try {
    // CRM_API_KEY, or a key of one workspace (SPEC section 13); its workspace is compared
    // with workspace_id once the parameters are valid (the key comes first, as in Flask).
    const caller = await authenticate(ctx, request);
    if (caller.kind === "not_configured") {
      return json(500, { found: false, error: "Service not configured" });
    }
    if (caller.kind === "unauthorized") return json(401, { found: false, error: "Unauthorized" });

    // The same checks, in the same order, as the Flask routes (services/lookup.py).
    const params = new URL(request.url).searchParams;
    const rawPhone = params.get("phone") ?? "";
    const rawWorkspace = params.get("workspace_id") ?? "";
    if (pyStrip(rawPhone) === "" || pyStrip(rawWorkspace) === "") {
      return json(400, { found: false, error: "Missing parameters" });
    }
    const phone = normalizePhone(rawPhone, defaultRegion());
    if (phone === null) return json(400, { found: false, error: "Invalid phone number" });
    const workspaceUuid = pyStrip(rawWorkspace);
    if (!UUID.test(workspaceUuid)) return json(400, { found: false, error: "Invalid workspace_id" });
    // Workspace ids are UUIDs, compared case-insensitively like PostgreSQL's uuid.
    const workspaceId = workspaceUuid.toLowerCase();
    // Another workspace: the same 401 as a wrong key, no hint whether it exists.
    if (caller.workspace !== null && !constantTimeEqual(workspaceId, caller.workspace)) {
      return json(401, { found: false, error: "Unauthorized" });
    }

    const result: LookupResult = await ctx.runQuery(internal.contacts.lookupContext, {
      workspace_id: workspaceId,
      phone,
    });
    return json(200, lookupBody(result));
  } catch (error) {
    logFailure(LOOKUP_PATH, error);
    return json(500, { found: false, error: "Internal server error" });
  }
});

// ---------------------------------------------------------------------------
// POST /http/import and POST /http/import/clear (opt-in: KONTAK_ALLOW_IMPORT=true)

/** The authentication and opt-in checks shared by the import routes. */
function importGate(request: Request): Response | null {
  const key = checkApiKey(request);
  if (key === "not_configured") return json(500, { error: "Service not configured" });
  if (key === "unauthorized") return json(401, { error: "Unauthorized" });
  if (!importAllowed()) return json(403, { error: "Import disabled" });
  return null;
}

class ImportRejected extends Error {}

/** Writes a validated data set; contacts already stored are replaced. */
async function importDataSet(ctx: ActionCtx, data: DataSet): Promise<DataSetCounts> {
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

  type Ref = {
    key: number;
    contact_id: Id<"contacts">;
    conversation_id: Id<"conversations"> | null;
  };
  const refs = new Map<number, Ref>();
  for (const ops of planBatches(data.contacts)) {
    const headKeys = new Set<number>();
    const replaced: { workspace_id: string; phone: string }[] = [];
    for (const op of ops) {
      if (op.kind !== "contact") continue;
      headKeys.add(op.key);
      replaced.push({ workspace_id: op.contact.workspace_id, phone: op.contact.phone });
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
        const purge = await ctx.runMutation(internal.importData.purgeContacts, {
          contacts: replaced,
          limit: DELETE_BATCH,
        });
        if (purge.done) break;
      }
      result = await insert();
    }
    for (const ref of result.created) refs.set(ref.key, ref);
  }
  return countDataSet(data);
}

const importRoute = httpAction(async (ctx, request) => {
  try {
    const refused = importGate(request);
    if (refused !== null) return refused;

    let raw: unknown;
    try {
      raw = JSON.parse(await request.text());
    } catch {
      return json(400, { error: "Invalid JSON" });
    }
    const data = parseDataSet(raw);
    const counts = await importDataSet(ctx, data);
    return json(200, counts);
  } catch (error) {
    if (error instanceof DataSetError || error instanceof ImportRejected) {
      return json(400, { error: error.message });
    }
    if (error instanceof ConvexError) {
      const data = error.data as { code?: string; message?: string } | string;
      const message = typeof data === "string" ? data : (data.message ?? "Conflict");
      return json(400, { error: message });
    }
    logFailure(IMPORT_PATH, error);
    return json(500, { error: "Internal server error" });
  }
});

const clearRoute = httpAction(async (ctx, request) => {
  try {
    const refused = importGate(request);
    if (refused !== null) return refused;
    let deleted = 0;
    let done = false;
    for (let i = 0; i < CLEAR_BATCHES_PER_REQUEST && !done; i++) {
      const result = await ctx.runMutation(internal.importData.clearBatch, { limit: DELETE_BATCH });
      deleted += result.deleted;
      done = result.done;
    }
    return json(200, { deleted, done });
  } catch (error) {
    logFailure(CLEAR_PATH, error);
    return json(500, { error: "Internal server error" });
  }
});

// ---------------------------------------------------------------------------
// GET /http/import/counts?workspace_id=… (same gate): sync-convex's verification

/**
 * {"contacts": n, "notes": n, "conversations": n, "messages": n} for one workspace
 * (zeros for one not stored), counted page by page (counts.ts) so that no single
 * query reads more than Convex allows, whatever the workspace's size.
 */
const countsRoute = httpAction(async (ctx, request) => {
  try {
    const refused = importGate(request);
    if (refused !== null) return refused;
    const rawWorkspace = pyStrip(new URL(request.url).searchParams.get("workspace_id") ?? "");
    if (rawWorkspace === "") return json(400, { error: "Missing workspace_id parameter" });
    if (!UUID.test(rawWorkspace)) return json(400, { error: "Invalid workspace_id" });
    const workspace_id = rawWorkspace.toLowerCase();
    const counts = {} as Record<CountedTable, number>;
    for (const table of COUNTED_TABLES) {
      let count = 0;
      let cursor: string | null = null;
      for (;;) {
        const page: { count: number; isDone: boolean; continueCursor: string } = await ctx.runQuery(
          internal.counts.countPage,
          { table, workspace_id, cursor },
        );
        count += page.count;
        if (page.isDone) break;
        cursor = page.continueCursor;
      }
      counts[table] = count;
    }
    return json(200, counts);
  } catch (error) {
    logFailure(COUNTS_PATH, error);
    return json(500, { error: "Internal server error" });
  }
});

// ---------------------------------------------------------------------------
// POST /webhook/kapso (SPEC section 7)

/** Longest subscription challenge echoed (blueprints/kapso_webhook.py). */
const MAX_CHALLENGE = 256;

/** The body's bytes, or null as soon as it is longer than `limit`. */
async function readBodyCapped(request: Request, limit: number): Promise<Uint8Array<ArrayBuffer> | null> {
  const declared = Number(request.headers.get("content-length") ?? "");
  if (Number.isFinite(declared) && declared > limit) return null;
  if (request.body === null) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      return null;
    }
    chunks.push(value);
  }
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}

function hex(bytes: ArrayBuffer): string {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A hex HMAC-SHA256 of the raw body with `secret`, optionally prefixed "sha256=". */
async function signatureMatches(body: Uint8Array<ArrayBuffer>, signature: string | null, secret: string): Promise<boolean> {
  if (signature === null || signature === "") return false;
  let given = pyStrip(signature).toLowerCase();
  if (given.startsWith("sha256=")) given = given.slice("sha256=".length);
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const expected = hex(await crypto.subtle.sign("HMAC", key, body));
  return constantTimeEqual(given, expected);
}

/**
 * A valid signature (X-Webhook-Signature, legacy X-Kapso-Signature) or CRM_API_KEY: every
 * workspace (null); a workspace key: that workspace only (SPEC section 13); else "unauthorized".
 */
async function webhookCaller(
  ctx: ActionCtx,
  request: Request,
  body: Uint8Array<ArrayBuffer>,
  secret: string,
  apiKey: string,
): Promise<{ workspace: string | null } | "unauthorized"> {
  const headers = request.headers;
  const signature = headers.get("x-webhook-signature") || headers.get("x-kapso-signature");
  if (secret !== "" && (await signatureMatches(body, signature, secret))) return { workspace: null };
  const givenKey = headers.get("x-api-key");
  if (apiKey !== "" && givenKey !== null && givenKey !== "" && constantTimeEqual(givenKey, apiKey)) {
    return { workspace: null };
  }
  const workspace = await workspaceOfKey(ctx, givenKey);
  return workspace === null ? "unauthorized" : { workspace };
}

const kapsoWebhook = httpAction(async (ctx, request) => {
  try {
    const secret = process.env.KAPSO_WEBHOOK_SECRET ?? "";
    const apiKey = process.env.CRM_API_KEY ?? "";
    if (secret === "" && apiKey === "" && !(await ctx.runQuery(internal.apiKeys.anyActive, {}))) {
      return json(500, { error: "Service not configured" });
    }

    const body = await readBodyCapped(request, RULES.maxBodyBytes);
    if (body === null) return json(413, { error: "Payload too large" });
    const caller = await webhookCaller(ctx, request, body, secret, apiKey);
    if (caller === "unauthorized") return json(401, { error: "Unauthorized" });
    // Set when a workspace key authenticated the delivery: other workspaces' events are ignored.
    const allowed = caller.workspace === null ? {} : { allowed_workspace: caller.workspace };

    const payload = parseJsonBody(body);
    if (payload === undefined) return json(400, { error: "Invalid JSON" });
    let read;
    try {
      read = parseDelivery(payload, request.headers.get("x-webhook-event"), request.headers.get("x-webhook-batch"));
    } catch (error) {
      if (error instanceof BodyNotObject) return json(400, { error: "Body must be a JSON object" });
      throw error;
    }
    // Every check that needs no database, with one clock reading for the delivery.
    const region = defaultRegion();
    const nowMs = Date.now();
    const { outcomes, chunks } = planIngest(read.map((event) => prepareEvent(event, region, nowMs)));

    // One mutation, one transaction, committed before the answer.
    for (const chunk of chunks) {
      let results: Outcome[];
      try {
        results = await ctx.runMutation(internal.webhook.ingest, { events: chunk.events, names: chunk.names, ...allowed });
      } catch (error) {
        // Storage failed (Convex retries conflicts itself): a 503 makes Kapso
        // deliver again later instead of losing the delivery.
        logFailure(WEBHOOK_PATH, error);
        return json(503, { error: "Backend unavailable" }, { "Retry-After": "1" });
      }
      chunk.positions.forEach((position, i) => {
        outcomes[position] = results[i];
      });
    }

    const counts = { stored: 0, duplicates: 0, ignored: 0 };
    for (const outcome of outcomes) {
      if (outcome === "stored") counts.stored += 1;
      else if (outcome === "duplicate") counts.duplicates += 1;
      else {
        counts.ignored += 1;
        logIgnored(outcome ?? "unknown_event");
      }
    }
    return json(200, { received: true, ...counts });
  } catch (error) {
    logFailure(WEBHOOK_PATH, error);
    return json(500, { error: "Internal server error" });
  }
});

// ---------------------------------------------------------------------------
// POST /http/keys: key hashes from Kontak's `keys` commands and sync-convex (CRM_API_KEY only)

const keysRoute = httpAction(async (ctx, request) => {
  try {
    const key = checkApiKey(request);
    if (key === "not_configured") return json(500, { error: "Service not configured" });
    if (key === "unauthorized") return json(401, { error: "Unauthorized" });
    let raw: unknown;
    try {
      raw = JSON.parse(await request.text());
    } catch {
      return json(400, { error: "Invalid JSON" });
    }
    const parsed = parseKeys(raw, KEYS_BATCH);
    if (typeof parsed === "string") return json(400, { error: parsed });
    const upserted = await ctx.runMutation(internal.apiKeys.upsert, parsed);
    return json(200, { upserted });
  } catch (error) {
    logFailure(KEYS_PATH, error);
    return json(500, { error: "Internal server error" });
  }
});

/** GET /webhook/kapso: the subscription challenge, echoed as text (no key: Kapso sends none). */
const kapsoChallenge = httpAction(async (_ctx, request) => {
  const params = new URL(request.url).searchParams;
  const challenge = params.get("hub.challenge") || params.get("challenge") || "";
  if (challenge === "" || codePointLength(challenge) > MAX_CHALLENGE) {
    return json(400, { error: "Missing hub.challenge parameter" });
  }
  return new Response(challenge, { status: 200, headers: { "content-type": "text/plain; charset=utf-8" } });
});

// ---------------------------------------------------------------------------
// Router. Unknown paths and methods answer JSON, never HTML or plain text.

const http = httpRouter();
http.route({ path: LOOKUP_PATH, method: "GET", handler: getByPhone });
http.route({ path: IMPORT_PATH, method: "POST", handler: importRoute });
http.route({ path: CLEAR_PATH, method: "POST", handler: clearRoute });
http.route({ path: COUNTS_PATH, method: "GET", handler: countsRoute });
http.route({ path: WEBHOOK_PATH, method: "POST", handler: kapsoWebhook });
http.route({ path: WEBHOOK_PATH, method: "GET", handler: kapsoChallenge });
http.route({ path: KEYS_PATH, method: "POST", handler: keysRoute });

const KNOWN_PATHS = new Set([LOOKUP_PATH, IMPORT_PATH, CLEAR_PATH, COUNTS_PATH, WEBHOOK_PATH, KEYS_PATH]);
const fallback = httpAction(async (_ctx, request) => {
  const path = new URL(request.url).pathname;
  return KNOWN_PATHS.has(path)
    ? json(405, { error: "Method not allowed" })
    : json(404, { error: "Not found" });
});
const METHODS: RoutableMethod[] = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];
for (const method of METHODS) {
  http.route({ pathPrefix: "/", method, handler: fallback });
}

export default http;
