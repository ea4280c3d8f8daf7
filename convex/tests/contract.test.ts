// The rules both backends share, read from contract/ (docs/contract.md): each
// one the Convex code uses is the contract's value, observed from outside where
// it can be; and every lookup answer conforms to contract/openapi.json.
import { beforeEach, describe, expect, test } from "vitest";
import demoAnswer from "../../contract/demo_answer.json";
import limits from "../../contract/limits.json";
import openapi from "../../contract/openapi.json";
import rules from "../../contract/webhook_rules.json";
import http from "../convex/http";
import { IGNORE_REASONS, RULES } from "../convex/kapso";
import {
  API_KEY,
  BUDI,
  DEMO_CONTACT,
  demo,
  getByPhone,
  importData,
  newBackend,
  postWebhook,
  seededBackend,
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
