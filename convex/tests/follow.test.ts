// Convex follows PostgreSQL (docs/contract.md §14): GET/POST /http/follow/state and the contacts
// of POST /http/follow/apply, through the HTTP routes (workspaces, keys, bodies and the sweep:
// follow-rows.test.ts).
import { beforeEach, describe, expect, test } from "vitest";
import { planList } from "../convex/followTree";
import { API_KEY, BUDI, DEMO_CONTACT, demo, getByPhone, importData, lookup, newBackend, stubKontakEnv, tableCounts, WS1, WS2 } from "./harness";
import { EPOCH, BUDI_ID, SITI_ID, OTHER_ID, setState, record, apply, applied, followed, everything, contactBySource, budiMessages } from "./followHarness";

beforeEach(() => stubKontakEnv());

describe("GET/POST /http/follow/state", () => {
  test("an empty deployment holds no copy; the state set is the state read", async () => {
    const t = newBackend();
    const first = await t.fetch("/http/follow/state", { headers: { "x-api-key": API_KEY } });
    expect(first.status).toBe(200);
    expect(await first.text()).toBe('{"epoch":null,"backfilled":false}');
    const set = await setState(t, "copy-7", true);
    expect(await set.text()).toBe('{"epoch":"copy-7","backfilled":true}');
    const read = await t.fetch("/http/follow/state", { headers: { "x-api-key": API_KEY } });
    expect(await read.text()).toBe('{"epoch":"copy-7","backfilled":true}');
    await setState(t, null, false);
    const cleared = await t.fetch("/http/follow/state", { headers: { "x-api-key": API_KEY } });
    expect(await cleared.json()).toEqual({ epoch: null, backfilled: false });
    expect(await t.run(async (ctx) => (await ctx.db.query("followState").collect()).length)).toBe(1);
  });

  test("clearing the deployment (POST /http/import/clear) forgets the copy", async () => {
    const t = await followed();
    const clear = await t.fetch("/http/import/clear", { method: "POST", headers: { "x-api-key": API_KEY } });
    expect(await clear.json()).toMatchObject({ done: true });
    const read = await t.fetch("/http/follow/state", { headers: { "x-api-key": API_KEY } });
    expect(await read.json()).toEqual({ epoch: null, backfilled: false });
  });
});

describe("POST /http/follow/apply: contacts", () => {
  test("the follower's copy of the demo data answers the demo lookup byte for byte, as the import's does", async () => {
    const t = await followed();
    const res = await getByPhone(t, { phone: DEMO_CONTACT.phone, workspace_id: DEMO_CONTACT.workspace_id });
    expect(await res.text()).toBe(BUDI);
    const imported = newBackend();
    expect((await importData(imported, demo())).status).toBe(200);
    for (const [phone, ws] of [["+6281234567890", WS1], ["+6285712345678", WS1], ["+6281234567890", WS2]]) {
      expect(await lookup(t, phone, ws)).toEqual(await lookup(imported, phone, ws));
    }
    expect(await tableCounts(t)).toEqual(await tableCounts(imported));
    const [budi] = await contactBySource(t, BUDI_ID);
    expect(budi).toMatchObject({ source_id: BUDI_ID, sync_epoch: EPOCH, sync_version: 1 });
    const ws = await t.run((ctx) => ctx.db.query("workspaces").collect());
    expect(ws.every((w) => w.sync_epoch === EPOCH && w.sync_version === 1)).toBe(true);
  });

  test("a replayed change (same or lower version) is stale and changes nothing", async () => {
    const t = await followed(5);
    const before = await everything(t);
    const body = { workspaces: demo().workspaces, contacts: [0, 1, 2].map(record) };
    expect(await applied(t, 5, body)).toEqual({ applied: 0, stale: 5, refused: [] });
    const changed = { workspaces: [{ ...demo().workspaces[0], name: "Old" }], contacts: [{ ...record(0), name: "Old" }] };
    expect(await applied(t, 4, changed)).toEqual({ applied: 0, stale: 2, refused: [] });
    expect(await applied(t, 3, { deleted_contacts: [BUDI_ID], deleted_workspaces: [WS2] })).toEqual({ applied: 0, stale: 2, refused: [] });
    expect(await everything(t)).toEqual(before);
  });

  test("out of order: a deletion at v2, then the upsert of v1, does not bring the contact back", async () => {
    const t = newBackend();
    await setState(t);
    expect(await applied(t, 2, { deleted_contacts: [BUDI_ID] })).toEqual({ applied: 1, stale: 0, refused: [] });
    expect(await applied(t, 1, { contacts: [record(0)] })).toEqual({ applied: 0, stale: 1, refused: [] });
    expect(await contactBySource(t, BUDI_ID)).toEqual([]);
    expect((await lookup(t, "+6281234567890")).found).toBe(false);
    // A later change does.
    expect(await applied(t, 3, { contacts: [record(0)] })).toEqual({ applied: 1, stale: 0, refused: [] });
    expect((await getByPhone(t, { phone: DEMO_CONTACT.phone, workspace_id: WS1 }).then((r) => r.text()))).toBe(BUDI);
    expect(await t.run((ctx) => ctx.db.query("followTombstones").collect())).toEqual([]);
  });

  test("a deleted contact goes with its notes, conversation and messages", async () => {
    const t = await followed();
    expect(await applied(t, 2, { deleted_contacts: [BUDI_ID] })).toEqual({ applied: 1, stale: 0, refused: [] });
    expect(await tableCounts(t)).toEqual({ workspaces: 2, contacts: 2, contactNotes: 1, conversations: 0, messages: 0 });
    expect((await lookup(t, "+6281234567890")).found).toBe(false);
    const [tombstone] = await t.run((ctx) => ctx.db.query("followTombstones").collect());
    expect(tombstone).toMatchObject({ kind: "contact", source_id: BUDI_ID, version: 2 });
  });

  test("a stored contact holding the phone under another (or no) source_id is replaced with its tree", async () => {
    const t = newBackend();
    expect((await importData(t, demo())).status).toBe(200);
    await setState(t);
    expect(await applied(t, 1, { contacts: [record(0)] })).toEqual({ applied: 1, stale: 0, refused: [] });
    expect(await tableCounts(t)).toEqual({ workspaces: 2, contacts: 3, contactNotes: 4, conversations: 1, messages: 4 });
    expect((await getByPhone(t, { phone: DEMO_CONTACT.phone, workspace_id: WS1 })).status).toBe(200);
    // PostgreSQL gave the phone to another contact: the stored one is stale.
    const taker = { ...record(1), source_id: OTHER_ID, phone: "+6281234567890", notes: [{ content: "new owner", created_at: "2026-03-01T00:00:00Z" }] };
    expect(await applied(t, 2, { contacts: [taker] })).toEqual({ applied: 1, stale: 0, refused: [] });
    expect(await contactBySource(t, BUDI_ID)).toEqual([]);
    expect(await tableCounts(t)).toEqual({ workspaces: 2, contacts: 3, contactNotes: 2, conversations: 0, messages: 0 });
    const r = await lookup(t, "+6281234567890");
    expect(r.found && r.notes).toEqual(["new owner"]);
  });

  test("an appended message is one insert: the stored messages keep their ids", async () => {
    const t = await followed();
    const before = await budiMessages(t);
    const next = record(0);
    next.conversation.messages.push({ direction: "inbound", content: "Kapan mulai?", message_type: "text", kapso_message_id: "wamid.demo-0005", status: "received", created_at: "2026-01-21T00:00:00.000Z" });
    expect(await applied(t, 2, { contacts: [next] })).toEqual({ applied: 1, stale: 0, refused: [] });
    const after = await budiMessages(t);
    expect(after.slice(0, 4)).toEqual(before);
    expect(after.map((m) => m.content)).toEqual(next.conversation.messages.map((m: any) => m.content));
    // A status changed in place keeps the id too; a removed message goes.
    next.conversation.messages[1].status = "failed";
    next.conversation.messages.splice(2, 1);
    expect(await applied(t, 3, { contacts: [next] })).toEqual({ applied: 1, stale: 0, refused: [] });
    const third = await budiMessages(t);
    expect(third.map((m) => m._id).slice(0, 2)).toEqual(before.slice(0, 2).map((m) => m._id));
    expect(third.map((m) => m.status)).toEqual(["received", "failed", "received", "received"]);
    expect(third.map((m) => m.kapso_message_id)).toEqual(["wamid.demo-0001", "wamid.demo-0002", "wamid.demo-0004", "wamid.demo-0005"]);
  });

  test("notes of equal created_at read newest-inserted first, in record order, as PostgreSQL's id DESC", async () => {
    const t = newBackend();
    await setState(t);
    const at = "2026-02-02T00:00:00.000Z";
    const c = { ...record(1), notes: ["a", "b", "c"].map((content) => ({ content, created_at: at })) };
    await applied(t, 1, { workspaces: demo().workspaces, contacts: [c] });
    const notes = async () => {
      const r = await lookup(t, "+6285712345678");
      return r.found ? r.notes : null;
    };
    expect(await notes()).toEqual(["c", "b", "a"]);
    c.notes.push({ content: "d", created_at: at });
    await applied(t, 2, { contacts: [c] });
    expect(await notes()).toEqual(["d", "c", "b", "a"]);
    c.notes.splice(1, 1);
    c.notes.unshift({ content: "z", created_at: "2026-01-01T00:00:00.000Z" });
    await applied(t, 3, { contacts: [c] });
    expect(await notes()).toEqual(["d", "c", "a", "z"]);
  });

  test("a contact moved to another workspace takes its notes and messages along", async () => {
    const t = await followed();
    const moved = { ...record(0), workspace_id: WS2, phone: "+6281111111111" };
    expect(await applied(t, 2, { contacts: [moved] })).toEqual({ applied: 1, stale: 0, refused: [] });
    const docs = await everything(t);
    const owned = [...docs.contactNotes, ...docs.conversations, ...docs.messages] as { workspace_id: string }[];
    expect(owned.filter((d) => d.workspace_id === WS1)).toEqual([]);
    const r = await lookup(t, "+6281111111111", WS2);
    expect(r.found && r.notes.length).toBe(3);
  });

  test("a contact too large for one transaction is refused and nothing is written; the rest is applied", async () => {
    const t = await followed();
    const before = await everything(t);
    const big = record(0);
    big.notes = Array.from({ length: 4001 }, (_, i) => ({ content: `n${i}`, created_at: "2026-01-01T00:00:00Z" }));
    const invalid = { ...record(1), phone: "0812" };
    const answer = await applied(t, 2, { contacts: [big, invalid, { ...record(2), name: "Renamed" }] });
    expect(answer).toEqual({
      applied: 1,
      stale: 0,
      refused: [{ source_id: BUDI_ID, reason: "too_large" }, { source_id: SITI_ID, reason: "invalid" }],
    });
    const after = await everything(t);
    expect(after.contactNotes).toEqual(before.contactNotes);
    expect(after.messages).toEqual(before.messages);
  });

  test("a stored tree too large for one transaction refuses its replacement, nothing half-written", async () => {
    const t = newBackend();
    const data = demo();
    data.contacts[0].conversation.messages = Array.from({ length: 4100 }, (_, i) => ({
      direction: "inbound", content: `m${i}`, message_type: "text", kapso_message_id: `wamid.big-${i}`, status: null,
      created_at: new Date(Date.UTC(2026, 0, 3) + i * 1000).toISOString(),
    }));
    expect((await importData(t, data)).status).toBe(200);
    await setState(t);
    const before = await tableCounts(t);
    expect(await applied(t, 1, { contacts: [record(0)] })).toEqual({ applied: 0, stale: 0, refused: [{ source_id: BUDI_ID, reason: "too_large" }] });
    expect(await tableCounts(t)).toEqual(before);
  });
});

describe("planList", () => {
  const rows = (...times: number[]) => times.map((created_at, i) => ({ created_at, i }));
  test("keeps the longest prefix at the record's times, deletes the rest, inserts the record's rest", () => {
    expect(planList(rows(1, 2, 3), rows(1, 2, 3, 4))).toMatchObject({ removed: [], inserted: [{ created_at: 4 }] });
    expect(planList(rows(1, 2, 3), rows(1, 3)).removed.map((r) => r.created_at)).toEqual([2, 3]);
    expect(planList(rows(1, 1), rows(1, 1, 1)).kept.length).toBe(2);
    expect(planList([], rows(5)).inserted.length).toBe(1);
  });
});
