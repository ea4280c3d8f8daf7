// Kapso events as read from a delivery (docs/webhook.md §2, §7): raw values, not yet
// judged (judge.ts judges them). Types, and the one reader both shapes share: the
// identity change a `system` message is (§7.6).
import { RULES, type IgnoreReason } from "./contract";
import { messageKind } from "./content";
import { dict, first, get, text, type Dict } from "./pyCompat";

/** Who an event names (§7.2), as read: raw strings, the username already cleaned. */
export type Identity = {
  phone: string | null;
  bsuid: string | null;
  parent_bsuid: string | null;
  username: string | null;
};

/** A failure's error code and title (§7.7), in their stored form. */
export type FailureError = { code: string | null; title: string | null };

export const NO_ERROR: FailureError = { code: null, title: null };

export type ReadMessage = {
  kind: "message";
  phone_number_id: string | null;
  identity: Identity;
  /** Cleaned; null when blank. */
  contact_name: string | null;
  kapso_message_id: string | null;
  timestamp: unknown;
  /** null: absent, read as "text". */
  message_type: string | null;
  direction: string;
  /** Cleaned. */
  content: string;
  status: string;
  /** Set only on a message whose status is `failed`. */
  error: FailureError;
};

export type ReadStatus = {
  kind: "status";
  phone_number_id: string | null;
  kapso_message_id: string | null;
  /** v2: from the event name; Meta: as sent, checked last (after the message is found). */
  status: string | null;
  error: FailureError;
  /** For `failed`: the outbound message it becomes when no message has its id (§7.7). */
  unseen: ReadMessage | null;
};

/** A `system` message moving a phone or a BSUID to a new value (§7.6). */
export type ReadIdentityChange = {
  kind: "identity";
  phone_number_id: string | null;
  /** The old identity. */
  identity: Identity;
  kapso_message_id: string | null;
  timestamp: unknown;
  message_type: string | null;
  field: "phone" | "bsuid";
  new_value: string | null;
};

/** whatsapp.conversation.created / .ended / .inactive (§7.7). */
export type ReadConversationEvent = {
  kind: "conversation";
  phone_number_id: string | null;
  identity: Identity;
  /** The status it sets. */
  status: string;
  /** ISO 8601, raw. */
  time: string | null;
};

export type Ignored = { kind: "ignored"; reason: IgnoreReason };

export type ReadEvent = ReadMessage | ReadStatus | ReadIdentityChange | ReadConversationEvent | Ignored;

/** A `system` message of a type in identity_changes (§7.6), else null. */
export function identityChange(
  phoneNumberId: string | null,
  identity: Identity,
  message: Dict,
): ReadIdentityChange | null {
  if (messageKind(message) !== "system") return null;
  const system = dict(get(message, "system"));
  const type = get(system, "type");
  const field = typeof type === "string" ? RULES.identityChanges.get(type) : undefined;
  if (field !== "phone" && field !== "bsuid") return null;
  return {
    kind: "identity",
    phone_number_id: phoneNumberId,
    identity,
    kapso_message_id: text(get(message, "id")),
    timestamp: get(message, "timestamp"),
    message_type: first(get(message, "type"), get(message, "message_type")),
    field,
    new_value: text(get(system, field === "phone" ? "wa_id" : "user_id")),
  };
}
