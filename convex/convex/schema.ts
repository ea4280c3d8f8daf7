// Convex schema mirroring the PostgreSQL tables of docs/contract.md §2.
// Field names are the PostgreSQL column names; timestamps are numbers of
// milliseconds since the Unix epoch (UTC). The row types below are derived
// from these validators: no shape is written twice.
import { defineSchema, defineTable } from "convex/server";
import { v, type ObjectType, type Validator } from "convex/values";

/** `x` or null: a nullable column. */
export function nullable<T, F extends string>(x: Validator<T, "required", F>) {
  return v.union(x, v.null());
}

export const workspaceFields = {
  // UUID string (not a Convex document id), shared with PostgreSQL.
  id: v.string(),
  name: v.string(),
  created_at: v.number(),
  kapso_phone_id: nullable(v.string()),
};

export const contactFields = {
  workspace_id: v.string(),
  // E.164, e.g. "+6281234567890"; null for a person known only by a BSUID (docs/contract.md §4a).
  phone: nullable(v.string()),
  // Business-scoped user id, its parent and the WhatsApp username (docs/webhook.md §7.1).
  // Optional as well as nullable: documents written before these fields existed
  // still validate on a live deployment. Readers treat undefined as null.
  bsuid: v.optional(nullable(v.string())),
  parent_bsuid: v.optional(nullable(v.string())),
  username: v.optional(nullable(v.string())),
  name: nullable(v.string()),
  kapso_name: nullable(v.string()),
  email: nullable(v.string()),
  lead_status: v.string(),
  lead_score: v.number(),
  tags: v.array(v.string()),
  created_at: v.number(),
  updated_at: v.number(),
};

/** A conversation's own fields; the table adds where it belongs. */
export const conversationFields = {
  status: v.string(),
  unread_count: v.number(),
  last_message_at: nullable(v.number()),
  last_message_preview: nullable(v.string()),
  created_at: v.number(),
  // Time of the conversation event that set `status` (docs/webhook.md §7.7): events
  // move the status forward by this time only. Optional for older documents.
  status_at: v.optional(nullable(v.number())),
};

/** A message's own fields; the table adds where it belongs. */
export const messageFields = {
  direction: v.string(),
  content: nullable(v.string()),
  message_type: v.string(),
  kapso_message_id: nullable(v.string()),
  created_at: v.number(),
  status: nullable(v.string()),
  // A failure's error code and title (docs/webhook.md §7.7). Optional for older documents.
  error_code: v.optional(nullable(v.string())),
  error_title: v.optional(nullable(v.string())),
};

/** A note's own fields; the table adds where it belongs. */
export const noteFields = {
  content: v.string(),
  created_at: v.number(),
};

// Keys per workspace (docs/contract.md §13), as PostgreSQL's api_keys: the hex SHA-256 of each
// key, never the key. Written only by `keys create`/`keys revoke`/`sync-convex` (POST /http/keys).
export const apiKeyFields = {
  // api_keys.id in PostgreSQL (a UUID string).
  id: v.string(),
  workspace_id: v.string(),
  key_hash: v.string(),
  prefix: v.string(),
  name: v.string(),
  revoked_at: nullable(v.number()),
};

/**
 * What the follower stamps on the rows it writes (docs/contract.md §14): the copy (`sync_epoch`)
 * and the change (`sync_version`) that wrote them. Optional: documents written by the import or
 * the webhook have neither, and stay valid. Not part of the row types above, so no other writer
 * carries them.
 */
export const syncFields = {
  sync_version: v.optional(v.number()),
  sync_epoch: v.optional(v.string()),
};

/** The rows the follower deletes by PostgreSQL id remember the newest deletion (§14). */
export const followKind = v.union(v.literal("contact"), v.literal("workspace"), v.literal("key"));

export type Workspace = ObjectType<typeof workspaceFields>;
export type Contact = ObjectType<typeof contactFields>;
export type Note = ObjectType<typeof noteFields>;
export type Conversation = ObjectType<typeof conversationFields>;
export type Message = ObjectType<typeof messageFields>;
export type ApiKey = ObjectType<typeof apiKeyFields>;

export default defineSchema({
  workspaces: defineTable({ ...workspaceFields, ...syncFields })
    // "by_id" is a name the Convex backend reserves, hence "by_uuid".
    .index("by_uuid", ["id"])
    .index("by_kapso_phone_id", ["kapso_phone_id"])
    .index("by_sync_epoch", ["sync_epoch"]),

  contacts: defineTable({
    ...contactFields,
    // contacts.id in PostgreSQL, for the rows the follower writes (§14).
    source_id: v.optional(v.string()),
    ...syncFields,
  })
    .index("by_workspace_phone", ["workspace_id", "phone"])
    .index("by_workspace_bsuid", ["workspace_id", "bsuid"])
    .index("by_source_id", ["source_id"])
    .index("by_sync_epoch", ["sync_epoch"]),

  conversations: defineTable({
    workspace_id: v.string(),
    contact_id: v.id("contacts"),
    ...conversationFields,
  })
    .index("by_contact", ["contact_id"])
    // For counting a workspace's documents (counts.ts, sync-convex's verification).
    .index("by_workspace", ["workspace_id"]),

  messages: defineTable({
    workspace_id: v.string(),
    conversation_id: v.id("conversations"),
    ...messageFields,
  })
    .index("by_conversation_created", ["conversation_id", "created_at"])
    .index("by_workspace_kapso_message_id", ["workspace_id", "kapso_message_id"]),

  contactNotes: defineTable({
    workspace_id: v.string(),
    contact_id: v.id("contacts"),
    ...noteFields,
  })
    .index("by_contact_created", ["contact_id", "created_at"])
    .index("by_workspace", ["workspace_id"]),

  apiKeys: defineTable({ ...apiKeyFields, ...syncFields })
    .index("by_key_hash", ["key_hash"])
    .index("by_revoked_at", ["revoked_at"])
    // The follower writes keys by their PostgreSQL id (§14).
    .index("by_uuid", ["id"])
    .index("by_sync_epoch", ["sync_epoch"]),

  // The newest deletion of a row the follower deletes, kept ten minutes (docs/contract.md §14):
  // an older change of that row arriving late is stale instead of bringing it back.
  followTombstones: defineTable({
    kind: followKind,
    source_id: v.string(),
    version: v.number(),
    deleted_at: v.number(),
  })
    .index("by_kind_source_id", ["kind", "source_id"])
    .index("by_deleted_at", ["deleted_at"]),

  // One document at most: which copy of PostgreSQL this deployment holds (§14). None: no copy.
  followState: defineTable({
    epoch: nullable(v.string()),
    backfilled: v.boolean(),
  }),
});
