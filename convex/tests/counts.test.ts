// GET /http/import/counts: sync-convex's per-workspace verification.
import { createHash } from "node:crypto";
import { beforeEach, describe, expect, test, vi } from "vitest";
import { internal } from "../convex/_generated/api";
import { COUNT_PAGE_ITEMS } from "../convex/counts";
import { API_KEY, demo, importData, newBackend, WS1, WS2, type Backend } from "./harness";

const UNKNOWN = "00000000-0000-4000-8000-0000000000ff";

function counts(t: Backend, workspaceId: string | null, key: string | null = API_KEY, method = "GET") {
  const query = workspaceId === null ? "" : `?workspace_id=${encodeURIComponent(workspaceId)}`;
  return t.fetch(`/http/import/counts${query}`, { method, headers: key === null ? {} : { "x-api-key": key } });
}

/** Each table's documents of one workspace, by reading them all (no limits). */
function walked(t: Backend, workspaceId: string) {
  return t.run(async (ctx) => {
    const of = async (table: "contacts" | "contactNotes" | "conversations" | "messages") =>
      (await ctx.db.query(table).collect()).filter((d) => d.workspace_id === workspaceId).length;
    return {
      contacts: await of("contacts"),
      notes: await of("contactNotes"),
      conversations: await of("conversations"),
      messages: await of("messages"),
    };
  });
}

beforeEach(() => {
  vi.stubEnv("CRM_API_KEY", API_KEY);
  vi.stubEnv("KONTAK_ALLOW_IMPORT", "true");
});

describe("GET /http/import/counts", () => {
  test("answers each table's count for the workspace, in the documented key order", async () => {
    const t = newBackend();
    expect((await importData(t, demo())).status).toBe(200);
    for (const ws of [WS1, WS2]) {
      const res = await counts(t, ws);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("application/json");
      const body = await res.json();
      expect(Object.keys(body)).toEqual(["contacts", "notes", "conversations", "messages"]);
      expect(body).toEqual(await walked(t, ws));
    }
    expect(await (await counts(t, WS1)).json()).toEqual({ contacts: 2, notes: 3, conversations: 1, messages: 4 });
    // Upper-case UUIDs are the same workspace, as in PostgreSQL.
    expect(await (await counts(t, WS1.toUpperCase())).json()).toEqual(await walked(t, WS1));
  });

  test("an unknown workspace has zero of everything", async () => {
    const t = newBackend();
    await importData(t, demo());
    const res = await counts(t, UNKNOWN);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ contacts: 0, notes: 0, conversations: 0, messages: 0 });
  });

  test("a deleted document shows in the counts", async () => {
    const t = newBackend();
    await importData(t, demo());
    const before = await (await counts(t, WS1)).json();
    await t.run(async (ctx) => {
      const message = await ctx.db.query("messages").first();
      await ctx.db.delete(message!._id);
    });
    expect(await (await counts(t, WS1)).json()).toEqual({ ...before, messages: before.messages - 1 });
  });

  test("more documents than one function may read are counted page by page", async () => {
    // Convex's real limits (32,000 documents read per function); one workspace over them.
    const t = newBackend(true);
    const total = 33_000;
    expect(total).toBeGreaterThan(32_000);
    expect(COUNT_PAGE_ITEMS).toBeLessThan(32_000);
    const contactId = await t.run(async (ctx) =>
      ctx.db.insert("contacts", {
        workspace_id: WS1, phone: "+6281200000000", name: null, kapso_name: null, email: null,
        lead_status: "new", lead_score: 0, tags: [], created_at: 0, updated_at: 0,
      }),
    );
    const conversationId = await t.run(async (ctx) =>
      ctx.db.insert("conversations", {
        workspace_id: WS1, contact_id: contactId, status: "open", unread_count: 0,
        last_message_at: null, last_message_preview: null, created_at: 0,
      }),
    );
    for (let done = 0; done < total; done += 11_000) {
      await t.run(async (ctx) => {
        for (let i = done; i < done + 11_000; i++) {
          await ctx.db.insert("messages", {
            workspace_id: WS1, conversation_id: conversationId, direction: "inbound", content: `m${i}`,
            message_type: "text", kapso_message_id: i % 3 === 0 ? null : `wamid.${i}`, status: null, created_at: i,
          });
        }
      });
    }
    const res = await counts(t, WS1);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ contacts: 1, notes: 0, conversations: 1, messages: total });

    // The same through the internal query with small pages: every page continues where the last stopped.
    let cursor: string | null = null;
    let sum = 0;
    let pages = 0;
    for (;;) {
      const page: { count: number; isDone: boolean; continueCursor: string } = await t.query(
        internal.counts.countPage,
        { table: "messages", workspace_id: WS1, cursor, numItems: 12_000 },
      );
      sum += page.count;
      pages += 1;
      if (page.isDone) break;
      cursor = page.continueCursor;
    }
    expect(sum).toBe(total);
    expect(pages).toBe(Math.ceil(total / 12_000));
  }, 120_000);

  test("behind the import's gate: key, then KONTAK_ALLOW_IMPORT; parameters checked after", async () => {
    const t = newBackend();
    await importData(t, demo());
    expect((await counts(t, WS1, null)).status).toBe(401);
    const wrong = await counts(t, WS1, "not-the-key");
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toEqual({ error: "Unauthorized" });
    expect((await counts(t, null, "not-the-key")).status).toBe(401);

    vi.stubEnv("KONTAK_ALLOW_IMPORT", "false");
    const disabled = await counts(t, WS1);
    expect(disabled.status).toBe(403);
    expect(await disabled.json()).toEqual({ error: "Import disabled" });
    vi.stubEnv("KONTAK_ALLOW_IMPORT", "");
    expect((await counts(t, WS1)).status).toBe(403);
    vi.stubEnv("KONTAK_ALLOW_IMPORT", "true");

    vi.stubEnv("CRM_API_KEY", "");
    const unconfigured = await counts(t, WS1);
    expect(unconfigured.status).toBe(500);
    expect(await unconfigured.json()).toEqual({ error: "Service not configured" });
    vi.stubEnv("CRM_API_KEY", API_KEY);

    expect(await (await counts(t, null)).json()).toEqual({ error: "Missing workspace_id parameter" });
    expect((await counts(t, "  ")).status).toBe(400);
    const invalid = await counts(t, "not-a-uuid");
    expect(invalid.status).toBe(400);
    expect(await invalid.json()).toEqual({ error: "Invalid workspace_id" });
    expect((await counts(t, WS1, API_KEY, "POST")).status).toBe(405);
  });

  test("a workspace key is not enough: counts are CRM_API_KEY's", async () => {
    const t = newBackend();
    await importData(t, demo());
    const workspaceKey = "kontak_ws_" + "b".repeat(40);
    await t.run(async (ctx) => {
      await ctx.db.insert("apiKeys", {
        id: "10000000-0000-4000-8000-000000000001", workspace_id: WS1,
        key_hash: createHash("sha256").update(workspaceKey).digest("hex"),
        prefix: workspaceKey.slice(0, 14), name: "bot", revoked_at: null,
      });
    });
    // The lookup takes it (docs/contract.md §13); the counts, like the import, do not.
    const lookup = await t.fetch(`/http/contacts/getByPhone?phone=%2B6281234567890&workspace_id=${WS1}`, {
      headers: { "x-api-key": workspaceKey },
    });
    expect(lookup.status).toBe(200);
    expect((await counts(t, WS1, workspaceKey)).status).toBe(401);
  });
});
