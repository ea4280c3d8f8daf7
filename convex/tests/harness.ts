// Shared set-up for the convex-test suites.
import { convexTest } from "convex-test";
import demoData from "../../contract/demo_data.json";
import { internal } from "../convex/_generated/api";
import schema from "../convex/schema";

export const modules = import.meta.glob("../convex/**/*.*s");

export const API_KEY = "test-api-key";
export const WS1 = "00000000-0000-4000-8000-000000000001";
export const WS2 = "00000000-0000-4000-8000-000000000002";

/** The demo contact's SPEC section 3 answer, byte for byte. */
export const BUDI =
  '{"found":true,"contact":{"name":"Budi Santoso","lead_status":"hot","lead_score":80,' +
  '"tags":["vip","jakarta"],"is_returning":true,"first_contact_date":"2026-01-02T03:04:05.678Z"},' +
  '"notes":["Needs visa guidance before March","Interested in a UK master\'s programme",' +
  '"Asked about study options abroad"],"conversation_summary":"Discussed: UK, Visa",' +
  '"last_interaction":"2026-01-20T09:10:11.120Z"}';

export type Limits = boolean | Partial<Record<"documentsWritten" | "documentsRead" | "bytesWritten" | "bytesRead", number>>;

/** A fresh in-memory backend enforcing Convex's per-transaction limits. */
export function newBackend(transactionLimits: Limits = true) {
  return convexTest({ schema, modules, transactionLimits });
}

export type Backend = ReturnType<typeof newBackend>;

/** A deep copy of contract/demo_data.json. */
export function demo(): any {
  return structuredClone(demoData);
}

export function importData(t: Backend, data: unknown, key: string = API_KEY): Promise<Response> {
  return t.fetch("/http/import", {
    method: "POST",
    headers: { "x-api-key": key, "content-type": "application/json" },
    body: typeof data === "string" ? data : JSON.stringify(data),
  });
}

export function lookup(t: Backend, phone: string, workspaceId: string = WS1) {
  return t.query(internal.contacts.lookupContext, { workspace_id: workspaceId, phone });
}

/** Number of documents in each Kontak table. */
export function tableCounts(t: Backend) {
  return t.run(async (ctx) => ({
    workspaces: (await ctx.db.query("workspaces").collect()).length,
    contacts: (await ctx.db.query("contacts").collect()).length,
    contactNotes: (await ctx.db.query("contactNotes").collect()).length,
    conversations: (await ctx.db.query("conversations").collect()).length,
    messages: (await ctx.db.query("messages").collect()).length,
  }));
}
