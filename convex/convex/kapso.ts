// Kapso webhook deliveries (docs/webhook.md §1, §2, §7) read into events. Pure functions,
// no Convex APIs: the HTTP action (handlers/webhook.ts) reads the body, judge.ts makes
// every check that needs no database, the ingest mutation (webhook.ts) does the rest and
// stores. Mirrors services/kapso.py rule for rule; the numbers come from
// contract/webhook_rules.json, read by both.
//
// Three shapes arrive: Meta's raw `whatsapp_business_account` delivery (kapsoMeta.ts), a
// batch of v2 events, and a single v2 (or older v1, wrapped in `data`) event (kapsoV2.ts).
// Each becomes a list of message / status / identity-change / conversation / ignored
// events (kapsoEvents.ts), in payload order.
import { RULES } from "./contract";
import { PLAIN_NUMBERS, type NumberForms } from "./jsonBody";
import type { ReadEvent } from "./kapsoEvents";
import { metaChange, metaChanges } from "./kapsoMeta";
import { readV2Event } from "./kapsoV2";
import { dict, first, get, isDict, list, type Dict } from "./pyCompat";

/** Valid JSON, but not an object: the only body shape refused (400). */
export class BodyNotObject extends Error {
  constructor() {
    super("Body must be a JSON object");
    this.name = "BodyNotObject";
  }
}

/** More events than `max_events_per_delivery` in one delivery (413, docs/webhook.md §1). */
export class TooManyEvents extends Error {
  constructor() {
    super(`Too many events (at most ${RULES.maxEventsPerDelivery} per delivery)`);
    this.name = "TooManyEvents";
  }
}

function isBatch(payload: Dict, batchHeader: string | null): boolean {
  return get(payload, "batch") === true || (batchHeader ?? "").toLowerCase() === "true";
}

/**
 * How many events `parseDelivery` would read, counted without reading them
 * (services/kapso.py `count_events`): a Meta change counts its messages, echoes
 * and statuses, at least 1; a batch its `data` items; anything else 1.
 */
export function countEvents(payload: Dict, batchHeader: string | null): number {
  if (get(payload, "object") === "whatsapp_business_account") {
    let count = 0;
    for (const value of metaChanges(payload)) {
      const held = ["messages", "message_echoes", "statuses"].reduce((n, key) => n + list(get(value, key)).length, 0);
      count += Math.max(1, held);
    }
    return count;
  }
  return isBatch(payload, batchHeader) ? list(get(payload, "data")).length : 1;
}

/**
 * The events of one request body (already parsed JSON), given the
 * X-Webhook-Event and X-Webhook-Batch headers, in payload order; never empty.
 * Throws BodyNotObject for JSON that is not an object, TooManyEvents over
 * `max_events_per_delivery` (before any event is read).
 * `numbers` tells integers from floats where JSON.parse cannot (jsonBody.ts).
 */
export function parseDelivery(
  payload: unknown,
  eventHeader: string | null,
  batchHeader: string | null,
  numbers: NumberForms = PLAIN_NUMBERS,
): ReadEvent[] {
  if (!isDict(payload)) throw new BodyNotObject();
  if (countEvents(payload, batchHeader) > RULES.maxEventsPerDelivery) throw new TooManyEvents();
  let events: ReadEvent[];
  if (get(payload, "object") === "whatsapp_business_account") {
    events = metaChanges(payload).flatMap((value) => metaChange(value, numbers));
  } else if (isBatch(payload, batchHeader)) {
    const name = first(eventHeader, get(payload, "type"));
    events = list(get(payload, "data")).map((item) => readV2Event(name, dict(item), numbers));
  } else {
    events = [readV2Event(first(eventHeader, get(payload, "event"), get(payload, "type")), payload, numbers)];
  }
  // A delivery that yields nothing is still one ignored event: the answer's counts are never all 0.
  return events.length > 0 ? events : [{ kind: "ignored", reason: "no_message" }];
}

/**
 * One line per reason a delivery's events were ignored for, with their count, in
 * order of first occurrence (services/webhook_judge.py `log_ignored`): never content,
 * phone, BSUID, username or ids, and 10,000 ignored events cost one line, not 10,000.
 */
export function logIgnored(reasons: readonly string[]): void {
  const counts = new Map<string, number>();
  for (const reason of reasons) counts.set(reason, (counts.get(reason) ?? 0) + 1);
  for (const [reason, count] of counts) console.warn(`webhook events ignored reason=${reason} count=${count}`);
}
