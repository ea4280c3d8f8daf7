// Convex schema mirroring the PostgreSQL tables of SPEC section 2.
// Field names are the PostgreSQL column names; timestamps are numbers of
// milliseconds since the Unix epoch (UTC).
import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";

const nullableString = v.union(v.string(), v.null());
const nullableNumber = v.union(v.number(), v.null());

// Field sets the import's argument validators reuse (importData.ts).
export const workspaceFields = {
  // UUID string (not a Convex document id), shared with PostgreSQL.
  id: v.string(),
  name: v.string(),
  kapso_phone_id: nullableString,
  created_at: v.number(),
};

export const contactFields = {
  workspace_id: v.string(),
  // E.164, e.g. "+6281234567890".
  phone: v.string(),
  name: nullableString,
  kapso_name: nullableString,
  email: nullableString,
  lead_status: v.string(),
  lead_score: v.number(),
  tags: v.array(v.string()),
  created_at: v.number(),
  updated_at: v.number(),
};

/** A message's own fields; the table adds where it belongs. */
export const messageFields = {
  direction: v.string(),
  content: nullableString,
  message_type: v.string(),
  kapso_message_id: nullableString,
  status: nullableString,
  created_at: v.number(),
};

export default defineSchema({
  workspaces: defineTable(workspaceFields)
    // "by_id" is a name the Convex backend reserves, hence "by_uuid".
    .index("by_uuid", ["id"])
    .index("by_kapso_phone_id", ["kapso_phone_id"]),

  contacts: defineTable(contactFields).index("by_workspace_phone", ["workspace_id", "phone"]),

  conversations: defineTable({
    workspace_id: v.string(),
    contact_id: v.id("contacts"),
    status: v.string(),
    unread_count: v.number(),
    last_message_at: nullableNumber,
    last_message_preview: nullableString,
    created_at: v.number(),
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
    content: v.string(),
    created_at: v.number(),
  })
    .index("by_contact_created", ["contact_id", "created_at"])
    .index("by_workspace", ["workspace_id"]),

  // Keys per workspace (SPEC section 13), as PostgreSQL's api_keys: the hex SHA-256 of each
  // key, never the key. Written only by `keys create`/`keys revoke`/`sync-convex` (POST /http/keys).
  apiKeys: defineTable({
    // api_keys.id in PostgreSQL (a UUID string).
    id: v.string(),
    workspace_id: v.string(),
    key_hash: v.string(),
    prefix: v.string(),
    name: v.string(),
    revoked_at: nullableNumber,
  })
    .index("by_key_hash", ["key_hash"])
    .index("by_revoked_at", ["revoked_at"]),
});
