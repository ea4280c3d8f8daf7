// Counts of one workspace's documents, for sync-convex's verification
// (GET /http/import/counts in http.ts). Internal only.
//
// A workspace may hold far more documents than one function may read (32,000
// documents, 16 MiB), so each call counts one page of one table through an
// index on workspace_id, and the HTTP action repeats with the returned cursor
// until the table is done. Only the count leaves the query, never a document.
import { v } from "convex/values";
import { internalQuery } from "./_generated/server";

/** The tables counted, by the names sync-convex reports (notes = contactNotes). */
export const COUNTED_TABLES = ["contacts", "notes", "conversations", "messages"] as const;
export type CountedTable = (typeof COUNTED_TABLES)[number];

/** Documents per page: well inside the 32,000-document read limit. */
export const COUNT_PAGE_ITEMS = 16_000;
/** Bytes per page: half the 16 MiB read limit (a page stops early on large documents). */
export const COUNT_PAGE_BYTES = 8 * 1024 * 1024;

export const countPage = internalQuery({
  args: {
    table: v.union(v.literal("contacts"), v.literal("notes"), v.literal("conversations"), v.literal("messages")),
    workspace_id: v.string(),
    cursor: v.union(v.string(), v.null()),
    numItems: v.optional(v.number()),
    maximumBytesRead: v.optional(v.number()),
  },
  handler: async (ctx, { table, workspace_id, cursor, numItems, maximumBytesRead }) => {
    const options = {
      cursor,
      numItems: numItems ?? COUNT_PAGE_ITEMS,
      maximumBytesRead: maximumBytesRead ?? COUNT_PAGE_BYTES,
    };
    // One paginated query per call (a Convex rule), each on an index whose first field is workspace_id.
    let page;
    if (table === "contacts") {
      page = await ctx.db
        .query("contacts")
        .withIndex("by_workspace_phone", (q) => q.eq("workspace_id", workspace_id))
        .paginate(options);
    } else if (table === "notes") {
      page = await ctx.db
        .query("contactNotes")
        .withIndex("by_workspace", (q) => q.eq("workspace_id", workspace_id))
        .paginate(options);
    } else if (table === "conversations") {
      page = await ctx.db
        .query("conversations")
        .withIndex("by_workspace", (q) => q.eq("workspace_id", workspace_id))
        .paginate(options);
    } else {
      // Messages without a kapso_message_id are in this index too (null is a key like any other).
      page = await ctx.db
        .query("messages")
        .withIndex("by_workspace_kapso_message_id", (q) => q.eq("workspace_id", workspace_id))
        .paginate(options);
    }
    return { count: page.page.length, isDone: page.isDone, continueCursor: page.continueCursor };
  },
});
