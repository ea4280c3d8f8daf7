// Local Convex stand-in (docs/contract.md §8): serves this project's own Convex HTTP
// actions on 127.0.0.1 from convex-test's in-memory backend. Its latency is
// not Convex's.
//
//   CRM_API_KEY=… node convex/standin/main.mjs [--data contract/demo_data.json]
//
// Environment: CRM_API_KEY (required; the functions' deployment env),
// KAPSO_WEBHOOK_SECRET and DEFAULT_REGION (read by the functions like deployment
// variables), KONTAK_ALLOW_IMPORT (default "true" here), CONVEX_STANDIN_PORT (default 3211;
// 0 picks a free port, printed in the ready line), CONVEX_STANDIN_DATA (same
// as --data), CONVEX_STANDIN_INDEXES ("off" keeps convex-test's table walk
// for every query instead of index reads; for comparisons). Never logs keys,
// phone numbers or message contents.
import { readFileSync } from "node:fs";
import { convexTestMismatch } from "./convexTestInternals";
import { createStandinServer, newBackend } from "./server";

const HOST = "127.0.0.1";

function fail(message: string, code = 2): never {
  process.stderr.write(`convex stand-in: ${message}\n`);
  process.exit(code);
}

function parseArgs(argv: string[]): { data: string | null } {
  let data: string | null = process.env.CONVEX_STANDIN_DATA || null;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--data") {
      const value = argv[++i];
      if (value === undefined) fail("--data needs a file");
      data = value;
    } else if (arg.startsWith("--data=")) {
      data = arg.slice("--data=".length);
    } else if (arg === "--help" || arg === "-h") {
      process.stdout.write("usage: CRM_API_KEY=… node convex/standin/main.mjs [--data FILE]\n");
      process.exit(0);
    } else {
      fail(`unknown argument ${JSON.stringify(arg)}`);
    }
  }
  return { data };
}

function parsePort(): number {
  const raw = process.env.CONVEX_STANDIN_PORT;
  if (raw === undefined || raw === "") return 3211;
  if (!/^\d{1,5}$/.test(raw) || Number(raw) > 65535) fail("CONVEX_STANDIN_PORT must be a port number");
  return Number(raw);
}

async function main(): Promise<void> {
  const { data } = parseArgs(process.argv.slice(2));
  const port = parsePort();
  const apiKey = process.env.CRM_API_KEY;
  if (!apiKey) fail("CRM_API_KEY must be set");
  const allowImport = process.env.KONTAK_ALLOW_IMPORT ?? "true";
  process.env.KONTAK_ALLOW_IMPORT = allowImport;

  const indexes = (process.env.CONVEX_STANDIN_INDEXES ?? "").trim().toLowerCase() !== "off";
  // The index reads patch convex-test's private members: only the pinned version has the ones they know.
  const mismatch = indexes ? convexTestMismatch() : null;
  if (mismatch !== null) fail(mismatch, 1);
  const backend = await newBackend(undefined, { indexes });

  if (data !== null) {
    let body: string;
    try {
      body = readFileSync(data, "utf8");
    } catch {
      fail(`cannot read the data file ${JSON.stringify(data)}`);
    }
    // The preload goes through the import HTTP action, also when imports over
    // HTTP are disabled for clients.
    process.env.KONTAK_ALLOW_IMPORT = "true";
    const res = await backend.fetch("/http/import", {
      method: "POST",
      headers: { "x-api-key": apiKey, "content-type": "application/json" },
      body,
    });
    process.env.KONTAK_ALLOW_IMPORT = allowImport;
    const answer = await res.text();
    if (res.status !== 200) fail(`loading the data file failed: HTTP ${res.status} ${answer}`, 1);
  }

  const server = createStandinServer(backend);
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);

  server.on("error", (error: NodeJS.ErrnoException) => {
    fail(`cannot listen on ${HOST}:${port} (${error.code ?? error.name})`, 1);
  });
  server.listen(port, HOST, () => {
    const address = server.address();
    const actual = typeof address === "object" && address !== null ? address.port : port;
    process.stdout.write(`convex stand-in ready on http://${HOST}:${actual}\n`);
  });
}

main().catch((error) => {
  const kind = error instanceof Error ? error.name : typeof error;
  fail(`start-up failed (${kind})`, 1);
});
