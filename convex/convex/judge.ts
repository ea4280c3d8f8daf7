// Judging one read Kapso event (docs/webhook.md §3, §7.3): the checks that need no
// database, in their order. Pure; the HTTP action runs it, the ingest mutation
// (webhook.ts) makes the workspace and stored-data checks. The same checks, in the
// same order, as services/webhook_judge.py.
import { RULES, type IgnoreReason } from "./contract";
import type { Identity, ReadEvent, ReadIdentityChange, ReadMessage } from "./kapsoEvents";
import { isValidBsuid, isValidIdentifier, isValidParentBsuid, isoTimeMs, timestampMs } from "./kapsoValues";
import { normalizePhone } from "./phones";

/** A judged identity (§7.3): an E.164 phone and/or a valid BSUID, at least one. */
export type Person = {
  phone: string | null;
  bsuid: string | null;
  /** null when absent or invalid (§7.1). */
  parent_bsuid: string | null;
  username: string | null;
};

/** A message that passed every check that needs no database: ready to store. */
export type PreparedMessage = {
  kind: "message";
  phone_number_id: string | null;
  person: Person;
  contact_name: string | null;
  kapso_message_id: string;
  direction: string;
  content: string;
  message_type: string;
  status: string;
  /** The message's own time, milliseconds since the epoch. */
  created_at: number;
  error_code: string | null;
  error_title: string | null;
};

/**
 * What the ingest mutation receives for one event: every string well formed
 * (Convex stores no unpaired surrogate) and every check that needs no
 * database already made. `reason` is the first such check the event failed;
 * the mutation reports it only after the workspace checks, which come first.
 */
export type PreparedEvent =
  | { kind: "ignored"; reason: IgnoreReason }
  | { kind: "rejected"; phone_number_id: string | null; reason: IgnoreReason }
  | PreparedMessage
  | {
      kind: "status";
      phone_number_id: string | null;
      kapso_message_id: string;
      /** null: not one of RULES.metaStatuses (invalid_status, checked after unknown_message). */
      status: string | null;
      error_code: string | null;
      error_title: string | null;
      /** A `failed` status: the message it becomes when no message has its id, or why it cannot (§7.7). */
      unseen: PreparedMessage | { reason: IgnoreReason } | null;
    }
  | { kind: "identity"; phone_number_id: string | null; person: Person; field: "phone" | "bsuid"; value: string }
  | { kind: "conversation"; phone_number_id: string | null; person: Person; status: string; at: number };

/** §7.3: a BSUID present must be valid, a phone present must be valid, and one must be present. */
export function judgePerson(identity: Identity, region: string): Person | IgnoreReason {
  if (identity.bsuid !== null && !isValidBsuid(identity.bsuid)) return "invalid_bsuid";
  let phone: string | null = null;
  if (identity.phone !== null) {
    phone = normalizePhone(identity.phone, region);
    if (phone === null) return "invalid_phone";
  }
  if (phone === null && identity.bsuid === null) return "invalid_phone";
  const parent = identity.parent_bsuid;
  return {
    phone,
    bsuid: identity.bsuid,
    parent_bsuid: parent !== null && isValidParentBsuid(parent) ? parent : null,
    // Already cleaned and bounded when read (kapsoValues.ts `username`).
    username: identity.username,
  };
}

/** §3 invalid_timestamp, then invalid_type: the message's time in ms, or the reason. */
function timeAndType(timestamp: unknown, messageType: string | null, nowMs: number): number | IgnoreReason {
  const createdAt = timestampMs(timestamp, nowMs);
  if (createdAt === null) return "invalid_timestamp";
  if (messageType !== null && !isValidIdentifier(messageType, RULES.maxTypeLength)) return "invalid_type";
  return createdAt;
}

/** A message event after its id was found valid: the rest of §3 and §7.3. */
function judgeMessage(event: ReadMessage, kapso_message_id: string, region: string, nowMs: number): PreparedMessage | IgnoreReason {
  const created_at = timeAndType(event.timestamp, event.message_type, nowMs);
  if (typeof created_at === "string") return created_at;
  const person = judgePerson(event.identity, region);
  if (typeof person === "string") return person;
  return {
    kind: "message",
    phone_number_id: event.phone_number_id,
    person,
    contact_name: event.contact_name,
    kapso_message_id,
    direction: event.direction,
    content: event.content,
    message_type: event.message_type ?? "text",
    status: event.status,
    created_at,
    error_code: event.error.code,
    error_title: event.error.title,
  };
}

/** §7.6: id, time and type as for a message, then the old identity, then the new identifier. */
function judgeIdentityChange(event: ReadIdentityChange, region: string, nowMs: number): PreparedEvent | IgnoreReason {
  const checked = timeAndType(event.timestamp, event.message_type, nowMs);
  if (typeof checked === "string") return checked;
  const person = judgePerson(event.identity, region);
  if (typeof person === "string") return person;
  const base = { kind: "identity" as const, phone_number_id: event.phone_number_id, person };
  if (event.field === "bsuid") {
    return event.new_value !== null && isValidBsuid(event.new_value)
      ? { ...base, field: "bsuid", value: event.new_value }
      : "invalid_bsuid";
  }
  const phone = event.new_value === null ? null : normalizePhone(event.new_value, region);
  return phone === null ? "invalid_phone" : { ...base, field: "phone", value: phone };
}

/**
 * The §3/§7.3 checks of `event` that need no database, in their order. An
 * invalid phone number id comes first of all, so it is final here.
 */
export function prepareEvent(event: ReadEvent, region: string, nowMs: number): PreparedEvent {
  if (event.kind === "ignored") return event;
  if (event.phone_number_id !== null && !isValidIdentifier(event.phone_number_id)) {
    return { kind: "ignored", reason: "invalid_phone_number_id" };
  }
  const phone_number_id = event.phone_number_id;
  const settle = (judged: PreparedEvent | IgnoreReason): PreparedEvent =>
    typeof judged === "string" ? { kind: "rejected", phone_number_id, reason: judged } : judged;
  if (event.kind === "conversation") {
    // No message, no id: its time comes right after the workspace (§7.3).
    const at = isoTimeMs(event.time, nowMs);
    if (at === null) return settle("invalid_timestamp");
    const person = judgePerson(event.identity, region);
    return settle(typeof person === "string" ? person : { kind: "conversation", phone_number_id, person, status: event.status, at });
  }
  const id = event.kapso_message_id;
  if (!isValidIdentifier(id)) return settle("invalid_message_id");
  if (event.kind === "identity") return settle(judgeIdentityChange(event, region, nowMs));
  if (event.kind === "message") return settle(judgeMessage(event, id, region, nowMs));
  const unseen = event.unseen === null ? null : judgeMessage(event.unseen, id, region, nowMs);
  return {
    kind: "status",
    phone_number_id,
    kapso_message_id: id,
    status: event.status !== null && RULES.metaStatuses.has(event.status) ? event.status : null,
    error_code: event.error.code,
    error_title: event.error.title,
    unseen: typeof unseen === "string" ? { reason: unseen } : unseen,
  };
}
