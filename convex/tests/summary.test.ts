// The shared summary vectors (contract/summary_vectors.json), also run by the
// Python tests: directly against summary.ts and end to end through the lookup.
import { describe, expect, test } from "vitest";
import vectorFile from "../../contract/summary_vectors.json";
import { codePointPrefix, isTokenCodePoint, summarize, SUMMARY_PREFIX_CHARS, tokenize, TOPICS } from "../convex/summary";
import { lookup, newBackend, WS1 } from "./harness";

type Vector = { name: string; messages: (string | null)[]; summary: string | null };
const vectors = vectorFile.vectors as Vector[];

describe("summary vectors", () => {
  test("the vector file is not empty", () => {
    expect(vectors.length).toBeGreaterThan(10);
  });

  test.each(vectors.map((v) => [v.name, v] as const))("%s", (_name, vector) => {
    expect(summarize(vector.messages)).toBe(vector.summary);
  });
});

describe("summary details", () => {
  test("topics come from contract/topics.json in its order", () => {
    expect(TOPICS.map((t) => t.name)).toEqual([
      "Australia",
      "UK",
      "Canada",
      "Scholarship",
      "English test",
      "Visa",
      "Postgraduate",
      "Undergraduate",
    ]);
  });

  test("tokens are maximal runs of letters or digits, lower-cased", () => {
    expect([...tokenize("Info_VISA, s1/S2 café-2026")]).toEqual(["info", "visa", "s1", "s2", "café", "2026"]);
    expect(tokenize(null).size).toBe(0);
  });
});

// Python 3.11 (Unicode 14) is the reference; this engine's \p{L}, \p{N} and toLowerCase are newer.
// contract/token_ranges.json pins Python's reading for every code point.
describe("tokens as Python 3.11 (Unicode 14) reads them, whatever this engine's Unicode", () => {
  const cp = (n: number) => String.fromCodePoint(n);
  test.each([
    ["KAWI LETTER A (Unicode 15)", 0x11f04],
    ["KAWI DIGIT ZERO (Unicode 15)", 0x11f50],
    ["NAG MUNDARI LETTER O (Unicode 15)", 0x1e4d0],
    ["NAG MUNDARI DIGIT ZERO (Unicode 15)", 0x1e4f0],
    ["MODIFIER LETTER CYRILLIC SMALL A (Unicode 15)", 0x1e030],
    ["a CJK Extension H ideograph (Unicode 15)", 0x31350],
    ["LATIN SMALL LETTER D WITH MID-HEIGHT LEFT HOOK (Unicode 15)", 0x1df25],
    ["LATIN CAPITAL LETTER RAMS HORN (Unicode 16; lower-cases to U+0264, a letter)", 0xa7cb],
    ["CYRILLIC CAPITAL LETTER TJE (Unicode 16)", 0x1c89],
    ["GARAY CAPITAL LETTER A (Unicode 16)", 0x10d50],
  ])("%s separates tokens", (_name, code) => {
    expect(isTokenCodePoint(code)).toBe(false);
    expect([...tokenize(`Visa${cp(code)}UK`)]).toEqual(["visa", "uk"]);
    expect(summarize([`Visa${cp(code)}UK`])).toBe("Discussed: UK, Visa");
  });

  test.each([
    ["ARABIC LETTER ALEF WITH ATTACHED FATHA (Unicode 14)", 0x0870],
    ["TOTO LETTER PA (Unicode 14)", 0x1e290],
    ["COPTIC FRACTION ONE HALF (No)", 0x2cfd],
    ["ROMAN NUMERAL ONE (Nl)", 0x2160],
  ])("%s is part of a token", (_name, code) => {
    expect(isTokenCodePoint(code)).toBe(true);
    expect(tokenize(`visa${cp(code)}uk`).size).toBe(1);
    expect(summarize([`visa${cp(code)}uk`])).toBe("General inquiry");
  });

  test("lower-casing as Python's str.lower(): final sigma in context, İ to i + U+0307 (which ends a token)", () => {
    expect([...tokenize("ΟΔΟΣ ΣΑ Σ ΑΣ'Β")]).toEqual(["οδος", "σα", "σ", "ασ", "β"]);
    expect([...tokenize("ΑΣ\u0301")]).toEqual(["ας"]);
    expect([...tokenize("VİSA")]).toEqual(["vi", "sa"]);
    expect([...tokenize("KELVIN \u212a")]).toEqual(["kelvin", "k"]);
  });
});

describe("summary through the lookup", () => {
  test("every vector gives its summary end to end", async () => {
    const t = newBackend();
    const phones: string[] = [];
    await t.run(async (ctx) => {
      for (const [i, vector] of vectors.entries()) {
        const phone = `+62811000${String(i).padStart(4, "0")}`;
        phones.push(phone);
        const contact_id = await ctx.db.insert("contacts", {
          workspace_id: WS1,
          phone,
          name: vector.name,
          kapso_name: null,
          email: null,
          lead_status: "new",
          lead_score: 0,
          tags: [],
          created_at: 1_700_000_000_000,
          updated_at: 1_700_000_000_000,
        });
        const conversation_id = await ctx.db.insert("conversations", {
          workspace_id: WS1,
          contact_id,
          status: "open",
          unread_count: 0,
          last_message_at: vector.messages.length > 0 ? 1_700_000_100_000 : null,
          last_message_preview: null,
          created_at: 1_700_000_000_000,
        });
        // Vectors list contents newest first; store them oldest first.
        const oldestFirst = [...vector.messages].reverse();
        for (const [j, content] of oldestFirst.entries()) {
          await ctx.db.insert("messages", {
            workspace_id: WS1,
            conversation_id,
            direction: j % 2 === 0 ? "inbound" : "outbound",
            content,
            message_type: content === null ? "image" : "text",
            kapso_message_id: `wamid.v${i}-${j}`,
            status: null,
            created_at: 1_700_000_000_000 + j * 1000,
          });
        }
      }
    });
    for (const [i, vector] of vectors.entries()) {
      const result = await lookup(t, phones[i]);
      expect(result.found).toBe(true);
      if (result.found) expect(result.conversation_summary, vector.name).toBe(vector.summary);
    }
  });
});

describe("summary prefix", () => {
  test("only the first summary_prefix_chars code points of each message are read", () => {
    expect(SUMMARY_PREFIX_CHARS).toBe(2000);
    expect(codePointPrefix("ab😀cd", 3)).toBe("ab😀");
    expect(codePointPrefix("abc", 5)).toBe("abc");
    expect(codePointPrefix("a\ud800b", 2)).toBe("a\ud800");
    const filler = "😀".repeat(1995);
    expect(summarize([`${filler} visa`])).toBe("Discussed: Visa"); // ends at code point 2000
    expect(summarize([`${filler}  visa`])).toBe("General inquiry");
  });

  test("a megabyte message is summarized from its prefix, quickly", () => {
    const big = "visa ".repeat(1) + "x".repeat(1024 * 1024) + " canada";
    const started = performance.now();
    for (let i = 0; i < 10; i++) expect(summarize([big])).toBe("Discussed: Visa");
    expect(performance.now() - started).toBeLessThan(200);
  });
});
