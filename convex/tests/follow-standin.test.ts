// @vitest-environment node
// The follower's routes (docs/contract.md §14) through the local stand-in: its loopback HTTP
// server over a backend whose index reads are verified, query by query, against convex-test's
// own table walk (standin/indexedReads.ts). The by_source_id, by_sync_epoch (rows without an
// epoch sort first) and tombstone index ranges are read like every other index.
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { expect, test, vi } from "vitest";
import demoData from "../../contract/demo_data.json";
import { rootDatabaseOf } from "../standin/convexTestInternals";
import { installIndexedReads } from "../standin/indexedReads";
import { createStandinServer, newBackend } from "../standin/server";
import { BUDI } from "./harness";

const KEY = "standin-follow-key";
const WS1 = "00000000-0000-4000-8000-000000000001";
const SOURCE = (i: number) => `10000000-0000-4000-8000-00000000000${i + 1}`;

test("state, apply, stale replay, deletion and sweep through the stand-in, index reads verified", async ({ onTestFinished }) => {
  vi.stubEnv("CRM_API_KEY", KEY);
  vi.stubEnv("KONTAK_ALLOW_IMPORT", "true");
  const t = await newBackend(undefined, { indexes: false });
  const stats = installIndexedReads(await rootDatabaseOf(t), { verify: true });
  const server = createStandinServer(t);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  onTestFinished(() => void server.close());
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const call = async (path: string, body?: unknown) => {
    const init = body === undefined ? {} : { method: "POST", body: JSON.stringify(body) };
    const res = await fetch(base + path, { ...init, headers: { "x-api-key": KEY, "content-type": "application/json" } });
    return { status: res.status, body: await res.text() };
  };
  // Rows without an epoch (the import's) and rows of another copy, then the new copy.
  expect((await call("/http/import", demoData)).status).toBe(200);
  expect(await call("/http/follow/state", { epoch: "e1", backfilled: false })).toEqual({ status: 200, body: '{"epoch":"e1","backfilled":false}' });
  const contacts = demoData.contacts.map((c, i) => ({ source_id: SOURCE(i), ...c }));
  const cycle = { epoch: "e1", version: 1, workspaces: demoData.workspaces, contacts: contacts.slice(0, 2) };
  expect(await call("/http/follow/apply", cycle)).toEqual({ status: 200, body: '{"applied":4,"stale":0,"refused":[]}' });
  expect(await call("/http/follow/apply", cycle)).toEqual({ status: 200, body: '{"applied":0,"stale":4,"refused":[]}' });
  const lookup = `/http/contacts/getByPhone?phone=%2B6281234567890&workspace_id=${WS1}`;
  expect(await call(lookup)).toEqual({ status: 200, body: BUDI });
  expect(await call("/http/follow/sweep", { epoch: "e1" })).toEqual({ status: 200, body: '{"deleted":2,"done":true}' });
  expect((await call("/http/follow/apply", { epoch: "e1", version: 2, deleted_contacts: [SOURCE(0)] })).body).toBe(
    '{"applied":1,"stale":0,"refused":[]}',
  );
  expect(await call(lookup)).toEqual({ status: 200, body: '{"found":false,"context":null}' });
  expect((await call("/http/follow/apply", { epoch: "e0", version: 3 })).status).toBe(409);
  expect(stats.indexedQueries).toBeGreaterThan(20);
});
