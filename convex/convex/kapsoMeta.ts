// Meta's raw `whatsapp_business_account` deliveries (docs/webhook.md §2.1, §7.2) read into
// events: messages, the business's own echoes and statuses, in payload order. Pure
// functions, no Convex APIs; mirrors services/kapso.py.
import { readableContent } from "./content";
import type { NumberForms } from "./jsonBody";
import {
  identityChange,
  NO_ERROR,
  type Identity,
  type ReadEvent,
  type ReadIdentityChange,
  type ReadMessage,
  type ReadStatus,
} from "./kapsoEvents";
import { failureError, username } from "./kapsoValues";
import { cleanName, dict, first, get, list, text, type Dict } from "./pyCompat";

/** The `contacts[]` entry a Meta message belongs to (§7.2): the last one matching, else the only one. */
function matchingContact(contacts: unknown[], bsuid: string | null, phone: string | null): Dict {
  const entries = contacts.map(dict);
  for (const [key, wanted] of [
    ["user_id", bsuid],
    ["wa_id", phone],
  ] as const) {
    if (wanted === null) continue;
    for (let i = entries.length - 1; i >= 0; i--) {
      if (text(get(entries[i], key)) === wanted) return entries[i];
    }
  }
  return entries.length === 1 ? entries[0] : {};
}

/** One Meta `messages[]` entry: an inbound message, or the identity change it is. */
function metaMessage(
  phoneNumberId: string | null,
  raw: unknown,
  contacts: unknown[],
): ReadMessage | ReadIdentityChange {
  const message = dict(raw);
  const contact = matchingContact(contacts, text(get(message, "from_user_id")), text(get(message, "from")));
  const profile = dict(get(contact, "profile"));
  const identity: Identity = {
    phone: first(get(message, "from"), get(contact, "wa_id")),
    bsuid: first(get(message, "from_user_id"), get(contact, "user_id")),
    parent_bsuid: first(get(message, "from_parent_user_id"), get(contact, "parent_user_id")),
    username: username(text(get(profile, "username"))),
  };
  const change = identityChange(phoneNumberId, identity, message);
  if (change !== null) return change;
  return {
    kind: "message",
    phone_number_id: phoneNumberId,
    identity,
    contact_name: cleanName(text(get(profile, "name"))),
    kapso_message_id: text(get(message, "id")),
    timestamp: get(message, "timestamp"),
    message_type: text(get(message, "type")),
    direction: "inbound",
    content: readableContent(message),
    status: "received",
    error: NO_ERROR,
  };
}

/** The person a business message goes to: its `phoneKey`, `<prefix>user_id` and `<prefix>parent_user_id`. */
function recipient(entry: Dict, phoneKey: string, prefix: string): Identity {
  return {
    phone: text(get(entry, phoneKey)),
    bsuid: text(get(entry, `${prefix}user_id`)),
    parent_bsuid: text(get(entry, `${prefix}parent_user_id`)),
    username: null,
  };
}

/** What differs between the outbound messages a Meta delivery implies. */
type Outbound = Pick<
  ReadMessage,
  "identity" | "kapso_message_id" | "timestamp" | "message_type" | "content" | "status" | "error"
>;

/** An outbound message to a person with no profile name in the delivery. */
function outboundMessage(phoneNumberId: string | null, fields: Outbound): ReadMessage {
  return { kind: "message", phone_number_id: phoneNumberId, contact_name: null, direction: "outbound", ...fields };
}

/** One Meta `message_echoes[]` entry: the business writing from the WhatsApp Business app (§7.7). */
function metaEcho(phoneNumberId: string | null, raw: unknown): ReadMessage {
  const echo = dict(raw);
  return outboundMessage(phoneNumberId, {
    identity: recipient(echo, "to", "to_"),
    kapso_message_id: text(get(echo, "id")),
    timestamp: get(echo, "timestamp"),
    message_type: text(get(echo, "type")),
    content: readableContent(echo),
    status: "sent",
    error: NO_ERROR,
  });
}

/** One Meta `statuses[]` entry; a `failed` one carries the message it may become (§7.7). */
function metaStatus(phoneNumberId: string | null, raw: unknown, numbers: NumberForms): ReadStatus {
  const status = dict(raw);
  const name = text(get(status, "status"));
  const error = failureError(get(status, "errors"), numbers);
  const kapso_message_id = text(get(status, "id"));
  const unseen =
    name !== "failed"
      ? null
      : outboundMessage(phoneNumberId, {
          identity: recipient(status, "recipient_id", "recipient_"),
          kapso_message_id,
          timestamp: get(status, "timestamp"),
          message_type: "unknown",
          content: "",
          status: "failed",
          error,
        });
  return { kind: "status", phone_number_id: phoneNumberId, kapso_message_id, status: name, error, unseen };
}

/** One Meta `changes[].value` (§2.1, §7.2): messages, then echoes, then statuses. */
export function metaChange(value: Dict, numbers: NumberForms): ReadEvent[] {
  const phoneNumberId = text(get(dict(get(value, "metadata")), "phone_number_id"));
  const contacts = list(get(value, "contacts"));
  const events: ReadEvent[] = [
    ...list(get(value, "messages")).map((raw) => metaMessage(phoneNumberId, raw, contacts)),
    ...list(get(value, "message_echoes")).map((raw) => metaEcho(phoneNumberId, raw)),
    ...list(get(value, "statuses")).map((raw) => metaStatus(phoneNumberId, raw, numbers)),
  ];
  return events.length > 0 ? events : [{ kind: "ignored", reason: "no_message" }];
}

/** Each Meta `entry[].changes[].value` of a delivery, in payload order (§2.1). */
export function metaChanges(payload: Dict): Dict[] {
  return list(get(payload, "entry")).flatMap((entry) =>
    list(get(dict(entry), "changes")).map((change) => dict(get(dict(change), "value"))),
  );
}
