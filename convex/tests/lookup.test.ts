// The internal lookup query (docs/contract.md §3).
import { describe, expect, test } from "vitest";
import { internal } from "../convex/_generated/api";
import type { Id } from "../convex/_generated/dataModel";
import { lookup, newBackend, WS1, WS2, type Backend } from "./harness";

const T0 = Date.UTC(2026, 0, 2, 3, 4, 5, 678);

type ContactFields = {
  workspace_id?: string;
  phone?: string | null;
  bsuid?: string;
  username?: string | null;
  name?: string | null;
  kapso_name?: string | null;
  lead_status?: string;
  lead_score?: number;
  tags?: string[];
  created_at?: number;
};

async function addContact(t: Backend, fields: ContactFields = {}): Promise<Id<"contacts">> {
  return t.run((ctx) =>
    ctx.db.insert("contacts", {
      workspace_id: fields.workspace_id ?? WS1,
      phone: fields.phone === undefined ? "+6281234567890" : fields.phone,
      ...(fields.bsuid === undefined ? {} : { bsuid: fields.bsuid }),
      ...(fields.username === undefined ? {} : { username: fields.username }),
      name: fields.name === undefined ? "Budi Santoso" : fields.name,
      kapso_name: fields.kapso_name === undefined ? "Budi S" : fields.kapso_name,
      email: null,
      lead_status: fields.lead_status ?? "hot",
      lead_score: fields.lead_score ?? 80,
      tags: fields.tags ?? ["vip", "jakarta"],
      created_at: fields.created_at ?? T0,
      updated_at: fields.created_at ?? T0,
    }),
  );
}

async function addConversation(
  t: Backend,
  contact_id: Id<"contacts">,
  last_message_at: number | null,
): Promise<Id<"conversations">> {
  return t.run((ctx) =>
    ctx.db.insert("conversations", {
      workspace_id: WS1,
      contact_id,
      status: "open",
      unread_count: 0,
      last_message_at,
      last_message_preview: null,
      created_at: T0,
    }),
  );
}

async function addMessages(t: Backend, conversation_id: Id<"conversations">, rows: [number, string | null][]) {
  await t.run(async (ctx) => {
    for (const [created_at, content] of rows) {
      await ctx.db.insert("messages", {
        workspace_id: WS1,
        conversation_id,
        direction: "inbound",
        content,
        message_type: "text",
        kapso_message_id: null,
        status: null,
        created_at,
      });
    }
  });
}

async function addNotes(t: Backend, contact_id: Id<"contacts">, rows: [number, string][]) {
  await t.run(async (ctx) => {
    for (const [created_at, content] of rows) {
      await ctx.db.insert("contactNotes", { workspace_id: WS1, contact_id, content, created_at });
    }
  });
}

describe("lookupContext", () => {
  // Convex values do not keep key order across function calls (convex-test
  // sorts them); the HTTP action restores the documented order (http tests).
  test("found: the docs/contract.md §3 body", async () => {
    const t = newBackend();
    const id = await addContact(t);
    const conv = await addConversation(t, id, Date.UTC(2026, 0, 20, 9, 10, 11, 120));
    await addMessages(t, conv, [
      [T0, "Halo"],
      [T0 + 1000, "Rencananya UK, untuk S2"],
      [T0 + 2000, "Berapa lama proses visa ke Inggris?"],
    ]);
    await addNotes(t, id, [
      [T0, "older note"],
      [T0 + 1, "newest note"],
    ]);
    const result = await lookup(t, "+6281234567890");
    expect(result).toStrictEqual(
      {
        found: true,
        contact: {
          name: "Budi Santoso",
          lead_status: "hot",
          lead_score: 80,
          tags: ["vip", "jakarta"],
          is_returning: true,
          first_contact_date: "2026-01-02T03:04:05.678Z",
        },
        notes: ["newest note", "older note"],
        conversation_summary: "Discussed: UK, Visa",
        last_interaction: "2026-01-20T09:10:11.120Z",
      },
    );
  });

  test("not found", async () => {
    const t = newBackend();
    await addContact(t);
    expect(await lookup(t, "+6281234567891")).toEqual({ found: false, context: null });
  });

  test("workspace isolation", async () => {
    const t = newBackend();
    await addContact(t, { workspace_id: WS2, name: "Other" });
    expect(await lookup(t, "+6281234567890", WS1)).toEqual({ found: false, context: null });
    await addContact(t, { workspace_id: WS1, name: "Mine" });
    const r1 = await lookup(t, "+6281234567890", WS1);
    const r2 = await lookup(t, "+6281234567890", WS2);
    expect(r1.found && r1.contact.name).toBe("Mine");
    expect(r2.found && r2.contact.name).toBe("Other");
  });

  test.each([
    ["CRM name wins", "Budi", "Budi S", "Budi"],
    ["empty CRM name falls back to kapso_name", "", "Budi S", "Budi S"],
    ["null CRM name falls back to kapso_name", null, "Budi S", "Budi S"],
    ["both empty gives null", "", "", null],
    ["both null gives null", null, null, null],
  ] as const)("name: %s", async (_label, name, kapso_name, expected) => {
    const t = newBackend();
    await addContact(t, { name, kapso_name });
    const r = await lookup(t, "+6281234567890");
    expect(r.found && r.contact.name).toBe(expected);
  });

  test.each([
    ["the username after name and kapso_name", null, "", "budi.wa", "budi.wa"],
    ["an empty username is no name", "", null, "", null],
    ["kapso_name before the username", null, "Budi S", "budi.wa", "Budi S"],
    ["no username field at all (an older document)", null, null, undefined, null],
  ] as const)("name: %s", async (_label, name, kapso_name, username, expected) => {
    const t = newBackend();
    await addContact(t, { name, kapso_name, username });
    const r = await lookup(t, "+6281234567890");
    expect(r.found && r.contact.name).toBe(expected);
  });

  test("by BSUID first, then by phone; a contact without a phone is found by its BSUID", async () => {
    const t = newBackend();
    await addContact(t, { phone: null, bsuid: "ID.1", name: "By BSUID" });
    await addContact(t, { phone: "+6281234567890", name: "By phone" });
    const by = (args: { phone?: string | null; bsuid?: string | null }) =>
      t.query(internal.contacts.lookupContext, { workspace_id: WS1, ...args });
    const names = async (args: { phone?: string | null; bsuid?: string | null }) => {
      const r = await by(args);
      return r.found ? r.contact.name : null;
    };
    expect(await names({ bsuid: "ID.1" })).toBe("By BSUID");
    expect(await names({ bsuid: "ID.1", phone: "+6281234567890" })).toBe("By BSUID");
    expect(await names({ bsuid: "ID.2", phone: "+6281234567890" })).toBe("By phone");
    expect(await names({ bsuid: null, phone: "+6281234567890" })).toBe("By phone");
    expect(await by({ bsuid: "ID.2" })).toEqual({ found: false, context: null });
    expect(await by({})).toEqual({ found: false, context: null });
    expect(await by({ bsuid: "ID.1", phone: "+6281234567890" }).then((r) => r.found)).toBe(true);
    const other = await t.query(internal.contacts.lookupContext, { workspace_id: WS2, bsuid: "ID.1" });
    expect(other.found).toBe(false);
  });

  test("no conversation: not returning, no summary, no last interaction, [] tags", async () => {
    const t = newBackend();
    await addContact(t, { tags: [], lead_score: 0, lead_status: "new" });
    const r = await lookup(t, "+6281234567890");
    expect(r).toEqual({
      found: true,
      contact: {
        name: "Budi Santoso",
        lead_status: "new",
        lead_score: 0,
        tags: [],
        is_returning: false,
        first_contact_date: "2026-01-02T03:04:05.678Z",
      },
      notes: [],
      conversation_summary: null,
      last_interaction: null,
    });
  });

  test("conversation without messages and without last_message_at", async () => {
    const t = newBackend();
    const id = await addContact(t);
    await addConversation(t, id, null);
    const r = await lookup(t, "+6281234567890");
    expect(r.found && [r.contact.is_returning, r.conversation_summary, r.last_interaction]).toEqual([
      false,
      null,
      null,
    ]);
  });

  test("timestamps keep milliseconds, including .000 and epoch edge values", async () => {
    const t = newBackend();
    const id = await addContact(t, { created_at: Date.UTC(2026, 2, 1) });
    await addConversation(t, id, Date.UTC(2026, 2, 1, 23, 59, 59, 1));
    const r = await lookup(t, "+6281234567890");
    expect(r.found && r.contact.first_contact_date).toBe("2026-03-01T00:00:00.000Z");
    expect(r.found && r.last_interaction).toBe("2026-03-01T23:59:59.001Z");
  });

  test("notes: the 5 newest, newest first, ties broken by later insert first", async () => {
    const t = newBackend();
    const id = await addContact(t);
    await addNotes(t, id, [
      [T0 + 5, "n1 newest by time"],
      [T0, "n2 oldest"],
      [T0 + 2, "n3 tie A (inserted first)"],
      [T0 + 2, "n4 tie B (inserted second)"],
      [T0 + 1, "n5"],
      [T0 + 3, "n6"],
      [T0 + 2, "n7 tie C (inserted last)"],
    ]);
    const r = await lookup(t, "+6281234567890");
    expect(r.found && r.notes).toEqual([
      "n1 newest by time",
      "n6",
      "n7 tie C (inserted last)",
      "n4 tie B (inserted second)",
      "n3 tie A (inserted first)",
    ]);
  });

  test("notes of another contact are not included", async () => {
    const t = newBackend();
    const a = await addContact(t);
    const b = await addContact(t, { phone: "+6285712345678" });
    await addNotes(t, b, [[T0, "b's note"]]);
    await addNotes(t, a, [[T0, "a's note"]]);
    const r = await lookup(t, "+6281234567890");
    expect(r.found && r.notes).toEqual(["a's note"]);
  });

  test("summary uses only the 10 newest messages", async () => {
    const t = newBackend();
    const id = await addContact(t);
    const conv = await addConversation(t, id, T0 + 20);
    // Two old messages mention visa; the 10 newest mention nothing.
    const rows: [number, string | null][] = [
      [T0, "visa"],
      [T0 + 1, "visa please"],
    ];
    for (let i = 0; i < 10; i++) rows.push([T0 + 10 + i, "halo kak"]);
    await addMessages(t, conv, rows);
    let r = await lookup(t, "+6281234567890");
    expect(r.found && r.conversation_summary).toBe("General inquiry");

    // An 11th newest message in the window pushes one "halo" out.
    await addMessages(t, conv, [[T0 + 30, "IELTS"]]);
    r = await lookup(t, "+6281234567890");
    expect(r.found && r.conversation_summary).toBe("Discussed: English test");
  });

  test("messages with equal created_at: the later insert is newer (and order matters)", async () => {
    const t = newBackend();
    const id = await addContact(t);
    const conv = await addConversation(t, id, T0);
    await addMessages(t, conv, [
      [T0, "canada"],
      [T0, "australia"],
    ]);
    // Newest first: "australia" (later insert) then "canada".
    // Topic order within the walk follows message order, so Australia first either way;
    // use topics whose configured order is the reverse of the insert order.
    await addMessages(t, conv, [
      [T0 + 1, "visa"],
      [T0 + 1, "uk"],
    ]);
    const r = await lookup(t, "+6281234567890");
    expect(r.found && r.conversation_summary).toBe("Discussed: UK, Visa, Australia, Canada");
  });

  test("a message without text still counts as a message", async () => {
    const t = newBackend();
    const id = await addContact(t);
    const conv = await addConversation(t, id, T0);
    await addMessages(t, conv, [[T0, null]]);
    const r = await lookup(t, "+6281234567890");
    expect(r.found && r.conversation_summary).toBe("General inquiry");
  });
});
