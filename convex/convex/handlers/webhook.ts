// POST /webhook/kapso (docs/contract.md §7, docs/webhook.md) and its GET subscription challenge.
import { internal } from "../_generated/api";
import type { ActionCtx } from "../_generated/server";
import { PATHS, RULES } from "../contract";
import { planIngest, type Chunk } from "../ingestPlan";
import { numberForms, parseJsonBodyText } from "../jsonBody";
import { prepareEvent } from "../judge";
import { BodyNotObject, logIgnored, parseDelivery, TooManyEvents } from "../kapso";
import type { ReadEvent } from "../kapsoEvents";
import { defaultRegion } from "../phones";
import { codePointLength } from "../pyCompat";
import { json, logFailure } from "../transport";
import type { Outcome } from "../webhook";
import { kontakRoute } from "./route";

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
      results = await ctx.runMutation(internal.webhook.ingest, {
        events: chunk.events,
        names: chunk.names,
        ...allowed,
      });
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

// A valid signature, CRM_API_KEY (every workspace) or a workspace key (its workspace
// only), tried in contract/formats.json's auth_order (handlers/route.ts).
const webhookRoute = kontakRoute({ path: PATHS.webhook, access: "webhook" });

export const kapsoWebhook = webhookRoute(async (ctx, request, caller) => {
  // Set when a workspace key authenticated the delivery: other workspaces' events are ignored.
  const allowed = caller.workspace === null ? {} : { allowed_workspace: caller.workspace };
  const read = readEvents(request, caller.body);
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
});

/** GET /webhook/kapso: the subscription challenge, echoed as text (no key: Kapso sends none). */
export const kapsoChallenge = kontakRoute({ path: PATHS.webhook, access: "public" })(async (_ctx, request) => {
  const params = new URL(request.url).searchParams;
  const challenge = params.get("hub.challenge") || params.get("challenge") || "";
  if (challenge === "" || codePointLength(challenge) > RULES.maxChallengeLength) {
    return json(400, { error: "Missing hub.challenge parameter" });
  }
  return new Response(challenge, { status: 200, headers: { "content-type": "text/plain; charset=utf-8" } });
});
