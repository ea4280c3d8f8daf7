// Convex follows PostgreSQL (docs/contract.md §14): workspaces and keys of POST /http/follow/apply,
// the epoch, the gate and hostile bodies, POST /http/follow/sweep, and the transactions' bounds.
import { beforeEach, describe, expect, test, vi } from "vitest";
import { internal } from "../convex/_generated/api";
import { API_KEY, BUDI, DEMO_CONTACT, demo, getByPhone, importData, keyRow, newBackend, newKey, stubKontakEnv, tableCounts, WS1, WS2 } from "./harness";
import { EPOCH, BUDI_ID, SITI_ID, post, setState, record, apply, applied, followed, everything } from "./followHarness";

beforeEach(() => stubKontakEnv());

describe("POST /http/follow/apply: workspaces and keys", () => {
  test("a deleted workspace goes alone; a workspace's kapso_phone_id taken by another is cleared", async () => {
    const t = await followed();
    const other = { id: "00000000-0000-4000-8000-000000000003", name: "New", kapso_phone_id: "demo-phone-number-id", created_at: "2026-04-01T00:00:00Z" };
    expect(await applied(t, 2, { workspaces: [other], deleted_workspaces: [WS2] })).toEqual({ applied: 2, stale: 0, refused: [] });
    const ws = await t.run((ctx) => ctx.db.query("workspaces").collect());
    expect(ws.map((w) => [w.id, w.kapso_phone_id])).toEqual([[WS1, null], [other.id, "demo-phone-number-id"]]);
    expect((await tableCounts(t)).contacts).toBe(3);
  });

  test("keys: written, revoked and deleted by id; key checks follow at once", async () => {
    const t = await followed();
    const key = newKey();
    const row = keyRow(key, WS1);
    const lookupWith = async () => (await getByPhone(t, { phone: DEMO_CONTACT.phone, workspace_id: WS1 }, key)).status;
    expect(await lookupWith()).toBe(401);
    expect(await applied(t, 2, { keys: [row] })).toEqual({ applied: 1, stale: 0, refused: [] });
    expect(await lookupWith()).toBe(200);
    expect(await applied(t, 3, { keys: [{ ...row, revoked_at: Date.UTC(2026, 5, 1) }] })).toEqual({ applied: 1, stale: 0, refused: [] });
    expect(await lookupWith()).toBe(401);
    // A late copy of the active row is stale: the revocation holds.
    expect(await applied(t, 2, { keys: [row] })).toEqual({ applied: 0, stale: 1, refused: [] });
    expect(await lookupWith()).toBe(401);
    expect(await applied(t, 4, { keys: [row] })).toEqual({ applied: 1, stale: 0, refused: [] });
    expect(await lookupWith()).toBe(200);
    expect(await applied(t, 5, { deleted_keys: [row.id] })).toEqual({ applied: 1, stale: 0, refused: [] });
    expect(await lookupWith()).toBe(401);
    expect(await t.run((ctx) => ctx.db.query("apiKeys").collect())).toEqual([]);
  });

  test("a key pushed by POST /http/keys keeps the follower's stamps", async () => {
    const t = await followed();
    const row = keyRow(newKey(), WS1);
    await applied(t, 2, { keys: [row] });
    const pushed = await t.fetch("/http/keys", { method: "POST", headers: { "x-api-key": API_KEY }, body: JSON.stringify({ keys: [{ ...row, revoked_at: 1 }] }) });
    expect(pushed.status).toBe(200);
    const [stored] = await t.run((ctx) => ctx.db.query("apiKeys").collect());
    expect(stored).toMatchObject({ revoked_at: 1, sync_epoch: EPOCH, sync_version: 2 });
  });
});

describe("epoch, gate and bodies", () => {
  test("another copy's change is 409 with the stored epoch, and changes nothing", async () => {
    const t = await followed();
    const before = await everything(t);
    const res = await apply(t, 9, { deleted_contacts: [BUDI_ID] }, "epoch-0");
    expect(res.status).toBe(409);
    expect(await res.text()).toBe('{"error":"Epoch mismatch","epoch":"epoch-1"}');
    const sweep = await post(t, "/http/follow/sweep", { epoch: "epoch-0" });
    expect(sweep.status).toBe(409);
    expect(await everything(t)).toEqual(before);
    const empty = newBackend();
    const none = await apply(empty, 1, {});
    expect(await none.text()).toBe('{"error":"Epoch mismatch","epoch":null}');
  });

  test("the import's gate: no key 401, KONTAK_ALLOW_IMPORT off the import's own answer", async () => {
    const t = newBackend();
    const routes: [string, string][] = [["GET", "/http/follow/state"], ["POST", "/http/follow/state"], ["POST", "/http/follow/apply"], ["POST", "/http/follow/sweep"]];
    const call = (method: string, path: string, key: string | null) =>
      t.fetch(path, { method, headers: key === null ? {} : { "x-api-key": key }, body: method === "POST" ? "{}" : undefined });
    for (const [method, path] of routes) {
      const res = await call(method, path, null);
      expect([path, res.status, await res.text()]).toEqual([path, 401, '{"error":"Unauthorized"}']);
      expect((await call(method, path, "wrong")).status).toBe(401);
    }
    vi.stubEnv("KONTAK_ALLOW_IMPORT", "false");
    const imported = await importData(t, demo());
    const expected = [imported.status, await imported.text()];
    expect(expected[0]).toBe(403);
    for (const [method, path] of routes) {
      const res = await call(method, path, API_KEY);
      expect([path, res.status, await res.text()]).toEqual([path, ...expected]);
    }
  });

  test("hostile bodies are 400 with one JSON error, never 500, and write nothing", async () => {
    const t = await followed();
    const before = await everything(t);
    const bodies: unknown[] = [
      "{not json", "[]", "null", "1", { epoch: EPOCH }, { version: 2 },
      { epoch: EPOCH, version: "2" }, { epoch: EPOCH, version: "NaN" }, { epoch: EPOCH, version: -1 }, { epoch: EPOCH, version: 1.5 },
      { epoch: EPOCH, version: 1e300 }, { epoch: EPOCH, version: 2 ** 53 }, { epoch: EPOCH, version: null }, { epoch: 7, version: 2 },
      { epoch: "", version: 2 }, { epoch: "x".repeat(201), version: 2 }, { epoch: EPOCH, version: 2, extra: 1 },
      { epoch: EPOCH, version: 2, contacts: {} }, { epoch: EPOCH, version: 2, contacts: [1] }, { epoch: EPOCH, version: 2, contacts: [{}] },
      { epoch: EPOCH, version: 2, contacts: [{ ...record(0), source_id: "not-a-uuid" }] },
      { epoch: EPOCH, version: 2, contacts: [record(0), record(0)] },
      { epoch: EPOCH, version: 2, contacts: [record(0)], deleted_contacts: [BUDI_ID] },
      { epoch: EPOCH, version: 2, deleted_contacts: [7] }, { epoch: EPOCH, version: 2, deleted_workspaces: "x" },
      { epoch: EPOCH, version: 2, workspaces: [{ id: WS1 }] }, { epoch: EPOCH, version: 2, workspaces: [{ ...demo().workspaces[0], id: "x" }] },
      { epoch: EPOCH, version: 2, keys: [{ id: "x" }] }, { epoch: EPOCH, version: 2, keys: [{ ...keyRow(newKey(), WS1), id: "nope" }] },
      { epoch: EPOCH, version: 2, keys: [{ ...keyRow(newKey(), WS1), revoked_at: "yesterday" }] },
    ];
    for (const body of bodies) {
      const res = await post(t, "/http/follow/apply", body);
      const text = await res.text();
      expect([JSON.stringify(body).slice(0, 80), res.status]).toEqual([JSON.stringify(body).slice(0, 80), 400]);
      expect(Object.keys(JSON.parse(text))).toEqual(["error"]);
    }
    for (const body of ["{", [], { epoch: EPOCH }, { backfilled: true }, { epoch: 1, backfilled: true }, { epoch: null, backfilled: "yes" }, { epoch: null, backfilled: false, x: 1 }]) {
      expect((await post(t, "/http/follow/state", body)).status).toBe(400);
    }
    for (const body of ["{", {}, { epoch: null }, { epoch: "" }, { epoch: EPOCH, limit: 5 }]) {
      expect((await post(t, "/http/follow/sweep", body)).status).toBe(400);
    }
    expect(await everything(t)).toEqual(before);
  });
});

describe("POST /http/follow/sweep", () => {
  test("deletes what another copy or the import wrote, contacts with their trees, and keeps its own", async () => {
    const t = newBackend();
    expect((await importData(t, demo())).status).toBe(200);
    await setState(t, "epoch-0");
    await post(t, "/http/follow/apply", { epoch: "epoch-0", version: 1, keys: [keyRow(newKey(), WS2)] });
    await setState(t, EPOCH);
    // The new copy brings workspace 1 and Budi (replacing the imported Budi), not the rest.
    expect(await applied(t, 2, { workspaces: [demo().workspaces[0]], contacts: [record(0)] })).toEqual({ applied: 2, stale: 0, refused: [] });
    const res = await post(t, "/http/follow/sweep", { epoch: EPOCH });
    expect(res.status).toBe(200);
    // Siti and the other Budi (2 contacts, 1 note), workspace 2, the key of epoch-0.
    expect(await res.text()).toBe('{"deleted":5,"done":true}');
    expect(await tableCounts(t)).toEqual({ workspaces: 1, contacts: 1, contactNotes: 3, conversations: 1, messages: 4 });
    expect(await t.run((ctx) => ctx.db.query("apiKeys").collect())).toEqual([]);
    expect(await (await getByPhone(t, { phone: DEMO_CONTACT.phone, workspace_id: WS1 })).text()).toBe(BUDI);
    expect(await (await post(t, "/http/follow/sweep", { epoch: EPOCH })).text()).toBe('{"deleted":0,"done":true}');
  });

  test("a large sweep is done in bounded calls", async () => {
    const t = newBackend();
    const data = demo();
    data.contacts = Array.from({ length: 350 }, (_, i) => ({ ...demo().contacts[1], phone: `+62857${String(i).padStart(7, "0")}` }));
    expect((await importData(t, data)).status).toBe(200);
    await setState(t);
    const answers = [];
    for (let done = false; !done; ) {
      const answer = await (await post(t, "/http/follow/sweep", { epoch: EPOCH })).json();
      answers.push(answer);
      done = answer.done;
    }
    expect(answers.reduce((n, a) => n + a.deleted, 0)).toBe(352);
    expect(answers.every((a) => a.deleted <= 4000)).toBe(true);
    expect(await tableCounts(t)).toEqual({ workspaces: 0, contacts: 0, contactNotes: 0, conversations: 0, messages: 0 });
  });
});

describe("transactions and tombstones", () => {
  test("a contact larger than one transaction is deleted in bounded steps", async () => {
    const t = newBackend();
    const data = demo();
    data.contacts[0].conversation.messages = Array.from({ length: 4500 }, (_, i) => ({
      direction: "inbound", content: `m${i}`, message_type: "text", kapso_message_id: `wamid.big-${i}`, status: null,
      created_at: new Date(Date.UTC(2026, 0, 3) + i * 1000).toISOString(),
    }));
    expect((await importData(t, data)).status).toBe(200);
    // As if the follower had written it (only a copy made by the import can be this large).
    await t.run(async (ctx) => {
      const budi = await ctx.db.query("contacts").withIndex("by_workspace_phone", (q) => q.eq("workspace_id", WS1).eq("phone", "+6281234567890")).first();
      await ctx.db.patch(budi!._id, { source_id: BUDI_ID });
    });
    await setState(t);
    expect(await applied(t, 1, { deleted_contacts: [BUDI_ID] })).toEqual({ applied: 1, stale: 0, refused: [] });
    expect(await tableCounts(t)).toEqual({ workspaces: 2, contacts: 2, contactNotes: 1, conversations: 0, messages: 0 });
  });

  test("a mutation meeting another copy throws the stored epoch (answered 409)", async () => {
    const t = await followed();
    await expect(
      t.mutation(internal.followContacts.deleteContact, { epoch: "epoch-0", version: 9, source_id: BUDI_ID, limit: 10 }),
    ).rejects.toThrow(/epoch_mismatch/);
  });

  test("tombstones older than ten minutes are trimmed by the next apply", async () => {
    const t = await followed();
    await applied(t, 2, { deleted_contacts: [BUDI_ID, SITI_ID] });
    await t.run(async (ctx) => {
      const [first] = await ctx.db.query("followTombstones").collect();
      await ctx.db.patch(first._id, { deleted_at: Date.now() - 10 * 60 * 1000 - 1 });
    });
    await applied(t, 3);
    const left = await t.run((ctx) => ctx.db.query("followTombstones").collect());
    expect(left.map((d) => d.source_id)).toEqual([SITI_ID]);
  });
});
