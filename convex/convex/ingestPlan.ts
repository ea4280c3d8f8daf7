// Splitting a delivery's prepared events into ingest mutation calls
// (webhook.ts), for the Kapso webhook action in http.ts. Pure: no Convex APIs.
import type { PreparedEvent } from "./kapso";
import type { Outcome, WebhookEvent } from "./webhook";

// What one ingest mutation may be given. Convex caps a transaction at 4,096
// database calls and an array at 8,192 values; a delivery is one transaction
// whenever it fits (any realistic one: about 900 new senders' messages), and
// only a larger one is stored in several, in payload order (docs/webhook.md
// §5 cannot hold there: see convex/README.md).
/** Database calls an event costs the mutation at most (workspace, contact, conversation, message). */
const QUERY_COST = { message: 4, status: 2, rejected: 1 } as const;
const CHUNK_QUERIES = 3600;
const CHUNK_EVENTS = 4000;
/** UTF-16 units of text per call (at most 3 bytes each in UTF-8: 12 MiB of Convex's 16 MiB). */
const CHUNK_TEXT_UNITS = 4 * 1024 * 1024;

export type Chunk = { events: WebhookEvent[]; names: string[]; positions: number[] };

/**
 * Settles what needs no database (ignored events, and no phone number id:
 * no workspace has none) and splits the rest into mutation calls.
 * `outcomes[i]` is set for every settled event.
 */
export function planIngest(prepared: PreparedEvent[]): { outcomes: (Outcome | null)[]; chunks: Chunk[] } {
  const outcomes: (Outcome | null)[] = prepared.map(() => null);
  const chunks: Chunk[] = [];
  let chunk: Chunk | null = null;
  let nameIndex = new Map<string, number>();
  let queries = 0;
  let units = 0;
  prepared.forEach((event, position) => {
    if (event.kind === "ignored") {
      outcomes[position] = event.reason;
      return;
    }
    if (event.phone_number_id === null) {
      outcomes[position] = "unknown_workspace";
      return;
    }
    const name = event.kind === "message" ? event.contact_name : null;
    const ownText =
      event.phone_number_id.length +
      (event.kind === "rejected" ? 0 : event.kapso_message_id.length) +
      (event.kind === "message" ? event.content.length + event.message_type.length : 0);
    // A name already in this call's table costs nothing more.
    const textIn = (c: Chunk | null) => ownText + (name !== null && (c === null || !nameIndex.has(name)) ? name.length : 0);
    const cost = QUERY_COST[event.kind];
    if (
      chunk === null ||
      chunk.events.length >= CHUNK_EVENTS ||
      queries + cost > CHUNK_QUERIES ||
      (chunk.events.length > 0 && units + textIn(chunk) > CHUNK_TEXT_UNITS)
    ) {
      chunk = { events: [], names: [], positions: [] };
      chunks.push(chunk);
      nameIndex = new Map();
      queries = 0;
      units = 0;
    }
    queries += cost;
    units += textIn(chunk);
    let nameRef: number | null = null;
    if (name !== null) {
      nameRef = nameIndex.get(name) ?? null;
      if (nameRef === null) {
        nameRef = chunk.names.length;
        chunk.names.push(name);
        nameIndex.set(name, nameRef);
      }
    }
    chunk.positions.push(position);
    if (event.kind === "message") {
      chunk.events.push({ ...event, phone_number_id: event.phone_number_id, contact_name: nameRef });
    } else {
      chunk.events.push({ ...event, phone_number_id: event.phone_number_id });
    }
  });
  return { outcomes, chunks };
}

