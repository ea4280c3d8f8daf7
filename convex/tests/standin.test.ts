// @vitest-environment node
// The local Convex stand-in (docs/contract.md §8): the real process on loopback, and
// the request handling with a backend that fails.
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { Agent, request } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, test, vi } from "vitest";
import { convexTestMismatch, installedConvexTest, pinnedConvexTest } from "../standin/convexTestInternals";
import { createStandinServer, newBackend } from "../standin/server";
import { BUDI } from "./harness";

const MAIN = fileURLToPath(new URL("../standin/main.mjs", import.meta.url));
const DATA = fileURLToPath(new URL("../../contract/demo_data.json", import.meta.url));
const KEY = "standin-test-key-\u00e9";
const WS1 = "00000000-0000-4000-8000-000000000001";
type Reply = { status: number; headers: Record<string, string | string[] | undefined>; body: string; reused: boolean };

function call(
  port: number,
  path: string,
  options: { method?: string; headers?: Record<string, string>; body?: string; agent?: Agent } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port, path, method: options.method ?? "GET", headers: options.headers, agent: options.agent },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8"), reused: req.reusedSocket }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    // As bytes: Node writes a string body in one chunk with the head, the head then UTF-8
    // encoded; with bytes the head goes out as Latin-1, as Python's clients send it.
    req.end(options.body === undefined ? undefined : Buffer.from(options.body, "utf8"));
  });
}

describe("stand-in process", () => {
  let child: ChildProcess;
  let port = 0;
  let stdout = "";
  let stderr = "";

  beforeAll(async () => {
    const started = Date.now();
    child = spawn(process.execPath, [MAIN, "--data", DATA], {
      env: { PATH: process.env.PATH, CRM_API_KEY: KEY, CONVEX_STANDIN_PORT: "0" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stderr!.on("data", (c) => (stderr += c));
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on("data", (c) => {
        stdout += c;
        const m = /^convex stand-in ready on http:\/\/127\.0\.0\.1:(\d+)\n/.exec(stdout);
        if (m) {
          port = Number(m[1]);
          resolve();
        }
      });
      child.on("exit", (code) => reject(new Error(`stand-in exited with ${code}: ${stderr}`)));
    });
    expect(Date.now() - started).toBeLessThan(10_000);
  }, 20_000);

  afterAll(async () => {
    if (child.exitCode === null) {
      child.kill("SIGTERM");
      await once(child, "exit");
    }
  });

  test("health", async () => {
    const r = await call(port, "/_standin/health");
    expect(r.status).toBe(200);
    expect(r.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(r.body)).toEqual({ ok: true });
  });

  test("the demo contact, both phone forms", async () => {
    for (const phone of ["6281234567890", "%2B6281234567890"]) {
      const r = await call(port, `/http/contacts/getByPhone?phone=${phone}&workspace_id=${WS1}`, {
        headers: { "x-api-key": KEY },
      });
      expect(r.status).toBe(200);
      expect(r.headers["content-type"]).toBe("application/json");
      expect(r.body).toBe(BUDI);
    }
  });

  test("errors are JSON", async () => {
    const q = `/http/contacts/getByPhone?phone=6281234567890&workspace_id=${WS1}`;
    expect(await call(port, q)).toMatchObject({ status: 401, body: '{"found":false,"error":"Unauthorized"}' });
    expect(await call(port, "/http/contacts/getByPhone", { headers: { "x-api-key": KEY } })).toMatchObject({
      status: 400,
      body: '{"found":false,"error":"Missing parameters"}',
    });
    expect(await call(port, "/nowhere")).toMatchObject({ status: 404, body: '{"error":"Not found"}' });
    expect(await call(port, q, { method: "TRACE" })).toMatchObject({ status: 405, body: '{"error":"Method not allowed"}' });
  });

  test("keep-alive: one connection serves many requests", async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const replies: Reply[] = [];
      for (let i = 0; i < 20; i++) {
        replies.push(
          await call(port, `/http/contacts/getByPhone?phone=6281234567890&workspace_id=${WS1}`, {
            headers: { "x-api-key": KEY },
            agent,
          }),
        );
      }
      expect(replies.every((r) => r.status === 200 && r.body === BUDI)).toBe(true);
      expect(replies.slice(1).every((r) => r.reused)).toBe(true);
    } finally {
      agent.destroy();
    }
  });

  test("concurrent lookups and an import give consistent answers", async () => {
    const lookups = Array.from({ length: 40 }, () =>
      call(port, `/http/contacts/getByPhone?phone=6281234567890&workspace_id=${WS1}`, { headers: { "x-api-key": KEY } }),
    );
    const demo = JSON.parse(await (await import("node:fs/promises")).readFile(DATA, "utf8"));
    const imported = call(port, "/http/import", {
      method: "POST",
      headers: { "x-api-key": KEY, "content-type": "application/json" },
      body: JSON.stringify(demo),
    });
    const replies = await Promise.all([...lookups, imported]);
    const importReply = replies.pop()!;
    expect(importReply.status).toBe(200);
    expect(JSON.parse(importReply.body)).toEqual({ workspaces: 2, contacts: 3, notes: 4, conversations: 1, messages: 4 });
    for (const r of replies) {
      expect(r.status).toBe(200);
      // Each lookup sees the contact before or after its replacement, never half of it.
      expect(r.body).toBe(BUDI);
    }
  });

  test("import and clear over HTTP, then reload", async () => {
    const headers = { "x-api-key": KEY };
    let done = false;
    for (let i = 0; i < 10 && !done; i++) {
      const r = await call(port, "/http/import/clear", { method: "POST", headers });
      expect(r.status).toBe(200);
      done = JSON.parse(r.body).done;
    }
    expect(done).toBe(true);
    const gone = await call(port, `/http/contacts/getByPhone?phone=6281234567890&workspace_id=${WS1}`, { headers });
    expect(gone.body).toBe('{"found":false,"context":null}');
    const bad = await call(port, "/http/import", { method: "POST", headers, body: "{not json" });
    expect(bad).toMatchObject({ status: 400, body: '{"error":"Invalid JSON"}' });
    const { readFile } = await import("node:fs/promises");
    const reload = await call(port, "/http/import", { method: "POST", headers, body: await readFile(DATA, "utf8") });
    expect(reload.status).toBe(200);
    const back = await call(port, `/http/contacts/getByPhone?phone=6281234567890&workspace_id=${WS1}`, { headers });
    expect(back.body).toBe(BUDI);
  });

  test("exits cleanly on SIGTERM and logged no key, phone or content", async () => {
    const agent = new Agent({ keepAlive: true });
    await call(port, "/_standin/health", { agent }); // leaves an idle keep-alive connection
    child.kill("SIGTERM");
    const [code, signal] = await once(child, "exit");
    agent.destroy();
    expect(signal).toBeNull();
    expect(code).toBe(0);
    const output = stdout + stderr;
    expect(output).toBe(`convex stand-in ready on http://127.0.0.1:${port}\n`);
    for (const secret of [KEY, "6281234567890", "visa", "Budi"]) expect(output).not.toContain(secret);
  });
});

describe("stand-in start-up errors", () => {
  test("convex-test is the exact version package.json pins; another one is named in one line", () => {
    expect(pinnedConvexTest()).toMatch(/^[0-9]+\.[0-9]+\.[0-9]+$/);
    expect(installedConvexTest()).toBe(pinnedConvexTest());
    expect(convexTestMismatch()).toBeNull();
    const line = convexTestMismatch("0.0.61", "0.0.60");
    expect(line).toMatch(/^convex-test 0\.0\.61 is installed, but the index reads are written for 0\.0\.60 \(package\.json\)/);
    expect(line).not.toContain("\n");
  });

  test("refuses to start without CRM_API_KEY", async () => {
    const child = spawn(process.execPath, [MAIN], { env: { PATH: process.env.PATH, CONVEX_STANDIN_PORT: "0" } });
    let stderr = "";
    child.stderr.on("data", (c) => (stderr += c));
    const [code] = await once(child, "exit");
    expect(code).toBe(2);
    expect(stderr).toContain("CRM_API_KEY must be set");
  });

  test("a data file that does not import fails the start", async () => {
    const child = spawn(process.execPath, [MAIN, "--data", MAIN], {
      env: { PATH: process.env.PATH, CONVEX_STANDIN_PORT: "0", CRM_API_KEY: KEY },
    });
    let stderr = "";
    child.stderr.on("data", (c) => (stderr += c));
    const [code] = await once(child, "exit");
    expect(code).toBe(1);
    expect(stderr).toContain("HTTP 400");
    expect(stderr).not.toContain(KEY);
  });
});

describe("stand-in request handling", () => {
  test("a backend failure becomes a 500 JSON answer and the server keeps serving", async () => {
    let calls = 0;
    const server = createStandinServer({
      fetch: async () => {
        calls += 1;
        if (calls === 1) throw new Error("function failed");
        return new Response('{"ok":1}', { status: 201, headers: { "content-type": "application/json", "x-extra": "yes" } });
      },
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const { port } = server.address() as AddressInfo;
    const originalWrite = process.stderr.write.bind(process.stderr);
    process.stderr.write = () => true; // silence the expected failure line
    try {
      const failed = await call(port, "/http/anything");
      expect(failed).toMatchObject({ status: 500, body: '{"error":"Internal server error"}' });
      expect(failed.headers["content-type"]).toBe("application/json");
      const ok = await call(port, "/http/anything", { method: "POST", body: "x" });
      expect(ok).toMatchObject({ status: 201, body: '{"ok":1}' });
      expect(ok.headers["x-extra"]).toBe("yes");
    } finally {
      process.stderr.write = originalWrite;
      server.close();
    }
  });

  test("header bytes are Latin-1, as Flask reads them: a U+3000 event name sent as UTF-8 bytes is an unknown event, not a 500", async ({ onTestFinished }) => {
    vi.stubEnv("CRM_API_KEY", KEY);
    vi.stubEnv("KAPSO_WEBHOOK_SECRET", "");
    vi.stubEnv("KONTAK_ALLOW_IMPORT", "true");
    vi.stubEnv("DEFAULT_REGION", "ID");
    const backend = await newBackend();
    const loaded = await backend.fetch("/http/import", { method: "POST", headers: { "x-api-key": KEY }, body: await readFile(DATA, "utf8") });
    expect(loaded.status).toBe(200);
    const lines: string[] = [];
    const spy = vi.spyOn(console, "warn").mockImplementation((...args: unknown[]) => void lines.push(args.join(" ")));
    const server = createStandinServer(backend);
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    onTestFinished(() => {
      spy.mockRestore();
      server.close();
    });
    const { port } = server.address() as AddressInfo;
    // A message the body alone would have stored (no event name: an inbound message).
    const body = JSON.stringify({
      phone_number_id: "demo-phone-number-id",
      conversation: { phone_number: "+6281299990001" },
      message: { id: "wamid.header-bytes", timestamp: String(Math.floor(Date.now() / 1000)), type: "text", text: { body: "hi" } },
    });
    // Node sends each character of a header string as one byte: these are U+3000's UTF-8 bytes, raw.
    const utf8Bytes = (text: string) => Buffer.from(text, "utf8").toString("latin1");
    const headers = { "x-api-key": KEY, "content-type": "application/json" };
    const ideographicSpace = await call(port, "/webhook/kapso", { method: "POST", headers: { ...headers, "X-Webhook-Event": utf8Bytes("\u3000") }, body });
    expect(ideographicSpace).toMatchObject({ status: 200, body: '{"received":true,"stored":0,"duplicates":0,"ignored":1}' });
    expect(lines).toEqual(["webhook events ignored reason=unknown_event count=1"]);
    // The same bytes in the key: Flask reads "\u00c3\u00a9", not "\u00e9", so neither backend takes it.
    const keyAsUtf8 = await call(port, "/webhook/kapso", { method: "POST", headers: { ...headers, "x-api-key": utf8Bytes(KEY) }, body });
    expect(keyAsUtf8).toMatchObject({ status: 401, body: '{"error":"Unauthorized"}' });
    // Without the header the body's message is stored.
    expect((await call(port, "/webhook/kapso", { method: "POST", headers, body })).body).toBe('{"received":true,"stored":1,"duplicates":0,"ignored":0}');
  });
});
