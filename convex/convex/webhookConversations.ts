// The conversations one ingest call touches (docs/webhook.md §4, §7.5, §7.7). Each is
// read once; what messages change (last message, preview, unread count) is written
// once at the end, so a large batch stays far below Convex's per-transaction write
// limits. Plain code over a MutationCtx, used by webhook.ts and webhookContacts.ts.
import type { Doc, Id } from "./_generated/dataModel";
import type { MutationCtx } from "./_generated/server";
import { conversationOfContact, messagesOfConversation } from "./model";

type Conversation = Doc<"conversations">;

export class Conversations {
  /** contact -> its conversation (a private copy holding the pending changes), or null: none. */
  private readonly byContact = new Map<Id<"contacts">, Conversation | null>();
  private readonly dirty = new Set<Conversation>();

  constructor(private readonly ctx: MutationCtx) {}

  /** The contact's conversation, or null. */
  async of(contact_id: Id<"contacts">): Promise<Conversation | null> {
    if (!this.byContact.has(contact_id)) {
      const stored = await conversationOfContact(this.ctx.db, contact_id);
      // A copy: the pending changes are this call's until flush().
      this.byContact.set(contact_id, stored === null ? null : { ...stored });
    }
    return this.byContact.get(contact_id) ?? null;
  }

  /** The contact's conversation, created with its first message (`at`) when it has none (§7.4). */
  async ensure(workspace_id: string, contact_id: Id<"contacts">, at: number): Promise<Conversation> {
    const existing = await this.of(contact_id);
    if (existing !== null) return existing;
    const fields = {
      workspace_id,
      contact_id,
      status: "open",
      unread_count: 0,
      last_message_at: null,
      last_message_preview: null,
      created_at: at,
      status_at: null,
    };
    const _id = await this.ctx.db.insert("conversations", fields);
    const created = { _id, _creationTime: 0, ...fields };
    this.byContact.set(contact_id, created);
    return created;
  }

  /** A newly stored message: the newest time and its preview (an equal time: the later insert), unread. */
  addMessage(conversation: Conversation, message: { created_at: number; content: string; direction: string }): void {
    const last = conversation.last_message_at;
    if (last === null || message.created_at >= last) {
      conversation.last_message_at = message.created_at;
      conversation.last_message_preview = message.content;
    }
    if (message.direction === "inbound") conversation.unread_count += 1;
    this.dirty.add(conversation);
  }

  /** A conversation event's status and time (§7.7), written at once (rare, and small). */
  async setStatus(conversation: Conversation, status: string, at: number): Promise<void> {
    conversation.status = status;
    conversation.status_at = at;
    await this.ctx.db.patch("conversations", conversation._id, { status, status_at: at });
  }

  /**
   * Two contacts became one (§7.5): the merged contact's conversation, whole, becomes
   * the survivor's when the survivor has none; else its messages move to the
   * survivor's, which takes the later last message, the summed unread count and the
   * earlier creation time, and keeps its own status.
   */
  async merge(survivor: Id<"contacts">, merged: Id<"contacts">): Promise<void> {
    const kept = await this.of(survivor);
    const gone = await this.of(merged);
    this.byContact.set(merged, null);
    if (gone === null) return;
    if (kept === null) {
      gone.contact_id = survivor;
      this.byContact.set(survivor, gone);
      await this.ctx.db.patch("conversations", gone._id, { contact_id: survivor });
      return;
    }
    for (const message of await messagesOfConversation(this.ctx.db, gone._id).collect()) {
      await this.ctx.db.patch("messages", message._id, { conversation_id: kept._id });
    }
    const goneIsLater =
      gone.last_message_at !== null && (kept.last_message_at === null || gone.last_message_at > kept.last_message_at);
    if (goneIsLater) {
      kept.last_message_at = gone.last_message_at;
      kept.last_message_preview = gone.last_message_preview;
    }
    kept.unread_count += gone.unread_count;
    kept.created_at = Math.min(kept.created_at, gone.created_at);
    this.dirty.add(kept);
    this.dirty.delete(gone);
    await this.ctx.db.delete("conversations", gone._id);
  }

  /** Writes every pending change, once per conversation. */
  async flush(): Promise<void> {
    for (const c of this.dirty) {
      await this.ctx.db.patch("conversations", c._id, {
        last_message_at: c.last_message_at,
        last_message_preview: c.last_message_preview,
        unread_count: c.unread_count,
        created_at: c.created_at,
      });
    }
    this.dirty.clear();
  }
}
