// contract/webhook_replay.json against POST /webhook/kapso on convex-test (docs/webhook.md, issues 11 and 18).
// tests/test_webhook_replay.py replays the same corpus into the Flask webhook and the stand-in.
// The expectations are derived by hand from docs/webhook.md; each is checked (answers, ignored
// reasons, messages, contacts, conversations, lookups by phone and/or bsuid), and every
// mismatch is reported at once rather than the first one alone.
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import corpusJson from "../../contract/webhook_replay.json";
import { API_KEY, seededBackend, sign, stubKontakEnv, type Backend } from "./harness";

const SECRET = "replay-secret-9d41";
const corpus: any = corpusJson;
/** One line per reason and delivery, with its count (tests/helpers_replay.py reads the same lines). */
const IGNORED = /webhook events ignored reason=([a-z_]+) count=(\d+)/g;

/** Replaces every {"$fill": {prefix, repeat, times, suffix}} by the string it stands for. */
function expand(value: any): any {
  if (Array.isArray(value)) return value.map(expand);
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value);
    if (keys.length === 1 && keys[0] === "$fill") {
      const f = value.$fill;
      return (f.prefix ?? "") + f.repeat.repeat(f.times) + (f.suffix ?? "");
    }
    return Object.fromEntries(keys.map((k) => [k, expand(value[k])]));
  }
  return value;
}

const hmac = (bytes: Uint8Array) => sign(bytes, SECRET);

function send(t: Backend, d: any): Promise<Response> {
  if (d.method === "GET") {
    return t.fetch(`/webhook/kapso?${new URLSearchParams(d.query ?? {})}`, { method: "GET" });
  }
  const text = "raw_body" in d ? (d.raw_body as string) : JSON.stringify(expand(d.body));
  const bytes = new TextEncoder().encode(text);
  const headers: Record<string, string> = { "content-type": "application/json", ...d.headers };
  const auth = d.auth ?? "signature";
  if (auth === "signature") headers["X-Webhook-Signature"] = hmac(bytes);
  else if (auth === "legacy_signature") headers["X-Kapso-Signature"] = "sha256=" + hmac(bytes);
  else if (auth === "hub_signature") headers["X-Hub-Signature-256"] = "sha256=" + hmac(bytes);
  else if (auth === "api_key") headers["x-api-key"] = API_KEY;
  else if (auth === "bad_signature") headers["X-Webhook-Signature"] = "0".repeat(64);
  else if (auth !== "none") throw new Error(`unknown auth ${auth} in ${d.name}`);
  return t.fetch("/webhook/kapso", { method: "POST", headers, body: Uint8Array.from(bytes) });
}

const sorted = (xs: string[]) => [...xs].sort();
const short = (v: unknown) => {
  const s = JSON.stringify(v) ?? String(v);
  return s.length <= 120 ? s : `${s.slice(0, 80)}…(${s.length} chars)`;
};

/** Every console line the functions print while `run` runs. */
let consoleLines: string[] = [];
beforeEach(() => {
  stubKontakEnv({ KAPSO_WEBHOOK_SECRET: SECRET, DEFAULT_REGION: "ID" });
  consoleLines = [];
  for (const method of ["log", "info", "warn", "error", "debug"] as const) {
    vi.spyOn(console, method).mockImplementation((...args: unknown[]) => {
      consoleLines.push(args.map(String).join(" "));
    });
  }
});
afterEach(() => {
  vi.restoreAllMocks();
});

async function replay() {
  const t = await seededBackend(corpus.dataset);
  const problems: Record<string, string[]> = {};
  for (const d of corpus.deliveries) {
    consoleLines = [];
    const found: string[] = [];
    let res: Response;
    try {
      res = await send(t, d);
    } catch (error) {
      problems[d.name] = [`threw ${String(error).slice(0, 200)}`];
      continue;
    }
    const text = await res.text();
    if (res.status !== d.expect.status) found.push(`status ${res.status} != ${d.expect.status}`);
    if ("json" in d.expect) {
      // Exact text: key order included.
      if (text !== JSON.stringify(d.expect.json)) found.push(`answer ${text.slice(0, 200)} != ${JSON.stringify(d.expect.json)}`);
    } else {
      if (!(res.headers.get("content-type") ?? "").startsWith("text/plain")) found.push("not text/plain");
      if (text !== d.expect.text) found.push(`answer ${short(text)} != ${short(d.expect.text)}`);
    }
    // Each reason as many times as its line counts, so the expected list is compared as a multiset.
    const reasons = consoleLines.flatMap((line) =>
      [...line.matchAll(IGNORED)].flatMap((m) => Array<string>(Number(m[2])).fill(m[1])),
    );
    const want = (d.reasons ?? []) as string[];
    if (JSON.stringify(sorted(reasons)) !== JSON.stringify(sorted(want))) {
      found.push(`ignored reasons ${JSON.stringify(sorted(reasons))} != ${JSON.stringify(sorted(want))}`);
    }
    if (found.length) problems[d.name] = found;
  }
  return { t, problems };
}

/** A stored time (milliseconds) as the corpus writes it; absent stays null. */
const iso = (ms: unknown) => (typeof ms === "number" ? new Date(ms).toISOString() : null);
/** A field the schema may not have yet, or leave out: absent is null, as in PostgreSQL. */
const col = (row: any, field: string) => row[field] ?? null;

/** Exact equality of JSON values; kapso_message_ids are compared sorted. */
function same(field: string, got: unknown, want: unknown): boolean {
  if (field === "kapso_message_ids") {
    return JSON.stringify([...((got as string[]) ?? [])].sort()) === JSON.stringify([...(want as string[])].sort());
  }
  return JSON.stringify(got) === JSON.stringify(want);
}

/** The query of one 'lookups' entry: its phone and/or bsuid (both when both are given) and workspace. */
function lookupQuery(l: any): URLSearchParams {
  const query = new URLSearchParams();
  for (const key of ["phone", "bsuid"]) if (key in l) query.set(key, expand(l[key]));
  query.set("workspace_id", l.workspace_id);
  return query;
}

/** Every contact and conversation, with their documents' ids, as PostgreSQL columns (times as ISO text). */
async function storedPeople(t: Backend) {
  return await t.run(async (ctx) => {
    const contacts = (await ctx.db.query("contacts").collect()).map((c: any) => ({
      id: c._id as string,
      workspace_id: c.workspace_id,
      phone: col(c, "phone"),
      bsuid: col(c, "bsuid"),
      parent_bsuid: col(c, "parent_bsuid"),
      username: col(c, "username"),
      name: col(c, "name"),
      kapso_name: col(c, "kapso_name"),
      email: col(c, "email"),
      lead_status: c.lead_status,
      lead_score: c.lead_score,
      tags: c.tags,
      created_at: iso(c.created_at),
      updated_at: iso(c.updated_at),
    }));
    const messages = await ctx.db.query("messages").collect();
    const conversations = (await ctx.db.query("conversations").collect()).map((v: any) => ({
      id: v._id as string,
      workspace_id: v.workspace_id,
      contact_id: v.contact_id as string,
      status: v.status,
      status_at: iso(v.status_at),
      unread_count: v.unread_count,
      last_message_at: iso(v.last_message_at),
      last_message_preview: col(v, "last_message_preview"),
      created_at: iso(v.created_at),
      kapso_message_ids: messages.filter((m) => m.conversation_id === v._id).map((m) => m.kapso_message_id),
    }));
    const notes = (await ctx.db.query("contactNotes").collect()).map((n) => n.contact_id as string);
    // Nothing may point at a deleted contact or conversation (a merge deletes the merged contact).
    const contactIds = new Set(contacts.map((c) => c.id));
    const conversationIds = new Set(conversations.map((v) => v.id));
    const orphans = [
      ...conversations.filter((v) => !contactIds.has(v.contact_id)).map((v) => `conversation of a deleted contact (${short(v.kapso_message_ids)})`),
      ...messages.filter((m) => !conversationIds.has(m.conversation_id)).map((m) => `message ${short(m.kapso_message_id)} of a deleted conversation`),
      ...notes.filter((id) => !contactIds.has(id)).map(() => "note of a deleted contact"),
    ];
    return { contacts, conversations, orphans };
  });
}

/** 'contacts' lists every contact of each workspace it names, matched by (phone, bsuid). */
function contactProblems(expected: any[], stored: any[]): string[] {
  const wantAll = expand(expected) as any[];
  const key = (c: any) => JSON.stringify([c.phone ?? null, c.bsuid ?? null]);
  const problems: string[] = [];
  for (const ws of [...new Set(wantAll.map((c) => c.workspace_id as string))].sort()) {
    const want = new Map<string, any>(wantAll.filter((c) => c.workspace_id === ws).map((c) => [key(c), c]));
    const rows = stored.filter((c) => c.workspace_id === ws);
    const got = new Map<string, any>(rows.map((c) => [key(c), c]));
    if (rows.length !== want.size) problems.push(`workspace …${ws.slice(-4)}: ${rows.length} contacts != ${want.size}`);
    for (const [k, c] of want) {
      const row = got.get(k);
      if (!row) {
        problems.push(`missing contact ${short(k)}`);
        continue;
      }
      for (const field of Object.keys(c)) {
        if (!same(field, row[field], c[field])) problems.push(`contact ${short(k)} ${field}: ${short(row[field])} != ${short(c[field])}`);
      }
    }
    for (const [k, row] of got) if (!want.has(k)) problems.push(`unexpected contact ${short(k)} kapso_name=${short(row.kapso_name)}`);
  }
  return problems;
}

/** Each 'conversations' entry: the one contact with that phone and/or bsuid has one conversation, as listed. */
function conversationProblems(expected: any[], contacts: any[], conversations: any[]): string[] {
  const problems: string[] = [];
  for (const entry of expand(expected) as any[]) {
    const ident = Object.fromEntries(["phone", "bsuid"].filter((k) => k in entry).map((k) => [k, entry[k]]));
    const label = `…${entry.workspace_id.slice(-4)} ${short(ident)}`;
    const matches = contacts.filter(
      (c) => c.workspace_id === entry.workspace_id && Object.entries(ident).every(([k, v]) => c[k] === v),
    );
    if (matches.length !== 1) {
      problems.push(`${label}: ${matches.length} contacts match`);
      continue;
    }
    const found = conversations.filter((v) => v.contact_id === matches[0].id);
    if (found.length !== 1) {
      problems.push(`${label}: ${found.length} conversations`);
      continue;
    }
    for (const field of Object.keys(entry)) {
      if (["workspace_id", "phone", "bsuid"].includes(field)) continue;
      if (!same(field, found[0][field], entry[field])) problems.push(`${label} ${field}: ${short(found[0][field])} != ${short(entry[field])}`);
    }
  }
  return problems;
}

const report = (problems: Record<string, string[]>) =>
  Object.entries(problems)
    .map(([name, items]) => `- ${name}: ${items.join("; ")}`)
    .join("\n");

describe("contract/webhook_replay.json into POST /webhook/kapso", () => {
  test("every delivery is answered as expected, then messages, contacts, conversations and lookups are the expected ones", async () => {
    const { t, problems } = await replay();

    const stored = await t.run(async (ctx) =>
      (await ctx.db.query("messages").collect()).map((m) => ({
        workspace_id: m.workspace_id,
        kapso_message_id: m.kapso_message_id,
        direction: m.direction,
        content: m.content,
        message_type: m.message_type,
        status: m.status,
        created_at: new Date(m.created_at).toISOString(),
        error_code: col(m, "error_code"),
        error_title: col(m, "error_title"),
      })),
    );
    const key = (m: any) => JSON.stringify([m.workspace_id, m.kapso_message_id]);
    const want = new Map<string, any>(expand(corpus.messages).map((m: any) => [key(m), m]));
    const got = new Map<string, any>(stored.map((m) => [key(m), m]));
    const messageProblems: string[] = [];
    for (const [k, m] of want) {
      const row = got.get(k);
      if (!row) {
        messageProblems.push(`missing ${short(k)}`);
        continue;
      }
      for (const field of Object.keys(m)) {
        if (row[field] !== m[field]) messageProblems.push(`${short(m.kapso_message_id)} ${field}: ${short(row[field])} != ${short(m[field])}`);
      }
    }
    for (const [k, row] of got) if (!want.has(k)) messageProblems.push(`unexpected ${short(k)} ${short(row.content)}`);

    const people = await storedPeople(t);
    const peopleProblems = [
      ...contactProblems(corpus.contacts ?? [], people.contacts),
      ...conversationProblems(corpus.conversations ?? [], people.contacts, people.conversations),
      ...people.orphans,
    ];

    const lookupProblems: string[] = [];
    for (const l of corpus.lookups) {
      const res = await t.fetch(`/http/contacts/getByPhone?${lookupQuery(l)}`, { headers: { "x-api-key": API_KEY } });
      const text = await res.text();
      // Exact text: key order included.
      if (res.status !== 200 || text !== JSON.stringify(l.expect)) {
        lookupProblems.push(`${l.name}: ${res.status} ${text.slice(0, 300)} != ${JSON.stringify(l.expect)}`);
      }
    }

    // One assertion, so that a failure shows every section's mismatches at once.
    const sections: [string, string][] = [
      ["deliveries", report(problems)],
      ["messages", messageProblems.join("\n")],
      ["contacts and conversations", peopleProblems.join("\n")],
      ["lookups", lookupProblems.join("\n")],
    ];
    expect(sections.filter(([, text]) => text).map(([name, text]) => `${name}:\n${text}`).join("\n\n")).toBe("");
  });
});
