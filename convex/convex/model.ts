// The index lookups every module makes, written once (schema.ts names the
// indexes). Plain functions over a database reader, not Convex functions.
import type { Id } from "./_generated/dataModel";
import type { DatabaseReader } from "./_generated/server";

/** The workspace with this UUID (`id`, not the document id), or null. */
export function workspaceByUuid(db: DatabaseReader, id: string) {
  return db
    .query("workspaces")
    .withIndex("by_uuid", (q) => q.eq("id", id))
    .first();
}

/** Workspaces holding this Kapso phone number id (at most one, unless the data are wrong). */
export function workspacesByKapsoPhoneId(db: DatabaseReader, kapsoPhoneId: string) {
  return db.query("workspaces").withIndex("by_kapso_phone_id", (q) => q.eq("kapso_phone_id", kapsoPhoneId));
}

/** The contact of this workspace with this E.164 phone, or null. */
export function contactByPhone(db: DatabaseReader, workspace_id: string, phone: string) {
  return db
    .query("contacts")
    .withIndex("by_workspace_phone", (q) => q.eq("workspace_id", workspace_id).eq("phone", phone))
    .first();
}

/** The contact of this workspace with this BSUID (docs/webhook.md §7.1), or null. */
export function contactByBsuid(db: DatabaseReader, workspace_id: string, bsuid: string) {
  return db
    .query("contacts")
    .withIndex("by_workspace_bsuid", (q) => q.eq("workspace_id", workspace_id).eq("bsuid", bsuid))
    .first();
}

/** The contact a lookup or an event names: by BSUID first, else by phone (docs/contract.md §4a). */
export async function contactByIdentity(
  db: DatabaseReader,
  workspace_id: string,
  identity: { bsuid: string | null; phone: string | null },
) {
  const byBsuid = identity.bsuid === null ? null : await contactByBsuid(db, workspace_id, identity.bsuid);
  if (byBsuid !== null || identity.phone === null) return byBsuid;
  return await contactByPhone(db, workspace_id, identity.phone);
}

/** The contact's conversation (one per contact), or null. */
export function conversationOfContact(db: DatabaseReader, contact_id: Id<"contacts">) {
  return conversationsOfContact(db, contact_id).first();
}

/** The contact's conversations: one, unless the data are wrong (the follower then keeps the first). */
export function conversationsOfContact(db: DatabaseReader, contact_id: Id<"contacts">) {
  return db.query("conversations").withIndex("by_contact", (q) => q.eq("contact_id", contact_id));
}

/**
 * A contact's notes, oldest first; `.order("desc")` for newest first (equal
 * created_at falls back to _creationTime, the implicit last index key, so the
 * later insert comes first).
 */
export function notesOfContact(db: DatabaseReader, contact_id: Id<"contacts">) {
  return db.query("contactNotes").withIndex("by_contact_created", (q) => q.eq("contact_id", contact_id));
}

/** A conversation's messages, oldest first; `.order("desc")` for newest first (same tie-break as notes). */
export function messagesOfConversation(db: DatabaseReader, conversation_id: Id<"conversations">) {
  return db
    .query("messages")
    .withIndex("by_conversation_created", (q) => q.eq("conversation_id", conversation_id));
}

/** The message of this workspace with this Kapso message id, or null. */
export function messageByKapsoId(db: DatabaseReader, workspace_id: string, kapso_message_id: string) {
  return db
    .query("messages")
    .withIndex("by_workspace_kapso_message_id", (q) =>
      q.eq("workspace_id", workspace_id).eq("kapso_message_id", kapso_message_id),
    )
    .first();
}

/** Key rows with this hex SHA-256 (revoked ones too). */
export function keysByHash(db: DatabaseReader, key_hash: string) {
  return db.query("apiKeys").withIndex("by_key_hash", (q) => q.eq("key_hash", key_hash));
}

/** Some non-revoked key, or null. */
export function anyActiveKey(db: DatabaseReader) {
  return db
    .query("apiKeys")
    .withIndex("by_revoked_at", (q) => q.eq("revoked_at", null))
    .first();
}

// ---------------------------------------------------------------------------
// The follower's rows (docs/contract.md §14)

/** Contacts the follower wrote for this PostgreSQL contact id (one, unless the data are wrong). */
export function contactsBySourceId(db: DatabaseReader, source_id: string) {
  return db.query("contacts").withIndex("by_source_id", (q) => q.eq("source_id", source_id));
}

/** Key rows with this PostgreSQL id (one, unless the data are wrong). */
export function keysByUuid(db: DatabaseReader, id: string) {
  return db.query("apiKeys").withIndex("by_uuid", (q) => q.eq("id", id));
}

/** The tombstone of a deleted contact, workspace or key, or null. */
export function tombstoneOf(db: DatabaseReader, kind: "contact" | "workspace" | "key", source_id: string) {
  return db
    .query("followTombstones")
    .withIndex("by_kind_source_id", (q) => q.eq("kind", kind).eq("source_id", source_id))
    .first();
}

/** The follow state's document (at most one), or null before any was set. */
export function followStateDoc(db: DatabaseReader) {
  return db.query("followState").first();
}
