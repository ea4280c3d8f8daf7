// GET /http/contacts/getByPhone and the router's JSON fallbacks (docs/contract.md §3, §4, §8).
import { beforeEach, describe, expect, test, vi } from "vitest";
import { constantTimeEqual } from "../convex/transport";
import {
  API_KEY,
  BUDI,
  demo,
  getByPhone as get,
  importData,
  newBackend,
  seededBackend as seeded,
  stubKontakEnv,
  WS1,
  WS2,
} from "./harness";

beforeEach(() => stubKontakEnv());

describe("GET /http/contacts/getByPhone", () => {
  test("found, E.164 phone: exact body, key order and content type", async () => {
    const t = await seeded();
    const res = await get(t, `?phone=%2B6281234567890&workspace_id=${WS1}`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(await res.text()).toBe(BUDI);
  });

  test("found, WhatsApp digits give the same body", async () => {
    const t = await seeded();
    const res = await get(t, `?phone=6281234567890&workspace_id=${WS1}`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(BUDI);
  });

  test("a '+' sent unencoded (read as a space) still finds the contact", async () => {
    const t = await seeded();
    const res = await get(t, `?phone=+6281234567890&workspace_id=${WS1}`);
    expect(await res.text()).toBe(BUDI);
  });

  test("workspace_id is compared like a UUID (case-insensitive)", async () => {
    const t = await seeded();
    const res = await get(t, `?phone=6281234567890&workspace_id=${WS1.toUpperCase()}`);
    expect(await res.text()).toBe(BUDI);
  });

  test("kapso_name fallback and empty tags through HTTP", async () => {
    const t = await seeded();
    const res = await get(t, `?phone=6285712345678&workspace_id=${WS1}`);
    expect(await res.text()).toBe(
      '{"found":true,"contact":{"name":"Siti","lead_status":"new","lead_score":0,"tags":[],' +
        '"is_returning":false,"first_contact_date":"2026-02-01T12:00:00.000Z"},"notes":[],' +
        '"conversation_summary":null,"last_interaction":null}',
    );
  });

  test("the same phone in another workspace is another contact", async () => {
    const t = await seeded();
    const res = await get(t, `?phone=6281234567890&workspace_id=${WS2}`);
    const body = await res.json();
    expect(body.contact.name).toBe("Budi (other workspace)");
    expect(body.notes).toEqual(["Belongs to another workspace"]);
  });

  test("not found", async () => {
    const t = await seeded();
    const res = await get(t, `?phone=6289999999999&workspace_id=${WS1}`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('{"found":false,"context":null}');
    const other = await get(t, `?phone=6281234567890&workspace_id=00000000-0000-4000-8000-000000000009`);
    expect(await other.text()).toBe('{"found":false,"context":null}');
  });

  test.each([
    ["absent key", null],
    ["empty key", ""],
    ["wrong key of the same length", API_KEY.replace(/.$/, "X")],
    ["longer key with the right prefix", API_KEY + "x"],
    ["shorter key", API_KEY.slice(0, -1)],
  ])("401 for %s", async (_label, key) => {
    const t = await seeded();
    const res = await get(t, `?phone=6281234567890&workspace_id=${WS1}`, key);
    expect(res.status).toBe(401);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(await res.text()).toBe('{"found":false,"error":"Unauthorized"}');
  });

  test("the key is checked before the parameters", async () => {
    const t = newBackend();
    const res = await get(t, "", "wrong");
    expect(res.status).toBe(401);
  });

  test.each([
    ["no parameters", ""],
    ["no phone", `?workspace_id=${WS1}`],
    ["empty phone", `?phone=&workspace_id=${WS1}`],
    ["blank phone", `?phone=%20%09&workspace_id=${WS1}`],
    ["no workspace_id", "?phone=6281234567890"],
    ["empty workspace_id", "?phone=6281234567890&workspace_id="],
    ["blank workspace_id, invalid phone", "?phone=abc&workspace_id=%20"],
  ])("400 Missing parameters: %s", async (_label, query) => {
    const t = newBackend();
    const res = await get(t, query);
    expect(res.status).toBe(400);
    expect(await res.text()).toBe('{"found":false,"error":"Missing parameters"}');
  });

  // docs/contract.md §4 through services/phones.py's rule; the phone is checked before the workspace_id.
  test.each([
    ["letters", "abc"],
    ["too short", "12"],
    ["an extension", "0812-3456-7890x12"],
    ["full-width digits", "０８１２３４５６７８９０"],
    ["NUL", "%2B6281234567890%00"],
    ["too long", "9".repeat(70)],
  ])("400 Invalid phone number: %s", async (_label, phone) => {
    const t = newBackend();
    const query = `?phone=${phone.includes("%") ? phone : encodeURIComponent(phone)}&workspace_id=not-a-uuid`;
    const res = await get(t, query);
    expect(res.status).toBe(400);
    expect(await res.text()).toBe('{"found":false,"error":"Invalid phone number"}');
  });

  test.each([
    ["not a UUID", "workspace-1"],
    ["no dashes", "00000000000040008000000000000001"],
    ["braces", `{${WS1}}`],
    ["one digit short", WS1.slice(0, -1)],
    ["not hex", WS1.replace("4000", "400g")],
    ["NUL inside", `${WS1}\u0000`],
  ])("400 Invalid workspace_id: %s", async (_label, workspace) => {
    const t = newBackend();
    const res = await get(t, `?phone=6281234567890&workspace_id=${encodeURIComponent(workspace)}`);
    expect(res.status).toBe(400);
    expect(await res.text()).toBe('{"found":false,"error":"Invalid workspace_id"}');
  });

  // docs/contract.md §3, §4a, §8: a BSUID beside or instead of the phone; presence, then bsuid, phone, workspace_id.
  test.each([
    ["blank bsuid, no phone", `?bsuid=%20&workspace_id=${WS1}`, "Missing parameters"],
    ["bsuid, blank workspace_id", "?bsuid=ID.123&workspace_id=%20", "Missing parameters"],
    ["lower-case country", `?bsuid=id.123&workspace_id=${WS1}`, "Invalid bsuid"],
    ["a parent BSUID is no BSUID", `?bsuid=ID.ENT.123&workspace_id=${WS1}`, "Invalid bsuid"],
    ["129 characters after the dot", `?bsuid=ID.${"1".repeat(129)}&workspace_id=${WS1}`, "Invalid bsuid"],
    ["bsuid before phone", "?bsuid=ID.12-3&phone=x&workspace_id=not-a-uuid", "Invalid bsuid"],
    ["phone after a valid bsuid", "?bsuid=ID.123&phone=x&workspace_id=not-a-uuid", "Invalid phone number"],
    ["workspace_id last", "?bsuid=ID.123&workspace_id=not-a-uuid", "Invalid workspace_id"],
  ])("400 with a bsuid: %s", async (_label, query, error) => {
    const t = newBackend();
    const res = await get(t, query);
    expect(res.status).toBe(400);
    expect(await res.text()).toBe(JSON.stringify({ found: false, error }));
  });

  test("by bsuid: stripped like the phone, found before the phone, and alone", async () => {
    const t = newBackend();
    const data = demo();
    data.contacts[0].bsuid = "ID.13491208655302741918";
    await importData(t, data);
    const bsuid = encodeURIComponent(" ID.13491208655302741918\t");
    for (const query of [`?bsuid=${bsuid}`, `?bsuid=${bsuid}&phone=6289999999999`, `?bsuid=ID.999&phone=6281234567890`]) {
      const res = await get(t, `${query}&workspace_id=${WS1}`);
      expect(await res.text(), query).toBe(BUDI);
    }
    const res = await get(t, `?bsuid=ID.999&workspace_id=${WS1}`);
    expect(await res.text()).toBe('{"found":false,"context":null}');
  });

  test("surrounding blanks around both parameters are allowed, like Flask", async () => {
    const t = newBackend();
    await importData(t, demo());
    const res = await get(t, `?phone=${encodeURIComponent(" 0812 3456 7890 ")}&workspace_id=${encodeURIComponent(` ${WS1.toUpperCase()}\t`)}`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(BUDI);
  });

  test("national and 00-international forms find the E.164 contact (DEFAULT_REGION=ID)", async () => {
    const t = newBackend();
    await importData(t, demo());
    for (const phone of ["081234567890", "0062 812 3456 7890", "+62 812-3456-7890", "(0812) 3456-7890"]) {
      const res = await get(t, `?phone=${encodeURIComponent(phone)}&workspace_id=${WS1}`);
      expect(res.status, phone).toBe(200);
      expect(await res.text(), phone).toBe(BUDI);
    }
  });

  test("DEFAULT_REGION decides what a national number means", async () => {
    const t = newBackend();
    await t.run(async (ctx) => {
      await ctx.db.insert("contacts", {
        workspace_id: WS1, phone: "+447700900123", name: "Harry", kapso_name: null, email: null,
        lead_status: "new", lead_score: 0, tags: [], created_at: 0, updated_at: 0,
      });
    });
    const query = `?phone=${encodeURIComponent("07700 900123")}&workspace_id=${WS1}`;
    expect((await (await get(t, query)).json()).found).toBe(false); // ID: +627700900123
    vi.stubEnv("DEFAULT_REGION", "GB");
    expect((await (await get(t, query)).json()).found).toBe(true);
  });

  test("500 when CRM_API_KEY is not set, before the key check", async () => {
    vi.stubEnv("CRM_API_KEY", undefined);
    const t = newBackend();
    for (const key of [null, "anything", API_KEY]) {
      const res = await get(t, `?phone=6281234567890&workspace_id=${WS1}`, key);
      expect(res.status).toBe(500);
      expect(await res.text()).toBe('{"found":false,"error":"Service not configured"}');
    }
  });

  test("an empty CRM_API_KEY counts as not set", async () => {
    vi.stubEnv("CRM_API_KEY", "");
    const t = newBackend();
    const res = await get(t, `?phone=6281234567890&workspace_id=${WS1}`, "");
    expect(res.status).toBe(500);
  });

  test("a non-ASCII key is compared as UTF-8 bytes", async () => {
    vi.stubEnv("CRM_API_KEY", "kunci-rahasia-é");
    const t = newBackend();
    const ok = await get(t, `?phone=6281234567890&workspace_id=${WS1}`, "kunci-rahasia-é");
    expect(ok.status).toBe(200);
    const bad = await get(t, `?phone=6281234567890&workspace_id=${WS1}`, "kunci-rahasia-e");
    expect(bad.status).toBe(401);
  });
});

describe("router fallbacks", () => {
  test("unknown path: 404 JSON", async () => {
    const t = newBackend();
    for (const method of ["GET", "POST", "DELETE"]) {
      const res = await t.fetch("/http/nope", { method });
      expect(res.status).toBe(404);
      expect(await res.json()).toEqual({ error: "Not found" });
    }
  });

  test("known path, wrong method: 405 JSON", async () => {
    const t = newBackend();
    const res = await t.fetch("/http/contacts/getByPhone", { method: "POST", headers: { "x-api-key": API_KEY } });
    expect(res.status).toBe(405);
    expect(await res.json()).toEqual({ error: "Method not allowed" });
    const imp = await t.fetch("/http/import", { method: "GET" });
    expect(imp.status).toBe(405);
  });
});

describe("helpers", () => {
  test("constantTimeEqual", () => {
    expect(constantTimeEqual("abc", "abc")).toBe(true);
    expect(constantTimeEqual("abc", "abd")).toBe(false);
    expect(constantTimeEqual("abc", "abcd")).toBe(false);
    expect(constantTimeEqual("", "a")).toBe(false);
    expect(constantTimeEqual("é", "é")).toBe(true);
    // "é" is 2 bytes; the length difference alone must not be ignored.
    expect(constantTimeEqual("\u0000", "")).toBe(false);
  });
});

describe("visibility", () => {
  test("no public query, mutation or action: only HTTP actions are public", async () => {
    const { modules } = await import("./harness");
    const publicFunctions: string[] = [];
    let internalFunctions = 0;
    for (const [path, load] of Object.entries(modules)) {
      if (path.includes("_generated")) continue;
      const mod = (await load()) as Record<string, any>;
      for (const [name, fn] of Object.entries(mod)) {
        if (fn && (fn.isQuery || fn.isMutation || fn.isAction) && fn.isPublic) {
          publicFunctions.push(`${path}:${name}`);
        }
        if (fn && fn.isInternal) internalFunctions += 1;
      }
    }
    expect(publicFunctions).toEqual([]);
    expect(internalFunctions).toBeGreaterThanOrEqual(6);
  });
});
