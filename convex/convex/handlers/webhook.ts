// POST /webhook/kapso (docs/contract.md §7, docs/webhook.md) and its GET subscription challenge.
import { internal } from "../_generated/api";
import { httpAction, type ActionCtx } from "../_generated/server";
import { workspaceOfKey } from "../apiKeys";
import { PATHS } from "../contract";
import { planIngest, type Chunk } from "../ingestPlan";
import { prepareEvent } from "../judge";
import {
  BodyNotObject,
  codePointLength,
  logIgnored,
  parseDelivery,
  RULES,
  TooManyEvents,
  type ReadEvent,
} from "../kapso";
import { defaultRegion } from "../phones";
import {
  constantTimeEqual,
  json,
  logFailure,
  numberForms,
  parseJsonBodyText,
  readBodyCapped,
  signatureMatches,
} from "../transport";
import type { Outcome } from "../webhook";

/**
 * A valid signature (X-Webhook-Signature, legacy X-Kapso-Signature, or Meta's
 * X-Hub-Signature-256 on a forwarded Meta delivery; the first one present is checked,
 * as in Flask) or CRM_API_KEY: every
 * workspace (null); a workspace key: that workspace only (docs/contract.md §13); else "unauthorized".
 */
async function webhookCaller(
  ctx: ActionCtx,
  request: Request,
  body: Uint8Array<ArrayBuffer>,
  secret: string,
  apiKey: string,
): Promise<{ workspace: string | null } | "unauthorized"> {
  const headers = request.headers;
  const signature =
    headers.get("x-webhook-signature") || headers.get("x-kapso-signature") || headers.get("x-hub-signature-256");
  if (secret !== "" && (await signatureMatches(body, signature, secret))) return { workspace: null };
  const givenKey = headers.get("x-api-key");
  if (apiKey !== "" && givenKey !== null && givenKey !== "" && constantTimeEqual(givenKey, apiKey)) {
    return { workspace: null };
  }
  const workspace = await workspaceOfKey(ctx, givenKey);
  return workspace === null ? "unauthorized" : { workspace };
}

/**
 * The body's events as read (kapso.ts), or the answer for a body that is not JSON (400), not
 * an object (400), or holds more events than one delivery may (413, before any is read).
 */
function readEvents(request: Request, body: Uint8Array): ReadEvent[] | Response {
  const parsed = parseJsonBodyText(body);
  if (parsed === undefined) return json(400, { error: "Invalid JSON" });
  const headers = request.headers;
  try {
    const numbers = numberForms(parsed.text, parsed.value);
    return parseDelivery(parsed.value, headers.get("x-webhook-event"), headers.get("x-webhook-batch"), numbers);
  } catch (error) {
    if (error instanceof BodyNotObject) return json(400, { error: "Body must be a JSON object" });
    if (error instanceof TooManyEvents) return json(413, { error: error.message });
    throw error;
  }
}

/**
 * Stores the planned calls in order, each one mutation, one transaction, committed
 * before the answer; fills `outcomes`. False when storage failed.
 */
async function storeChunks(
  ctx: ActionCtx,
  chunks: Chunk[],
  outcomes: (Outcome | null)[],
  allowed: { allowed_workspace?: string },
): Promise<boolean> {
  for (const chunk of chunks) {
    let results: Outcome[];
    try {
      results = await ctx.runMutation(internal.webhook.ingest, { events: chunk.events, names: chunk.names, ...allowed });
    } catch (error) {
      logFailure(PATHS.webhook, error);
      return false;
    }
    chunk.positions.forEach((position, i) => {
      outcomes[position] = results[i];
    });
  }
  return true;
}

/** The answer's counts; one log line per reason events were ignored for, with its count. */
function countOutcomes(outcomes: (Outcome | null)[]) {
  const counts = { stored: 0, duplicates: 0, ignored: 0 };
  const reasons: string[] = [];
  for (const outcome of outcomes) {
    if (outcome === "stored") counts.stored += 1;
    else if (outcome === "duplicate") counts.duplicates += 1;
    else reasons.push(outcome ?? "unknown_event");
  }
  counts.ignored = reasons.length;
  logIgnored(reasons);
  return counts;
}

export const kapsoWebhook = httpAction(async (ctx, request) => {
  try {
    const secret = process.env.KAPSO_WEBHOOK_SECRET ?? "";
    const apiKey = process.env.CRM_API_KEY ?? "";
    if (secret === "" && apiKey === "" && !(await ctx.runQuery(internal.apiKeys.anyActive, {}))) {
      return json(500, { error: "Service not configured" });
    }

    const body = await readBodyCapped(request);
    if (body === null) return json(413, { error: "Payload too large" });
    const caller = await webhookCaller(ctx, request, body, secret, apiKey);
    if (caller === "unauthorized") return json(401, { error: "Unauthorized" });
    // Set when a workspace key authenticated the delivery: other workspaces' events are ignored.
    const allowed = caller.workspace === null ? {} : { allowed_workspace: caller.workspace };

    const read = readEvents(request, body);
    if (read instanceof Response) return read;
    // Every check that needs no database, with one clock reading for the delivery.
    const region = defaultRegion();
    const nowMs = Date.now();
    const { outcomes, chunks } = planIngest(read.map((event) => prepareEvent(event, region, nowMs)));
    // Storage failed (Convex retries conflicts itself): a 503 makes Kapso
    // deliver again later instead of losing the delivery.
    if (!(await storeChunks(ctx, chunks, outcomes, allowed))) {
      return json(503, { error: "Backend unavailable" }, { "Retry-After": "1" });
    }
    return json(200, { received: true, ...countOutcomes(outcomes) });
  } catch (error) {
    logFailure(PATHS.webhook, error);
    return json(500, { error: "Internal server error" });
  }
});

/** GET /webhook/kapso: the subscription challenge, echoed as text (no key: Kapso sends none). */
export const kapsoChallenge = httpAction(async (_ctx, request) => {
  const params = new URL(request.url).searchParams;
  const challenge = params.get("hub.challenge") || params.get("challenge") || "";
  if (challenge === "" || codePointLength(challenge) > RULES.maxChallengeLength) {
    return json(400, { error: "Missing hub.challenge parameter" });
  }
  return new Response(challenge, { status: 200, headers: { "content-type": "text/plain; charset=utf-8" } });
});
