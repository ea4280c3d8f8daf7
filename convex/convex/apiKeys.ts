// Keys per workspace (docs/contract.md §13). Internal: written through POST /http/keys
// (the `keys` commands and sync-convex of Kontak send the hashes, never a key) and
// read by credentials.ts to check an x-api-key.
import { v } from "convex/values";
import { internal } from "./_generated/api";
import { internalMutation, internalQuery, type ActionCtx } from "./_generated/server";
import { FORMATS } from "./contract";
import { anyActiveKey, keysByHash } from "./model";
import { apiKeyFields, type ApiKey } from "./schema";
import { constantTimeEqual, hex } from "./transport";

const HEX_SHA256 = /^[0-9a-f]{64}$/;

/** The workspace of the non-revoked key with this hash, or null. */
export const workspaceOfHash = internalQuery({
  args: { key_hash: v.string() },
  handler: async (ctx, { key_hash }): Promise<string | null> => {
    const rows = await keysByHash(ctx.db, key_hash).take(2);
    let workspace: string | null = null;
    for (const row of rows) {
      // The index found it; the hash is still compared in constant time, as in Python.
      if (row.revoked_at === null && constantTimeEqual(row.key_hash, key_hash)) workspace = row.workspace_id;
    }
    return workspace;
  },
});

/** Is there any non-revoked key (else, without CRM_API_KEY, the deployment is not configured)? */
export const anyActive = internalQuery({
  args: {},
  handler: async (ctx): Promise<boolean> => {
    return (await anyActiveKey(ctx.db)) !== null;
  },
});

/**
 * Inserts or updates keys by hash: a revocation is an update with `revoked_at` set. A patch,
 * not a replace: the follower's stamps (docs/contract.md §14) stay, so a key it wrote is not
 * taken for one of another copy by the sweep.
 */
export const upsert = internalMutation({
  args: { keys: v.array(v.object(apiKeyFields)) },
  handler: async (ctx, { keys }): Promise<number> => {
    for (const key of keys) {
      const existing = await keysByHash(ctx.db, key.key_hash).first();
      if (existing === null) await ctx.db.insert("apiKeys", key);
      else await ctx.db.patch("apiKeys", existing._id, key);
    }
    return keys.length;
  },
});

/** The hex SHA-256 of a key, with Web Crypto (no Node-only module: this runs in Convex's runtime). */
export async function sha256Hex(text: string): Promise<string> {
  return hex(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

/** The workspace of a valid, non-revoked key; null for anything else (malformed, unknown, revoked). */
export async function workspaceOfKey(ctx: ActionCtx, given: string | null): Promise<string | null> {
  if (given === null || !FORMATS.apiKey.test(given)) return null;
  return await ctx.runQuery(internal.apiKeys.workspaceOfHash, { key_hash: await sha256Hex(given) });
}

/** A POST /http/keys body: `{"keys": [...]}` of at most `limit` well-formed rows, else an error text. */
export function parseKeys(body: unknown, limit: number): { keys: ApiKey[] } | string {
  if (typeof body !== "object" || body === null || !Array.isArray((body as { keys?: unknown }).keys)) {
    return "Body must be {\"keys\": [...]}";
  }
  const items = (body as { keys: unknown[] }).keys;
  if (items.length > limit) return `At most ${limit} keys per request`;
  const keys: ApiKey[] = [];
  for (const item of items) {
    const row = item as Record<string, unknown>;
    const strings = ["id", "workspace_id", "key_hash", "prefix", "name"].every((f) => typeof row?.[f] === "string");
    const revoked = row?.revoked_at === null || (typeof row?.revoked_at === "number" && Number.isFinite(row.revoked_at));
    if (!strings || !revoked || !HEX_SHA256.test(row.key_hash as string)) return "Invalid key row";
    keys.push({
      id: row.id as string,
      workspace_id: (row.workspace_id as string).toLowerCase(),
      key_hash: row.key_hash as string,
      prefix: row.prefix as string,
      name: row.name as string,
      revoked_at: row.revoked_at as number | null,
    });
  }
  return { keys };
}

