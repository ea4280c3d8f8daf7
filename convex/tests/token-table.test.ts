// @vitest-environment node
// contract/token_ranges.json against Python 3.11 itself (docs/contract.md §5):
// the table is what the project's Python reads, and summary.ts tokenizes every code point as
// services/conversation_summary.py does. Skipped where the project's Python 3.11 is absent.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";
import table from "../../contract/token_ranges.json";
import { tokenize } from "../convex/summary";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const PYTHON = `${ROOT}.venv/bin/python`;
const GENERATOR = fileURLToPath(new URL("../scripts/token_ranges.py", import.meta.url));

function python(args: string[], input?: string) {
  return spawnSync(PYTHON, args, { cwd: ROOT, input, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
}

const unicode14 = existsSync(PYTHON) && python(["-c", "import unicodedata; print(unicodedata.unidata_version)"]).stdout.trim() === "14.0.0";

/** Python's own tokens of each text: services/conversation_summary.py's expression, run by Python. */
function pythonTokens(texts: string[]): string[][] {
  const script = [
    "import json, sys",
    "from services.conversation_summary import _token, SUMMARY_PREFIX_CHARS",
    "texts = json.loads(sys.stdin.read())",
    "out = [sorted(set(_token().findall(t[:SUMMARY_PREFIX_CHARS].lower()))) for t in texts]",
    "sys.stdout.write(json.dumps(out))",
  ].join("\n");
  const run = python(["-c", script], JSON.stringify(texts));
  expect(run.status, run.stderr).toBe(0);
  return JSON.parse(run.stdout);
}

/** A deterministic pseudo-random source (the same texts on every run). */
function random(seed: number) {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

/** Texts that mix code points from every plane with ASCII, Greek capitals and marks. */
function texts(count: number, length: number): string[] {
  const next = random(19);
  const pick = (): number => {
    const r = next();
    if (r < 0.3) return 0x20 + Math.floor(next() * 0x5f); // ASCII
    if (r < 0.4) return [0x3a3, 0x391, 0x301, 0x27, 0x2e, 0x130, 0x212a][Math.floor(next() * 7)]; // Σ and its context
    if (r < 0.7) return Math.floor(next() * 0x10000); // BMP, lone surrogates included
    return 0x10000 + Math.floor(next() * 0x100000); // the other planes
  };
  return Array.from({ length: count }, () => String.fromCodePoint(...Array.from({ length }, pick)));
}

describe.skipIf(!unicode14)("contract/token_ranges.json is Python 3.11's reading", () => {
  test("regenerating it with the project's Python gives the same file", () => {
    const run = python([GENERATOR, "--check"]);
    expect(run.status, run.stderr).toBe(0);
    expect(table.unicode_version).toBe("14.0.0");
  });

  test("summary.ts tokenizes as services/conversation_summary.py: 4,000 texts over every plane", () => {
    const cases = texts(4000, 60);
    const expected = pythonTokens(cases);
    const mismatches = cases
      .map((text, i) => ({ text, got: [...tokenize(text)].sort(), want: expected[i] }))
      .filter(({ got, want }) => JSON.stringify(got) !== JSON.stringify([...want].sort()));
    expect(mismatches.slice(0, 3)).toEqual([]);
  });

  test("every code point, after an 'a', gives Python's tokens", () => {
    // Python lists the code points whose tokens are not just ["a"], with their tokens.
    const script = [
      "import json, sys",
      "from services.conversation_summary import _token",
      "out = []",
      "for c in range(0x110000):",
      "    tokens = _token().findall(('a' + chr(c)).lower())",
      "    if tokens != ['a']: out.append([c, tokens])",
      "sys.stdout.write(json.dumps(out))",
    ].join("\n");
    const run = python(["-c", script]);
    expect(run.status, run.stderr).toBe(0);
    const want = new Map<number, string[]>(JSON.parse(run.stdout));
    const mismatches: string[] = [];
    for (let cp = 0; cp < 0x110000 && mismatches.length < 10; cp++) {
      const got = [...tokenize(`a${String.fromCodePoint(cp)}`)];
      const expected = want.get(cp) ?? ["a"];
      if (JSON.stringify(got) !== JSON.stringify(expected)) mismatches.push(`U+${cp.toString(16)}: ${JSON.stringify(got)} != ${JSON.stringify(expected)}`);
    }
    expect(mismatches).toEqual([]);
  }, 120_000);
});
