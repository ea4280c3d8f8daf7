// The rules both backends share, read from the repository's contract/ files
// (Python reads the same files): nothing here is written in TypeScript.
import formatsJson from "../../contract/formats.json";
import limitsJson from "../../contract/limits.json";
import rulesJson from "../../contract/webhook_rules.json";

export const LIMITS = {
  /** Notes in a lookup answer, newest first (docs/contract.md §3). */
  notes: limitsJson.notes_limit,
  /** Messages summarised in a lookup answer, newest first (docs/contract.md §3, §5). */
  messages: limitsJson.messages_limit,
  /** Largest request body read, in bytes (docs/contract.md §7). */
  maxBodyBytes: limitsJson.max_body_bytes,
  /** Most UTF-8 bytes of a stored text: every row fits one Convex document (docs/webhook.md §4). */
  maxTextBytes: limitsJson.max_text_bytes,
  /** Key rows Kontak sends per POST /http/keys (docs/contract.md §13). */
  keyBatchSize: limitsJson.key_batch_size,
} as const;

/** The HTTP paths of the Convex deployment (docs/contract.md §8). */
export const PATHS = limitsJson.convex_paths;

// ---------------------------------------------------------------------------
// contract/formats.json

/** A credential a route may accept (docs/contract.md §3, §7, §13). */
export type Credential = "signature" | "crm_api_key" | "workspace_key";

const CREDENTIALS: readonly string[] = ["signature", "crm_api_key", "workspace_key"] satisfies Credential[];

function credentialOrder(kind: string, order: string[]): readonly Credential[] {
  const unknown = order.filter((name) => !CREDENTIALS.includes(name));
  if (unknown.length > 0) throw new Error(`contract/formats.json auth_order.${kind}: unknown ${unknown.join(", ")}`);
  return order as Credential[];
}

export const FORMATS = {
  /** A canonical 8-4-4-4-12 UUID, in any case. */
  uuid: new RegExp(formatsJson.uuid),
  /** A stored phone number (docs/contract.md §4). */
  e164: new RegExp(formatsJson.e164),
  /** A workspace key as Kontak issues it (docs/contract.md §13): anything else is refused without a query. */
  apiKey: new RegExp(formatsJson.api_key),
  /** Which credential each kind of route tries first: the first that is valid decides. */
  authOrder: {
    lookup: credentialOrder("lookup", formatsJson.auth_order.lookup),
    webhook: credentialOrder("webhook", formatsJson.auth_order.webhook),
  },
} as const;

/** Is `value` a canonical UUID (workspace ids: docs/contract.md §2)? */
export function isUuid(value: string): boolean {
  return FORMATS.uuid.test(value);
}

// ---------------------------------------------------------------------------
// contract/webhook_rules.json (docs/webhook.md)

export const RULES = {
  maxIdLength: rulesJson.max_id_length,
  maxTypeLength: rulesJson.max_type_length,
  /** Longest subscription challenge echoed (GET /webhook/kapso). */
  maxChallengeLength: rulesJson.max_challenge_length,
  minTimestampSeconds: rulesJson.min_timestamp_seconds,
  maxFutureSeconds: rulesJson.max_future_seconds,
  summaryPrefixChars: rulesJson.summary_prefix_chars,
  /** Arrays and objects nested deeper are refused as invalid JSON; the body's object is depth 1 (§1.1). */
  jsonMaxDepth: rulesJson.json_max_depth,
  /** Statuses a Meta `statuses[]` entry may carry (§3 invalid_status). */
  metaStatuses: new Set<string>(rulesJson.meta_statuses),
  knownMessageStatuses: new Set<string>(rulesJson.known_message_statuses),
  statusRank: new Map<string, number>(Object.entries(rulesJson.status_rank)),
  failedAllowedBelowRank: rulesJson.failed_allowed_below_rank,
  messageEvents: new Map<string, string>(Object.entries(rulesJson.message_events)),
  statusEvents: new Map<string, string>(Object.entries(rulesJson.status_events)),
  ignoreReasons: new Set<string>(rulesJson.ignore_reasons),
  bsuidPattern: new RegExp(rulesJson.bsuid_pattern),
  parentBsuidPattern: new RegExp(rulesJson.parent_bsuid_pattern),
  maxErrorTitleLength: rulesJson.max_error_title_length,
  /** Conversation event name -> the status it sets (§7.7). */
  conversationEvents: new Map<string, string>(Object.entries(rulesJson.conversation_events)),
  /** `system.type` -> the identifier it changes (§7.6). */
  identityChanges: new Map<string, string>(Object.entries(rulesJson.identity_changes)),
  /** More events in one delivery: 413 before any is read (§1). */
  maxEventsPerDelivery: rulesJson.max_events_per_delivery,
} as const;

/**
 * Why an event was ignored. Spelled out here so the compiler checks every use; the
 * list must be contract/webhook_rules.json's `ignore_reasons` exactly, which is
 * checked as this module loads (and by tests/contract.test.ts).
 */
export const IGNORE_REASONS = [
  "no_message",
  "unknown_event",
  "unknown_workspace",
  "invalid_phone_number_id",
  "invalid_message_id",
  "invalid_timestamp",
  "invalid_type",
  "invalid_phone",
  "invalid_status",
  "unknown_message",
  "workspace_not_allowed",
  "invalid_bsuid",
  "unknown_contact",
] as const;

export type IgnoreReason = (typeof IGNORE_REASONS)[number];

if (JSON.stringify(IGNORE_REASONS) !== JSON.stringify(rulesJson.ignore_reasons)) {
  throw new Error("contract.ts IGNORE_REASONS differ from contract/webhook_rules.json ignore_reasons");
}
