// POST /webhook/kapso (docs/contract.md §7), on the shared contract/webhook_scenario.json
// that tests/test_webhook.py replays against PostgreSQL.
import { beforeEach, describe, expect, test, vi } from "vitest";
import scenarioJson from "../../contract/webhook_scenario.json";
import { internal } from "../convex/_generated/api";
import { prepareEvent } from "../convex/judge";
import { readableContent } from "../convex/content";
import { RULES } from "../convex/contract";
import { decodeBody, JSON_MAX_DEPTH, numberForms, parseJsonBody, parseJsonBodyText } from "../convex/jsonBody";
import { BodyNotObject, countEvents, parseDelivery } from "../convex/kapso";
import { NO_ERROR } from "../convex/kapsoEvents";
import { failureError, timestampMs } from "../convex/kapsoValues";
import rules from "../../contract/webhook_rules.json";
import { planIngest } from "../convex/ingestPlan";
import {
  API_KEY,
  encode,
  getByPhone,
  newBackend,
  postWebhook,
  seededBackend,
  sign as signWith,
  stubKontakEnv,
  tableCounts,
  type Backend,
  type Limits,
} from "./harness";

const SECRET = "whsec-test-3b1f";
const URL_PATH = "/webhook/kapso";
const scenario: any = scenarioJson;
const WS = scenario.dataset.workspaces[0].id as string;
const PHONE_ID = scenario.dataset.workspaces[0].kapso_phone_id as string;

const raw = encode;

function sign(bytes: Uint8Array, secret: string = SECRET): string {
  return signWith(bytes, secret);
}

/** POSTs `body` (JSON-encoded unless bytes or a string); signed unless `signature` is false. */
function post(t: Backend, body: unknown, headers: Record<string, string> = {}, signature = true) {
  return postWebhook(t, body, headers, signature ? SECRET : undefined);
}

function loaded(limits?: Limits): Promise<Backend> {
  return seededBackend(scenario.dataset, limits);
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** Stored messages in insertion order, as the scenario lists them. */
function storedMessages(t: Backend) {
  return t.run(async (ctx) =>
    (await ctx.db.query("messages").collect()).map((m) => ({
      kapso_message_id: m.kapso_message_id,
      direction: m.direction,
      content: m.content,
      message_type: m.message_type,
      status: m.status,
      created_at: iso(m.created_at),
    })),
  );
}

/** Conversations in creation order, as the scenario lists them. */
function storedConversations(t: Backend) {
  return t.run(async (ctx) => {
    const rows = [];
    for (const c of await ctx.db.query("conversations").collect()) {
      const contact = await ctx.db.get("contacts", c.contact_id);
      rows.push({
        phone: contact?.phone,
        unread_count: c.unread_count,
        last_message_at: iso(c.last_message_at),
        last_message_preview: c.last_message_preview,
      });
    }
    return rows;
  });
}

async function answer(res: Response) {
  return { status: res.status, body: await res.json() };
}

const first = scenario.deliveries[0];
const batch = scenario.deliveries.find((d: any) => d.body.batch === true);

beforeEach(() => stubKontakEnv({ KAPSO_WEBHOOK_SECRET: SECRET }));

describe("POST /webhook/kapso: the shared scenario", () => {
  test("replays contract/webhook_scenario.json", async () => {
    const t = await loaded();
    for (const delivery of scenario.deliveries) {
      const res = await post(t, delivery.body, delivery.headers);
      expect(res.status, delivery.name).toBe(200);
      expect(res.headers.get("content-type")).toBe("application/json");
      // Exact body, key order included.
      expect(await res.text(), delivery.name).toBe(JSON.stringify({ received: true, ...delivery.expect }));
    }
    expect(await storedMessages(t)).toEqual(scenario.messages);
    expect(await storedConversations(t)).toEqual(scenario.conversations);
    for (const lookup of scenario.lookups) {
      const query = new URLSearchParams({ phone: lookup.phone, workspace_id: lookup.workspace_id });
      const res = await t.fetch(`/http/contacts/getByPhone?${query}`, { headers: { "x-api-key": API_KEY } });
      expect(res.status, lookup.phone).toBe(200);
      expect(await res.json(), lookup.phone).toEqual(lookup.expect);
    }
  });
});

describe("POST /webhook/kapso: storing", () => {
  test("the same delivery three times is stored once", async () => {
    const t = await loaded();
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(await (await post(t, first.body, first.headers)).json());
    expect(answers.map((a) => [a.stored, a.duplicates, a.ignored])).toEqual([
      [1, 0, 0],
      [0, 1, 0],
      [0, 1, 0],
    ]);
    const counts = await tableCounts(t);
    expect(counts.messages).toBe(1);
    expect(counts.contacts).toBe(1);
    expect(counts.conversations).toBe(1);
    const conversations = await storedConversations(t);
    expect(conversations[0].unread_count).toBe(1);
  });

  test("a batch mixing a stored message with new ones stores only the new ones", async () => {
    const t = await loaded();
    expect((await (await post(t, first.body, first.headers)).json()).stored).toBe(1);
    const res = await post(t, batch.body, batch.headers);
    expect(await res.text()).toBe('{"received":true,"stored":3,"duplicates":1,"ignored":0}');
    const ids = (await storedMessages(t)).map((m) => m.kapso_message_id);
    expect(ids).toEqual(["wamid.A1", "wamid.A3", "wamid.A4", "wamid.A5"]);
    // The batch again: all duplicates.
    expect(await (await post(t, batch.body, batch.headers)).text()).toBe(
      '{"received":true,"stored":0,"duplicates":4,"ignored":0}',
    );
  });

  test("contact: created at the message time, kapso_name from the contact name, updated by later names", async () => {
    const t = await loaded();
    await post(t, first.body, first.headers);
    const renamed = structuredClone(first.body);
    renamed.message.id = "wamid.renamed";
    renamed.conversation.kapso.contact_name = "Ana Maria";
    await post(t, renamed, first.headers);
    const unnamed = structuredClone(first.body);
    unnamed.message.id = "wamid.unnamed";
    delete unnamed.conversation.kapso;
    await post(t, unnamed, first.headers);
    const contacts = await t.run((ctx) => ctx.db.query("contacts").collect());
    expect(contacts).toHaveLength(1);
    expect(contacts[0]).toMatchObject({
      workspace_id: WS,
      phone: "+15551234567",
      name: null,
      kapso_name: "Ana Maria",
      email: null,
      lead_status: "new",
      lead_score: 0,
      tags: [],
      created_at: 1768900000000,
      updated_at: 1768900000000,
    });
    const conversations = await t.run((ctx) => ctx.db.query("conversations").collect());
    expect(conversations[0]).toMatchObject({ status: "open", unread_count: 3, created_at: 1768900000000 });
  });

  test("an equal message time moves the preview to the later insert; an older one does not", async () => {
    const t = await loaded();
    await post(t, first.body, first.headers);
    const same = structuredClone(first.body);
    same.message.id = "wamid.same-time";
    same.message.text.body = "same second";
    await post(t, same, first.headers);
    const older = structuredClone(first.body);
    older.message.id = "wamid.older";
    older.message.timestamp = "1768899000";
    older.message.text.body = "older";
    await post(t, older, first.headers);
    expect(await storedConversations(t)).toEqual([
      {
        phone: "+15551234567",
        unread_count: 3,
        last_message_at: "2026-01-20T09:06:40.000Z",
        last_message_preview: "same second",
      },
    ]);
  });

  test("outbound messages do not count as unread; statuses: unknown ignored, same duplicate", async () => {
    const t = await loaded();
    const sent = scenario.deliveries[2];
    expect(await (await post(t, sent.body, sent.headers)).text()).toBe(
      '{"received":true,"stored":1,"duplicates":0,"ignored":0}',
    );
    expect((await storedConversations(t))[0].unread_count).toBe(0);
    const sentAgain = { ...sent.headers, "X-Webhook-Event": "whatsapp.message.sent" };
    expect((await (await post(t, sent.body, sentAgain)).json()).duplicates).toBe(1);
    // Stored with status "sent"; a "sent"-valued Meta status is a duplicate.
    const meta = (id: string, status: string) => ({
      object: "whatsapp_business_account",
      entry: [{ changes: [{ value: { metadata: { phone_number_id: PHONE_ID }, statuses: [{ id, status }] } }] }],
    });
    expect(await (await post(t, meta("wamid.A2", "sent"))).text()).toBe(
      '{"received":true,"stored":0,"duplicates":1,"ignored":0}',
    );
    expect(await (await post(t, meta("wamid.nope", "read"))).text()).toBe(
      '{"received":true,"stored":0,"duplicates":0,"ignored":1}',
    );
  });

  test("unknown phone_number_id is ignored and stores nothing", async () => {
    const t = await loaded();
    const body = structuredClone(first.body);
    body.phone_number_id = "someone-else";
    body.conversation.phone_number_id = "someone-else";
    expect(await (await post(t, body, first.headers)).text()).toBe(
      '{"received":true,"stored":0,"duplicates":0,"ignored":1}',
    );
    expect((await tableCounts(t)).contacts).toBe(0);
  });

  test("message times: from 2000-01-01 to one day ahead are stored; the year 5138 is ignored", async () => {
    const t = await loaded();
    const nowSeconds = Math.floor(Date.now() / 1000);
    const cases: [string, unknown, number][] = [
      ["wamid.t2000", 946684800, 1],
      ["wamid.t1999", "946684799.999", 0],
      ["wamid.tomorrow", nowSeconds + 86400 - 5, 1],
      ["wamid.too-late", nowSeconds + 86400 + 60, 0],
      ["wamid.t5138", "99999999999", 0],
      ["wamid.t5138n", 99999999999, 0],
    ];
    for (const [id, timestamp, stored] of cases) {
      const body = structuredClone(first.body);
      body.message.id = id;
      body.message.timestamp = timestamp;
      const answer = await (await post(t, body, first.headers)).json();
      expect([answer.stored, answer.ignored], id).toEqual([stored, 1 - stored]);
    }
    expect((await storedMessages(t)).map((m) => m.kapso_message_id)).toEqual(["wamid.t2000", "wamid.tomorrow"]);
    // The far-future message did not pin last_message_at.
    expect((await storedConversations(t))[0].last_message_at).toBe(iso((nowSeconds + 86400 - 5) * 1000));
  });

  test("NUL characters are dropped from the content", async () => {
    const t = await loaded();
    const body = structuredClone(first.body);
    body.message.text.body = "vi\u0000sa";
    expect((await (await post(t, body, first.headers)).json()).stored).toBe(1);
    expect((await storedMessages(t))[0].content).toBe("visa");
  });

  test("storage failing mid-delivery: 503 with Retry-After, nothing stored, the retry stores all", async () => {
    // The batch runs past the transaction's write limit after a few inserts.
    const small = await loaded({ documentsWritten: 4 });
    const res = await post(small, batch.body, batch.headers);
    expect(await answer(res)).toEqual({ status: 503, body: { error: "Backend unavailable" } });
    expect(res.headers.get("retry-after")).toBe("1");
    expect(await tableCounts(small)).toEqual({ workspaces: 1, contacts: 0, contactNotes: 0, conversations: 0, messages: 0 });
    // The same delivery on a backend with the normal limits: all of it.
    const t = await loaded();
    expect((await (await post(t, batch.body, batch.headers)).json()).stored).toBe(4);
  });
});

describe("POST /webhook/kapso: authentication", () => {
  const bad: [string, Record<string, string>][] = [
    ["no signature", {}],
    ["zero signature", { "X-Webhook-Signature": "0".repeat(64) }],
    ["not hex", { "X-Webhook-Signature": "not hex at all" }],
    ["legacy header, another body", { "X-Kapso-Signature": sign(raw("another body")) }],
    ["another secret", { "X-Webhook-Signature": sign(raw(first.body), "other") }],
    ["wrong api key", { "x-api-key": "wrong" }],
    ["empty api key", { "x-api-key": "" }],
  ];
  test.each(bad)("401 and nothing stored: %s", async (_name, headers) => {
    const t = await loaded();
    const res = await post(t, first.body, { ...first.headers, ...headers }, false);
    expect(await answer(res)).toEqual({ status: 401, body: { error: "Unauthorized" } });
    expect((await tableCounts(t)).messages).toBe(0);
  });

  test("the signature covers the raw bytes: re-encoded JSON with the old signature is 401", async () => {
    const t = await loaded();
    const bytes = raw(JSON.stringify(first.body, null, 2));
    const res = await t.fetch(URL_PATH, {
      method: "POST",
      headers: { ...first.headers, "X-Webhook-Signature": sign(raw(first.body)) },
      body: Uint8Array.from(bytes),
    });
    expect(res.status).toBe(401);
  });

  test("legacy X-Kapso-Signature, a sha256= prefix and the api key are accepted", async () => {
    const t = await loaded();
    const bytes = raw(first.body);
    let res = await post(t, bytes, { ...first.headers, "X-Kapso-Signature": sign(bytes) }, false);
    expect((await answer(res)).body.stored).toBe(1);
    const sent = scenario.deliveries[2];
    res = await post(t, sent.body, { ...sent.headers, "x-api-key": API_KEY }, false);
    expect((await answer(res)).body.stored).toBe(1);
    const status = scenario.deliveries[3];
    const statusBytes = raw(status.body);
    res = await post(
      t,
      statusBytes,
      { ...status.headers, "X-Webhook-Signature": ` SHA256=${sign(statusBytes).toUpperCase()} ` },
      false,
    );
    expect((await answer(res)).body.stored).toBe(1);
  });

  test("a signature over non-ASCII UTF-8 bytes", async () => {
    const t = await loaded();
    const body = structuredClone(first.body);
    body.message.text.body = "Olá, ¿visa? 🇬🇧";
    const res = await post(t, body, first.headers);
    expect((await answer(res)).body.stored).toBe(1);
    expect((await storedMessages(t))[0].content).toBe("Olá, ¿visa? 🇬🇧");
  });

  test("only the secret configured: signatures work, api keys do not", async () => {
    vi.stubEnv("CRM_API_KEY", "");
    const t = newBackend();
    const res = await post(t, first.body, first.headers);
    expect(await answer(res)).toEqual({
      status: 200,
      body: { received: true, stored: 0, duplicates: 0, ignored: 1 },
    });
    const keyed = await post(t, first.body, { ...first.headers, "x-api-key": "" }, false);
    expect(keyed.status).toBe(401);
  });

  test("only the api key configured: signatures are not checked", async () => {
    vi.stubEnv("KAPSO_WEBHOOK_SECRET", "");
    const t = await loaded();
    expect((await post(t, first.body, first.headers)).status).toBe(401);
    const res = await post(t, first.body, { ...first.headers, "x-api-key": API_KEY }, false);
    expect((await answer(res)).body.stored).toBe(1);
  });

  test("500 when neither the secret nor the api key is configured (before size and auth)", async () => {
    vi.stubEnv("CRM_API_KEY", "");
    vi.stubEnv("KAPSO_WEBHOOK_SECRET", "");
    const t = newBackend();
    for (const body of [raw("{}"), new Uint8Array(1024 * 1024 + 1)]) {
      const res = await post(t, body, {}, false);
      expect(await answer(res)).toEqual({ status: 500, body: { error: "Service not configured" } });
    }
  });
});

describe("POST /webhook/kapso: bodies", () => {
  const invalid: [string, Uint8Array][] = [
    ["not json", raw("{not json")],
    ["UTF-16 BOM with an odd byte", new Uint8Array([0xff, 0xfe, 0x00])],
    ["invalid UTF-8", new Uint8Array([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0x22, 0x7d])],
    ["absurdly deep", raw("[".repeat(100_000) + "]".repeat(100_000))],
    ["empty", new Uint8Array(0)],
    ["-NaN", raw("-NaN")],
    ["NaN glued to a name", raw('{"a": NaNx}')],
    ["NaN", raw('{"a": NaN}')],
    ["Infinity", raw('{"a": [Infinity]}')],
    ["-Infinity", raw('{"a": {"b": -Infinity}}')],
  ];
  test.each(invalid)("400 Invalid JSON: %s", async (_name, bytes) => {
    const t = await loaded();
    const res = await post(t, bytes);
    expect(await answer(res)).toEqual({ status: 400, body: { error: "Invalid JSON" } });
  });

  test.each(["[]", '"text"', "null", "5", "1e999", "true"])(
    "400 Body must be a JSON object: %s",
    async (body) => {
      const t = await loaded();
      const res = await post(t, raw(body));
      expect(await answer(res)).toEqual({ status: 400, body: { error: "Body must be a JSON object" } });
      expect((await tableCounts(t)).messages).toBe(0);
    },
  );

  test.each([
    ["an unknown object", { hello: "world" }],
    ["an empty object", {}],
    ["a batch whose data is no list", { batch: true, data: "nope" }],
    ["a batch with no items", { batch: true, data: [] }],
    ["Meta raw with an empty entry", { object: "whatsapp_business_account", entry: [] }],
    ["Meta raw without entry", { object: "whatsapp_business_account" }],
    ["a project event", { event: "whatsapp.phone_number.created", data: { phone_number_id: PHONE_ID } }],
    ["a workflow event", { event: "workflow.execution.handoff", data: { phone_number_id: PHONE_ID } }],
    ["contact.updated", { type: "contact.updated", data: { phone_number: "+6281234567890" } }],
    ["a conversation event", { type: "whatsapp.conversation.created", conversation: { phone_number_id: PHONE_ID } }],
  ])("200, one event ignored, nothing stored: %s", async (_name, body) => {
    const t = await loaded();
    expect(await answer(await post(t, body))).toEqual({
      status: 200,
      body: { received: true, stored: 0, duplicates: 0, ignored: 1 },
    });
    expect(await tableCounts(t)).toMatchObject({ contacts: 0, conversations: 0, messages: 0 });
  });

  test("project events named by the X-Webhook-Event header are acknowledged, not refused", async () => {
    const t = await loaded();
    for (const event of ["whatsapp.phone_number.created", "workflow.execution.handoff", "contact.updated"]) {
      const res = await post(t, { phone_number_id: PHONE_ID, data: {} }, { "X-Webhook-Event": event });
      expect(await res.text(), event).toBe('{"received":true,"stored":0,"duplicates":0,"ignored":1}');
    }
  });

  // docs/webhook.md §1.1: one JSON reading for both webhooks.
  test.each([
    ["NaN", "NaN"],
    ["Infinity", "Infinity"],
    ["-Infinity", "-Infinity"],
  ])("%s is not JSON: 400 Invalid JSON, nothing stored", async (_name, literal) => {
    const t = await loaded();
    const body = JSON.stringify(first.body).replace('"1768900000"', literal);
    expect(body).toContain(literal);
    expect(await answer(await post(t, raw(body), first.headers))).toEqual({ status: 400, body: { error: "Invalid JSON" } });
    const inArray = raw(`{"data": [1, ${literal}]}`);
    expect(await answer(await post(t, inArray))).toEqual({ status: 400, body: { error: "Invalid JSON" } });
    expect((await tableCounts(t)).messages).toBe(0);
  });

  test("a 5,000-digit integer timestamp is a huge double: invalid_timestamp, 200", async () => {
    const t = await loaded();
    const body = JSON.stringify(first.body).replace('"1768900000"', "1" + "0".repeat(4999));
    expect(await answer(await post(t, raw(body), first.headers))).toEqual({
      status: 200,
      body: { received: true, stored: 0, duplicates: 0, ignored: 1 },
    });
  });

  test("nesting: json_max_depth (512) levels are read, 513 are Invalid JSON; the body's object is depth 1", async () => {
    const t = await loaded();
    const nested = (depth: number) => raw(`{"deep": ${"[".repeat(depth - 1)}${"]".repeat(depth - 1)}}`);
    expect(await answer(await post(t, nested(512)))).toEqual({
      status: 200,
      body: { received: true, stored: 0, duplicates: 0, ignored: 1 },
    });
    expect(await answer(await post(t, nested(513)))).toEqual({ status: 400, body: { error: "Invalid JSON" } });
    // 920 deep, the audit's case: refused by both webhooks.
    expect((await post(t, nested(920))).status).toBe(400);
  });

  test("a key repeated in one object: the last one wins", async () => {
    const t = await loaded();
    const text = JSON.stringify(first.body);
    const body = `{"message": {"id": "wamid.not-this-one"}, ${text.slice(1)}`;
    expect((await answer(await post(t, raw(body), first.headers))).body.stored).toBe(1);
    expect((await storedMessages(t)).map((m) => m.kapso_message_id)).toEqual([first.body.message.id]);
  });

  describe("at most max_events_per_delivery (10,000) events: 413 before any is read", () => {
    const TOO_MANY = { status: 413, body: { error: "Too many events (at most 10000 per delivery)" } };
    const empties = (n: number) => Array.from({ length: n }, () => ({}));
    const metaBody = (values: unknown[]) => ({
      object: "whatsapp_business_account",
      entry: [{ changes: values.map((value) => ({ field: "messages", value })) }],
    });

    test("the cap is the contract's", () => {
      expect(RULES.maxEventsPerDelivery).toBe(rules.max_events_per_delivery);
      expect(rules.max_events_per_delivery).toBe(10_000);
    });

    test("a batch of 10,001 items (the first a good message) stores nothing; 10,000 are read, one log line", async ({ onTestFinished }) => {
      const t = await loaded();
      const lines: string[] = [];
      const spy = vi.spyOn(console, "warn").mockImplementation((...args: unknown[]) => void lines.push(args.join(" ")));
      onTestFinished(() => spy.mockRestore());
      const over = { batch: true, data: [inbound("wamid.first"), ...empties(10_000)] };
      expect(await answer(await post(t, over, RECEIVED))).toEqual(TOO_MANY);
      expect((await tableCounts(t)).messages).toBe(0);
      expect(lines).toEqual([]);
      const at = { batch: true, data: [inbound("wamid.first"), ...empties(9_999)] };
      expect(await answer(await post(t, at, RECEIVED))).toEqual({
        status: 200,
        body: { received: true, stored: 1, duplicates: 0, ignored: 9_999 },
      });
      expect(lines).toEqual(["webhook events ignored reason=unknown_workspace count=9999"]);
    }, 60_000);

    test("X-Webhook-Batch makes the data list count; without it the body is one event", async () => {
      const t = await loaded();
      const body = { data: empties(10_001) };
      expect(await answer(await post(t, body, { "X-Webhook-Batch": "TRUE" }))).toEqual(TOO_MANY);
      expect((await answer(await post(t, body))).body).toEqual({ received: true, stored: 0, duplicates: 0, ignored: 1 });
    });

    test("Meta: each change counts its messages, echoes and statuses, at least one", async () => {
      const t = await loaded();
      const ids = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => ({ id: `${prefix}${i}` }));
      const held = { messages: ids(4_000, "m"), message_echoes: ids(3_000, "e"), statuses: ids(3_000, "s") };
      expect((await post(t, metaBody([held, {}]))).status).toBe(413); // 10,000 + 1
      expect((await post(t, metaBody([held]))).status).toBe(200); // 10,000
      expect((await post(t, metaBody(empties(10_001)))).status).toBe(413);
      expect((await answer(await post(t, metaBody(empties(10_000))))).body.ignored).toBe(10_000);
      // Entries, changes or values that are not what they should be count nothing, as they are read.
      const odd = { object: "whatsapp_business_account", entry: [5, { changes: "x" }, { changes: [3, { value: [] }]}], data: empties(20_000) };
      expect((await answer(await post(t, odd))).body).toEqual({ received: true, stored: 0, duplicates: 0, ignored: 2 });
    }, 60_000);

    test("after the JSON checks: invalid JSON and non-objects answer 400 first; unauthenticated 401", async () => {
      const t = await loaded();
      const over = { batch: true, data: empties(10_001) };
      expect((await post(t, over, {}, false)).status).toBe(401);
      expect((await post(t, JSON.stringify(over) + "x")).status).toBe(400);
      expect((await post(t, [over])).status).toBe(400);
    });

    test("countEvents counts as services/kapso.py count_events", () => {
      expect(countEvents({}, null)).toBe(1);
      expect(countEvents({ batch: true, data: "x" }, null)).toBe(0);
      expect(countEvents({ batch: "true", data: [1, 2] }, null)).toBe(1);
      expect(countEvents({ data: [1, 2, 3] }, "True")).toBe(3);
      expect(countEvents(metaBody([{ messages: [1, 2], statuses: {} }, { statuses: [1] }, {}]), null)).toBe(4);
    });
  });

  test("413 over 1 MiB; exactly 1 MiB is read", async () => {
    const t = await loaded();
    const over = { ...first.body, padding: "x".repeat(1024 * 1024) };
    expect(await answer(await post(t, over, first.headers))).toEqual({
      status: 413,
      body: { error: "Payload too large" },
    });
    // Size comes before authentication.
    expect((await post(t, over, first.headers, false)).status).toBe(413);
    const base = JSON.stringify({ ...first.body, padding: "" });
    const exact = JSON.stringify({ ...first.body, padding: "x".repeat(1024 * 1024 - raw(base).length) });
    expect(raw(exact).length).toBe(1024 * 1024);
    expect((await answer(await post(t, exact, first.headers))).body.stored).toBe(1);
  });

  test("a UTF-16 body is read like Python's json.loads(bytes) reads it", async () => {
    const t = await loaded();
    const s = JSON.stringify(first.body);
    const bytes = new Uint8Array(2 + s.length * 2);
    bytes.set([0xff, 0xfe]);
    for (let i = 0; i < s.length; i++) new DataView(bytes.buffer).setUint16(2 + i * 2, s.charCodeAt(i), true);
    expect((await answer(await post(t, bytes, first.headers))).body.stored).toBe(1);
  });

  test("a number where a list belongs is read as no list, not a crash", async () => {
    const t = await loaded();
    const body = { object: "whatsapp_business_account", entry: [{ changes: 5 }] };
    expect(await answer(await post(t, body))).toEqual({
      status: 200,
      body: { received: true, stored: 0, duplicates: 0, ignored: 1 },
    });
  });
});

describe("kapso.ts parser", () => {
  const msg = (type: string, part: unknown) => ({ type, [type]: part });
  test.each([
    [{ type: "text", text: { body: "hi" } }, "hi"],
    [{ type: "text", text: { body: "   " } }, ""],
    [{ text: { body: "no type" } }, "no type"],
    [{ type: "text", kapso: { content: "from kapso" } }, "from kapso"],
    [{ type: "audio", audio: {}, kapso: { transcript: "I need a visa" } }, "I need a visa"],
    [{ type: "audio", audio: {}, kapso: { transcript: { text: "as an object" } } }, "as an object"],
    [{ type: "audio", audio: {}, kapso: { transcript: {}, content: "content" } }, "content"],
    [{ type: "text", text: { body: "lone \ud800 surrogate" } }, "lone \ufffd surrogate"],
    [{ type: "text", text: { body: "pair \ud83d\ude00 kept" } }, "pair \ud83d\ude00 kept"],
    [msg("image", {}), "[Image]"],
    [msg("image", { caption: "look" }), "look"],
    [msg("video", { caption: "  " }), "[Video]"],
    [msg("document", { filename: "cv.pdf" }), "[Document: cv.pdf]"],
    [msg("document", { caption: "my cv", filename: "cv.pdf" }), "my cv"],
    [msg("document", {}), "[Document]"],
    [msg("location", { name: "Kampus UI" }), "[Location: Kampus UI]"],
    [msg("location", { latitude: 1 }), "[Location]"],
    [msg("reaction", { emoji: "👍" }), "[Reaction: 👍]"],
    [msg("reaction", {}), "[Reaction]"],
    [msg("interactive", { button_reply: { title: "Yes" } }), "Yes"],
    [msg("interactive", { button_reply: {}, list_reply: { title: "Option B" } }), "Option B"],
    [msg("interactive", {}), "[Interactive]"],
    [msg("button", { text: "Start" }), "Start"],
    [msg("button", {}), "[Button]"],
    [msg("contacts", [{}]), "[Contact]"],
    [msg("sticker", {}), "[Sticker]"],
    [msg("audio", {}), "[Audio]"],
    [msg("constructor", {}), "[Constructor]"],
    [{ type: "text", text: { body: "a\u0000b" } }, "ab"],
    // docs/webhook.md §7.8
    [msg("template", { name: "promo_jan" }), "[Template: promo_jan]"],
    [msg("template", { name: " " }), "[Template]"],
    [msg("order", { text: "2 items" }), "2 items"],
    [msg("order", {}), "[Order]"],
    [msg("interactive", { nfm_reply: { body: "Sent", response_json: "{}" } }), "Sent"],
    [msg("interactive", { button_reply: { title: " " }, list_reply: { title: "Option C" } }), "Option C"],
    [msg("system", { body: "User changed" }), "User changed"],
    [msg("system", {}), "[System]"],
    [{ message_type: "text", content: "v1 content" }, "v1 content"],
    [{ message_type: "image", image: { caption: "v1 caption" } }, "v1 caption"],
    [{ type: "text", kapso: { content: "kapso first" }, content: "v1 content" }, "kapso first"],
  ])("readableContent %j", (message, expected) => {
    expect(readableContent(message as any)).toBe(expected);
  });

  test("timestamps: Unix seconds as a number or a decimal string, half to even, 2000 to now + 1 day", () => {
    const now = 1_768_900_000_000;
    expect(timestampMs("1768900000", now)).toBe(1768900000000);
    expect(timestampMs(1768900000, now)).toBe(1768900000000);
    expect(timestampMs(" 1768900000\n", now)).toBe(1768900000000);
    expect(timestampMs("1.7689e9", now)).toBe(1768900000000);
    expect(timestampMs("+1768900000.0025", now)).toBe(1768900000002); // half to even
    expect(timestampMs(946684800, now)).toBe(946684800000);
    expect(timestampMs(1768900000 + 86400, now)).toBe(now + 86400000);
    for (const bad of [
      true, null, "", "abc", "0x10", "1_768_900_000", "1768900000.", ".5e9", "nan", "inf", "Infinity",
      NaN, Infinity, 946684799, 1768900000 + 86401, 99999999999, -1768900000, [1768900000], {},
      "1" + "0".repeat(399), Number("1" + "0".repeat(399)), "\u00a01768900000",
    ]) {
      expect(timestampMs(bad, now), String(bad).slice(0, 20)).toBeNull();
    }
  });

  test("v2: direction, status, phone and name fallbacks; phone number id from every place", () => {
    const [sent] = parseDelivery(
      {
        message: { id: "m1", timestamp: "10", type: "text", text: { body: "x" }, to: "+1 555", kapso: {} },
        conversation: { phone_number_id: "p", contact_name: "Ana\u0000" },
      },
      "whatsapp.message.sent",
      null,
    );
    expect(sent).toEqual({
      kind: "message",
      phone_number_id: "p",
      identity: { phone: "+1 555", bsuid: null, parent_bsuid: null, username: null },
      contact_name: "Ana",
      kapso_message_id: "m1",
      timestamp: "10",
      message_type: "text",
      direction: "outbound",
      content: "x",
      status: "sent",
      error: NO_ERROR,
    });
    // No event name: the direction decides; kapso.status only when known.
    const [inbound] = parseDelivery({ message: { id: "m", from: "62", kapso: { status: "bogus" } } }, null, null);
    expect(inbound).toMatchObject({ kind: "message", direction: "inbound", status: "received", identity: { phone: "62" } });
    const places: [string, unknown][] = [
      ["top level", { phone_number_id: "p1", message: { id: "m" } }],
      ["conversation", { conversation: { phone_number_id: "p1" }, message: { id: "m" } }],
      ["message.kapso", { message: { id: "m", kapso: { phone_number_id: "p1" } } }],
      ["whatsapp_config", { whatsapp_config: { phone_number_id: "p1" }, message: { id: "m" } }],
      ["v1 data", { event: "whatsapp.message.received", data: { whatsapp_config: { phone_number_id: "p1" }, message: { id: "m" } } }],
      ["blank first", { phone_number_id: " ", conversation: { phone_number_id: 5 }, message: { id: "m", kapso: { phone_number_id: "p1" } } }],
    ];
    for (const [name, body] of places) {
      expect(parseDelivery(body, null, null)[0], name).toMatchObject({ kind: "message", phone_number_id: "p1" });
    }
    expect(parseDelivery({ message: { timestamp: 1 } }, "whatsapp.message.read", null)).toEqual([
      { kind: "status", phone_number_id: null, kapso_message_id: null, status: "read", error: NO_ERROR, unseen: null },
    ]);
    expect(parseDelivery({ conversation: {} }, null, null)).toEqual([{ kind: "ignored", reason: "unknown_event" }]);
    // A conversation event (§7.7) names its conversation's person and carries its time.
    expect(parseDelivery({ message: {} }, "whatsapp.conversation.ended", null)).toEqual([
      {
        kind: "conversation",
        phone_number_id: null,
        identity: { phone: null, bsuid: null, parent_bsuid: null, username: null },
        status: "ended",
        time: null,
      },
    ]);
  });

  test("batch: header or body flag, event from the header or the type", () => {
    const item = { message: { id: "m", timestamp: 1 }, phone_number_id: "p" };
    expect(parseDelivery({ type: "whatsapp.message.read", data: [item] }, null, "TRUE")).toEqual([
      { kind: "status", phone_number_id: "p", kapso_message_id: "m", status: "read", error: NO_ERROR, unseen: null },
    ]);
    expect(parseDelivery({ batch: true, data: [item, 5] }, "whatsapp.message.delivered", null).map((e) => e.kind)).toEqual([
      "status",
      "status",
    ]);
    expect(parseDelivery({ batch: true }, null, null)).toEqual([{ kind: "ignored", reason: "no_message" }]);
    expect(() => parseDelivery([item], null, null)).toThrow(BodyNotObject);
  });

  test("Meta raw: profile names by wa_id, the single contact's wa_id, statuses", () => {
    const value = {
      metadata: { phone_number_id: "p" },
      contacts: [{ wa_id: "62", profile: { name: "Dewi" } }],
      messages: [{ id: "m", timestamp: "5", type: "image", image: {} }, { id: "n", from: "63" }],
      statuses: [{ id: "m", status: "read" }, { id: "m" }],
    };
    const events = parseDelivery({ object: "whatsapp_business_account", entry: [{ changes: [{ value }] }] }, null, null);
    expect(events).toEqual([
      {
        kind: "message",
        phone_number_id: "p",
        identity: { phone: "62", bsuid: null, parent_bsuid: null, username: null },
        contact_name: "Dewi",
        kapso_message_id: "m",
        timestamp: "5",
        message_type: "image",
        direction: "inbound",
        content: "[Image]",
        status: "received",
        error: NO_ERROR,
      },
      {
        // The change's only contact is the matching contact, whatever its wa_id (§7.2).
        kind: "message",
        phone_number_id: "p",
        identity: { phone: "63", bsuid: null, parent_bsuid: null, username: null },
        contact_name: "Dewi",
        kapso_message_id: "n",
        timestamp: undefined,
        message_type: null,
        direction: "inbound",
        content: "",
        status: "received",
        error: NO_ERROR,
      },
      { kind: "status", phone_number_id: "p", kapso_message_id: "m", status: "read", error: NO_ERROR, unseen: null },
      { kind: "status", phone_number_id: "p", kapso_message_id: "m", status: null, error: NO_ERROR, unseen: null },
    ]);
    // A string or an object where a list belongs is no list at all: the change is one ignored event.
    const odd = { metadata: {}, messages: "ab", statuses: { x: 1 }, contacts: 7 };
    expect(parseDelivery({ object: "whatsapp_business_account", entry: [{ changes: [{ value: odd }] }] }, null, null)).toEqual([
      { kind: "ignored", reason: "no_message" },
    ]);
  });

  test("identity sources (§7.2): v2 conversation, then message, then from_user_id / to_user_id by direction", () => {
    const read = (body: unknown, name = "whatsapp.message.received") => parseDelivery(body, name, null)[0] as any;
    const message = { id: "m", from_user_id: "ID.3", to_user_id: "ID.4", business_scoped_user_id: "ID.2", parent_business_scoped_user_id: "ID.ENT.2", username: "msg.user" };
    const conversation = { business_scoped_user_id: "ID.1", parent_business_scoped_user_id: "ID.ENT.1", username: " conv\u0000user " };
    expect(read({ message, conversation }).identity).toEqual({ phone: null, bsuid: "ID.1", parent_bsuid: "ID.ENT.1", username: " convuser " });
    expect(read({ message }).identity).toEqual({ phone: null, bsuid: "ID.2", parent_bsuid: "ID.ENT.2", username: "msg.user" });
    const bare = { id: "m", from_user_id: "ID.3", to_user_id: "ID.4" };
    expect(read({ message: bare }).identity.bsuid).toBe("ID.3");
    expect(read({ message: bare }, "whatsapp.message.sent").identity.bsuid).toBe("ID.4");
    // A username over max_id_length code points, or blank once cleaned, is absent.
    expect(read({ message: { ...bare, username: "u".repeat(257) } }).identity.username).toBeNull();
    expect(read({ message: { ...bare, username: "\u0000 " } }).identity.username).toBeNull();
  });

  test("Meta sources: the matching contact by user_id, then wa_id, then the only one; echoes; statuses", () => {
    const contacts = [
      { wa_id: "62811", user_id: "ID.1", profile: { name: "First", username: "first" } },
      { wa_id: "62812", user_id: "ID.2", parent_user_id: "ID.ENT.2", profile: { name: "Second", username: "second" } },
      { wa_id: "62812", user_id: "ID.3", profile: { name: "Later", username: "later" } },
    ];
    const value = {
      metadata: { phone_number_id: "p" },
      contacts,
      messages: [
        { id: "a", from_user_id: "ID.2" },
        { id: "b", from: "62812" },
        { id: "c", from: "62899", from_user_id: "ID.9", from_parent_user_id: "ID.ENT.9" },
      ],
      message_echoes: [{ id: "e", from: "62100", to: "62813", to_user_id: "ID.5", to_parent_user_id: "ID.ENT.5", type: "text", text: { body: "hi" } }],
      statuses: [{ id: "s", status: "failed", timestamp: "7", recipient_id: "62814", recipient_user_id: "ID.6", errors: [{ code: 1, title: "t" }] }],
    };
    const events = parseDelivery({ object: "whatsapp_business_account", entry: [{ changes: [{ value }] }] }, null, null) as any[];
    expect(events.map((e) => [e.kind, e.identity?.phone ?? null, e.identity?.bsuid ?? null, e.contact_name ?? null])).toEqual([
      ["message", "62812", "ID.2", "Second"],
      ["message", "62812", "ID.3", "Later"], // the last contact with that wa_id
      ["message", "62899", "ID.9", null], // no match among three contacts
      ["message", "62813", "ID.5", null],
      ["status", null, null, null],
    ]);
    expect(events[0].identity).toMatchObject({ parent_bsuid: "ID.ENT.2", username: "second" });
    expect(events[2].identity.parent_bsuid).toBe("ID.ENT.9");
    expect(events[3]).toMatchObject({ direction: "outbound", status: "sent", content: "hi", identity: { parent_bsuid: "ID.ENT.5" } });
    expect(events[4].unseen).toMatchObject({
      direction: "outbound",
      status: "failed",
      content: "",
      message_type: "unknown",
      timestamp: "7",
      identity: { phone: "62814", bsuid: "ID.6", parent_bsuid: null, username: null },
      error: { code: "1", title: "t" },
    });
  });

  test("numberForms: integral numbers written with a fraction or exponent, found where they are", () => {
    const parse = (text: string) => {
      const parsed = parseJsonBodyText(raw(text))!;
      return { value: parsed.value as any, isFloat: numberForms(parsed.text, parsed.value) };
    };
    let { value, isFloat } = parse('{"errors": [{"code": 1.0, "n": 2}, {"code": 3e0}], "x\\"y": {"code": 1}}');
    expect(isFloat(value.errors[0], "code")).toBe(true);
    expect(isFloat(value.errors[0], "n")).toBe(false);
    expect(isFloat(value.errors[1], "code")).toBe(true);
    expect(value['x"y'].code).toBe(1);
    expect(isFloat(value['x"y'], "code")).toBe(false);
    // JSON's last duplicate key wins, and so does what was learnt about it.
    ({ value, isFloat } = parse('{"e": {"code": 1.0}, "e": {"code": 1}, "f": {"code": 2}, "f": {"code": 2.5E1}}'));
    expect(isFloat(value.e, "code")).toBe(false);
    expect(isFloat(value.f, "code")).toBe(true);
    ({ value, isFloat } = parse('{"s": "1.0 [ { \\" ,", "k": [[1.5, -0.0e0]], "code": null}'));
    expect(value.code).toBeNull();
    expect(value.s).toBe('1.0 [ { " ,'); // brackets and numbers inside strings are not structure
    expect(isFloat(value.k[0], "1")).toBe(false); // array holders are not asked about
  });

  test("failureError: the first entry's code and title", () => {
    expect(failureError([{ code: 131026, title: "T" }, { code: 2 }])).toEqual({ code: "131026", title: "T" });
    expect(failureError([{ code: -0 }])).toEqual({ code: "0", title: null });
    expect(failureError([{ code: 1.5 }, { code: 1 }])).toEqual({ code: null, title: null });
    expect(failureError([{ code: 2 ** 53 - 1 }])).toEqual({ code: String(2 ** 53 - 1), title: null });
    expect(failureError([{ code: -(2 ** 53) }])).toEqual({ code: null, title: null });
    expect(failureError([{ code: false, title: "a\ud800b" }])).toEqual({ code: null, title: "a\ufffdb" });
    expect(failureError([5, { code: 1 }])).toEqual({ code: null, title: null });
    expect(failureError({ code: 1 })).toEqual({ code: null, title: null });
  });

  test("prepareEvent: the checks that need no database, in the order of §3", () => {
    const now = 1_768_900_000_000;
    const base = {
      kind: "message" as const,
      phone_number_id: "p",
      identity: { phone: "081234567890" as string | null, bsuid: null, parent_bsuid: null, username: null },
      contact_name: null,
      kapso_message_id: "m",
      timestamp: 1768900000,
      message_type: null,
      direction: "inbound",
      content: "hi",
      status: "received",
      error: NO_ERROR,
    };
    expect(prepareEvent(base, "ID", now)).toEqual({
      kind: "message",
      phone_number_id: "p",
      person: { phone: "+6281234567890", bsuid: null, parent_bsuid: null, username: null },
      contact_name: null,
      kapso_message_id: "m",
      direction: "inbound",
      content: "hi",
      message_type: "text",
      status: "received",
      created_at: 1768900000000,
      error_code: null,
      error_title: null,
    });
    const reason = (patch: { phone?: string | null; [field: string]: unknown }, region = "ID") => {
      const { phone, ...rest } = patch;
      const identity = phone === undefined ? base.identity : { ...base.identity, phone };
      const e = prepareEvent({ ...base, ...rest, identity }, region, now);
      return e.kind === "ignored" || e.kind === "rejected" ? e.reason : e.kind;
    };
    expect(reason({ phone_number_id: "p\u0000", kapso_message_id: null })).toBe("invalid_phone_number_id");
    expect(reason({ kapso_message_id: null, timestamp: null })).toBe("invalid_message_id");
    expect(reason({ kapso_message_id: "x".repeat(257) })).toBe("invalid_message_id");
    expect(reason({ kapso_message_id: "😀".repeat(256) })).toBe("message"); // 256 code points, 512 UTF-16 units
    expect(reason({ kapso_message_id: "😀".repeat(257) })).toBe("invalid_message_id");
    expect(reason({ kapso_message_id: "a\ud800" })).toBe("invalid_message_id");
    expect(reason({ kapso_message_id: "\u3000" })).toBe("invalid_message_id");
    expect(reason({ timestamp: "1".repeat(400), message_type: "\u0000" })).toBe("invalid_timestamp");
    expect(reason({ message_type: "t".repeat(65), phone: null })).toBe("invalid_type");
    expect(reason({ message_type: "t".repeat(64) })).toBe("message");
    expect(reason({ phone: "abc" })).toBe("invalid_phone");
    expect(reason({ phone: "081234567890" }, "GB")).toBe("invalid_phone");
    expect(reason({ phone: "07700 900123" }, "GB")).toBe("message");
  });

  test("bodies: encodings Python's json.loads(bytes) detects, BOMs, depth, NaN", () => {
    expect(decodeBody(new Uint8Array([0xef, 0xbb, 0xbf, 0x7b, 0x7d]))).toBe("{}");
    expect(decodeBody(new Uint8Array([0x7b, 0x00, 0x7d, 0x00]))).toBe("{}");
    expect(decodeBody(new Uint8Array([0x00, 0x7b, 0x00, 0x7d]))).toBe("{}");
    expect(decodeBody(new Uint8Array([0x7b, 0, 0, 0, 0x7d, 0, 0, 0]))).toBe("{}");
    expect(parseJsonBody(new Uint8Array([0xef, 0xbb, 0xbf, 0xef, 0xbb, 0xbf, 0x7b, 0x7d]))).toBeUndefined();
    expect(JSON_MAX_DEPTH).toBe(rules.json_max_depth);
    expect(parseJsonBody(raw("[".repeat(512) + "]".repeat(512)))).toBeDefined();
    expect(parseJsonBody(raw("[".repeat(513) + "]".repeat(513)))).toBeUndefined();
    expect(parseJsonBody(raw('{"a": 1, "a": {"b": 2}}'))).toEqual({ a: { b: 2 } });
    expect(parseJsonBody(raw("1" + "0".repeat(400)))).toBe(Infinity);
    for (const text of ["NaN", "[NaN]", '{"a": Infinity}', "-Infinity"]) expect(parseJsonBody(raw(text)), text).toBeUndefined();
    expect(parseJsonBody(raw('{"a": "NaN Infinity"}'))).toEqual({ a: "NaN Infinity" });
    expect(parseJsonBody(raw(JSON.stringify({ a: "[[[[" })))).toEqual({ a: "[[[[" });
  });
});

// ---------------------------------------------------------------------------
// Issue 11: each defect the issue lists that concerns the Convex webhook or
// the lookup action, replayed through HTTP.

/** A v2 inbound text event; `patch` edits it before sending. */
function inbound(id: string, patch: (body: any) => void = () => {}): any {
  const body = structuredClone(first.body);
  body.message.id = id;
  patch(body);
  return body;
}

const RECEIVED = { "X-Webhook-Event": "whatsapp.message.received" };

async function lookupHttp(t: Backend, phone: string, workspace: string = WS) {
  const res = await getByPhone(t, { phone, workspace_id: workspace });
  return { status: res.status, body: await res.json() };
}

function messageStatus(t: Backend, id: string) {
  return t.run(async (ctx) => (await ctx.db.query("messages").collect()).find((m) => m.kapso_message_id === id)?.status);
}

describe("deliveries as they really arrive", () => {
  test("phone number id only in message.kapso, or only in whatsapp_config (v1 data): stored", async () => {
    const t = await loaded();
    const kapsoOnly = inbound("wamid.kapso-pnid", (b) => {
      delete b.phone_number_id;
      delete b.conversation.phone_number_id;
      b.message.kapso.phone_number_id = PHONE_ID;
    });
    expect(await (await post(t, kapsoOnly, RECEIVED)).text()).toBe('{"received":true,"stored":1,"duplicates":0,"ignored":0}');
    const v1 = {
      event: "whatsapp.message.received",
      data: {
        whatsapp_config: { phone_number_id: PHONE_ID },
        message: { id: "wamid.v1", timestamp: "1768900100", type: "text", text: { body: "v1 hello" }, from: "6281234567890" },
      },
    };
    expect(await (await post(t, v1)).text()).toBe('{"received":true,"stored":1,"duplicates":0,"ignored":0}');
    expect((await storedMessages(t)).map((m) => m.content)).toEqual(["Hi, I want to study in the UK", "v1 hello"]);
  });

  test("conversation.contact_name is read; the last non-blank name of a delivery wins", async () => {
    const t = await loaded();
    const named = (id: string, name: unknown) =>
      inbound(id, (b) => {
        delete b.conversation.kapso;
        b.conversation.contact_name = name;
      });
    const res = await post(t, { batch: true, data: [named("wamid.n1", "Ana"), named("wamid.n2", "Ana Maria"), named("wamid.n3", "  ")] }, RECEIVED);
    expect((await res.json()).stored).toBe(3);
    expect((await lookupHttp(t, "+15551234567")).body.contact.name).toBe("Ana Maria");
  });

  test("voice notes: the transcript is the content", async () => {
    const t = await loaded();
    const audio = inbound("wamid.audio", (b) => {
      b.message.type = "audio";
      b.message.audio = { id: "media-1" };
      b.message.kapso = { direction: "inbound", transcript: { text: "Saya mau beasiswa ke Kanada" } };
    });
    expect((await (await post(t, audio, RECEIVED)).json()).stored).toBe(1);
    expect((await storedMessages(t))[0].content).toBe("Saya mau beasiswa ke Kanada");
    expect((await lookupHttp(t, "+15551234567")).body.conversation_summary).toBe("Discussed: Canada, Scholarship");
  });

  test("NUL: in the message id, phone number id or type the event is ignored; in the name or content it is removed", async () => {
    const t = await loaded();
    const poison = [
      inbound("wamid.\u0000nul"),
      inbound("wamid.pnid", (b) => {
        b.phone_number_id = `${PHONE_ID}\u0000`;
      }),
      inbound("wamid.type", (b) => {
        b.message.type = "te\u0000xt";
      }),
    ];
    for (const body of poison) {
      expect(await answer(await post(t, body, RECEIVED))).toEqual({
        status: 200,
        body: { received: true, stored: 0, duplicates: 0, ignored: 1 },
      });
    }
    const cleaned = inbound("wamid.clean", (b) => {
      b.conversation.kapso.contact_name = "A\u0000na";
      b.message.text.body = "vi\u0000sa";
    });
    expect((await (await post(t, cleaned, RECEIVED)).json()).stored).toBe(1);
    expect((await storedMessages(t)).map((m) => [m.kapso_message_id, m.content])).toEqual([["wamid.clean", "visa"]]);
    expect((await lookupHttp(t, "+15551234567")).body.contact.name).toBe("Ana");
  });

  test("an unpaired surrogate: in the id the event is ignored, in text it becomes U+FFFD; never a 5xx", async () => {
    const t = await loaded();
    // Written as JSON escapes, the way a hostile sender puts them on the wire.
    const bad = JSON.stringify(inbound("wamid.SURROGATE")).replace("SURROGATE", "\\ud800");
    expect(await (await post(t, raw(bad), RECEIVED)).text()).toBe('{"received":true,"stored":0,"duplicates":0,"ignored":1}');
    const text = JSON.stringify(inbound("wamid.text", (b) => {
      b.message.text.body = "LONE";
      b.conversation.kapso.contact_name = "NAME";
    }))
      .replace("LONE", "a\\udc00b")
      .replace("NAME", "Ana \\ud83d");
    expect((await (await post(t, raw(text), RECEIVED)).json()).stored).toBe(1);
    expect((await storedMessages(t))[0].content).toBe("a\ufffdb");
    const found = await lookupHttp(t, "+15551234567");
    expect(found.body.contact.name).toBe("Ana \ufffd");
  });

  test("a 4 KB id is ignored; 256 code points (512 UTF-16 units) are stored", async () => {
    const t = await loaded();
    const random = Array.from({ length: 4096 }, (_, i) => String.fromCharCode(33 + ((i * 7919) % 90))).join("");
    expect((await (await post(t, inbound(random), RECEIVED)).json()).ignored).toBe(1);
    expect((await (await post(t, inbound("😀".repeat(256)), RECEIVED)).json()).stored).toBe(1);
    expect((await (await post(t, inbound("😀".repeat(257)), RECEIVED)).json()).ignored).toBe(1);
  });

  test("a 400-digit integer timestamp is ignored, not a 500", async () => {
    const t = await loaded();
    const body = JSON.stringify(inbound("wamid.big-ts")).replace('"1768900000"', "1" + "0".repeat(399));
    expect(await answer(await post(t, raw(body), RECEIVED))).toEqual({
      status: 200,
      body: { received: true, stored: 0, duplicates: 0, ignored: 1 },
    });
  });

  test("a batch of 10 good events and one poison event stores the 10, on the first try", async () => {
    const t = await loaded();
    const good = Array.from({ length: 10 }, (_, i) =>
      inbound(`wamid.good-${i}`, (b) => {
        b.conversation.phone_number = `+628123456${String(i).padStart(4, "0")}`;
      }),
    );
    const poison = inbound("wamid.poison", (b) => {
      b.message.timestamp = "99999999999";
      b.message.type = "\u0000";
    });
    const data = [...good.slice(0, 5), poison, ...good.slice(5)];
    expect(await (await post(t, { type: "whatsapp.message.received", batch: true, data })).text()).toBe(
      '{"received":true,"stored":10,"duplicates":0,"ignored":1}',
    );
    expect((await tableCounts(t)).messages).toBe(10);
  });

  test("081234567890 is stored as +6281234567890 and found by its other forms", async () => {
    const t = await loaded();
    const body = inbound("wamid.national", (b) => {
      b.conversation.phone_number = "081234567890";
    });
    expect((await (await post(t, body, RECEIVED)).json()).stored).toBe(1);
    const contacts = await t.run((ctx) => ctx.db.query("contacts").collect());
    expect(contacts.map((c) => c.phone)).toEqual(["+6281234567890"]);
    for (const phone of ["081234567890", "0062 812 3456 7890", "6281234567890", "+62 812-3456-7890"]) {
      const found = await lookupHttp(t, phone);
      expect([found.status, found.body.found], phone).toEqual([200, true]);
    }
  });

  test("DEFAULT_REGION=GB: 07700 900123 is +447700900123 in the webhook and in the lookup", async () => {
    vi.stubEnv("DEFAULT_REGION", "GB");
    const t = await loaded();
    const body = inbound("wamid.gb", (b) => {
      b.conversation.phone_number = "07700 900123";
    });
    expect((await (await post(t, body, RECEIVED)).json()).stored).toBe(1);
    const contacts = await t.run((ctx) => ctx.db.query("contacts").collect());
    expect(contacts.map((c) => c.phone)).toEqual(["+447700900123"]);
    expect((await lookupHttp(t, "07700 900123")).body.found).toBe(true);
    // An Indonesian national number means nothing in GB.
    const id = inbound("wamid.id", (b) => {
      b.conversation.phone_number = "081234567890";
    });
    expect((await (await post(t, id, RECEIVED)).json()).ignored).toBe(1);
  });

  test("status moves forward only: a late delivered does not overwrite read; failed only before delivered", async () => {
    const t = await loaded();
    const sent = scenario.deliveries[2];
    await post(t, sent.body, sent.headers);
    const id = sent.body.message.id as string;
    const status = (name: string) => post(t, { message: { id }, phone_number_id: PHONE_ID }, { "X-Webhook-Event": `whatsapp.message.${name}` });
    const counts = async (res: Promise<Response>) => {
      const a = await (await res).json();
      return [a.stored, a.duplicates, a.ignored];
    };
    expect(await counts(status("read"))).toEqual([1, 0, 0]);
    expect(await counts(status("delivered"))).toEqual([0, 1, 0]);
    expect(await counts(status("failed"))).toEqual([0, 1, 0]);
    expect(await messageStatus(t, id)).toBe("read");

    // failed before delivered moves, and nothing moves a failed message.
    expect((await (await post(t, inbound("wamid.in"), RECEIVED)).json()).stored).toBe(1);
    const meta = (s: unknown) => ({
      object: "whatsapp_business_account",
      entry: [{ changes: [{ value: { metadata: { phone_number_id: PHONE_ID }, statuses: [{ id: "wamid.in", status: s }] } }] }],
    });
    expect(await counts(post(t, meta("failed")))).toEqual([1, 0, 0]); // received -> failed
    expect(await counts(post(t, meta("read")))).toEqual([0, 1, 0]);
    expect(await counts(post(t, meta("bogus")))).toEqual([0, 0, 1]); // invalid_status
    expect(await messageStatus(t, "wamid.in")).toBe("failed");
  });

  test("a status in the same batch as its message applies after it", async () => {
    const t = await loaded();
    const message = inbound("wamid.batch-status", (b) => {
      b.message.kapso.direction = "outbound";
      b.message.kapso.status = "sent";
      b.message.to = "+15551234567";
    });
    const status = { message: { id: "wamid.batch-status" }, phone_number_id: PHONE_ID };
    const res = await post(t, { batch: true, data: [message] }, { "X-Webhook-Event": "whatsapp.message.sent" });
    expect((await res.json()).stored).toBe(1);
    const res2 = await post(t, { batch: true, type: "whatsapp.message.delivered", data: [status, status] });
    expect(await res2.text()).toBe('{"received":true,"stored":1,"duplicates":1,"ignored":0}');
    expect(await messageStatus(t, "wamid.batch-status")).toBe("delivered");
  });

  test("Meta raw: the sender from the single contact's wa_id; an empty change is one ignored event", async () => {
    const t = await loaded();
    const body = {
      object: "whatsapp_business_account",
      entry: [
        {
          changes: [
            {
              value: {
                metadata: { phone_number_id: PHONE_ID },
                contacts: [{ wa_id: "6281234567890", profile: { name: "Dewi" } }],
                messages: [{ id: "wamid.meta", timestamp: "1768900000", type: "text", text: { body: "halo" } }],
              },
            },
            { value: { metadata: { phone_number_id: PHONE_ID } } },
          ],
        },
      ],
    };
    expect(await (await post(t, body)).text()).toBe('{"received":true,"stored":1,"duplicates":0,"ignored":1}');
    expect((await lookupHttp(t, "081234567890")).body.contact.name).toBe("Dewi");
  });

  test("a new contact's created_at is its first valid event in payload order, not the earliest", async () => {
    const t = await loaded();
    const at = (id: string, ts: string) =>
      inbound(id, (b) => {
        b.message.timestamp = ts;
      });
    const data = [at("wamid.bad", "nope"), at("wamid.later", "1768900500"), at("wamid.earlier", "1768900100")];
    expect((await (await post(t, { batch: true, data }, RECEIVED)).json()).stored).toBe(2);
    const [contact] = await t.run((ctx) => ctx.db.query("contacts").collect());
    expect(contact.created_at).toBe(1768900500000);
    const [conversation] = await t.run((ctx) => ctx.db.query("conversations").collect());
    expect([conversation.created_at, conversation.last_message_at]).toEqual([1768900500000, 1768900500000]);
  });

  test("one log line per reason, with its count, in order of first occurrence; never content, phones or ids", async ({ onTestFinished }) => {
    const t = await loaded();
    const lines: string[] = [];
    const spy = vi.spyOn(console, "warn").mockImplementation((...args: unknown[]) => {
      lines.push(args.join(" "));
    });
    onTestFinished(() => spy.mockRestore());
    const data = [
      inbound("wamid.ok"),
      inbound("wamid.secret-id", (b) => {
        b.conversation.phone_number = "secret-phone";
        b.message.text.body = "secret content";
      }),
      inbound("wamid.x", (b) => {
        b.phone_number_id = "other";
        b.conversation.phone_number_id = "other";
      }),
      5,
    ];
    expect((await (await post(t, { batch: true, data }, RECEIVED)).json()).ignored).toBe(3);
    expect(lines).toEqual([
      "webhook events ignored reason=invalid_phone count=1",
      "webhook events ignored reason=unknown_workspace count=2",
    ]);
  });
});

describe("GET /webhook/kapso: the subscription challenge", () => {
  test("hub.challenge or challenge is echoed as text/plain; none, or over 256 characters, is 400", async () => {
    const t = newBackend();
    let res = await t.fetch(`${URL_PATH}?hub.mode=subscribe&hub.challenge=abc123`);
    expect([res.status, res.headers.get("content-type"), await res.text()]).toEqual([200, "text/plain; charset=utf-8", "abc123"]);
    res = await t.fetch(`${URL_PATH}?challenge=${encodeURIComponent("ü".repeat(256))}`);
    expect([res.status, await res.text()]).toEqual([200, "ü".repeat(256)]);
    for (const query of ["", "?hub.challenge=", `?challenge=${"x".repeat(257)}`]) {
      res = await t.fetch(`${URL_PATH}${query}`);
      expect(await answer(res), query).toEqual({ status: 400, body: { error: "Missing hub.challenge parameter" } });
    }
  });
});

describe("deliveries larger than one Convex transaction", () => {
  test("planIngest: settled events stay local, names are sent once per call, calls stay under Convex's limits", () => {
    const longName = "N".repeat(100_000);
    const message = (i: number) =>
      ({
        kind: "message",
        phone_number_id: "p",
        person: { phone: `+62812${String(i).padStart(7, "0")}`, bsuid: null, parent_bsuid: null, username: null },
        contact_name: longName,
        kapso_message_id: `m${i}`,
        direction: "inbound",
        content: "hi",
        message_type: "text",
        status: "received",
        created_at: 1,
        error_code: null,
        error_title: null,
      }) as const;
    const prepared = [
      { kind: "ignored", reason: "no_message" } as const,
      { kind: "rejected", phone_number_id: null, reason: "invalid_type" } as const,
      ...Array.from({ length: 2000 }, (_, i) => message(i)),
      {
        kind: "status",
        phone_number_id: "p",
        kapso_message_id: "m1",
        status: "read",
        error_code: null,
        error_title: null,
        unseen: null,
      } as const,
    ];
    const { outcomes, chunks } = planIngest(prepared);
    expect(outcomes.slice(0, 3)).toEqual(["no_message", "unknown_workspace", null]);
    expect(chunks.length).toBe(3); // 900 messages per call at most
    for (const chunk of chunks) {
      expect(chunk.names).toEqual([longName]);
      expect(chunk.events.length).toBeLessThanOrEqual(900);
      expect(JSON.stringify(chunk).length).toBeLessThan(1024 * 1024);
    }
    expect(chunks.flatMap((c) => c.positions)).toEqual(Array.from({ length: 2001 }, (_, i) => i + 2));
  });

  test("1,400 new senders in one batch (more database calls than one transaction allows) are all stored", async () => {
    const t = await loaded(); // the harness enforces Convex's per-transaction limits
    const data = Array.from({ length: 1400 }, (_, i) =>
      inbound(`wamid.many-${i}`, (b) => {
        b.conversation.phone_number = `+62812${String(i).padStart(7, "0")}`;
      }),
    );
    const res = await post(t, { type: "whatsapp.message.received", batch: true, data });
    expect(await res.text()).toBe('{"received":true,"stored":1400,"duplicates":0,"ignored":0}');
    expect(await tableCounts(t)).toMatchObject({ contacts: 1400, conversations: 1400, messages: 1400 });
    const again = await post(t, { type: "whatsapp.message.received", batch: true, data });
    expect(await again.text()).toBe('{"received":true,"stored":0,"duplicates":1400,"ignored":0}');
  }, 120_000);
});
