// The contact-context lookup (docs/contract.md §3). Internal: reachable only through
// the authenticated HTTP action (handlers/lookup.ts), never from a client.
import { v } from "convex/values";
import { internalQuery } from "./_generated/server";
import { LIMITS } from "./contract";
import { contactByPhone, conversationOfContact, messagesOfConversation, notesOfContact } from "./model";
import { summarize } from "./summary";

/** Milliseconds since the epoch as YYYY-MM-DDTHH:MM:SS.mmmZ. */
export function isoMillis(ms: number): string {
  return new Date(ms).toISOString();
}

function nonEmpty(s: string | null | undefined): s is string {
  return typeof s === "string" && s.length > 0;
}

export const lookupContext = internalQuery({
  args: { workspace_id: v.string(), phone: v.string() },
  handler: async (ctx, { workspace_id, phone }) => {
    const contact = await contactByPhone(ctx.db, workspace_id, phone);
    if (contact === null) {
      return { found: false as const, context: null };
    }

    const notes = await notesOfContact(ctx.db, contact._id).order("desc").take(LIMITS.notes);
    const conversation = await conversationOfContact(ctx.db, contact._id);

    let summary: string | null = null;
    if (conversation !== null) {
      const messages = await messagesOfConversation(ctx.db, conversation._id).order("desc").take(LIMITS.messages);
      summary = summarize(messages.map((m) => m.content));
    }

    const lastMessageAt = conversation?.last_message_at ?? null;
    const name = nonEmpty(contact.name)
      ? contact.name
      : nonEmpty(contact.kapso_name)
        ? contact.kapso_name
        : null;

    return {
      found: true as const,
      contact: {
        name,
        lead_status: contact.lead_status,
        lead_score: Math.trunc(contact.lead_score),
        tags: contact.tags ?? [],
        is_returning: lastMessageAt !== null,
        first_contact_date: isoMillis(contact.created_at),
      },
      notes: notes.map((n) => n.content),
      conversation_summary: summary,
      last_interaction: lastMessageAt === null ? null : isoMillis(lastMessageAt),
    };
  },
});
