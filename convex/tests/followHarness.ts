// Helpers of the follower's suites (follow.test.ts, follow-rows.test.ts): requests to the
// routes of docs/contract.md §14 and the demo data set as follow records.
import { expect } from "vitest";
import { API_KEY, demo, newBackend, type Backend } from "./harness";

export const EPOCH = "epoch-1";
export const BUDI_ID = "10000000-0000-4000-8000-000000000001";
export const SITI_ID = "10000000-0000-4000-8000-000000000002";
export const OTHER_ID = "10000000-0000-4000-8000-000000000003";
const SOURCE_IDS = [BUDI_ID, SITI_ID, OTHER_ID];

export function post(t: Backend, path: string, body: unknown, key: string | null = API_KEY) {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (key !== null) headers["x-api-key"] = key;
  return t.fetch(path, { method: "POST", headers, body: typeof body === "string" ? body : JSON.stringify(body) });
}

export function setState(t: Backend, epoch: string | null = EPOCH, backfilled = false) {
  return post(t, "/http/follow/state", { epoch, backfilled });
}

/** A demo contact as a follow record: the data-set record with its source_id. */
export function record(i: number): any {
  return { source_id: SOURCE_IDS[i], ...demo().contacts[i] };
}

/** POST /http/follow/apply with `changes` over an empty cycle of `version`. */
export function apply(t: Backend, version: number, changes: Record<string, unknown> = {}, epoch = EPOCH) {
  return post(t, "/http/follow/apply", { epoch, version, ...changes });
}

export async function applied(t: Backend, version: number, changes: Record<string, unknown> = {}) {
  const res = await apply(t, version, changes);
  expect(res.status, await res.clone().text()).toBe(200);
  return await res.json();
}

/** A backend holding copy EPOCH with the demo data set written by the follower at `version`. */
export async function followed(version = 1): Promise<Backend> {
  const t = newBackend();
  expect((await setState(t)).status).toBe(200);
  const answer = await applied(t, version, { workspaces: demo().workspaces, contacts: [0, 1, 2].map(record) });
  expect(answer).toEqual({ applied: 5, stale: 0, refused: [] });
  return t;
}

/** Every document of the Kontak tables, system fields included. */
export function everything(t: Backend) {
  return t.run(async (ctx) => {
    const tables = ["workspaces", "contacts", "contactNotes", "conversations", "messages", "apiKeys"] as const;
    const all: Record<string, unknown[]> = {};
    for (const table of tables) all[table] = await ctx.db.query(table).collect();
    return all;
  });
}

export function contactBySource(t: Backend, source_id: string) {
  return t.run((ctx) => ctx.db.query("contacts").withIndex("by_source_id", (q) => q.eq("source_id", source_id)).collect());
}

export function budiMessages(t: Backend) {
  return t.run(async (ctx) => {
    const [contact] = await ctx.db.query("contacts").withIndex("by_source_id", (q) => q.eq("source_id", BUDI_ID)).collect();
    const conversation = await ctx.db.query("conversations").withIndex("by_contact", (q) => q.eq("contact_id", contact._id)).first();
    return await ctx.db
      .query("messages")
      .withIndex("by_conversation_created", (q) => q.eq("conversation_id", conversation!._id))
      .collect();
  });
}
