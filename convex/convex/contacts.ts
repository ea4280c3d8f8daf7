// The contact-context lookup (docs/contract.md §3). Internal: reachable only through
// the authenticated HTTP action (handlers/lookup.ts), never from a client.
import { v } from "convex/values";
import { internalQuery } from "./_generated/server";
import { LIMITS } from "./contract";
import { contactByIdentity, conversationOfContact, messagesOfConversation, notesOfContact } from "./model";
import { nullable } from "./schema";
import { summarize } from "./summary";

/** Milliseconds since the epoch as YYYY-MM-DDTHH:MM:SS.mmmZ. */
export function isoMillis(ms: number): string {
  return new Date(ms).toISOString();
}

function nonEmpty(s: string | null | undefined): s is string {
  return typeof s === "string" && s.length > 0;
}

/** The answer's name (docs/contract.md §3): the CRM name, else the WhatsApp profile name, else the username. */
export function displayName(contact: {
  name: string | null;
  kapso_name: string | null;
  username?: string | null;
}): string | null {
  for (const candidate of [contact.name, contact.kapso_name, contact.username]) {
    if (nonEmpty(candidate)) return candidate;
  }
  return null;
}

export const lookupContext = internalQuery({
  // An E.164 phone and/or a BSUID (at least one; BSUID first, docs/contract.md §4a).
  args: { workspace_id: v.string(), phone: v.optional(nullable(v.string())), bsuid: v.optional(nullable(v.string())) },
  handler: async (ctx, { workspace_id, phone, bsuid }) => {
    const contact = await contactByIdentity(ctx.db, workspace_id, { bsuid: bsuid ?? null, phone: phone ?? null });
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
    const name = displayName(contact);

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
