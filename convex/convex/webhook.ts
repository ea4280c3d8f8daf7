// Storing Kapso webhook events (SPEC section 7). Internal: reachable only
// through POST /webhook/kapso in http.ts, which parses the body (kapso.ts)
// and passes the plain events here. One call is one Convex transaction, so
// everything from one request commits together, or nothing does. Mirrors
// services/pg_ingest.py.
import { v, type Infer } from "convex/values";
import type { Id } from "./_generated/dataModel";
import { internalMutation, type MutationCtx } from "./_generated/server";
import { phoneParam } from "./httpUtil";

const nullableString = v.union(v.string(), v.null());

export const webhookEvent = v.union(
  v.object({
    kind: v.literal("message"),
    phone_number_id: nullableString,
    phone: nullableString,
    contact_name: nullableString,
    kapso_message_id: v.string(),
    direction: v.string(),
    content: v.string(),
    message_type: v.string(),
    status: v.string(),
    created_at: v.number(),
  }),
  v.object({
    kind: v.literal("status"),
    phone_number_id: nullableString,
    kapso_message_id: v.string(),
    status: v.string(),
  }),
  v.object({ kind: v.literal("ignored") }),
);

export type WebhookEvent = Infer<typeof webhookEvent>;
type MessageEvent = Extract<WebhookEvent, { kind: "message" }>;
type StatusEvent = Extract<WebhookEvent, { kind: "status" }>;

export type IngestCounts = { stored: number; duplicates: number; ignored: number };

/** Largest message time the parser produces (Unix seconds below 1e11, rounded to ms). */
const MAX_TIME_MS = 1e14;

/** Get or create the contact and its one conversation; the conversation id. */
async function contactConversation(
  ctx: MutationCtx,
  workspace_id: string,
  phone: string,
  event: MessageEvent,
): Promise<Id<"conversations">> {
  const at = event.created_at;
  const existing = await ctx.db
    .query("contacts")
    .withIndex("by_workspace_phone", (q) => q.eq("workspace_id", workspace_id).eq("phone", phone))
    .first();
  let contact_id: Id<"contacts">;
  if (existing === null) {
    contact_id = await ctx.db.insert("contacts", {
      workspace_id,
      phone,
      name: null,
      kapso_name: event.contact_name,
      email: null,
      lead_status: "new",
      lead_score: 0,
      tags: [],
      created_at: at,
      updated_at: at,
    });
  } else {
    contact_id = existing._id;
    // Like PostgreSQL's COALESCE(EXCLUDED.kapso_name, kapso_name); updated_at stays.
    if (event.contact_name !== null && event.contact_name !== existing.kapso_name) {
      await ctx.db.patch("contacts", contact_id, { kapso_name: event.contact_name });
    }
  }
  const conversation = await ctx.db
    .query("conversations")
    .withIndex("by_contact", (q) => q.eq("contact_id", contact_id))
    .first();
  if (conversation !== null) return conversation._id;
  return await ctx.db.insert("conversations", {
    workspace_id,
    contact_id,
    status: "open",
    unread_count: 0,
    last_message_at: null,
    last_message_preview: null,
    created_at: at,
  });
}

async function storeMessage(
  ctx: MutationCtx,
  workspace_id: string,
  event: MessageEvent,
  counts: IngestCounts,
): Promise<void> {
  const phone = phoneParam(event.phone ?? "");
  if (phone === null) {
    counts.ignored += 1;
    return;
  }
  const at = event.created_at;
  if (!Number.isInteger(at) || at < 0 || at > MAX_TIME_MS) {
    // The parser never produces this; throwing rolls back the whole request.
    throw new Error("webhook event with an invalid message time");
  }
  // The contact and conversation come first, as in PostgreSQL, also when the
  // message turns out to be a duplicate.
  const conversation_id = await contactConversation(ctx, workspace_id, phone, event);
  const duplicate = await ctx.db
    .query("messages")
    .withIndex("by_workspace_kapso_message_id", (q) =>
      q.eq("workspace_id", workspace_id).eq("kapso_message_id", event.kapso_message_id),
    )
    .first();
  if (duplicate !== null) {
    counts.duplicates += 1;
    return;
  }
  await ctx.db.insert("messages", {
    workspace_id,
    conversation_id,
    direction: event.direction,
    content: event.content,
    message_type: event.message_type,
    kapso_message_id: event.kapso_message_id,
    status: event.status,
    created_at: at,
  });
  const conversation = await ctx.db.get("conversations", conversation_id);
  if (conversation === null) throw new Error("conversation vanished during the webhook");
  const last = conversation.last_message_at;
  // An equal time moves the preview too: the later insert is the newer message.
  const newest = last === null || at >= last;
  await ctx.db.patch("conversations", conversation_id, {
    last_message_preview: newest ? event.content : conversation.last_message_preview,
    last_message_at: newest ? at : last,
    unread_count: conversation.unread_count + (event.direction === "inbound" ? 1 : 0),
  });
  counts.stored += 1;
}

async function storeStatus(
  ctx: MutationCtx,
  workspace_id: string,
  event: StatusEvent,
  counts: IngestCounts,
): Promise<void> {
  const message = await ctx.db
    .query("messages")
    .withIndex("by_workspace_kapso_message_id", (q) =>
      q.eq("workspace_id", workspace_id).eq("kapso_message_id", event.kapso_message_id),
    )
    .first();
  if (message === null) {
    counts.ignored += 1;
  } else if (message.status === event.status) {
    counts.duplicates += 1;
  } else {
    await ctx.db.patch("messages", message._id, { status: event.status });
    counts.stored += 1;
  }
}

/** Stores the events of one webhook request, in order, in this one transaction. */
export const ingest = internalMutation({
  args: { events: v.array(webhookEvent) },
  handler: async (ctx, { events }): Promise<IngestCounts> => {
    const counts: IngestCounts = { stored: 0, duplicates: 0, ignored: 0 };
    // kapso_phone_id -> workspace id, read once per request.
    const workspaces = new Map<string, string | null>();
    const workspaceOf = async (phoneNumberId: string | null): Promise<string | null> => {
      if (phoneNumberId === null) return null;
      if (!workspaces.has(phoneNumberId)) {
        const row = await ctx.db
          .query("workspaces")
          .withIndex("by_kapso_phone_id", (q) => q.eq("kapso_phone_id", phoneNumberId))
          .first();
        workspaces.set(phoneNumberId, row?.id ?? null);
      }
      return workspaces.get(phoneNumberId) ?? null;
    };

    for (const event of events) {
      const workspace_id = event.kind === "ignored" ? null : await workspaceOf(event.phone_number_id);
      if (workspace_id === null) counts.ignored += 1;
      else if (event.kind === "message") await storeMessage(ctx, workspace_id, event, counts);
      else if (event.kind === "status") await storeStatus(ctx, workspace_id, event, counts);
    }
    return counts;
  },
});
