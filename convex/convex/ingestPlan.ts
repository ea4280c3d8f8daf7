// Splitting a delivery's prepared events into ingest mutation calls
// (webhook.ts), for the Kapso webhook action (handlers/webhook.ts). Pure: no Convex APIs.
import type { Person, PreparedEvent, PreparedMessage } from "./judge";
import type { Outcome, WebhookEvent } from "./webhook";

// What one ingest mutation may be given. Convex caps a transaction at 4,096
// index ranges read and an array at 8,192 values; a delivery is one transaction
// whenever it fits (any realistic one: about 900 new senders' messages), and
// only a larger one is stored in several, in payload order (docs/webhook.md
// §5 cannot hold there: see convex/README.md).
/** Index ranges a merge reads besides the two contacts: both conversations, the merged one's messages and notes. */
const MERGE_QUERIES = 6;
const CHUNK_QUERIES = 3600;
const CHUNK_EVENTS = 4000;
/** UTF-16 units of text per call (at most 3 bytes each in UTF-8: 12 MiB of Convex's 16 MiB). */
const CHUNK_TEXT_UNITS = 4 * 1024 * 1024;

export type Chunk = { events: WebhookEvent[]; names: string[]; positions: number[] };

type Sendable = Exclude<PreparedEvent, { kind: "ignored" }> & { phone_number_id: string };

/** Index ranges read to find a person's contact: by BSUID, by phone, and a merge when both may name two. */
function personQueries(p: Person, mayMerge: boolean): number {
  const both = p.bsuid !== null && p.phone !== null;
  return (p.bsuid !== null ? 1 : 0) + (p.phone !== null ? 1 : 0) + (mayMerge && both ? MERGE_QUERIES : 0);
}

/** A message's contact, its conversation and the stored message with its id. */
function messageQueries(m: PreparedMessage): number {
  return personQueries(m.person, true) + 2;
}

/** Index ranges an event may read in the mutation at most, its workspace included. */
function queryCost(event: Sendable): number {
  switch (event.kind) {
    case "rejected":
      return 1;
    case "message":
      return 1 + messageQueries(event);
    case "status":
      return 2 + (event.unseen !== null && "kind" in event.unseen ? messageQueries(event.unseen) : 0);
    case "identity":
      // The old identity's contact, the new identifier's holder, and a merge with it.
      return 1 + personQueries(event.person, false) + 1 + MERGE_QUERIES;
    case "conversation":
      return 1 + personQueries(event.person, false) + 1;
  }
}

function length(...values: (string | null)[]): number {
  return values.reduce((n, s) => n + (s?.length ?? 0), 0);
}

function personText(p: Person): number {
  return length(p.phone, p.bsuid, p.parent_bsuid, p.username);
}

function messageText(m: PreparedMessage): number {
  return length(m.kapso_message_id, m.content, m.message_type, m.error_code, m.error_title) + personText(m.person);
}

/** UTF-16 units an event sends besides its contact names. */
function ownText(event: Sendable): number {
  const base = event.phone_number_id.length;
  switch (event.kind) {
    case "rejected":
      return base;
    case "message":
      return base + messageText(event);
    case "status": {
      const unseen = event.unseen !== null && "kind" in event.unseen ? messageText(event.unseen) : 0;
      return base + length(event.kapso_message_id, event.error_code, event.error_title) + unseen;
    }
    case "identity":
      return base + personText(event.person) + event.value.length;
    case "conversation":
      return base + personText(event.person) + event.status.length;
  }
}

/** The contact name an event sends through the names table, if any. */
function contactName(event: Sendable): string | null {
  if (event.kind === "message") return event.contact_name;
  if (event.kind === "status" && event.unseen !== null && "kind" in event.unseen) return event.unseen.contact_name;
  return null;
}

/** `event` as the mutation takes it: a string phone number id, the name as an index. */
function sendable(event: Sendable, nameRef: number | null): WebhookEvent {
  const phone_number_id = event.phone_number_id;
  if (event.kind === "message") return { ...event, phone_number_id, contact_name: nameRef };
  if (event.kind === "status" && event.unseen !== null && "kind" in event.unseen) {
    return { ...event, unseen: { ...event.unseen, phone_number_id, contact_name: nameRef } };
  }
  return event as WebhookEvent;
}

/** One mutation call being filled, with its names table and budgets. */
class ChunkBuilder {
  readonly chunk: Chunk = { events: [], names: [], positions: [] };
  private readonly nameIndex = new Map<string, number>();
  private queries = 0;
  private units = 0;

  /** Text `event` adds to this call: a name already in its table costs nothing more. */
  private textOf(event: Sendable): number {
    const name = contactName(event);
    return ownText(event) + (name !== null && !this.nameIndex.has(name) ? name.length : 0);
  }

  fits(event: Sendable): boolean {
    const n = this.chunk.events.length;
    if (n >= CHUNK_EVENTS || this.queries + queryCost(event) > CHUNK_QUERIES) return false;
    return n === 0 || this.units + this.textOf(event) <= CHUNK_TEXT_UNITS;
  }

  add(event: Sendable, position: number): void {
    this.queries += queryCost(event);
    this.units += this.textOf(event);
    const name = contactName(event);
    let nameRef: number | null = null;
    if (name !== null) {
      nameRef = this.nameIndex.get(name) ?? this.chunk.names.push(name) - 1;
      this.nameIndex.set(name, nameRef);
    }
    this.chunk.positions.push(position);
    this.chunk.events.push(sendable(event, nameRef));
  }
}

/**
 * Settles what needs no database (ignored events, and no phone number id:
 * no workspace has none) and splits the rest into mutation calls.
 * `outcomes[i]` is set for every settled event.
 */
export function planIngest(prepared: PreparedEvent[]): { outcomes: (Outcome | null)[]; chunks: Chunk[] } {
  const outcomes: (Outcome | null)[] = prepared.map(() => null);
  const chunks: Chunk[] = [];
  let builder: ChunkBuilder | null = null;
  prepared.forEach((event, position) => {
    if (event.kind === "ignored") {
      outcomes[position] = event.reason;
      return;
    }
    if (event.phone_number_id === null) {
      outcomes[position] = "unknown_workspace";
      return;
    }
    const ready = event as Sendable;
    if (builder === null || !builder.fits(ready)) {
      builder = new ChunkBuilder();
      chunks.push(builder.chunk);
    }
    builder.add(ready, position);
  });
  return { outcomes, chunks };
}
