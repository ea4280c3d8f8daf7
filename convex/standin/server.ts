// The HTTP side of the local Convex stand-in: turns each loopback request into
// a convex-test `t.fetch` of the project's HTTP actions and sends the Response
// back. See cli.ts for the command line.
import { readdirSync, statSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { convexTest } from "convex-test";
import { rootDatabaseOf } from "./convexTestInternals";
import { installIndexedReads, type IndexReadStats } from "./indexedReads";

/** The Convex functions directory of this project (convex/convex). */
export const FUNCTIONS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..", "convex");

/** What the stand-in needs from a convex-test instance. */
export type Fetcher = { fetch: (path: string, init?: RequestInit) => Promise<Response> };

/** The functions directory as a module map, like `import.meta.glob("./**\/*.*s")`. */
export function loadModules(dir: string = FUNCTIONS_DIR): Record<string, () => Promise<unknown>> {
  const modules: Record<string, () => Promise<unknown>> = {};
  const walk = (current: string) => {
    for (const name of readdirSync(current)) {
      const path = join(current, name);
      if (statSync(path).isDirectory()) {
        walk(path);
      } else if (/\.(ts|js|mjs)$/.test(name) && !name.endsWith(".d.ts") && !/\.test\./.test(name)) {
        const key = "./" + relative(dir, path).split(sep).join("/");
        const url = pathToFileURL(path).href;
        modules[key] = () => import(url);
      }
    }
  };
  walk(dir);
  return modules;
}

/**
 * A fresh in-memory backend running this project's functions under Convex's
 * limits. Its queries read through indexes (indexedReads.ts) unless
 * `indexes: false`, which keeps convex-test's own table walk.
 */
export async function newBackend(dir: string = FUNCTIONS_DIR, options: { indexes?: boolean } = {}) {
  const schema = (await import(pathToFileURL(join(dir, "schema.ts")).href)).default;
  const t = convexTest({ schema, modules: loadModules(dir), transactionLimits: true });
  if (options.indexes ?? true) {
    const db = await rootDatabaseOf(t);
    backendStats.set(t, installIndexedReads(db));
  }
  return t;
}

const backendStats = new WeakMap<object, IndexReadStats>();

/** What the index reads of a backend from newBackend have done (null without indexes). */
export function indexReadStats(backend: object): IndexReadStats | null {
  return backendStats.get(backend) ?? null;
}

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "te",
  "trailer",
  "content-length",
  "expect",
]);

/** Methods a Convex HTTP router can route (HEAD is served as GET without a body). */
const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]);

/**
 * Header values are passed on as Node reads them: one character per byte (Latin-1),
 * exactly what Flask sees behind gunicorn (WSGI header strings are Latin-1). So a
 * non-ASCII value is never decoded as UTF-8 here: U+3000 sent as its UTF-8 bytes is
 * the three characters "\u00e3\u0080\u0080" on both backends (an unknown event name,
 * not a blank one), and a Latin-1 string is always a valid Fetch header value, where
 * a decoded U+3000 made `Headers` throw (a 500).
 */
function requestHeaders(req: IncomingMessage): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || HOP_BY_HOP.has(name)) continue;
    headers.set(name, Array.isArray(value) ? value.join(", ") : value);
  }
  return headers;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function send(res: ServerResponse, status: number, body: Buffer, headers: [string, string][]): void {
  res.statusCode = status;
  for (const [name, value] of headers) res.appendHeader(name, value);
  res.setHeader("content-length", String(body.length));
  res.end(body);
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, Buffer.from(JSON.stringify(value)), [["content-type", "application/json"]]);
}

/** path + query of the request target (origin-form, or absolute-form). */
function target(rawUrl: string | undefined): string {
  const url = rawUrl ?? "/";
  if (url.startsWith("/")) return url;
  try {
    const parsed = new URL(url);
    return parsed.pathname + parsed.search;
  } catch {
    return "/";
  }
}

/**
 * The stand-in's HTTP server (not yet listening). Requests run concurrently:
 * convex-test itself serializes queries and mutations (one transaction at a
 * time), as a Convex deployment isolates them.
 */
export function createStandinServer(backend: Fetcher): Server {
  const server = createServer(async (req, res) => {
    try {
      const body = await readBody(req);
      const method = (req.method ?? "GET").toUpperCase();
      const path = target(req.url);
      if (path === "/_standin/health" || path.startsWith("/_standin/health?")) {
        if (method === "GET" || method === "HEAD") return sendJson(res, 200, { ok: true });
        return sendJson(res, 405, { error: "Method not allowed" });
      }
      if (!METHODS.has(method)) return sendJson(res, 405, { error: "Method not allowed" });
      const response = await backend.fetch(path, {
        method,
        headers: requestHeaders(req),
        body: method === "GET" || method === "HEAD" || body.length === 0 ? undefined : Uint8Array.from(body),
      });
      const headers: [string, string][] = [];
      response.headers.forEach((value, name) => {
        if (!HOP_BY_HOP.has(name)) headers.push([name, value]);
      });
      const payload = Buffer.from(await response.arrayBuffer());
      if (method === "HEAD") {
        headers.push(["content-length", String(payload.length)]);
        res.statusCode = response.status;
        for (const [name, value] of headers) res.appendHeader(name, value);
        res.end();
        return;
      }
      send(res, response.status, payload, headers);
    } catch (error) {
      // A function error must not take the server down; no details leave the process.
      const kind = error instanceof Error ? error.name : typeof error;
      process.stderr.write(`convex stand-in: request failed (${kind})\n`);
      if (!res.headersSent) sendJson(res, 500, { error: "Internal server error" });
      else res.destroy();
    }
  });
  // Keep idle keep-alive connections open longer than a pooling client keeps
  // them, so the server never closes one the client is about to reuse.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.requestTimeout = 0;
  return server;
}
