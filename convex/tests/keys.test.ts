// Keys per workspace on the Convex HTTP actions (docs/contract.md §3, §7, §13): POST /http/keys,
// the lookup and the webhook with CRM_API_KEY, a key of the workspace, of another, revoked,
// unknown and malformed.
import { createHash } from "node:crypto";
import { beforeEach, describe, expect, test, vi } from "vitest";
import { sha256Hex } from "../convex/apiKeys";
import {
  API_KEY,
  BUDI,
  demo,
  getByPhone,
  keyRow as row,
  newKey,
  postWebhook,
  pushKeys,
  seededBackend,
  stubKontakEnv,
  WS1,
  WS2,
  type Backend,
} from "./harness";

const OTHER_PHONE_ID = "other-phone-number-id";

function lookup(t: Backend, workspace: string, key: string | null) {
  return getByPhone(t, `?phone=6281234567890&workspace_id=${workspace}`, key);
}

function message(id: string, phoneNumberId: string) {
  return {
    message: { id, timestamp: "1767225600", type: "text", text: { body: "halo" }, kapso: { direction: "inbound" } },
    conversation: { phone_number: "+6281111111111", phone_number_id: phoneNumberId },
  };
}

function deliver(t: Backend, key: string | null, body: unknown) {
  const headers: Record<string, string> = {
    "x-webhook-event": "whatsapp.message.received",
    "x-webhook-batch": "true",
  };
  if (key !== null) headers["x-api-key"] = key;
  return postWebhook(t, body, headers);
}

function seeded(): Promise<Backend> {
  const data = demo();
  data.workspaces[1].kapso_phone_id = OTHER_PHONE_ID;
  return seededBackend(data);
}

const A = newKey();
const A2 = newKey();
const REVOKED = newKey();

async function withKeys(): Promise<Backend> {
  const t = await seeded();
  const res = await pushKeys(t, [row(A, WS1), row(A2, WS1), row(REVOKED, WS1, Date.now())]);
  expect(res.status).toBe(200);
  expect(await res.json()).toEqual({ upserted: 3 });
  return t;
}

beforeEach(() => {
  stubKontakEnv({ KAPSO_WEBHOOK_SECRET: "" });
});

describe("lookup isolation matrix", () => {
  test.each([
    ["CRM_API_KEY on A", () => API_KEY, WS1, 200, BUDI],
    ["key of A on A", () => A, WS1, 200, BUDI],
    ["second key of A on A", () => A2, WS1, 200, BUDI],
    ["key of A on B", () => A, WS2, 401, '{"found":false,"error":"Unauthorized"}'],
    ["key of A on a workspace that does not exist", () => A, "00000000-0000-4000-8000-00000000dead", 401,
      '{"found":false,"error":"Unauthorized"}'],
    ["revoked key", () => REVOKED, WS1, 401, '{"found":false,"error":"Unauthorized"}'],
    ["unknown key", () => newKey(), WS1, 401, '{"found":false,"error":"Unauthorized"}'],
    ["malformed key", () => "kontak_short", WS1, 401, '{"found":false,"error":"Unauthorized"}'],
    ["no key", () => null, WS1, 401, '{"found":false,"error":"Unauthorized"}'],
  ])("%s", async (_name, key, workspace, status, body) => {
    const t = await withKeys();
    const res = await lookup(t, workspace, key());
    expect(res.status).toBe(status);
    expect(await res.text()).toBe(body);
  });

  test("the key is checked before the parameters, the workspace after them", async () => {
    const t = await withKeys();
    const bad = await t.fetch("/http/contacts/getByPhone?phone=abc&workspace_id=x", { headers: { "x-api-key": newKey() } });
    expect(bad.status).toBe(401);
    const badParams = await t.fetch(`/http/contacts/getByPhone?phone=abc&workspace_id=${WS2}`, { headers: { "x-api-key": A } });
    expect(await badParams.json()).toEqual({ found: false, error: "Invalid phone number" });
  });

  test("revoking one key leaves the other working", async () => {
    const t = await withKeys();
    const revoked = row(A, WS1, Date.now());
    expect((await pushKeys(t, [revoked])).status).toBe(200);
    expect((await lookup(t, WS1, A)).status).toBe(401);
    expect((await lookup(t, WS1, A2)).status).toBe(200);
  });

  test("without CRM_API_KEY: workspace keys work, and with no key at all the service is not configured", async () => {
    const t = await seeded();
    vi.stubEnv("CRM_API_KEY", "");
    expect((await lookup(t, WS1, A)).status).toBe(500);
    expect(await (await lookup(t, WS1, A)).json()).toEqual({ found: false, error: "Service not configured" });
    await t.run(async (ctx) => {
      await ctx.db.insert("apiKeys", row(A, WS1));
    });
    expect(await (await lookup(t, WS1, A)).text()).toBe(BUDI);
    expect((await lookup(t, WS1, API_KEY)).status).toBe(401);
  });
});

describe("POST /http/keys", () => {
  test("needs CRM_API_KEY: a workspace key cannot write keys", async () => {
    const t = await withKeys();
    expect((await pushKeys(t, [row(newKey(), WS2)], A)).status).toBe(401);
    expect((await pushKeys(t, [row(newKey(), WS2)], "wrong")).status).toBe(401);
  });

  test.each([
    ["not set", undefined],
    ["false", "false"],
  ])("not behind the import gate (docs/contract.md §8): keys reach Convex when KONTAK_ALLOW_IMPORT is %s", async (_label, value) => {
    const t = await seeded();
    vi.stubEnv("KONTAK_ALLOW_IMPORT", value);
    expect((await pushKeys(t, [row(newKey(), WS1)], "wrong")).status).toBe(401);
    expect((await pushKeys(t, [row(newKey(), WS1)])).status).toBe(200);
    expect(await t.run(async (ctx) => ctx.db.query("apiKeys").collect())).toHaveLength(1);
  });

  test("refuses rows that are not key hashes", async () => {
    const t = await seeded();
    const bad = { ...row(newKey(), WS1), key_hash: "not-a-hash" };
    const res = await pushKeys(t, [bad]);
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: "Invalid key row" });
  });

  test("an upsert by hash: sending a key twice keeps one row", async () => {
    const t = await withKeys();
    await pushKeys(t, [row(A, WS1)]);
    const rows = await t.run(async (ctx) => ctx.db.query("apiKeys").collect());
    expect(rows).toHaveLength(3);
  });
});

describe("webhook with keys", () => {
  const batch = { batch: true, data: [message("wamid.keys-a", "demo-phone-number-id"), message("wamid.keys-b", OTHER_PHONE_ID)] };

  test.each([
    ["CRM_API_KEY stores both workspaces", () => API_KEY, 200, { received: true, stored: 2, duplicates: 0, ignored: 0 }],
    ["key of A stores A's event only", () => A, 200, { received: true, stored: 1, duplicates: 0, ignored: 1 }],
    ["revoked key", () => REVOKED, 401, { error: "Unauthorized" }],
    ["unknown key", () => newKey(), 401, { error: "Unauthorized" }],
    ["malformed key", () => "kontak_" + "x".repeat(500), 401, { error: "Unauthorized" }],
  ])("%s", async (_name, key, status, body) => {
    const t = await withKeys();
    const log = vi.spyOn(console, "warn");
    const res = await deliver(t, key(), batch);
    expect(res.status).toBe(status);
    expect(await res.json()).toEqual(body);
    if (key() === A) {
      const ours = await t.run(async (ctx) =>
        (await ctx.db.query("messages").collect()).filter((m) => m.kapso_message_id?.startsWith("wamid.keys")),
      );
      expect(ours.map((m) => m.workspace_id)).toEqual([WS1]);
      expect(log.mock.calls.flat().join("\n")).toContain("reason=workspace_not_allowed");
    }
    log.mockRestore();
  });
});

test("sha256Hex is the hex SHA-256 Python's hashlib gives", async () => {
  const key = newKey();
  expect(await sha256Hex(key)).toBe(createHash("sha256").update(key).digest("hex"));
});
