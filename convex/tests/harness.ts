// Shared set-up for the convex-test suites: backends, seeding, the environment, signed and keyed requests.
import { createHash, createHmac, randomBytes } from "node:crypto";
import { convexTest } from "convex-test";
import { expect, vi } from "vitest";
import demoAnswer from "../../contract/demo_answer.json";
import demoData from "../../contract/demo_data.json";
import { internal } from "../convex/_generated/api";
import schema from "../convex/schema";

export const modules = import.meta.glob("../convex/**/*.*s");

export const API_KEY = "test-api-key";
export const WS1 = "00000000-0000-4000-8000-000000000001";
export const WS2 = "00000000-0000-4000-8000-000000000002";

/** The demo contact's docs/contract.md §3 answer, byte for byte (contract/demo_answer.json, read by both suites). */
export const BUDI = JSON.stringify(demoAnswer.answer);
/** Where the demo contact is: its workspace and phone. */
export const DEMO_CONTACT = { workspace_id: demoAnswer.workspace_id, phone: demoAnswer.phone };

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

/** The environment the HTTP suites start from (call in `beforeEach`): CRM_API_KEY, imports allowed, plus `extra`. */
export function stubKontakEnv(extra: Record<string, string> = {}) {
  vi.stubEnv("CRM_API_KEY", API_KEY);
  vi.stubEnv("KONTAK_ALLOW_IMPORT", "true");
  for (const [name, value] of Object.entries(extra)) vi.stubEnv(name, value);
}

/** A fresh backend with `data` (the demo data unless given) imported through POST /http/import. */
export async function seededBackend(data: unknown = demo(), transactionLimits?: Limits): Promise<Backend> {
  const t = newBackend(transactionLimits);
  const res = await importData(t, data);
  expect(res.status, await res.clone().text()).toBe(200);
  return t;
}

/** The bytes of a request body: bytes as they are, a string as UTF-8, anything else JSON-encoded. */
export function encode(body: unknown): Uint8Array {
  if (body instanceof Uint8Array) return body;
  return new TextEncoder().encode(typeof body === "string" ? body : JSON.stringify(body));
}

/** X-Webhook-Signature: hex HMAC-SHA256 of the raw body. */
export function sign(body: Uint8Array | string, secret: string): string {
  return createHmac("sha256", secret).update(body).digest("hex");
}

/** GET /http/contacts/getByPhone with `query` ("?phone=…" or its parameters), sending `key` unless null. */
export function getByPhone(t: Backend, query: string | Record<string, string>, key: string | null = API_KEY) {
  const search = typeof query === "string" ? query : `?${new URLSearchParams(query)}`;
  const headers: Record<string, string> = key === null ? {} : { "x-api-key": key };
  return t.fetch(`/http/contacts/getByPhone${search}`, { headers });
}

/** POST /webhook/kapso with `body` (see `encode`) and `headers`, signed with `secret` when one is given. */
export function postWebhook(t: Backend, body: unknown, headers: Record<string, string> = {}, secret?: string) {
  const bytes = encode(body);
  const all: Record<string, string> = { "content-type": "application/json", ...headers };
  if (secret !== undefined) all["X-Webhook-Signature"] = sign(bytes, secret);
  return t.fetch("/webhook/kapso", { method: "POST", headers: all, body: Uint8Array.from(bytes) });
}

/** A new workspace key, in Kontak's format (contract/formats.json api_key). */
export function newKey(): string {
  return "kontak_" + randomBytes(32).toString("base64url");
}

/** The POST /http/keys row of `key` for `workspace` (its hash, never the key). */
export function keyRow(key: string, workspace: string, revoked_at: number | null = null) {
  return {
    id: crypto.randomUUID(),
    workspace_id: workspace,
    key_hash: createHash("sha256").update(key).digest("hex"),
    prefix: key.slice(0, 12),
    name: "bot",
    revoked_at,
  };
}

/** POST /http/keys with `rows`, authenticated by `key`. */
export function pushKeys(t: Backend, rows: unknown[], key: string = API_KEY) {
  return t.fetch("/http/keys", {
    method: "POST",
    headers: { "x-api-key": key, "content-type": "application/json" },
    body: JSON.stringify({ keys: rows }),
  });
}
