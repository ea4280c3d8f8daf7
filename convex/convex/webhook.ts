// Storing Kapso webhook events (docs/webhook.md §3-§5). Internal: reachable
// only through POST /webhook/kapso (handlers/webhook.ts), which reads the body and makes
// every check that needs no database (kapso.ts prepareEvent); this mutation
// makes the workspace and stored-message checks and stores. One call is one
// Convex transaction (serializable, retried by Convex on conflicts), so
// everything from one request commits together, or nothing does. Mirrors
// services/postgres/ingest.py.
import { v, type Infer } from "convex/values";
import type { Doc, Id } from "./_generated/dataModel";
import { internalMutation, type MutationCtx } from "./_generated/server";
import { RULES, type IgnoreReason } from "./kapso";
import { contactByPhone, conversationOfContact, messageByKapsoId, workspacesByKapsoPhoneId } from "./model";
import { nullable } from "./schema";

// Events as the action sends them (kapso.ts PreparedEvent, minus those the
// action settles alone). A message's contact name is an index into the
// call's `names` table: a Meta delivery may attach one long profile name to
// every message of its sender, and the arguments must stay small.
export const webhookEvent = v.union(
  v.object({ kind: v.literal("rejected"), phone_number_id: v.string(), reason: v.string() }),
  v.object({
    kind: v.literal("message"),
    phone_number_id: v.string(),
    phone: v.string(),
    contact_name: nullable(v.number()),
    kapso_message_id: v.string(),
    direction: v.string(),
    content: v.string(),
    message_type: v.string(),
    status: v.string(),
    created_at: v.number(),
  }),
  v.object({
    kind: v.literal("status"),
    phone_number_id: v.string(),
    kapso_message_id: v.string(),
    status: nullable(v.string()),
  }),
);

export type WebhookEvent = Infer<typeof webhookEvent>;
type MessageEvent = Omit<Extract<WebhookEvent, { kind: "message" }>, "contact_name"> & { contact_name: string | null };
type StatusEvent = Extract<WebhookEvent, { kind: "status" }>;
type Valid<E> = E & { workspace_id: string };

/**
 * One outcome per event, in the order given: "stored", "duplicate", or the
 * reason it was ignored. The action counts them and logs the reasons after
 * the commit (a mutation Convex retries would log twice).
 */
export type Outcome = string;

/**
 * §4: forward only; `failed` only below `failed_allowed_below_rank`; nothing
 * leaves `failed`. A stored status outside the rank table (`received`, none)
 * ranks below `pending`. Same as services/postgres/ingest.py `status_moves`.
 */
export function statusMoves(current: string | null, next: string): boolean {
  if (current === "failed") return false;
  const rank = current === null ? -1 : (RULES.statusRank.get(current) ?? -1);
  if (next === "failed") return rank < RULES.failedAllowedBelowRank;
  return (RULES.statusRank.get(next) ?? -1) > rank;
}

/** What a delivery says about one (workspace, phone): its first time and last name (§4). */
type ContactPlan = { workspace_id: string; phone: string; first_at: number; name: string | null };

/** A conversation's fields the messages of this delivery change, written once at the end. */
type ConversationState = Pick<Doc<"conversations">, "last_message_at" | "last_message_preview" | "unread_count"> & {
  _id: Id<"conversations">;
};

/** Create or update every contact of the delivery, with its conversation; key -> conversation. */
async function takeContacts(
  ctx: MutationCtx,
  messages: Valid<MessageEvent>[],
): Promise<Map<string, ConversationState>> {
  const plans = new Map<string, ContactPlan>();
  for (const m of messages) {
    const key = JSON.stringify([m.workspace_id, m.phone]);
    let plan = plans.get(key);
    if (plan === undefined) {
      plan = { workspace_id: m.workspace_id, phone: m.phone, first_at: m.created_at, name: null };
      plans.set(key, plan);
    }
    plan.name = m.contact_name ?? plan.name;
  }
  const conversations = new Map<string, ConversationState>();
  // The canonical order PostgreSQL takes its locks in; here it only makes the
  // creation order (and so every _creationTime tie-break) the same.
  const ordered = [...plans.entries()].sort(([, a], [, b]) =>
    a.workspace_id !== b.workspace_id ? (a.workspace_id < b.workspace_id ? -1 : 1) : a.phone < b.phone ? -1 : a.phone > b.phone ? 1 : 0,
  );
  for (const [key, plan] of ordered) {
    const existing = await contactByPhone(ctx.db, plan.workspace_id, plan.phone);
    let contact_id: Id<"contacts">;
    if (existing === null) {
      contact_id = await ctx.db.insert("contacts", {
        workspace_id: plan.workspace_id,
        phone: plan.phone,
        name: null,
        kapso_name: plan.name,
        email: null,
        lead_status: "new",
        lead_score: 0,
        tags: [],
        created_at: plan.first_at,
        updated_at: plan.first_at,
      });
    } else {
      contact_id = existing._id;
      // Like PostgreSQL's COALESCE(EXCLUDED.kapso_name, kapso_name); updated_at stays.
      if (plan.name !== null && plan.name !== existing.kapso_name) {
        await ctx.db.patch("contacts", contact_id, { kapso_name: plan.name });
      }
    }
    const conversation = await conversationOfContact(ctx.db, contact_id);
    if (conversation !== null) {
      const { _id, last_message_at, last_message_preview, unread_count } = conversation;
      conversations.set(key, { _id, last_message_at, last_message_preview, unread_count });
      continue;
    }
    const fresh = { last_message_at: null, last_message_preview: null, unread_count: 0 };
    const _id = await ctx.db.insert("conversations", {
      workspace_id: plan.workspace_id,
      contact_id,
      status: "open",
      ...fresh,
      created_at: plan.first_at,
    });
    conversations.set(key, { _id, ...fresh });
  }
  return conversations;
}

/** Stores events of one webhook request, in payload order, in this one transaction. */
export const ingest = internalMutation({
  // allowed_workspace: set when a workspace key authenticated the delivery (docs/contract.md §13).
  args: { events: v.array(webhookEvent), names: v.array(v.string()), allowed_workspace: v.optional(v.string()) },
  handler: async (ctx, { events, names, allowed_workspace }): Promise<Outcome[]> => {
    // kapso_phone_id -> workspace id, read once per call.
    const workspaces = new Map<string, string | null>();
    const workspaceOf = async (phoneNumberId: string): Promise<string | null> => {
      if (!workspaces.has(phoneNumberId)) {
        const row = await workspacesByKapsoPhoneId(ctx.db, phoneNumberId).first();
        workspaces.set(phoneNumberId, row?.id ?? null);
      }
      return workspaces.get(phoneNumberId) ?? null;
    };

    // §3 in order: the workspace first, then what the action already found.
    type Judged = { ignored: IgnoreReason | string } | Valid<MessageEvent> | Valid<StatusEvent>;
    const judged: Judged[] = [];
    for (const event of events) {
      const workspace_id = await workspaceOf(event.phone_number_id);
      if (workspace_id === null) judged.push({ ignored: "unknown_workspace" });
      else if (allowed_workspace !== undefined && workspace_id !== allowed_workspace) {
        judged.push({ ignored: "workspace_not_allowed" });
      }
      else if (event.kind === "rejected") judged.push({ ignored: event.reason });
      else if (event.kind === "status") judged.push({ ...event, workspace_id });
      else {
        const name = event.contact_name === null ? null : names[event.contact_name];
        if (name === undefined) throw new Error("webhook event names a contact name it did not send");
        judged.push({ ...event, contact_name: name, workspace_id });
      }
    }

    const messages = judged.filter((j): j is Valid<MessageEvent> => "kind" in j && j.kind === "message");
    // Every contact of the delivery exists before any message is written (as in PostgreSQL).
    const conversations = await takeContacts(ctx, messages);
    const dirty = new Set<ConversationState>();

    const outcomes: Outcome[] = [];
    for (const item of judged) {
      if ("ignored" in item) {
        outcomes.push(item.ignored);
      } else if (item.kind === "message") {
        if ((await messageByKapsoId(ctx.db, item.workspace_id, item.kapso_message_id)) !== null) {
          outcomes.push("duplicate");
          continue;
        }
        const conversation = conversations.get(JSON.stringify([item.workspace_id, item.phone]));
        if (conversation === undefined) throw new Error("webhook message without its conversation");
        await ctx.db.insert("messages", {
          workspace_id: item.workspace_id,
          conversation_id: conversation._id,
          direction: item.direction,
          content: item.content,
          message_type: item.message_type,
          kapso_message_id: item.kapso_message_id,
          status: item.status,
          created_at: item.created_at,
        });
        // An equal time moves the preview too: the later insert is the newer message.
        const last = conversation.last_message_at;
        if (last === null || item.created_at >= last) {
          conversation.last_message_at = item.created_at;
          conversation.last_message_preview = item.content;
        }
        if (item.direction === "inbound") conversation.unread_count += 1;
        // Written once per conversation at the end: a large batch stays far
        // below Convex's per-transaction write limits.
        dirty.add(conversation);
        outcomes.push("stored");
      } else {
        const message = await messageByKapsoId(ctx.db, item.workspace_id, item.kapso_message_id);
        if (message === null) outcomes.push("unknown_message");
        else if (item.status === null) outcomes.push("invalid_status");
        else if (!statusMoves(message.status, item.status)) outcomes.push("duplicate");
        else {
          await ctx.db.patch("messages", message._id, { status: item.status });
          outcomes.push("stored");
        }
      }
    }
    for (const c of dirty) {
      await ctx.db.patch("conversations", c._id, {
        last_message_at: c.last_message_at,
        last_message_preview: c.last_message_preview,
        unread_count: c.unread_count,
      });
    }
    return outcomes;
  },
});
