// The rules both backends share, read from contract/ (docs/contract.md): each
// one the Convex code uses is the contract's value, observed from outside where
// it can be; and every lookup answer conforms to contract/openapi.json.
import { beforeEach, describe, expect, test } from "vitest";
import demoAnswer from "../../contract/demo_answer.json";
import formats from "../../contract/formats.json";
import limits from "../../contract/limits.json";
import openapi from "../../contract/openapi.json";
import rules from "../../contract/webhook_rules.json";
import http from "../convex/http";
import { FORMATS, IGNORE_REASONS, RULES } from "../convex/contract";
import { cleanText } from "../convex/pyCompat";
import {
  API_KEY,
  BUDI,
  DEMO_CONTACT,
  demo,
  getByPhone,
  importData,
  keyRow,
  newBackend,
  newKey,
  postWebhook,
  pushKeys,
  seededBackend,
  sign,
  stubKontakEnv,
  WS1,
  WS2,
  type Backend,
} from "./harness";
import { validate } from "./jsonSchema";

const LOOKUP_RESULT = { $ref: "#/components/schemas/LookupResult" };

/** A data set of one contact of WS1 with `notes` notes and `messages` messages, oldest first. */
function contactWith(phone: string, notes: string[], messages: string[]) {
  const data = demo();
  const base = data.contacts[0];
  const at = (i: number) => new Date(Date.UTC(2026, 0, 1) + i * 60_000).toISOString();
  data.contacts = [
    {
      ...base,
      phone,
      notes: notes.map((content, i) => ({ content, created_at: at(i) })),
      conversation: {
        ...base.conversation,
        messages: messages.map((content, i) => ({
          direction: "inbound",
          content,
          message_type: "text",
          kapso_message_id: `wamid.contract.${phone}.${i}`,
          status: "received",
          created_at: at(i),
        })),
      },
    },
  ];
  return data;
}

async function answerOf(t: Backend, workspace_id: string, phone: string): Promise<any> {
  const res = await getByPhone(t, { phone, workspace_id });
  expect(res.status).toBe(200);
  return res.json();
}

beforeEach(() => stubKontakEnv());

describe("contract/limits.json", () => {
  test("the router serves exactly the contract's convex_paths (besides its JSON fallback for any other path)", () => {
    const routed = new Set(http.getRoutes().map(([path]) => path));
    expect(routed.delete("/*")).toBe(true);
    expect([...routed].sort()).toEqual([...new Set(Object.values(limits.convex_paths))].sort());
  });

  test("notes_limit: a lookup returns the newest notes_limit notes", async () => {
    const n = limits.notes_limit;
    const notes = Array.from({ length: n + 2 }, (_, i) => `note ${i}`);
    const t = await seededBackend(contactWith("+6281200000001", notes, ["hello"]));
    const answer = await answerOf(t, WS1, "+6281200000001");
    expect(answer.notes).toEqual(notes.slice(-n).reverse());
  });

  test("messages_limit: the summary reads the newest messages_limit messages, no older one", async () => {
    const n = limits.messages_limit;
    // "visa" is a keyword of the Visa topic (contract/topics.json), "hello" of none.
    const older = ["visa", ...Array.from({ length: n }, () => "hello")];
    const within = ["visa", ...Array.from({ length: n - 1 }, () => "hello")];
    const t = newBackend();
    expect((await importData(t, contactWith("+6281200000002", [], older))).status).toBe(200);
    expect((await importData(t, contactWith("+6281200000003", [], within))).status).toBe(200);
    expect((await answerOf(t, WS1, "+6281200000002")).conversation_summary).toBe("General inquiry");
    expect((await answerOf(t, WS1, "+6281200000003")).conversation_summary).toBe("Discussed: Visa");
  });

  test("max_body_bytes: the webhook reads max_body_bytes bytes and refuses one more (413)", async () => {
    expect(rules.max_body_bytes).toBe(limits.max_body_bytes);
    const t = newBackend();
    const body = (size: number) => `{"pad":"${"x".repeat(size - 10)}"}`;
    expect(new TextEncoder().encode(body(limits.max_body_bytes)).length).toBe(limits.max_body_bytes);
    const atLimit = await postWebhook(t, body(limits.max_body_bytes), { "x-api-key": API_KEY });
    expect(atLimit.status).toBe(200);
    const over = await postWebhook(t, body(limits.max_body_bytes + 1), { "x-api-key": API_KEY });
    expect(over.status).toBe(413);
  });

  test("max_text_bytes: stored text is cut to max_text_bytes of UTF-8, whole code points only", () => {
    const limit = limits.max_text_bytes;
    expect(cleanText("x".repeat(limit))).toBe("x".repeat(limit));
    expect(cleanText("x".repeat(limit + 1))).toBe("x".repeat(limit));
    // 1 + limit bytes: the last four-byte character does not fit whole, so it goes entirely.
    const cut = cleanText("a" + "\u{1F600}".repeat(limit / 4));
    expect(cut).toBe("a" + "\u{1F600}".repeat(limit / 4 - 1));
    expect(new TextEncoder().encode(cut).length).toBe(limit - 3);
  });

  test("key_batch_size: one POST /http/keys takes a full batch of key_batch_size rows", async () => {
    const t = newBackend();
    const keys = Array.from({ length: limits.key_batch_size }, (_, i) => ({
      id: `key-${i}`,
      workspace_id: WS2,
      key_hash: i.toString(16).padStart(64, "0"),
      prefix: "kontak_xxxxx",
      name: "batch",
      revoked_at: 1,
    }));
    const res = await t.fetch(limits.convex_paths.keys, {
      method: "POST",
      headers: { "x-api-key": API_KEY, "content-type": "application/json" },
      body: JSON.stringify({ keys }),
    });
    expect(await res.json()).toEqual({ upserted: limits.key_batch_size });
  });
});

describe("contract/webhook_rules.json", () => {
  test("the rules the Convex code reads are the contract's", () => {
    expect(RULES.maxIdLength).toBe(rules.max_id_length);
    expect(RULES.maxTypeLength).toBe(rules.max_type_length);
    expect(RULES.maxChallengeLength).toBe(rules.max_challenge_length);
    expect(RULES.minTimestampSeconds).toBe(rules.min_timestamp_seconds);
    expect(RULES.maxFutureSeconds).toBe(rules.max_future_seconds);
    expect(RULES.summaryPrefixChars).toBe(rules.summary_prefix_chars);
    expect(RULES.failedAllowedBelowRank).toBe(rules.failed_allowed_below_rank);
    expect([...RULES.metaStatuses]).toEqual(rules.meta_statuses);
    expect([...RULES.knownMessageStatuses]).toEqual(rules.known_message_statuses);
    expect(Object.fromEntries(RULES.statusRank)).toEqual(rules.status_rank);
    expect(Object.fromEntries(RULES.messageEvents)).toEqual(rules.message_events);
    expect(Object.fromEntries(RULES.statusEvents)).toEqual(rules.status_events);
    expect([...RULES.ignoreReasons]).toEqual(rules.ignore_reasons);
    // The IgnoreReason type is spelled from this list (and kapso.ts refuses to load otherwise).
    expect([...IGNORE_REASONS]).toEqual(rules.ignore_reasons);
    expect(RULES.bsuidPattern.source).toBe(new RegExp(rules.bsuid_pattern).source);
    expect(RULES.parentBsuidPattern.source).toBe(new RegExp(rules.parent_bsuid_pattern).source);
    expect(RULES.maxErrorTitleLength).toBe(rules.max_error_title_length);
    expect(Object.fromEntries(RULES.conversationEvents)).toEqual(rules.conversation_events);
    expect(Object.fromEntries(RULES.identityChanges)).toEqual(rules.identity_changes);
  });

  test("max_challenge_length: a challenge that long is echoed, one code point more is refused", async () => {
    const t = newBackend();
    const challenge = (n: number) => `${limits.convex_paths.webhook}?hub.challenge=${"é".repeat(n)}`;
    const ok = await t.fetch(challenge(rules.max_challenge_length));
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe("é".repeat(rules.max_challenge_length));
    expect((await t.fetch(challenge(rules.max_challenge_length + 1))).status).toBe(400);
  });
});

describe("contract/demo_answer.json and contract/openapi.json", () => {
  test("the demo contact answers contract/demo_answer.json byte for byte", async () => {
    const t = await seededBackend();
    const res = await getByPhone(t, DEMO_CONTACT);
    expect(await res.text()).toBe(JSON.stringify(demoAnswer.answer));
    expect(BUDI).toBe(JSON.stringify(demoAnswer.answer));
  });

  test("the checker refuses answers that break the schema", () => {
    const good = demoAnswer.answer;
    expect(validate(good, LOOKUP_RESULT, openapi)).toEqual([]);
    for (const bad of [
      { ...good, extra: 1 },
      { ...good, notes: ["1", "2", "3", "4", "5", "6"] },
      { ...good, contact: { ...good.contact, lead_score: 1.5 } },
      { ...good, last_interaction: "2026-01-20" },
      { found: false, context: {} },
      { found: true, context: null },
    ]) {
      expect(validate(bad, LOOKUP_RESULT, openapi), JSON.stringify(bad)).not.toEqual([]);
    }
  });

  test("every lookup answer, found or not, conforms to LookupResult", async () => {
    const t = await seededBackend();
    // A contact the webhook created: no CRM name, no notes.
    const res = await postWebhook(
      t,
      {
        message: { id: "wamid.contract.1", timestamp: "1768900000", type: "text", text: { body: "hi" }, from: "+6281299999999" },
        conversation: { phone_number: "+6281299999999", phone_number_id: demo().workspaces[0].kapso_phone_id },
      },
      { "x-api-key": API_KEY, "x-webhook-event": "whatsapp.message.received" },
    );
    expect(res.status).toBe(200);
    const asked = [
      ...demo().contacts.map((c: { workspace_id: string; phone: string }) => [c.workspace_id, c.phone]),
      [WS1, "+6281299999999"],
      [WS1, "+6281200000009"],
      [WS2, DEMO_CONTACT.phone],
    ];
    const found: boolean[] = [];
    for (const [workspace_id, phone] of asked) {
      const answer = await answerOf(t, workspace_id, phone);
      expect(validate(answer, LOOKUP_RESULT, openapi), `${workspace_id} ${phone}`).toEqual([]);
      found.push(answer.found);
    }
    expect(found).toContain(true);
    expect(found).toContain(false);
  });
});

describe("contract/formats.json", () => {
  const pattern = (name: "uuid" | "e164" | "api_key") => new RegExp(formats[name]);

  test("the patterns and the credential order the Convex code reads are the contract's", () => {
    expect(FORMATS.uuid.source).toBe(pattern("uuid").source);
    expect(FORMATS.e164.source).toBe(pattern("e164").source);
    expect(FORMATS.apiKey.source).toBe(pattern("api_key").source);
    expect(FORMATS.authOrder).toEqual(formats.auth_order);
  });

  test("uuid: the lookup and the counts route take a workspace_id exactly when the pattern does", async () => {
    const t = await seededBackend();
    const ids = [WS1, WS1.toUpperCase(), WS1.replaceAll("-", ""), WS1.slice(1), `${WS1}0`, `g${WS1.slice(1)}`, `{${WS1}}`];
    for (const id of ids) {
      const status = pattern("uuid").test(id) ? 200 : 400;
      expect((await getByPhone(t, { phone: DEMO_CONTACT.phone, workspace_id: id })).status, id).toBe(status);
      const counts = await t.fetch(`${limits.convex_paths.import_counts}?${new URLSearchParams({ workspace_id: id })}`, {
        headers: { "x-api-key": API_KEY },
      });
      expect(counts.status, id).toBe(status);
    }
    expect(ids.filter((id) => pattern("uuid").test(id))).toHaveLength(2);
  });

  test("e164: the import stores a contact's phone exactly when the pattern takes it", async () => {
    const phones = ["+4911", "+628123456789012", "+6281234567890123", "+1", "+0812345", "6281234567", "+62 812345"];
    const data = demo();
    const base = data.contacts[0];
    data.contacts = phones.map((phone) => ({ ...base, phone, bsuid: null, parent_bsuid: null, notes: [], conversation: null }));
    const res = await importData(newBackend(), data);
    expect(res.status).toBe(200);
    const refused = ((await res.json()).refused ?? []).map((r: { contact: number }) => phones[r.contact]);
    expect(refused).toEqual(phones.filter((phone) => !pattern("e164").test(phone)));
    expect(refused).toHaveLength(5);
  });

  test("api_key: a stored key admits its workspace only when it has the pattern's shape", async () => {
    const t = await seededBackend();
    const keys = [newKey(), "kontak_" + "x".repeat(42), "kontak_" + "x".repeat(44), "KONTAK_" + "x".repeat(43)];
    expect((await pushKeys(t, keys.map((key) => keyRow(key, WS1)))).status).toBe(200);
    for (const key of keys) {
      expect((await getByPhone(t, DEMO_CONTACT, key)).status, key).toBe(pattern("api_key").test(key) ? 200 : 401);
    }
  });
});

describe("contract/formats.json auth_order: the first valid credential decides", () => {
  const SECRET = "contract-webhook-secret";
  const OTHER_PHONE_ID = "other-phone-number-id";
  /** A key of WS2 only. */
  const WS2_KEY = newKey();
  type Grant = "every workspace" | "WS2 only" | "nobody";
  type Case = { signature: "valid" | "wrong" | "absent"; key: string | null; crm: string };

  /** The grant the contract's order gives: the first credential of `order` the request holds validly. */
  function expected(order: readonly string[], c: Case): Grant {
    const holds: Record<string, boolean> = {
      signature: c.signature === "valid",
      crm_api_key: c.key === c.crm,
      workspace_key: c.key === WS2_KEY,
    };
    const first = order.find((credential) => holds[credential]);
    if (first === undefined) return "nobody";
    return first === "workspace_key" ? "WS2 only" : "every workspace";
  }

  /** Both workspaces with a Kapso phone id, and WS2_KEY stored for WS2; then the case's environment. */
  async function backend(env: Record<string, string>): Promise<Backend> {
    const data = demo();
    data.workspaces[1].kapso_phone_id = OTHER_PHONE_ID;
    const t = await seededBackend(data);
    expect((await pushKeys(t, [keyRow(WS2_KEY, WS2)])).status).toBe(200);
    stubKontakEnv(env);
    return t;
  }

  // CRM_API_KEY is also set to WS2_KEY, so one x-api-key is valid as both credentials.
  const cases: Case[] = [API_KEY, WS2_KEY].flatMap((crm) =>
    [API_KEY, WS2_KEY, "wrong-key", null].flatMap((key) =>
      (["valid", "wrong", "absent"] as const).map((signature) => ({ signature, key, crm })),
    ),
  );
  const name = (c: Case) =>
    `signature ${c.signature}, x-api-key ${c.key === null ? "absent" : c.key === WS2_KEY ? "WS2's key" : c.key}, ` +
    `CRM_API_KEY ${c.crm === WS2_KEY ? "WS2's key" : c.crm}`;

  test.each(cases.filter((c) => c.signature === "absent").map((c) => [name(c), c] as const))(
    "lookup: %s",
    async (_name, c) => {
      const t = await backend({ CRM_API_KEY: c.crm });
      const grant = expected(formats.auth_order.lookup, c);
      const statuses = [];
      for (const workspace_id of [WS1, WS2]) {
        statuses.push((await getByPhone(t, { phone: DEMO_CONTACT.phone, workspace_id }, c.key)).status);
      }
      const seen: Grant = statuses[0] === 200 ? "every workspace" : statuses[1] === 200 ? "WS2 only" : "nobody";
      expect(seen).toBe(grant);
    },
  );

  test.each(cases.map((c) => [name(c), c] as const))("webhook: %s", async (_name, c) => {
    const t = await backend({ CRM_API_KEY: c.crm, KAPSO_WEBHOOK_SECRET: SECRET });
    const event = (id: string, phone_number_id: string) => ({
      message: { id, timestamp: "1767225600", type: "text", text: { body: "halo" }, kapso: { direction: "inbound" } },
      conversation: { phone_number: "+6281111111111", phone_number_id },
    });
    const body = JSON.stringify({ batch: true, data: [event("wamid.order-1", "demo-phone-number-id"), event("wamid.order-2", OTHER_PHONE_ID)] });
    const headers: Record<string, string> = { "x-webhook-event": "whatsapp.message.received" };
    if (c.key !== null) headers["x-api-key"] = c.key;
    if (c.signature !== "absent") headers["X-Webhook-Signature"] = c.signature === "valid" ? sign(body, SECRET) : "0".repeat(64);
    const res = await postWebhook(t, body, headers);
    const answer = res.status === 200 ? await res.json() : null;
    const seen: Grant = answer === null ? "nobody" : answer.stored === 2 ? "every workspace" : "WS2 only";
    expect(res.status === 200 || res.status === 401).toBe(true);
    if (seen === "WS2 only") expect(answer).toEqual({ received: true, stored: 1, duplicates: 0, ignored: 1 });
    expect(seen).toBe(expected(formats.auth_order.webhook, c));
  });
});
