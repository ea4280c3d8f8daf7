// Kapso's v2 events, and older (v1) ones wrapped in `data` (docs/webhook.md §2.2, §2.3,
// §7.2), read into events: messages, statuses, identity changes and conversation events.
// Pure functions, no Convex APIs; mirrors services/kapso.py.
import { RULES } from "./contract";
import { readableContent } from "./content";
import type { NumberForms } from "./jsonBody";
import {
  identityChange,
  NO_ERROR,
  type Identity,
  type ReadConversationEvent,
  type ReadEvent,
  type ReadIdentityChange,
  type ReadMessage,
  type ReadStatus,
} from "./kapsoEvents";
import { failureError, username } from "./kapsoValues";
import { cleanName, dict, first, get, isDict, text, type Dict } from "./pyCompat";

/** A v2/v1 event's identity (§7.2); the direction picks `from`/`from_user_id` or `to`/`to_user_id`. */
function v2Identity(message: Dict, conversation: Dict, direction: string): Identity {
  const inbound = direction === "inbound";
  return {
    phone: first(get(conversation, "phone_number"), get(message, inbound ? "from" : "to")),
    bsuid: first(
      get(conversation, "business_scoped_user_id"),
      get(message, "business_scoped_user_id"),
      get(message, inbound ? "from_user_id" : "to_user_id"),
    ),
    parent_bsuid: first(
      get(conversation, "parent_business_scoped_user_id"),
      get(message, "parent_business_scoped_user_id"),
    ),
    username: username(first(get(conversation, "username"), get(message, "username"))),
  };
}

/** Everything of a v2 message event but its kind-specific fields. */
type V2Parts = { phoneNumberId: string | null; message: Dict; conversation: Dict; numbers: NumberForms };

/** The v2 status a message carries: `message.kapso.status` when known, else by direction. */
function v2Status(kapso: Dict, direction: string): string {
  const status = get(kapso, "status");
  if (typeof status === "string" && RULES.knownMessageStatuses.has(status)) return status;
  return direction === "inbound" ? "received" : "sent";
}

/** A v2/v1 message (or the identity change it is), with `status` given or from `kapso.status`. */
function v2Message(parts: V2Parts, direction: string, given?: string): ReadMessage | ReadIdentityChange {
  const { phoneNumberId, message, conversation } = parts;
  const identity = v2Identity(message, conversation, direction);
  const change = identityChange(phoneNumberId, identity, message);
  if (change !== null) return change;
  const status = given ?? v2Status(dict(get(message, "kapso")), direction);
  return {
    kind: "message",
    phone_number_id: phoneNumberId,
    identity,
    contact_name: cleanName(
      first(get(dict(get(conversation, "kapso")), "contact_name"), get(conversation, "contact_name")),
    ),
    kapso_message_id: text(get(message, "id")),
    timestamp: get(message, "timestamp"),
    message_type: first(get(message, "type"), get(message, "message_type")),
    direction,
    content: readableContent(message),
    status,
    error: status === "failed" ? failureError(get(message, "errors"), parts.numbers) : NO_ERROR,
  };
}

/** A v2 status event; a `failed` one carries the outbound failed message it may become (§7.7). */
function v2StatusEvent(parts: V2Parts, status: string): ReadStatus {
  const unseen = status === "failed" ? v2Message(parts, "outbound", "failed") : null;
  return {
    kind: "status",
    phone_number_id: parts.phoneNumberId,
    kapso_message_id: text(get(parts.message, "id")),
    status,
    error: failureError(get(parts.message, "errors"), parts.numbers),
    unseen: unseen?.kind === "message" ? unseen : null,
  };
}

/** A conversation event (§7.7): identity from the conversation alone. */
function v2ConversationEvent(parts: V2Parts, status: string): ReadConversationEvent {
  const { conversation } = parts;
  return {
    kind: "conversation",
    phone_number_id: parts.phoneNumberId,
    identity: v2Identity({}, conversation, "inbound"),
    status,
    time: first(get(conversation, "updated_at"), get(conversation, "last_active_at")),
  };
}

/** The direction a named (or unnamed) v2 event has, or null when it is no message event. */
function v2Direction(name: string | null, message: Dict): string | null {
  const named = name === null ? undefined : RULES.messageEvents.get(name);
  if (named === undefined && !(name === null && Object.keys(message).length > 0)) return null;
  const given = get(dict(get(message, "kapso")), "direction");
  return given === "inbound" || given === "outbound" ? given : (named ?? "inbound");
}

/** A v2 event, or an older (v1) one wrapped in `data`, given its event name (§2.3). */
export function readV2Event(name: string | null, outer: Dict, numbers: NumberForms): ReadEvent {
  const body = !isDict(get(outer, "message")) && isDict(get(outer, "data")) ? (get(outer, "data") as Dict) : outer;
  const message = dict(get(body, "message"));
  const conversation = dict(get(body, "conversation"));
  const phoneNumberId = first(
    get(body, "phone_number_id"),
    get(conversation, "phone_number_id"),
    get(dict(get(message, "kapso")), "phone_number_id"),
    get(dict(get(body, "whatsapp_config")), "phone_number_id"),
  );
  const parts: V2Parts = { phoneNumberId, message, conversation, numbers };
  const status = name === null ? undefined : RULES.statusEvents.get(name);
  if (status !== undefined) return v2StatusEvent(parts, status);
  const conversationStatus = name === null ? undefined : RULES.conversationEvents.get(name);
  if (conversationStatus !== undefined) return v2ConversationEvent(parts, conversationStatus);
  const direction = v2Direction(name, message);
  return direction === null ? { kind: "ignored", reason: "unknown_event" } : v2Message(parts, direction);
}
