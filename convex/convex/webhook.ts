// Storing Kapso webhook events (docs/webhook.md §3-§5, §7). Internal: reachable
// only through POST /webhook/kapso (handlers/webhook.ts), which reads the body and makes
// every check that needs no database (judge.ts prepareEvent); this mutation
// makes the workspace and stored-data checks and stores, event by event in payload
// order, each seeing what the ones before it did (§7.4). One call is one Convex
// transaction (serializable, retried by Convex on conflicts), so everything from one
// request commits together, or nothing does. Mirrors services/postgres/ingest.py.
import { v, type Infer } from "convex/values";
import type { Doc } from "./_generated/dataModel";
import { internalMutation, type MutationCtx } from "./_generated/server";
import { RULES, type IgnoreReason } from "./contract";
import { contactByIdentity, messageByKapsoId, workspacesByKapsoPhoneId } from "./model";
import { nullable } from "./schema";
import { changeIdentifier, contactForMessage } from "./webhookContacts";
import { Conversations } from "./webhookConversations";

// Events as the action sends them (judge.ts PreparedEvent, minus those the action
// settles alone). A message's contact name is an index into the call's `names`
// table: a Meta delivery may attach one long profile name to every message of its
// sender, and the arguments must stay small.
const person = v.object({
  phone: nullable(v.string()),
  bsuid: nullable(v.string()),
  parent_bsuid: nullable(v.string()),
  username: nullable(v.string()),
});

const messageEvent = v.object({
  kind: v.literal("message"),
  phone_number_id: v.string(),
  person,
  contact_name: nullable(v.number()),
  kapso_message_id: v.string(),
  direction: v.string(),
  content: v.string(),
  message_type: v.string(),
  status: v.string(),
  created_at: v.number(),
  error_code: nullable(v.string()),
  error_title: nullable(v.string()),
});

export const webhookEvent = v.union(
  v.object({ kind: v.literal("rejected"), phone_number_id: v.string(), reason: v.string() }),
  messageEvent,
  v.object({
    kind: v.literal("status"),
    phone_number_id: v.string(),
    kapso_message_id: v.string(),
    status: nullable(v.string()),
    error_code: nullable(v.string()),
    error_title: nullable(v.string()),
    unseen: nullable(v.union(messageEvent, v.object({ reason: v.string() }))),
  }),
  v.object({
    kind: v.literal("identity"),
    phone_number_id: v.string(),
    person,
    field: v.union(v.literal("phone"), v.literal("bsuid")),
    value: v.string(),
  }),
  v.object({ kind: v.literal("conversation"), phone_number_id: v.string(), person, status: v.string(), at: v.number() }),
);

export type WebhookEvent = Infer<typeof webhookEvent>;
type MessageEvent = Infer<typeof messageEvent>;
type StatusEvent = Extract<WebhookEvent, { kind: "status" }>;
type IdentityEvent = Extract<WebhookEvent, { kind: "identity" }>;
type ConversationEvent = Extract<WebhookEvent, { kind: "conversation" }>;

/**
 * One outcome per event, in the order given: "stored", "duplicate", or the
 * reason it was ignored. The action counts them and logs the reasons after
 * the commit (a mutation Convex retries would log twice).
 */
export type Outcome = "stored" | "duplicate" | IgnoreReason;

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

/** What one ingest call shares between its events. */
class Delivery {
  /** kapso_phone_id -> workspace id, read once per call. */
  private readonly workspaces = new Map<string, string | null>();
  readonly conversations: Conversations;

  constructor(
    readonly ctx: MutationCtx,
    private readonly names: string[],
    private readonly allowedWorkspace: string | undefined,
  ) {
    this.conversations = new Conversations(ctx);
  }

  /** §3: the workspace of the event's phone number id, or why there is none it may write. */
  async workspace(phoneNumberId: string): Promise<{ id: string } | { reason: IgnoreReason }> {
    if (!this.workspaces.has(phoneNumberId)) {
      const row = await workspacesByKapsoPhoneId(this.ctx.db, phoneNumberId).first();
      this.workspaces.set(phoneNumberId, row?.id ?? null);
    }
    const workspace = this.workspaces.get(phoneNumberId) ?? null;
    if (workspace === null) return { reason: "unknown_workspace" };
    // A workspace key authenticated the delivery: it writes its own workspace only (docs/contract.md §13).
    if (this.allowedWorkspace !== undefined && workspace !== this.allowedWorkspace) {
      return { reason: "workspace_not_allowed" };
    }
    return { id: workspace };
  }

  /** A message's contact name, from the call's names table. */
  name(index: number | null): string | null {
    if (index === null) return null;
    const name = this.names[index];
    if (name === undefined) throw new Error("webhook event names a contact name it did not send");
    return name;
  }
}

/** A message (§4, §7.4): its contact found, linked, merged or created, even for a duplicate. */
async function storeMessage(d: Delivery, workspace_id: string, m: MessageEvent): Promise<Outcome> {
  const { ctx, conversations } = d;
  const contact_id = await contactForMessage(ctx, conversations, workspace_id, m.person, m.created_at, d.name(m.contact_name));
  const conversation = await conversations.ensure(workspace_id, contact_id, m.created_at);
  if ((await messageByKapsoId(ctx.db, workspace_id, m.kapso_message_id)) !== null) return "duplicate";
  await ctx.db.insert("messages", {
    workspace_id,
    conversation_id: conversation._id,
    direction: m.direction,
    content: m.content,
    message_type: m.message_type,
    kapso_message_id: m.kapso_message_id,
    status: m.status,
    created_at: m.created_at,
    error_code: m.error_code,
    error_title: m.error_title,
  });
  conversations.addMessage(conversation, m);
  return "stored";
}

/**
 * A status (§4) moves a stored message forward only; a `failed` one for an id no
 * message has (this call's earlier events included) becomes that failed message (§7.7).
 */
async function storeStatus(d: Delivery, workspace_id: string, s: StatusEvent): Promise<Outcome> {
  const message = await messageByKapsoId(d.ctx.db, workspace_id, s.kapso_message_id);
  if (message === null) {
    if (s.status !== "failed" || s.unseen === null) return "unknown_message";
    return "reason" in s.unseen ? (s.unseen.reason as IgnoreReason) : await storeMessage(d, workspace_id, s.unseen);
  }
  if (s.status === null) return "invalid_status";
  if (!statusMoves(message.status, s.status)) return "duplicate";
  const patch: Partial<Doc<"messages">> = { status: s.status };
  // A failure's code and title are kept when the message moves to failed; absent ones erase nothing.
  if (s.status === "failed" && s.error_code !== null) patch.error_code = s.error_code;
  if (s.status === "failed" && s.error_title !== null) patch.error_title = s.error_title;
  await d.ctx.db.patch("messages", message._id, patch);
  return "stored";
}

/** §7.6: the contact of the old identity, without linking or creating, takes the new identifier. */
async function storeIdentityChange(d: Delivery, workspace_id: string, e: IdentityEvent): Promise<Outcome> {
  const contact = await contactByIdentity(d.ctx.db, workspace_id, e.person);
  if (contact === null) return "unknown_contact";
  const changed = await changeIdentifier(d.ctx, d.conversations, workspace_id, contact, e.field, e.value);
  return changed ? "stored" : "duplicate";
}

/** §7.7: the conversation's status, forward only by event time. */
async function storeConversationEvent(d: Delivery, workspace_id: string, e: ConversationEvent): Promise<Outcome> {
  const contact = await contactByIdentity(d.ctx.db, workspace_id, e.person);
  const conversation = contact === null ? null : await d.conversations.of(contact._id);
  if (conversation === null) return "unknown_contact";
  const statusAt = conversation.status_at ?? null;
  if (statusAt !== null && e.at <= statusAt) return "duplicate";
  await d.conversations.setStatus(conversation, e.status, e.at);
  return "stored";
}

/** One event's outcome: the workspace checks first, then what the action found, then storing. */
async function apply(d: Delivery, event: WebhookEvent): Promise<Outcome> {
  const workspace = await d.workspace(event.phone_number_id);
  if ("reason" in workspace) return workspace.reason;
  const workspace_id = workspace.id;
  switch (event.kind) {
    case "rejected":
      return event.reason as IgnoreReason;
    case "message":
      return await storeMessage(d, workspace_id, event);
    case "status":
      return await storeStatus(d, workspace_id, event);
    case "identity":
      return await storeIdentityChange(d, workspace_id, event);
    case "conversation":
      return await storeConversationEvent(d, workspace_id, event);
  }
}

/** Stores events of one webhook request, in payload order, in this one transaction. */
export const ingest = internalMutation({
  // allowed_workspace: set when a workspace key authenticated the delivery (docs/contract.md §13).
  args: { events: v.array(webhookEvent), names: v.array(v.string()), allowed_workspace: v.optional(v.string()) },
  handler: async (ctx, { events, names, allowed_workspace }): Promise<Outcome[]> => {
    const delivery = new Delivery(ctx, names, allowed_workspace);
    const outcomes: Outcome[] = [];
    for (const event of events) outcomes.push(await apply(delivery, event));
    await delivery.conversations.flush();
    return outcomes;
  },
});
