// contract/webhook_replay.json against POST /webhook/kapso on convex-test (docs/webhook.md, issue 11).
// tests/test_webhook_replay.py replays the same corpus into the Flask webhook and the stand-in.
// The expectations are derived by hand from docs/webhook.md; each is checked, and every
// mismatch is reported at once rather than the first one alone.
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import corpusJson from "../../contract/webhook_replay.json";
import { API_KEY, seededBackend, sign, stubKontakEnv, type Backend } from "./harness";

const SECRET = "replay-secret-9d41";
const corpus: any = corpusJson;
const IGNORED = /webhook event ignored reason=([a-z_]+)/g;

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
  else if (auth === "api_key") headers["x-api-key"] = API_KEY;
  else if (auth === "bad_signature") headers["X-Webhook-Signature"] = "0".repeat(64);
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
    const reasons = consoleLines.flatMap((line) => [...line.matchAll(IGNORED)].map((m) => m[1]));
    const want = (d.reasons ?? []) as string[];
    if (JSON.stringify(sorted(reasons)) !== JSON.stringify(sorted(want))) {
      found.push(`ignored reasons ${JSON.stringify(sorted(reasons))} != ${JSON.stringify(sorted(want))}`);
    }
    if (found.length) problems[d.name] = found;
  }
  return { t, problems };
}

const report = (problems: Record<string, string[]>) =>
  Object.entries(problems)
    .map(([name, items]) => `- ${name}: ${items.join("; ")}`)
    .join("\n");

describe("contract/webhook_replay.json into POST /webhook/kapso", () => {
  test("every delivery is answered as expected, then messages and lookups are the expected ones", async () => {
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

    const lookupProblems: string[] = [];
    for (const l of corpus.lookups) {
      const query = new URLSearchParams({ phone: l.phone, workspace_id: l.workspace_id });
      const res = await t.fetch(`/http/contacts/getByPhone?${query}`, { headers: { "x-api-key": API_KEY } });
      const text = await res.text();
      if (res.status !== 200 || text !== JSON.stringify(l.expect)) {
        lookupProblems.push(`${l.name}: ${res.status} ${text.slice(0, 300)} != ${JSON.stringify(l.expect)}`);
      }
    }

    expect(report(problems), "deliveries").toBe("");
    expect(messageProblems.join("\n"), "messages").toBe("");
    expect(lookupProblems.join("\n"), "lookups").toBe("");
  });
});
