// The contact-context lookup (SPEC section 3). Internal: reachable only through
// the authenticated HTTP action in http.ts, never from a client.
import { v } from "convex/values";
import { internalQuery } from "./_generated/server";
import { summarize } from "./summary";

export const NOTES_LIMIT = 5;
export const MESSAGES_LIMIT = 10;

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
    const contact = await ctx.db
      .query("contacts")
      .withIndex("by_workspace_phone", (q) =>
        q.eq("workspace_id", workspace_id).eq("phone", phone),
      )
      .first();
    if (contact === null) {
      return { found: false as const, context: null };
    }

    // Newest first; equal created_at falls back to _creationTime (the
    // implicit last index key), so the later insert comes first.
    const notes = await ctx.db
      .query("contactNotes")
      .withIndex("by_contact_created", (q) => q.eq("contact_id", contact._id))
      .order("desc")
      .take(NOTES_LIMIT);

    const conversation = await ctx.db
      .query("conversations")
      .withIndex("by_contact", (q) => q.eq("contact_id", contact._id))
      .first();

    let summary: string | null = null;
    if (conversation !== null) {
      const messages = await ctx.db
        .query("messages")
        .withIndex("by_conversation_created", (q) =>
          q.eq("conversation_id", conversation._id),
        )
        .order("desc")
        .take(MESSAGES_LIMIT);
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
