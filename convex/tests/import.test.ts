// POST /http/import and POST /http/import/clear.
import { beforeEach, describe, expect, test, vi } from "vitest";
import { parseDataSet } from "../convex/dataset";
import { DataSetError, parseTimestamp } from "../convex/datasetRows";
import { planBatches } from "../convex/importPlan";
import { internal } from "../convex/_generated/api";
import { API_KEY, demo, importData, lookup, newBackend, tableCounts, WS1, WS2, type Backend } from "./harness";

const DEMO_COUNTS = { workspaces: 2, contacts: 3, notes: 4, conversations: 1, messages: 4 };

function clear(t: Backend, key: string = API_KEY) {
  return t.fetch("/http/import/clear", { method: "POST", headers: { "x-api-key": key } });
}

function messages(n: number, prefix: string, start: number) {
  return Array.from({ length: n }, (_, i) => ({
    direction: i % 2 === 0 ? "inbound" : "outbound",
    content: `${prefix} ${i}`,
    message_type: "text",
    kapso_message_id: `wamid.${prefix}-${i}`,
    status: null,
    created_at: new Date(start + i * 1000).toISOString(),
  }));
}

function bigDataSet() {
  const start = Date.UTC(2026, 0, 1);
  const contacts = [];
  // One contact with more messages than one batch holds, then many small ones.
  const big = messages(4000, "big", start);
  big[big.length - 1].content = "last one: visa?";
  contacts.push({
    workspace_id: WS1,
    phone: "+6281111111111",
    name: "Big",
    created_at: new Date(start).toISOString(),
    notes: Array.from({ length: 1000 }, (_, i) => ({
      content: `note ${i}`,
      created_at: new Date(start + i).toISOString(),
    })),
    conversation: { messages: big },
  });
  for (let i = 0; i < 100; i++) {
    contacts.push({
      workspace_id: WS2,
      phone: `+62822${String(i).padStart(7, "0")}`,
      name: `Small ${i}`,
      created_at: new Date(start).toISOString(),
      notes: [{ content: `small note ${i}`, created_at: new Date(start).toISOString() }],
      conversation: { messages: messages(5, `s${i}`, start) },
    });
  }
  return { workspaces: demo().workspaces, contacts };
}

beforeEach(() => {
  vi.stubEnv("CRM_API_KEY", API_KEY);
  vi.stubEnv("KONTAK_ALLOW_IMPORT", "true");
});

describe("POST /http/import", () => {
  test("imports the demo data set and answers the counts", async () => {
    const t = newBackend();
    const res = await importData(t, demo());
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(await res.text()).toBe(JSON.stringify(DEMO_COUNTS));
    expect(await tableCounts(t)).toEqual({
      workspaces: 2,
      contacts: 3,
      contactNotes: 4,
      conversations: 1,
      messages: 4,
    });
    const stored = await t.run(async (ctx) => {
      const ws = await ctx.db.query("workspaces").withIndex("by_kapso_phone_id", (q) => q.eq("kapso_phone_id", "demo-phone-number-id")).first();
      const msg = await ctx.db
        .query("messages")
        .withIndex("by_workspace_kapso_message_id", (q) => q.eq("workspace_id", WS1).eq("kapso_message_id", "wamid.demo-0004"))
        .first();
      return { ws, msg };
    });
    expect(stored.ws?.id).toBe(WS1);
    expect(stored.ws?.created_at).toBe(Date.UTC(2026, 0, 1));
    expect(stored.msg?.created_at).toBe(Date.UTC(2026, 0, 20, 9, 10, 11, 120));
  });

  test("re-importing the same data is idempotent", async () => {
    const t = newBackend();
    await importData(t, demo());
    const before = await lookup(t, "+6281234567890");
    const res = await importData(t, demo());
    expect(await res.json()).toEqual(DEMO_COUNTS);
    expect(await tableCounts(t)).toEqual({
      workspaces: 2,
      contacts: 3,
      contactNotes: 4,
      conversations: 1,
      messages: 4,
    });
    expect(await lookup(t, "+6281234567890")).toEqual(before);
  });

  test("a re-imported contact replaces the stored one with its notes and messages", async () => {
    const t = newBackend();
    await importData(t, demo());
    const data = demo();
    data.workspaces[0].name = "Renamed";
    data.contacts = [data.contacts[0]];
    data.contacts[0].notes = [{ content: "Only note now", created_at: "2026-02-01T00:00:00.000Z" }];
    data.contacts[0].conversation.messages = [data.contacts[0].conversation.messages[0]];
    const res = await importData(t, data);
    expect(await res.json()).toEqual({ workspaces: 2, contacts: 1, notes: 1, conversations: 1, messages: 1 });
    const r = await lookup(t, "+6281234567890");
    expect(r.found && r.notes).toEqual(["Only note now"]);
    expect(r.found && r.conversation_summary).toBe("General inquiry");
    expect(await tableCounts(t)).toEqual({
      workspaces: 2,
      contacts: 3,
      contactNotes: 2,
      conversations: 1,
      messages: 1,
    });
    const ws = await t.run((ctx) => ctx.db.query("workspaces").withIndex("by_uuid", (q) => q.eq("id", WS1)).first());
    expect(ws?.name).toBe("Renamed");
  });

  test("contacts may refer to a workspace stored earlier, not to an unknown one", async () => {
    const t = newBackend();
    await importData(t, { workspaces: demo().workspaces, contacts: [] });
    const later = { contacts: [demo().contacts[1]] };
    expect((await importData(t, later)).status).toBe(200);
    const unknown = { contacts: [{ ...demo().contacts[1], workspace_id: "00000000-0000-4000-8000-00000000000f" }] };
    const res = await importData(t, unknown);
    expect(res.status).toBe(400);
    expect((await res.json()).error).toMatch(/Unknown workspace_id/);
  });

  test("a kapso_phone_id held by another stored workspace is refused", async () => {
    const t = newBackend();
    await importData(t, demo());
    const res = await importData(t, {
      workspaces: [{ id: "00000000-0000-4000-8000-000000000003", name: "x", kapso_phone_id: "demo-phone-number-id", created_at: "2026-01-01T00:00:00.000Z" }],
    });
    expect(res.status).toBe(400);
    expect((await res.json()).error).toMatch(/kapso_phone_id/);
  });

  test.each([
    ["not JSON", "{", "Invalid JSON"],
    ["not an object", "[]", "body: must be an object"],
    ["contacts not an array", { contacts: {} }, "contacts: must be an array"],
    ["bad timestamp", { workspaces: [{ ...demo().workspaces[0], created_at: "yesterday" }] }, "workspaces[0].created_at: must be an ISO-8601 timestamp with a time zone"],
    ["bad workspace id", { workspaces: [{ ...demo().workspaces[0], id: "ws-1" }] }, "workspaces[0].id: must be a UUID"],
    ["a workspace too large for one document", { workspaces: [{ ...demo().workspaces[0], name: "w".repeat(900_000) }] }, "workspaces[0]: too large for one document (900222 bytes, at most 900000)"],
  ])("400 for %s", async (_label, body, error) => {
    const t = newBackend();
    const res = await importData(t, body);
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error });
    expect(await tableCounts(t)).toEqual({ workspaces: 0, contacts: 0, contactNotes: 0, conversations: 0, messages: 0 });
  });

  test.each([
    ["not set", undefined],
    ["false", "false"],
    ["1", "1"],
  ])("403 when KONTAK_ALLOW_IMPORT is %s", async (_label, value) => {
    vi.stubEnv("KONTAK_ALLOW_IMPORT", value);
    const t = newBackend();
    const res = await importData(t, demo());
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({ error: "Import disabled" });
    const cleared = await clear(t);
    expect(cleared.status).toBe(403);
    expect(await tableCounts(t)).toEqual({ workspaces: 0, contacts: 0, contactNotes: 0, conversations: 0, messages: 0 });
  });

  test("401 without the key, 500 without CRM_API_KEY", async () => {
    const t = newBackend();
    const res = await importData(t, demo(), "wrong");
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ error: "Unauthorized" });
    expect((await clear(t, "wrong")).status).toBe(401);
    vi.stubEnv("CRM_API_KEY", undefined);
    const unconfigured = await importData(t, demo());
    expect(unconfigured.status).toBe(500);
    expect(await unconfigured.json()).toEqual({ error: "Service not configured" });
  });

  test("a large data set is written in batches that each stay inside the limits", async () => {
    // 4,500 documents written per mutation at most: the 5,700 documents, and the
    // single contact with 5,002 of them, only fit through batching.
    const t = newBackend({ documentsWritten: 4500 });
    const data = bigDataSet();
    const res = await importData(t, data);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ workspaces: 2, contacts: 101, notes: 1100, conversations: 101, messages: 4500 });
    expect(await tableCounts(t)).toEqual({
      workspaces: 2,
      contacts: 101,
      contactNotes: 1100,
      conversations: 101,
      messages: 4500,
    });
    const big = await lookup(t, "+6281111111111");
    expect(big.found && big.notes).toEqual(["note 999", "note 998", "note 997", "note 996", "note 995"]);
    expect(big.found && big.conversation_summary).toBe("Discussed: Visa");
    expect(big.found && big.last_interaction).toBe(new Date(Date.UTC(2026, 0, 1) + 3999 * 1000).toISOString());

    // Re-import replaces everything, the deletions batched as well.
    const again = await importData(t, data);
    expect(again.status).toBe(200);
    expect(await tableCounts(t)).toEqual({
      workspaces: 2,
      contacts: 101,
      contactNotes: 1100,
      conversations: 101,
      messages: 4500,
    });
    expect(await lookup(t, "+6281111111111")).toEqual(big);

    // Without batching the same import would exceed the limit.
    const whole = newBackend({ documentsWritten: 4500 });
    await expect(
      whole.run(async (ctx) => {
        for (let i = 0; i < 4501; i++) {
          await ctx.db.insert("workspaces", { id: `w${i}`, name: "x", kapso_phone_id: null, created_at: 0 });
        }
      }),
    ).rejects.toThrow();
  });
});

test("re-importing many small contacts stays inside the per-mutation query limit", async () => {
  const t = newBackend(true);
  const start = Date.UTC(2026, 0, 1);
  const contacts = Array.from({ length: 700 }, (_, i) => ({
    workspace_id: WS1,
    phone: `+62833${String(i).padStart(7, "0")}`,
    name: `C${i}`,
    created_at: new Date(start).toISOString(),
    notes: [{ content: "n", created_at: new Date(start).toISOString() }],
    conversation: { messages: messages(2, `c${i}`, start) },
  }));
  const data = { workspaces: demo().workspaces, contacts };
  expect((await importData(t, data)).status).toBe(200);
  const again = await importData(t, data);
  expect(again.status).toBe(200);
  expect(await tableCounts(t)).toEqual({ workspaces: 2, contacts: 700, contactNotes: 700, conversations: 700, messages: 1400 });
});

describe("POST /http/import: WhatsApp identities (docs/contract.md §4a)", () => {
  const BSUID = "ID.13491208655302741918";
  const at = (iso: string) => Date.parse(iso);
  /** A contact known by BSUID only, with a username, a failed message and a conversation status time. */
  function bsuidContact(overrides: Record<string, unknown> = {}) {
    return {
      workspace_id: WS1,
      phone: null,
      bsuid: BSUID,
      parent_bsuid: "ID.ENT.77",
      username: "budi.wa",
      created_at: "2026-03-01T00:00:00.000Z",
      conversation: {
        status: "ended",
        status_at: "2026-03-02T10:00:00.500+07:00",
        messages: [
          {
            direction: "outbound",
            content: "",
            message_type: "unknown",
            kapso_message_id: "wamid.failed",
            status: "failed",
            error_code: "131026",
            error_title: "Message undeliverable",
            created_at: "2026-03-01T01:00:00.000Z",
          },
        ],
      },
      ...overrides,
    };
  }

  test("a BSUID-only contact with its identity fields, error fields and status_at; found by BSUID", async () => {
    const t = newBackend();
    const res = await importData(t, { workspaces: demo().workspaces, contacts: [bsuidContact()] });
    expect(await res.json()).toEqual({ workspaces: 2, contacts: 1, notes: 0, conversations: 1, messages: 1 });
    const stored = await t.run(async (ctx) => ({
      contact: await ctx.db.query("contacts").first(),
      conversation: await ctx.db.query("conversations").first(),
      message: await ctx.db.query("messages").first(),
    }));
    expect(stored.contact).toMatchObject({ phone: null, bsuid: BSUID, parent_bsuid: "ID.ENT.77", username: "budi.wa" });
    expect(stored.conversation).toMatchObject({ status: "ended", status_at: at("2026-03-02T03:00:00.500Z") });
    expect(stored.message).toMatchObject({ error_code: "131026", error_title: "Message undeliverable" });
    const found = await t.query(internal.contacts.lookupContext, { workspace_id: WS1, bsuid: BSUID });
    expect(found.found && found.contact.name).toBe("budi.wa");
    // The demo contacts carry none of the new fields: they read as null.
    await importData(t, demo());
    const budi = await t.run((ctx) => ctx.db.query("contacts").withIndex("by_workspace_phone", (q) => q.eq("workspace_id", WS1).eq("phone", "+6281234567890")).first());
    expect(budi).toMatchObject({ bsuid: null, parent_bsuid: null, username: null });
  });

  test("re-importing is idempotent: a contact is replaced by its BSUID, and by its phone", async () => {
    const t = newBackend();
    const data = { workspaces: demo().workspaces, contacts: [bsuidContact(), { ...demo().contacts[1], bsuid: "ID.2" }] };
    await importData(t, data);
    const before = await tableCounts(t);
    expect((await importData(t, data)).status).toBe(200);
    expect(await tableCounts(t)).toEqual(before);
    // The source linked a phone to the BSUID contact: still one contact.
    const linked = bsuidContact({ phone: "+6281300000123" });
    await importData(t, { contacts: [linked] });
    expect((await tableCounts(t)).contacts).toBe(before.contacts);
  });

  test("one imported contact replaces a stored phone contact and a stored BSUID contact (merged at the source)", async () => {
    const t = newBackend();
    const phoneOnly = { ...demo().contacts[1], phone: "+6281300000123" };
    await importData(t, { workspaces: demo().workspaces, contacts: [phoneOnly, bsuidContact()] });
    expect((await tableCounts(t)).contacts).toBe(2);
    await importData(t, { contacts: [bsuidContact({ phone: "+6281300000123", name: "Merged" })] });
    const contacts = await t.run((ctx) => ctx.db.query("contacts").collect());
    expect(contacts.map((c) => [c.phone, c.bsuid, c.name])).toEqual([["+6281300000123", BSUID, "Merged"]]);
  });

  test("re-importing many contacts with both identifiers stays inside the per-mutation query limit", async () => {
    const t = newBackend(true);
    const start = new Date(Date.UTC(2026, 0, 1)).toISOString();
    const contacts = Array.from({ length: 600 }, (_, i) => ({
      workspace_id: WS1,
      phone: `+62833${String(i).padStart(7, "0")}`,
      bsuid: `ID.${i}`,
      created_at: start,
      notes: [{ content: "n", created_at: start }],
      conversation: { messages: messages(1, `b${i}`, Date.UTC(2026, 0, 1)) },
    }));
    const data = { workspaces: demo().workspaces, contacts };
    expect((await importData(t, data)).status).toBe(200);
    // Stored as phone-only and BSUID-only halves, then replaced by the linked contacts: two each.
    const halves = contacts.flatMap((c, i) => [
      { ...c, bsuid: undefined, conversation: { messages: messages(1, `p${i}`, Date.UTC(2026, 0, 1)) } },
      { ...c, phone: null, conversation: { messages: messages(1, `q${i}`, Date.UTC(2026, 0, 1)) } },
    ]);
    expect((await importData(t, { contacts: halves })).status).toBe(200);
    expect((await tableCounts(t)).contacts).toBe(1200);
    expect((await importData(t, data)).status).toBe(200);
    expect(await tableCounts(t)).toEqual({ workspaces: 2, contacts: 600, contactNotes: 600, conversations: 600, messages: 600 });
  }, 60_000);

  // A contact Convex cannot take is left out with its notes, conversation and message (3 rows),
  // a conversation with its messages, a message alone; the answer says which and why.
  test.each([
    ["neither phone nor bsuid", { phone: null, bsuid: null }, "contact", null, "contacts[0]: needs a phone or a bsuid", 3],
    ["no phone field and no bsuid", { phone: undefined, bsuid: undefined }, "contact", null, "contacts[0]: needs a phone or a bsuid", 3],
    ["a bad bsuid", { bsuid: "id.1" }, "contact", null, "contacts[0].bsuid: must be a BSUID", 3],
    ["a bad parent bsuid", { parent_bsuid: "ID.77" }, "contact", null, "contacts[0].parent_bsuid: must be a parent BSUID", 3],
    ["a username that is no string", { username: 5 }, "contact", null, "contacts[0].username: must be a string or null", 3],
    ["a bad status_at", { conversation: { status_at: "later" } }, "conversation", null, "contacts[0].conversation.status_at: must be an ISO-8601 timestamp with a time zone", 1],
    ["a bad error_code", { conversation: { messages: [{ direction: "outbound", created_at: "2026-03-01T00:00:00Z", error_code: 5 }] } }, "message", 0, "contacts[0].conversation.messages[0].error_code: must be a string or null", 1],
  ])("refused, the rest stored: %s", async (_label, overrides, row, index, error, rows) => {
    const t = newBackend();
    const res = await importData(t, { workspaces: demo().workspaces, contacts: [bsuidContact(overrides), demo().contacts[1]] });
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body.refused).toEqual([{ contact: 0, row, index, reason: "invalid", error, rows }]);
    expect(body.contacts).toBe(row === "contact" ? 1 : 2);
    expect((await tableCounts(t)).contacts).toBe(body.contacts);
  });

  test("a BSUID twice in a workspace: the second contact is refused as a duplicate; in two workspaces both are stored", async () => {
    const t = newBackend();
    const twice = { workspaces: demo().workspaces, contacts: [bsuidContact(), bsuidContact({ conversation: null })] };
    const res = await importData(t, twice);
    expect(await res.json()).toEqual({
      workspaces: 2,
      contacts: 1,
      notes: 0,
      conversations: 1,
      messages: 1,
      refused: [{ contact: 1, row: "contact", index: null, reason: "duplicate", error: "contacts[1]: duplicate contact (workspace_id, bsuid)", rows: 1 }],
    });
    const apart = { workspaces: demo().workspaces, contacts: [bsuidContact(), bsuidContact({ workspace_id: WS2, conversation: null })] };
    expect(await (await importData(t, apart)).json()).toEqual({ workspaces: 2, contacts: 2, notes: 0, conversations: 1, messages: 1 });
  });
});

describe("POST /http/import: rows Convex cannot take", () => {
  const MB2 = "n".repeat(2 * 1024 * 1024);
  const at = (minute: number) => new Date(Date.UTC(2026, 0, 1, 0, minute)).toISOString();
  /** Contact 0: a 2 MB note and a 2 MB message among good ones; 1: tags holding null; 2: fine. */
  function withBadRows() {
    const data = demo();
    const [budi, second, third] = data.contacts;
    budi.notes = [
      { content: "first", created_at: at(1) },
      { content: MB2, created_at: at(2) },
      { content: "third", created_at: at(3) },
    ];
    budi.conversation.messages.splice(1, 0, { ...budi.conversation.messages[0], kapso_message_id: "wamid.huge", content: MB2 });
    second.tags = ["vip", null];
    second.notes = [{ content: "kept with it", created_at: at(1) }];
    data.contacts = [budi, second, third];
    return data;
  }
  const REFUSED = [
    { contact: 0, row: "note", index: 1, reason: "too_large", error: expect.stringMatching(/^contacts\[0\]\.notes\[1\]: too large for one document \(\d+ bytes, at most 900000\)$/), rows: 1 },
    { contact: 0, row: "message", index: 1, reason: "too_large", error: expect.stringMatching(/^contacts\[0\]\.conversation\.messages\[1\]: too large for one document \(\d+ bytes, at most 900000\)$/), rows: 1 },
    { contact: 1, row: "contact", index: null, reason: "invalid", error: "contacts[1].tags[1]: must be a string", rows: 2 },
  ];

  test("each refused row is named with its reason; the rest is stored; a second import answers and stores the same", async () => {
    const t = newBackend();
    const data = withBadRows();
    const stored = { workspaces: 2, contacts: 2, notes: 3, conversations: 1, messages: 4 };
    for (let run = 0; run < 2; run++) {
      const res = await importData(t, data);
      expect(res.status).toBe(200);
      const body = await res.json();
      expect(Object.keys(body)).toEqual(["workspaces", "contacts", "notes", "conversations", "messages", "refused"]);
      expect(body).toEqual({ ...stored, refused: REFUSED });
      expect(await tableCounts(t)).toEqual({ workspaces: 2, contacts: 2, contactNotes: 3, conversations: 1, messages: 4 });
    }
    const budi = await lookup(t, "+6281234567890");
    expect(budi.found && budi.notes).toEqual(["third", "first"]);
    const ids = await t.run(async (ctx) => (await ctx.db.query("messages").collect()).map((m) => m.kapso_message_id));
    expect(ids).not.toContain("wamid.huge");
  });

  test("a refused contact replaces nothing: the copy stored earlier stays as it was", async () => {
    const t = newBackend();
    await importData(t, demo());
    const before = await t.run(async (ctx) => (await ctx.db.query("contacts").collect()).map((c) => c.tags));
    await importData(t, withBadRows());
    const after = await t.run(async (ctx) => (await ctx.db.query("contacts").collect()).map((c) => c.tags));
    expect(after.sort()).toEqual(before.sort());
  });

  test("a conversation too large leaves its messages out with it; the contact and its notes are stored", async () => {
    const t = newBackend();
    const data = demo();
    data.contacts = [data.contacts[0]];
    data.contacts[0].conversation.last_message_preview = MB2;
    const body = await (await importData(t, data)).json();
    expect(body).toMatchObject({ contacts: 1, notes: 3, conversations: 0, messages: 0 });
    expect(body.refused).toEqual([
      { contact: 0, row: "conversation", index: null, reason: "too_large", error: expect.stringMatching(/^contacts\[0\]\.conversation: too large/), rows: 5 },
    ]);
    expect(await tableCounts(t)).toMatchObject({ contacts: 1, contactNotes: 3, conversations: 0, messages: 0 });
  });

  test("other rows the schema cannot hold: too many tags, a contact or note that is no object, a duplicate message id", async () => {
    const data = demo();
    const [budi, second, third] = data.contacts;
    budi.tags = Array.from({ length: 8193 }, (_, i) => `t${i}`);
    second.notes = [5, { content: "ok", created_at: at(1) }, { content: null, created_at: at(2) }];
    third.conversation = { messages: [{ ...budi.conversation.messages[0] }] }; // the same id in the same workspace as Budi's
    third.workspace_id = budi.workspace_id;
    third.phone = "+6281299990009";
    const parsed = parseDataSet({ workspaces: data.workspaces, contacts: [budi, second, "x", third] });
    expect(parsed.refused).toEqual([
      { contact: 0, row: "contact", index: null, reason: "too_large", error: "contacts[0].tags: more than 8192 items", rows: 9 },
      { contact: 1, row: "note", index: 0, reason: "invalid", error: "contacts[1].notes[0]: must be an object", rows: 1 },
      { contact: 1, row: "note", index: 2, reason: "invalid", error: "contacts[1].notes[2].content: must be a string", rows: 1 },
      { contact: 2, row: "contact", index: null, reason: "invalid", error: "contacts[2]: must be an object", rows: 1 },
    ]);
    // Budi was refused, so his message id is free: the third contact's copy of it is stored.
    expect(parsed.contacts.map((c) => c.messages.length)).toEqual([0, 1]);
    const duplicate = parseDataSet({ workspaces: data.workspaces, contacts: [{ ...budi, tags: [] }, third] });
    expect(duplicate.refused).toEqual([
      { contact: 1, row: "message", index: 0, reason: "duplicate", error: "contacts[1].conversation.messages[0].kapso_message_id: duplicate in the workspace", rows: 1 },
    ]);
  });
});

describe("POST /http/import/clear", () => {
  test("deletes everything in bounded batches; the client repeats until done", async () => {
    const t = newBackend({ documentsWritten: 4500 });
    await importData(t, bigDataSet());
    let total = 0;
    let rounds = 0;
    for (;;) {
      const res = await clear(t);
      expect(res.status).toBe(200);
      const body = await res.json();
      expect(Object.keys(body)).toEqual(["deleted", "done"]);
      total += body.deleted;
      rounds += 1;
      if (body.done) break;
      expect(rounds).toBeLessThan(20);
    }
    expect(total).toBe(2 + 101 + 1100 + 101 + 4500);
    expect(await tableCounts(t)).toEqual({ workspaces: 0, contacts: 0, contactNotes: 0, conversations: 0, messages: 0 });
    const again = await clear(t);
    expect(await again.json()).toEqual({ deleted: 0, done: true });
    expect(await lookup(t, "+6281111111111", WS1)).toEqual({ found: false, context: null });
  });
});

describe("data-set parsing and batch planning", () => {
  test("timestamps", () => {
    expect(parseTimestamp("2026-01-02T03:04:05.678Z", "x")).toBe(Date.UTC(2026, 0, 2, 3, 4, 5, 678));
    expect(parseTimestamp("2026-01-02T03:04:05Z", "x")).toBe(Date.UTC(2026, 0, 2, 3, 4, 5));
    expect(parseTimestamp("2026-01-02T10:04:05.678999+07:00", "x")).toBe(Date.UTC(2026, 0, 2, 3, 4, 5, 678));
    expect(parseTimestamp("2026-01-02T03:04:05.6+0000", "x")).toBe(Date.UTC(2026, 0, 2, 3, 4, 5, 600));
    expect(parseTimestamp(1767323045678, "x")).toBe(1767323045678);
    for (const bad of ["2026-02-30T00:00:00Z", "2026-01-02T03:04:05", "2026-01-02", 1.5, null]) {
      expect(() => parseTimestamp(bad, "x")).toThrow(DataSetError);
    }
  });

  test("defaults follow the PostgreSQL column defaults", () => {
    const now = Date.UTC(2026, 5, 1);
    const data = parseDataSet({ contacts: [{ workspace_id: WS1.toUpperCase(), phone: "+628123" }] }, now);
    expect(data.contacts[0]).toEqual({
      contact: {
        workspace_id: WS1,
        phone: "+628123",
        bsuid: null,
        parent_bsuid: null,
        username: null,
        name: null,
        kapso_name: null,
        email: null,
        lead_status: "new",
        lead_score: 0,
        tags: [],
        created_at: now,
        updated_at: now,
      },
      notes: [],
      conversation: null,
      messages: [],
    });
  });

  test("batches respect the limits and keep insertion order", () => {
    const data = parseDataSet(bigDataSet());
    const limits = { maxDocuments: 1000, maxBytes: 200_000, maxContacts: 30 };
    const batches = planBatches(data.contacts, limits);
    expect(batches.length).toBeGreaterThan(5);
    const seenNotes: string[] = [];
    const seenMessages: string[] = [];
    let contacts = 0;
    for (const ops of batches) {
      let docs = 0;
      let bytes = 0;
      let heads = 0;
      for (const op of ops) {
        if (op.kind === "contact") {
          contacts += 1;
          heads += 1;
          docs += op.conversation === null ? 1 : 2;
        }
        if (op.kind !== "messages") {
          docs += op.notes.length;
          if (op.key === 0) seenNotes.push(...op.notes.map((n) => n.content));
        }
        if (op.kind !== "notes") {
          docs += op.messages.length;
          if (op.key === 0) seenMessages.push(...op.messages.map((m) => m.content ?? ""));
        }
        bytes += JSON.stringify(op).length;
      }
      expect(docs).toBeLessThanOrEqual(limits.maxDocuments);
      expect(heads).toBeLessThanOrEqual(limits.maxContacts);
      expect(bytes).toBeLessThanOrEqual(limits.maxBytes + 4000);
    }
    expect(contacts).toBe(101);
    expect(seenNotes).toEqual(data.contacts[0].notes.map((n) => n.content));
    expect(seenMessages).toEqual(data.contacts[0].messages.map((m) => m.content));
  });
});
