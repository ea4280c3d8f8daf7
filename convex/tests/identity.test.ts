// WhatsApp identity beyond the phone number through POST /webhook/kapso and the lookup
// (docs/contract.md §4a, docs/webhook.md §7): BSUID first, phone second, linking,
// merging, identity changes, echoes, failures, conversation events. The replay
// corpus (tests/replay.test.ts) holds the cases both backends share; these look
// at what only the Convex documents show.
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { isoTimeMs } from "../convex/kapsoValues";
import { planIngest } from "../convex/ingestPlan";
import type { PreparedEvent } from "../convex/judge";
import { mergedFields } from "../convex/webhookContacts";
import { encode, getByPhone, postWebhook, seededBackend, sign, stubKontakEnv, tableCounts, WS1, type Backend } from "./harness";

const SECRET = "whsec-identity-5c2a";
const PNID = "pnid-identity-convex";
const T0 = 1_768_900_000; // 2026-01-20T09:06:40Z
const PHONE = "+6281300000123";
const BSUID = "ID.55500011122233";
const PARENT = "ID.ENT.9990001";
const USERNAME = "budi.username";
const RECEIVED = { "X-Webhook-Event": "whatsapp.message.received" };

const iso = (seconds: number) => new Date(seconds * 1000).toISOString();

/** A data set with the identity workspace and `contacts`. */
function dataset(contacts: unknown[] = []) {
  return { workspaces: [{ id: WS1, name: "Identity", kapso_phone_id: PNID }], contacts };
}

/** A contact the CRM holds by phone: fields, a note, a conversation with one message. */
function crmContact(overrides: Record<string, unknown> = {}) {
  return {
    workspace_id: WS1,
    phone: PHONE,
    name: "Budi CRM",
    kapso_name: null,
    email: "b@example.com",
    lead_status: "hot",
    lead_score: 70,
    tags: ["vip"],
    created_at: "2025-12-01T00:00:00.000Z",
    updated_at: "2025-12-02T00:00:00.000Z",
    notes: [{ content: "Called twice", created_at: "2025-12-01T01:00:00.000Z" }],
    conversation: {
      status: "open",
      unread_count: 0,
      created_at: "2025-12-01T00:00:00.000Z",
      messages: [
        {
          direction: "inbound",
          content: "halo",
          message_type: "text",
          kapso_message_id: "wamid.crm.1",
          status: "received",
          created_at: "2025-12-01T02:00:00.000Z",
        },
      ],
    },
    ...overrides,
  };
}

type Who = { phone?: string; bsuid?: string; username?: string; parent?: string; name?: string };

/** A v2 inbound text event naming `who` in its conversation. */
function v2(id: string, who: Who, text = "halo", seconds = T0): any {
  const conversation: Record<string, unknown> = { phone_number_id: PNID };
  if (who.phone !== undefined) conversation.phone_number = who.phone;
  if (who.bsuid !== undefined) conversation.business_scoped_user_id = who.bsuid;
  if (who.parent !== undefined) conversation.parent_business_scoped_user_id = who.parent;
  if (who.username !== undefined) conversation.username = who.username;
  if (who.name !== undefined) conversation.kapso = { contact_name: who.name };
  return {
    message: { id, timestamp: String(seconds), type: "text", text: { body: text }, kapso: { direction: "inbound" } },
    conversation,
    phone_number_id: PNID,
  };
}

/** A Meta raw delivery of one change `value` (its metadata added). */
function meta(value: Record<string, unknown>, field = "messages"): any {
  return {
    object: "whatsapp_business_account",
    entry: [{ id: "waba", changes: [{ field, value: { metadata: { phone_number_id: PNID }, ...value } }] }],
  };
}

function post(t: Backend, body: unknown, headers: Record<string, string> = RECEIVED) {
  return postWebhook(t, body, headers, SECRET);
}

/** [stored, duplicates, ignored] of a 200 answer. */
async function counts(res: Promise<Response>): Promise<number[]> {
  const r = await res;
  expect(r.status).toBe(200);
  const a = await r.json();
  return [a.stored, a.duplicates, a.ignored];
}

async function lookupBy(t: Backend, params: Record<string, string>) {
  const res = await getByPhone(t, { ...params, workspace_id: WS1 });
  return { status: res.status, text: await res.text() };
}

function allDocs(t: Backend) {
  return t.run(async (ctx) => ({
    contacts: await ctx.db.query("contacts").collect(),
    notes: await ctx.db.query("contactNotes").collect(),
    conversations: await ctx.db.query("conversations").collect(),
    messages: await ctx.db.query("messages").collect(),
  }));
}

function messageById(t: Backend, id: string) {
  return t.run(async (ctx) => (await ctx.db.query("messages").collect()).find((m) => m.kapso_message_id === id) ?? null);
}

let logLines: string[] = [];
beforeEach(() => {
  stubKontakEnv({ KAPSO_WEBHOOK_SECRET: SECRET, DEFAULT_REGION: "ID" });
  logLines = [];
  for (const method of ["log", "info", "warn", "error", "debug"] as const) {
    vi.spyOn(console, method).mockImplementation((...args: unknown[]) => {
      logLines.push(args.map(String).join(" "));
    });
  }
});
afterEach(() => vi.restoreAllMocks());

describe("BSUID-only senders", () => {
  test("Kapso v2: stored under a contact without a phone, found by BSUID, username as the last name", async () => {
    const t = await seededBackend(dataset());
    const body = v2("wamid.b1", { bsuid: BSUID, parent: PARENT, username: USERNAME }, "mau tanya visa");
    expect(await counts(post(t, body))).toEqual([1, 0, 0]);
    const { contacts, conversations } = await allDocs(t);
    expect(contacts).toHaveLength(1);
    expect(contacts[0]).toMatchObject({ phone: null, bsuid: BSUID, parent_bsuid: PARENT, username: USERNAME, kapso_name: null });
    expect(conversations[0]).toMatchObject({ unread_count: 1, last_message_at: T0 * 1000 });
    const found = JSON.parse((await lookupBy(t, { bsuid: BSUID })).text);
    expect(found.contact.name).toBe(USERNAME);
    expect(found.conversation_summary).toBe("Discussed: Visa");
    // BSUID first: a phone nobody has beside it changes nothing.
    expect((await lookupBy(t, { bsuid: BSUID, phone: "+6289999999999" })).text).toBe(JSON.stringify(found));
    expect((await lookupBy(t, { phone: "+6289999999999" })).text).toBe('{"found":false,"context":null}');
  });

  test("Meta raw: from_user_id and contacts[].user_id, no from or wa_id; the profile name by user_id", async () => {
    const t = await seededBackend(dataset());
    const body = meta({
      contacts: [
        { user_id: "ID.111", profile: { name: "Ani", username: "ani.wa" } },
        { user_id: BSUID, parent_user_id: PARENT, profile: { name: "Budi WA", username: USERNAME } },
      ],
      messages: [
        { id: "wamid.m1", from_user_id: BSUID, timestamp: String(T0), type: "text", text: { body: "halo" } },
        { id: "wamid.m2", from_user_id: "ID.111", timestamp: String(T0 + 1), type: "text", text: { body: "hai" } },
      ],
    });
    expect(await counts(post(t, body, {}))).toEqual([2, 0, 0]);
    const budi = JSON.parse((await lookupBy(t, { bsuid: BSUID })).text);
    expect(budi.contact.name).toBe("Budi WA");
    const { contacts } = await allDocs(t);
    expect(contacts.map((c) => [c.phone, c.bsuid, c.parent_bsuid, c.username, c.kapso_name])).toEqual([
      [null, BSUID, PARENT, USERNAME, "Budi WA"],
      [null, "ID.111", null, "ani.wa", "Ani"],
    ]);
  });

  test("invalid BSUIDs are ignored (invalid_bsuid) even beside a valid phone; an invalid parent is only dropped", async () => {
    const t = await seededBackend(dataset());
    const data = [
      v2("wamid.x1", { bsuid: "id.123", phone: PHONE }),
      v2("wamid.x2", { bsuid: "ID.12-3" }),
      v2("wamid.x3", { bsuid: `ID.${"1".repeat(129)}` }),
      v2("wamid.x4", { bsuid: "ID.123\n" }), // used exactly as sent: no trimming
      v2("wamid.ok", { bsuid: "ID.123", parent: "ID.123" }),
    ];
    expect(await counts(post(t, { batch: true, data }))).toEqual([1, 0, 4]);
    const { contacts } = await allDocs(t);
    expect(contacts.map((c) => [c.bsuid, c.parent_bsuid])).toEqual([["ID.123", null]]);
    // One line per reason for the delivery, with its count.
    expect(logLines.filter((l) => l.includes("invalid_bsuid"))).toEqual(["webhook events ignored reason=invalid_bsuid count=4"]);
  });
});

describe("linking: a delivery naming both identifiers", () => {
  test("phone then BSUID: the BSUID (and username) is added to the phone contact", async () => {
    const t = await seededBackend(dataset());
    expect(await counts(post(t, v2("wamid.p1", { phone: "081300000123", name: "Dodi" })))).toEqual([1, 0, 0]);
    expect(await counts(post(t, v2("wamid.p2", { phone: PHONE, bsuid: BSUID, username: USERNAME }, "lagi", T0 + 5)))).toEqual([1, 0, 0]);
    const { contacts, conversations, messages } = await allDocs(t);
    expect(contacts).toHaveLength(1);
    expect(contacts[0]).toMatchObject({ phone: PHONE, bsuid: BSUID, username: USERNAME, kapso_name: "Dodi" });
    expect(contacts[0].updated_at).toBe(T0 * 1000); // linking keeps updated_at, as a new name does
    expect(conversations).toHaveLength(1);
    expect(messages).toHaveLength(2);
    const byPhone = await lookupBy(t, { phone: PHONE });
    expect((await lookupBy(t, { bsuid: BSUID })).text).toBe(byPhone.text);
  });

  test("BSUID then phone (Meta raw with from, wa_id and from_user_id): the phone is added to the BSUID contact", async () => {
    const t = await seededBackend(dataset());
    const first = meta({
      contacts: [{ user_id: BSUID, profile: { name: "Eka" } }],
      messages: [{ id: "wamid.e1", from_user_id: BSUID, timestamp: String(T0), type: "text", text: { body: "halo" } }],
    });
    expect(await counts(post(t, first, {}))).toEqual([1, 0, 0]);
    const second = meta({
      contacts: [{ user_id: BSUID, wa_id: "6281300000123", profile: { name: "Eka" } }],
      messages: [{ id: "wamid.e2", from: "6281300000123", from_user_id: BSUID, timestamp: String(T0 + 1), type: "text", text: { body: "x" } }],
    });
    expect(await counts(post(t, second, {}))).toEqual([1, 0, 0]);
    const { contacts } = await allDocs(t);
    expect(contacts.map((c) => [c.phone, c.bsuid])).toEqual([[PHONE, BSUID]]);
  });

  test("an identifier the contact already has with another value is left as it is (BSUID first)", async () => {
    const t = await seededBackend(dataset());
    await post(t, v2("wamid.a1", { phone: PHONE, bsuid: BSUID }));
    // BSUID found, with another phone that nobody holds: the contact keeps its phone.
    expect(await counts(post(t, v2("wamid.a2", { phone: "+6281399999999", bsuid: BSUID })))).toEqual([1, 0, 0]);
    // Phone found, with another BSUID that nobody holds: the contact keeps its BSUID.
    expect(await counts(post(t, v2("wamid.a3", { phone: PHONE, bsuid: "ID.777" })))).toEqual([1, 0, 0]);
    const { contacts, messages } = await allDocs(t);
    expect(contacts.map((c) => [c.phone, c.bsuid])).toEqual([[PHONE, BSUID]]);
    expect(messages).toHaveLength(3);
    expect((await lookupBy(t, { bsuid: "ID.777" })).text).toBe('{"found":false,"context":null}');
  });
});

describe("merging two contacts that turn out to be one person", () => {
  test("the BSUID contact merges into the older CRM contact: every message and note kept, found by either", async () => {
    const t = await seededBackend(dataset([crmContact()]));
    expect(await counts(post(t, v2("wamid.id.1", { bsuid: BSUID, username: USERNAME, name: "Budi WA" }, "saya mau tanya beasiswa", T0 + 1)))).toEqual([1, 0, 0]);
    expect((await tableCounts(t)).contacts).toBe(2);
    const merge = v2("wamid.id.2", { phone: "0813-0000-0123", bsuid: BSUID, name: "Budi WA" }, "visa juga", T0 + 2);
    expect(await counts(post(t, merge))).toEqual([1, 0, 0]);

    const { contacts, notes, conversations, messages } = await allDocs(t);
    expect(contacts).toHaveLength(1);
    expect(contacts[0]).toMatchObject({
      phone: PHONE,
      bsuid: BSUID,
      name: "Budi CRM",
      kapso_name: "Budi WA",
      username: USERNAME,
      email: "b@example.com",
      lead_status: "hot",
      lead_score: 70,
      tags: ["vip"],
      created_at: Date.parse("2025-12-01T00:00:00.000Z"),
      updated_at: (T0 + 1) * 1000,
    });
    expect(notes.map((n) => [n.contact_id, n.content])).toEqual([[contacts[0]._id, "Called twice"]]);
    expect(conversations).toHaveLength(1);
    expect(conversations[0]).toMatchObject({
      contact_id: contacts[0]._id,
      unread_count: 2,
      last_message_at: (T0 + 2) * 1000,
      last_message_preview: "visa juga",
      created_at: Date.parse("2025-12-01T00:00:00.000Z"),
    });
    expect(messages.map((m) => [m.kapso_message_id, m.conversation_id])).toEqual([
      ["wamid.crm.1", conversations[0]._id],
      ["wamid.id.1", conversations[0]._id],
      ["wamid.id.2", conversations[0]._id],
    ]);

    const byPhone = await lookupBy(t, { phone: PHONE });
    expect(byPhone.status).toBe(200);
    expect((await lookupBy(t, { bsuid: BSUID })).text).toBe(byPhone.text);
    const answer = JSON.parse(byPhone.text);
    expect(answer.notes).toEqual(["Called twice"]);
    expect(answer.contact.first_contact_date).toBe("2025-12-01T00:00:00.000Z");
    expect(answer.conversation_summary).toBe("Discussed: Visa, Scholarship");

    // Replaying the merge delivery: a duplicate, and nothing changes.
    const before = await allDocs(t);
    expect(await counts(post(t, merge))).toEqual([0, 1, 0]);
    expect(await allDocs(t)).toEqual(before);
  });

  test("the phone contact merges into an older BSUID contact; its conversation moves whole when the survivor has none", async () => {
    const older = {
      workspace_id: WS1,
      phone: null,
      bsuid: BSUID,
      name: "",
      lead_status: "new",
      lead_score: 10,
      tags: ["b", "c"],
      created_at: "2025-01-01T00:00:00.000Z",
      updated_at: "2025-01-01T00:00:00.000Z",
      notes: [{ content: "BSUID note", created_at: "2025-01-01T00:00:00.000Z" }],
    };
    const newer = crmContact({ name: "Budi Baru", lead_status: "warm", tags: ["a", "b"], created_at: "2025-06-01T00:00:00.000Z", updated_at: "2025-06-02T00:00:00.000Z" });
    const t = await seededBackend(dataset([older, newer]));
    const merge = v2("wamid.m.1", { phone: PHONE, bsuid: BSUID }, "halo lagi", T0);
    expect(await counts(post(t, merge))).toEqual([1, 0, 0]);
    const { contacts, notes, conversations, messages } = await allDocs(t);
    expect(contacts).toHaveLength(1);
    expect(contacts[0]).toMatchObject({
      phone: PHONE,
      bsuid: BSUID,
      name: "Budi Baru",
      lead_status: "warm",
      lead_score: 70,
      tags: ["a", "b", "c"],
      created_at: Date.parse("2025-01-01T00:00:00.000Z"),
      updated_at: Date.parse("2025-06-02T00:00:00.000Z"),
    });
    expect(notes.map((n) => n.content).sort()).toEqual(["BSUID note", "Called twice"]);
    expect(notes.every((n) => n.contact_id === contacts[0]._id)).toBe(true);
    expect(conversations).toHaveLength(1);
    expect(conversations[0]).toMatchObject({ contact_id: contacts[0]._id, created_at: Date.parse("2025-12-01T00:00:00.000Z"), unread_count: 1 });
    expect(messages.map((m) => m.kapso_message_id)).toEqual(["wamid.crm.1", "wamid.m.1"]);
  });

  test("phone-only, BSUID-only and both in one batch: one contact, every message, any order", async () => {
    const t = await seededBackend(dataset());
    const who = [{ phone: PHONE }, { bsuid: BSUID }, { phone: PHONE, bsuid: BSUID }];
    const data = [0, 1, 2, 1, 0, 2].map((w, i) => v2(`wamid.mix.${i}`, { ...who[w], name: "Orang", username: USERNAME }, "mau tanya visa kanada", T0));
    expect(await counts(post(t, { batch: true, data }))).toEqual([6, 0, 0]);
    expect(await counts(post(t, { batch: true, data: [...data].reverse() }))).toEqual([0, 6, 0]);
    const { contacts, conversations, messages } = await allDocs(t);
    expect(contacts.map((c) => [c.phone, c.bsuid, c.username, c.kapso_name])).toEqual([[PHONE, BSUID, USERNAME, "Orang"]]);
    expect(conversations).toHaveLength(1);
    expect(conversations[0].unread_count).toBe(6);
    expect(messages.every((m) => m.conversation_id === conversations[0]._id)).toBe(true);
  });

  test("mergedFields: newest first by updated_at (equal: the merged one), `new` counts as empty, tags each once", () => {
    const contact = (over: Record<string, unknown>) =>
      ({
        _id: "x",
        _creationTime: 0,
        workspace_id: WS1,
        phone: null,
        name: null,
        kapso_name: null,
        email: null,
        lead_status: "new",
        lead_score: 0,
        tags: [],
        created_at: 1,
        updated_at: 1,
        ...over,
      }) as any;
    const survivor = contact({ phone: "+1", name: "S", email: "", lead_status: "hot", lead_score: 5, tags: ["x", "y", "x"], username: "s.user" });
    const merged = contact({ bsuid: "ID.1", name: "", email: "m@x", lead_score: 9, tags: ["y", "z"], parent_bsuid: "ID.ENT.1" });
    expect(mergedFields(survivor, merged, { phone: null, bsuid: null })).toEqual({
      name: "S",
      kapso_name: null,
      email: "m@x",
      username: "s.user",
      parent_bsuid: "ID.ENT.1",
      lead_status: "hot",
      lead_score: 9,
      tags: ["y", "z", "x"],
      updated_at: 1,
      phone: "+1",
      bsuid: "ID.1",
    });
    const newer = contact({ name: "M", updated_at: 2, lead_status: "cold" });
    expect(mergedFields(survivor, newer, { phone: "+2", bsuid: "ID.2" })).toMatchObject({
      name: "M",
      lead_status: "cold",
      updated_at: 2,
      phone: "+2",
      bsuid: "ID.2",
    });
  });
});

describe("identity changes (§7.6)", () => {
  /** A system message (Meta raw) from `from` changing to `system`. */
  const metaSystem = (id: string, from: Record<string, string>, system: Record<string, string>) =>
    meta({ messages: [{ id, ...from, timestamp: String(T0 + 10), type: "system", system: { body: "changed", ...system } }] });

  test("user_changed_number moves the phone; nothing is stored under the id; the old number then finds nobody", async () => {
    const t = await seededBackend(dataset());
    await post(t, v2("wamid.h1", { phone: PHONE, bsuid: BSUID }));
    const change = metaSystem("wamid.h2", { from: "6281300000123" }, { type: "user_changed_number", wa_id: "6281399999999" });
    expect(await counts(post(t, change, {}))).toEqual([1, 0, 0]);
    const { contacts, messages } = await allDocs(t);
    expect(contacts.map((c) => [c.phone, c.bsuid])).toEqual([["+6281399999999", BSUID]]);
    expect(messages.map((m) => m.kapso_message_id)).toEqual(["wamid.h1"]);
    expect(JSON.parse((await lookupBy(t, { phone: "+6281399999999" })).text).found).toBe(true);
    expect((await lookupBy(t, { phone: PHONE })).text).toBe('{"found":false,"context":null}');
    expect(await counts(post(t, change, {}))).toEqual([0, 0, 1]);
    expect(logLines).toContain("webhook events ignored reason=unknown_contact count=1");
  });

  test("user_changed_user_id (v2) replaces the BSUID; again it is a duplicate", async () => {
    const t = await seededBackend(dataset());
    await post(t, v2("wamid.u1", { phone: PHONE, bsuid: BSUID }));
    const change = v2("wamid.u2", { phone: PHONE });
    change.message.type = "system";
    change.message.system = { type: "user_changed_user_id", user_id: "ID.42" };
    expect(await counts(post(t, change))).toEqual([1, 0, 0]);
    expect((await allDocs(t)).contacts.map((c) => [c.phone, c.bsuid])).toEqual([[PHONE, "ID.42"]]);
    expect(await counts(post(t, change))).toEqual([0, 1, 0]);
    // Another system type is an ordinary message with its body.
    const other = v2("wamid.u3", { phone: PHONE });
    other.message.type = "system";
    other.message.system = { type: "customer_identity_changed", body: "Identity changed" };
    expect(await counts(post(t, other))).toEqual([1, 0, 0]);
    expect((await messageById(t, "wamid.u3"))?.content).toBe("Identity changed");
  });

  test("a new number another contact has: the two are merged, the older survives with the new number", async () => {
    const t = await seededBackend(dataset());
    await post(t, v2("wamid.k1", { phone: PHONE }, "halo", T0));
    await post(t, v2("wamid.k2", { phone: "+6281399999999", bsuid: BSUID }, "nomor baru", T0 + 5));
    const change = metaSystem("wamid.k3", { from: "6281300000123" }, { type: "user_changed_number", wa_id: "+62 813-9999-9999" });
    expect(await counts(post(t, change, {}))).toEqual([1, 0, 0]);
    const { contacts, conversations, messages } = await allDocs(t);
    expect(contacts.map((c) => [c.phone, c.bsuid, c.created_at])).toEqual([["+6281399999999", BSUID, T0 * 1000]]);
    expect(conversations).toHaveLength(1);
    expect(messages.map((m) => m.conversation_id)).toEqual([conversations[0]._id, conversations[0]._id]);
  });

  test("equal created_at: the contact found by the old identity survives and takes the new BSUID", async () => {
    const t = await seededBackend(dataset());
    const data = [v2("wamid.q1", { bsuid: "ID.1", name: "Old" }), v2("wamid.q2", { bsuid: "ID.2", name: "New" })];
    await post(t, { batch: true, data });
    const { contacts: before } = await allDocs(t);
    const change = v2("wamid.q3", { bsuid: "ID.1" });
    change.message.type = "system";
    change.message.system = { type: "user_changed_user_id", user_id: "ID.2" };
    expect(await counts(post(t, change))).toEqual([1, 0, 0]);
    const { contacts } = await allDocs(t);
    expect(contacts.map((c) => [c._id, c.bsuid])).toEqual([[before[0]._id, "ID.2"]]);
  });

  test("unknown old identity, invalid new number or BSUID: ignored with their reasons", async () => {
    const t = await seededBackend(dataset());
    await post(t, v2("wamid.z1", { phone: PHONE }));
    const cases: [Record<string, string>, Record<string, string>, string][] = [
      [{ from: "6281311111111" }, { type: "user_changed_number", wa_id: "6281322222222" }, "unknown_contact"],
      [{ from: "6281300000123" }, { type: "user_changed_number", wa_id: "abc" }, "invalid_phone"],
      [{ from: "6281300000123" }, { type: "user_changed_number" }, "invalid_phone"],
      [{ from: "6281300000123" }, { type: "user_changed_user_id", user_id: "id.lower" }, "invalid_bsuid"],
      [{ from: "6281300000123", from_user_id: "bad" }, { type: "user_changed_user_id", user_id: "ID.9" }, "invalid_bsuid"],
    ];
    for (const [i, [from, system, reason]] of cases.entries()) {
      logLines = [];
      expect(await counts(post(t, metaSystem(`wamid.z.${i}`, from, system), {})), reason).toEqual([0, 0, 1]);
      expect(logLines, reason).toEqual([`webhook events ignored reason=${reason} count=1`]);
    }
    expect((await allDocs(t)).contacts.map((c) => [c.phone, c.bsuid ?? null])).toEqual([[PHONE, null]]);
  });
});

describe("echoes (Meta smb_message_echoes)", () => {
  test("outbound messages, status sent, of the customer in to / to_user_id; not unread", async () => {
    const t = await seededBackend(dataset());
    const body = meta(
      {
        message_echoes: [
          { from: "622155500", to: "6281300000123", to_user_id: BSUID, id: "wamid.echo.1", timestamp: String(T0), type: "text", text: { body: "Terima kasih" } },
          { from: "622155500", to_user_id: "ID.888", id: "wamid.echo.2", timestamp: String(T0 + 1), type: "image", image: { caption: "brosur" } },
        ],
      },
      "smb_message_echoes",
    );
    expect(await counts(post(t, body, {}))).toEqual([2, 0, 0]);
    const { contacts, conversations, messages } = await allDocs(t);
    expect(contacts.map((c) => [c.phone, c.bsuid])).toEqual([[PHONE, BSUID], [null, "ID.888"]]);
    expect(messages.map((m) => [m.direction, m.status, m.content])).toEqual([
      ["outbound", "sent", "Terima kasih"],
      ["outbound", "sent", "brosur"],
    ]);
    expect(conversations.map((c) => c.unread_count)).toEqual([0, 0]);
  });
});

describe("failures (§7.7)", () => {
  const FAILED = { "X-Webhook-Event": "whatsapp.message.failed" };

  /** A v2 failed event for `id`, the recipient in message.to. */
  const failed = (id: string, errors: unknown, to = "6281300000123") => ({
    message: { id, timestamp: String(T0), type: "template", template: { name: "promo" }, to, errors },
    conversation: { phone_number_id: PNID },
    phone_number_id: PNID,
  });

  test("a failed event for an id never stored becomes a failed outbound message with the error code and title", async () => {
    const t = await seededBackend(dataset());
    const body = failed("wamid.f1", [{ code: 131026, title: "Message\u0000 undeliverable" }, { code: 1 }]);
    expect(await counts(post(t, body, FAILED))).toEqual([1, 0, 0]);
    expect(await messageById(t, "wamid.f1")).toMatchObject({
      direction: "outbound",
      status: "failed",
      content: "[Template: promo]",
      message_type: "template",
      error_code: "131026",
      error_title: "Message undeliverable",
      created_at: T0 * 1000,
    });
    expect((await allDocs(t)).conversations[0]).toMatchObject({ unread_count: 0, last_message_preview: "[Template: promo]" });
    // Again: the message exists now, and failed does not move failed.
    expect(await counts(post(t, body, FAILED))).toEqual([0, 1, 0]);
  });

  test("error codes: integers below 2^53 as text, strings as sent; booleans, floats (1.0 too), long strings absent", async () => {
    const t = await seededBackend(dataset());
    const cases: [string, string, string | null][] = [
      ["int", "131026", "131026"],
      ["negative", "-5", "-5"],
      ["float form", "131026.0", null],
      ["exponent form", "1.31026e5", null],
      ["boolean", "true", null],
      ["too big", "9007199254740992", null],
      ["string", '"E-1 "', "E-1 "],
      ["blank string", '"  "', null],
      ["NUL string", '"a\\u0000"', null],
      ["long string", `"${"x".repeat(257)}"`, null],
    ];
    for (const [name, code, expected] of cases) {
      // Written as JSON text: JSON.stringify would turn 131026.0 into 131026.
      const raw = JSON.stringify(failed(`wamid.code.${name}`, [{ code: "CODE" }])).replace('"CODE"', code);
      expect(await counts(post(t, raw, FAILED)), name).toEqual([1, 0, 0]);
      expect((await messageById(t, `wamid.code.${name}`))?.error_code, name).toBe(expected);
    }
  });

  test("titles: cleaned and cut to max_error_title_length code points; a blank one is absent", async () => {
    const t = await seededBackend(dataset());
    await post(t, failed("wamid.t1", [{ title: "😀".repeat(1030) }]), FAILED);
    await post(t, failed("wamid.t2", [{ title: "   " }]), FAILED);
    await post(t, failed("wamid.t3", { title: "not a list" }), FAILED);
    expect((await messageById(t, "wamid.t1"))?.error_title).toBe("😀".repeat(1024));
    expect(await messageById(t, "wamid.t2")).toMatchObject({ error_code: null, error_title: null });
    expect(await messageById(t, "wamid.t3")).toMatchObject({ error_code: null, error_title: null });
  });

  test("Meta: a failed status for an unknown id (content empty, type unknown); for a known one the error is kept", async () => {
    const t = await seededBackend(dataset());
    const status = (id: string, name: string, extra: Record<string, unknown> = {}) => ({
      id,
      status: name,
      timestamp: String(T0),
      recipient_id: "6281300000123",
      recipient_user_id: BSUID,
      errors: [{ code: 131047, title: "Re-engagement message" }],
      ...extra,
    });
    expect(await counts(post(t, meta({ statuses: [status("wamid.s1", "failed")] }), {}))).toEqual([1, 0, 0]);
    expect(await messageById(t, "wamid.s1")).toMatchObject({
      direction: "outbound",
      status: "failed",
      content: "",
      message_type: "unknown",
      error_code: "131047",
      error_title: "Re-engagement message",
    });
    expect((await allDocs(t)).contacts.map((c) => [c.phone, c.bsuid])).toEqual([[PHONE, BSUID]]);
    // A known message moving sent -> failed takes the error; a delivered status's errors are not kept.
    for (const id of ["wamid.s2", "wamid.s5"]) {
      const sent = v2(id, { phone: PHONE });
      sent.message.kapso = { direction: "outbound" };
      expect(await counts(post(t, sent, { "X-Webhook-Event": "whatsapp.message.sent" }))).toEqual([1, 0, 0]);
    }
    const moves = meta({ statuses: [status("wamid.s2", "failed"), status("wamid.s5", "delivered")] });
    expect(await counts(post(t, moves, {}))).toEqual([2, 0, 0]);
    expect(await messageById(t, "wamid.s2")).toMatchObject({ status: "failed", error_code: "131047", error_title: "Re-engagement message" });
    expect(await messageById(t, "wamid.s5")).toMatchObject({ status: "delivered", error_code: null, error_title: null });
    // Unknown ids with other statuses stay unknown_message; a failed one without any recipient is invalid_phone.
    const body = meta({ statuses: [status("wamid.s3", "delivered"), status("wamid.s4", "failed", { recipient_id: undefined, recipient_user_id: undefined })] });
    expect(await counts(post(t, body, {}))).toEqual([0, 0, 2]);
    expect(logLines).toEqual(["webhook events ignored reason=unknown_message count=1", "webhook events ignored reason=invalid_phone count=1"]);
  });

  test("a message and its failure in one delivery: the status applies to the message just stored", async () => {
    const t = await seededBackend(dataset());
    const sent = v2("wamid.same", { phone: PHONE });
    sent.message.kapso = { direction: "outbound", status: "sent" };
    const status = { message: { id: "wamid.same", errors: [{ code: 470, title: "Expired" }] }, phone_number_id: PNID };
    expect(await counts(post(t, { batch: true, data: [sent] }, { "X-Webhook-Event": "whatsapp.message.sent" }))).toEqual([1, 0, 0]);
    const both = { batch: true, type: "whatsapp.message.failed", data: [failed("wamid.new", []), failed("wamid.new", []), status] };
    expect(await counts(post(t, both, {}))).toEqual([2, 1, 0]);
    expect(await messageById(t, "wamid.same")).toMatchObject({ status: "failed", error_code: "470", error_title: "Expired" });
    expect((await tableCounts(t)).messages).toBe(2);
  });
});

describe("conversation events (§7.7)", () => {
  const event = (name: string, conversation: Record<string, unknown>) =>
    ({ body: { conversation: { phone_number_id: PNID, phone_number: PHONE, ...conversation }, phone_number_id: PNID }, headers: { "X-Webhook-Event": name } });
  const send = (t: Backend, e: { body: unknown; headers: Record<string, string> }) => counts(post(t, e.body, e.headers));
  const conversationOf = (t: Backend) => t.run(async (ctx) => (await ctx.db.query("conversations").collect())[0]);

  test("forward only by event time: later applies, earlier and the same millisecond are duplicates", async () => {
    const t = await seededBackend(dataset());
    await post(t, v2("wamid.c1", { phone: PHONE }));
    expect(await send(t, event("whatsapp.conversation.created", { updated_at: "2026-01-20T10:00:00Z", last_active_at: "2026-01-20T11:00:00Z" }))).toEqual([1, 0, 0]);
    expect(await conversationOf(t)).toMatchObject({ status: "open", status_at: Date.parse("2026-01-20T10:00:00Z") });
    expect(await send(t, event("whatsapp.conversation.ended", { updated_at: "2026-01-20T17:00:00.123456+07:00" }))).toEqual([1, 0, 0]);
    expect(await conversationOf(t)).toMatchObject({ status: "ended", status_at: Date.parse("2026-01-20T10:00:00.123Z") });
    expect(await send(t, event("whatsapp.conversation.created", { updated_at: "2026-01-20T09:00:00Z" }))).toEqual([0, 1, 0]);
    expect(await send(t, event("whatsapp.conversation.inactive", { updated_at: "2026-01-20T10:00:00.1239Z" }))).toEqual([0, 1, 0]);
    expect(await send(t, event("whatsapp.conversation.inactive", { updated_at: " ", last_active_at: "2026-01-20T10:00:01-00:00" }))).toEqual([1, 0, 0]);
    expect(await conversationOf(t)).toMatchObject({ status: "inactive", status_at: Date.parse("2026-01-20T10:00:01Z") });
    // The lookup's answer does not change with the status, and messages are untouched.
    expect((await tableCounts(t)).messages).toBe(1);
  });

  test("bad times are invalid_timestamp; unknown people, or a contact without a conversation, unknown_contact", async () => {
    const crm = crmContact({ phone: "+6281311111111", conversation: null });
    const t = await seededBackend(dataset([crm]));
    await post(t, v2("wamid.c1", { phone: PHONE, bsuid: BSUID }));
    const bad = ["2026-01-20 10:00:00Z", "2026-01-20T10:00:00", "2026-02-30T10:00:00Z", "1999-12-31T23:59:59Z", "2026-01-20T24:00:00Z", "2026-01-20T10:00:00+24:00", "2026-01-20T10:00:00z", "２０２６-01-20T10:00:00Z", 1768900000];
    for (const updated_at of bad) {
      logLines = [];
      expect(await send(t, event("whatsapp.conversation.ended", { updated_at })), String(updated_at)).toEqual([0, 0, 1]);
      expect(logLines, String(updated_at)).toEqual(["webhook events ignored reason=invalid_timestamp count=1"]);
    }
    const at = { updated_at: "2026-01-20T10:00:00Z" };
    logLines = [];
    expect(await send(t, event("whatsapp.conversation.ended", { ...at, phone_number: "+6281322222222" }))).toEqual([0, 0, 1]);
    expect(await send(t, event("whatsapp.conversation.ended", { ...at, phone_number: "+6281311111111" }))).toEqual([0, 0, 1]);
    expect(await send(t, event("whatsapp.conversation.ended", { ...at, business_scoped_user_id: "bad" }))).toEqual([0, 0, 1]);
    expect(logLines).toEqual([
      "webhook events ignored reason=unknown_contact count=1",
      "webhook events ignored reason=unknown_contact count=1",
      "webhook events ignored reason=invalid_bsuid count=1",
    ]);
    expect((await tableCounts(t)).contacts).toBe(2); // nobody created
    // By BSUID alone (BSUID first, no linking).
    expect(await send(t, event("whatsapp.conversation.ended", { ...at, phone_number: undefined, business_scoped_user_id: BSUID }))).toEqual([1, 0, 0]);
  });

  test("isoTimeMs: the strict ISO 8601 form, calendar-valid, fraction cut to ms, offset applied, §3 range", () => {
    const now = Date.parse("2026-06-01T00:00:00Z");
    expect(isoTimeMs("2024-02-29T23:59:59.9999999999+00:00", now)).toBe(Date.parse("2024-02-29T23:59:59.999Z"));
    expect(isoTimeMs("2026-06-01T23:59:59Z", now)).toBe(Date.parse("2026-06-01T23:59:59Z"));
    expect(isoTimeMs("2026-06-02T00:00:00.001Z", now)).toBeNull(); // over now + 1 day
    expect(isoTimeMs("2000-01-01T07:00:00+07:00", now)).toBe(Date.parse("2000-01-01T00:00:00Z"));
    expect(isoTimeMs("2000-01-01T06:59:59+07:00", now)).toBeNull();
    expect(isoTimeMs("2026-01-20T10:00:00.5-02:30", now)).toBe(Date.parse("2026-01-20T12:30:00.500Z"));
    for (const bad of ["2023-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-04-31T00:00:00Z", "2026-01-20T10:60:00Z", "2026-01-20T10:00:60Z", "2026-01-20T10:00:00.Z", "2026-01-20T10:00:00+0700", "2026-01-20T10:00:00+07:60", " 2026-01-20T10:00:00Z", "2026-01-20T10:00:00Z\n", null]) {
      expect(isoTimeMs(bad, now), String(bad)).toBeNull();
    }
  });
});

describe("content (§7.8) through the webhook", () => {
  test("v1: message.message_type and message.content; templates, orders, flow replies, system bodies", async () => {
    const t = await seededBackend(dataset());
    const v1 = {
      event: "whatsapp.message.received",
      data: {
        message: { id: "wamid.v1", timestamp: String(T0), message_type: "text", content: "v1 text", from: "6281300000123" },
        conversation: { phone_number_id: PNID },
      },
    };
    expect(await counts(post(t, v1, {}))).toEqual([1, 0, 0]);
    const typed = (id: string, message: Record<string, unknown>) => {
      const body = v2(id, { phone: PHONE });
      body.message = { id, timestamp: String(T0), kapso: { direction: "inbound" }, ...message };
      return body;
    };
    const data = [
      typed("wamid.tpl", { type: "template", template: { name: "promo_jan" } }),
      typed("wamid.ord", { type: "order", order: { text: "2 items" } }),
      typed("wamid.nfm", { type: "interactive", interactive: { nfm_reply: { body: "Sent" } } }),
      typed("wamid.sys", { type: "system", system: {} }),
      typed("wamid.v1type", { message_type: "image", image: { caption: "foto" } }),
    ];
    expect(await counts(post(t, { batch: true, data }))).toEqual([5, 0, 0]);
    const { messages } = await allDocs(t);
    expect(messages.map((m) => [m.kapso_message_id, m.message_type, m.content])).toEqual([
      ["wamid.v1", "text", "v1 text"],
      ["wamid.tpl", "template", "[Template: promo_jan]"],
      ["wamid.ord", "order", "2 items"],
      ["wamid.nfm", "interactive", "Sent"],
      ["wamid.sys", "system", "[System]"],
      ["wamid.v1type", "image", "foto"],
    ]);
  });
});

describe("X-Hub-Signature-256 and logs", () => {
  test("Meta's header authenticates with KAPSO_WEBHOOK_SECRET; a wrong one is 401", async () => {
    const t = await seededBackend(dataset());
    const bytes = encode(v2("wamid.hub", { bsuid: BSUID }));
    const send = (signature: string) =>
      t.fetch("/webhook/kapso", {
        method: "POST",
        headers: { "content-type": "application/json", ...RECEIVED, "X-Hub-Signature-256": signature },
        body: Uint8Array.from(bytes),
      });
    expect((await send(`sha256=${sign(bytes, "another secret")}`)).status).toBe(401);
    expect(await counts(send(`sha256=${sign(bytes, SECRET)}`))).toEqual([1, 0, 0]);
  });

  test("no BSUID or username reaches a log line, whatever is ignored", async () => {
    const t = await seededBackend(dataset());
    const data = [
      v2("wamid.l1", { bsuid: "ID.12-3", username: USERNAME }),
      v2("wamid.l2", { bsuid: BSUID, username: USERNAME, phone: "not a phone" }),
      v2("wamid.l3", { bsuid: BSUID, username: USERNAME }),
    ];
    expect(await counts(post(t, { batch: true, data }))).toEqual([1, 0, 2]);
    const text = logLines.join("\n");
    expect(text).not.toContain("ID.");
    expect(text).not.toContain(USERNAME);
  });
});

describe("planning calls with identities", () => {
  test("an event that may merge is budgeted for it: calls stay under Convex's index-range limit", () => {
    const message = (i: number): PreparedEvent => ({
      kind: "message",
      phone_number_id: "p",
      person: { phone: `+62812${String(i).padStart(7, "0")}`, bsuid: `ID.${i}`, parent_bsuid: null, username: null },
      contact_name: null,
      kapso_message_id: `m${i}`,
      direction: "inbound",
      content: "hi",
      message_type: "text",
      status: "received",
      created_at: 1,
      error_code: null,
      error_title: null,
    });
    const { chunks } = planIngest(Array.from({ length: 1000 }, (_, i) => message(i)));
    // workspace + by BSUID + by phone + a merge (6) + conversation + message id = 11 index ranges each.
    expect(chunks.map((c) => c.events.length)).toEqual([327, 327, 327, 19]);
  });
});
