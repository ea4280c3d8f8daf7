// Request bodies: one JSON reading for both webhooks (docs/webhook.md §1.1,
// services/webhook_json.py). NaN and ±Infinity are not JSON (JSON.parse refuses
// them), numbers are doubles, a repeated key's last value wins (JSON.parse), and
// nesting deeper than the contract's json_max_depth is refused. Pure code, no
// Convex function here.
import { RULES } from "./contract";

/** Arrays and objects nested deeper are refused as invalid JSON; the body's object is depth 1. */
export const JSON_MAX_DEPTH: number = RULES.jsonMaxDepth;
function decodeUnits(bytes: Uint8Array, width: 2 | 4, littleEndian: boolean): string | null {
  if (bytes.length % width !== 0) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const parts: string[] = [];
  let chunk: number[] = [];
  for (let i = 0; i < bytes.length; i += width) {
    if (width === 2) {
      chunk.push(view.getUint16(i, littleEndian));
    } else {
      const cp = view.getUint32(i, littleEndian);
      if (cp > 0x10ffff) return null;
      if (cp > 0xffff) chunk.push(0xd800 + ((cp - 0x10000) >> 10), 0xdc00 + ((cp - 0x10000) & 0x3ff));
      else chunk.push(cp);
    }
    if (chunk.length >= 4096) {
      parts.push(String.fromCharCode(...chunk));
      chunk = [];
    }
  }
  parts.push(String.fromCharCode(...chunk));
  return parts.join("");
}

const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * The body as text, in the encoding Python's json.loads detects for bytes
 * (UTF-8 with or without BOM, UTF-16, UTF-32); null when it does not decode.
 */
export function decodeBody(b: Uint8Array): string | null {
  const starts = (...prefix: number[]) => prefix.every((x, i) => b[i] === x);
  try {
    if (starts(0x00, 0x00, 0xfe, 0xff)) return decodeUnits(b.subarray(4), 4, false);
    if (starts(0xff, 0xfe, 0x00, 0x00)) return decodeUnits(b.subarray(4), 4, true);
    if (starts(0xfe, 0xff)) return decodeUnits(b.subarray(2), 2, false);
    if (starts(0xff, 0xfe)) return decodeUnits(b.subarray(2), 2, true);
    if (starts(0xef, 0xbb, 0xbf)) return UTF8.decode(b.subarray(3));
    if (b.length >= 4) {
      if (b[0] === 0) return b[1] ? decodeUnits(b, 2, false) : decodeUnits(b, 4, false);
      if (b[1] === 0) return b[2] || b[3] ? decodeUnits(b, 2, true) : decodeUnits(b, 4, true);
    } else if (b.length === 2) {
      if (b[0] === 0) return decodeUnits(b, 2, false);
      if (b[1] === 0) return decodeUnits(b, 2, true);
    }
    return UTF8.decode(b);
  } catch {
    return null;
  }
}

/** True when arrays/objects nest deeper than `limit` (strings are skipped). */
export function nestedTooDeep(s: string, limit: number = JSON_MAX_DEPTH): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return true;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return false;
}

/** The parsed body, or undefined for anything that is not JSON by docs/webhook.md §1.1. */
export function parseJsonBody(bytes: Uint8Array): unknown {
  return parseJsonBodyText(bytes)?.value;
}

/** The parsed body and the text it was parsed from; undefined as for parseJsonBody. */
export function parseJsonBodyText(bytes: Uint8Array): { value: unknown; text: string } | undefined {
  const s = decodeBody(bytes);
  // A BOM left after decoding is an error to json.loads(str).
  if (s === null || s.startsWith("\ufeff") || nestedTooDeep(s)) return undefined;
  try {
    return { value: JSON.parse(s), text: s };
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------
// Integers and floats: Python's json reads `1` as an int but `1.0` and `1e3` as
// floats; JSON.parse gives the same number for all three. An error code is kept
// only when it is a JSON integer (docs/webhook.md §7.7), so the webhook asks.

/** Was `holder[key]` written as an integral number with a fraction or an exponent? */
export type NumberForms = (holder: object, key: string) => boolean;

/** For bodies whose text is not at hand (tests, pure readers): every number is what it looks like. */
export const PLAIN_NUMBERS: NumberForms = () => false;

/**
 * The NumberForms of `parsed`, parsed from `text`. The text is scanned on the
 * first question only (most deliveries never ask), then each float-form
 * integral number is found in `parsed` by its path.
 */
export function numberForms(text: string, parsed: unknown): NumberForms {
  let holders: WeakMap<object, Set<string>> | null = null;
  return (holder, key) => {
    holders ??= holdersOf(floatFormPaths(text), parsed);
    return holders.get(holder)?.has(key) ?? false;
  };
}

type PathKey = string | number;
type Frame = { array: boolean; key: PathKey | null };

/** Index just past the JSON string token that starts at `i`. */
function stringEnd(s: string, i: number): number {
  for (let j = i + 1; j < s.length; j++) {
    const c = s.charCodeAt(j);
    if (c === 0x5c) j++;
    else if (c === 0x22) return j + 1;
  }
  return s.length;
}

const NUMBER_TOKEN = /-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;

/**
 * Paths of the integral numbers written in float form in a valid JSON text.
 * A key met again in the same object (JSON's last duplicate wins) forgets what
 * was found under its earlier value.
 */
function floatFormPaths(s: string): PathKey[][] {
  const found = new Map<string, PathKey[]>();
  const stack: Frame[] = [];
  let expectKey = false;
  for (let i = 0; i < s.length;) {
    const c = s[i];
    const top = stack[stack.length - 1];
    if (c === '"') {
      const end = stringEnd(s, i);
      if (expectKey && top !== undefined) {
        top.key = JSON.parse(s.slice(i, end)) as string;
        expectKey = false;
        if (found.size > 0)
          forgetUnder(
            found,
            stack.map((f) => f.key as PathKey),
          );
      }
      i = end;
    } else if (c === "{" || c === "[") {
      stack.push({ array: c === "[", key: c === "[" ? 0 : null });
      expectKey = c === "{";
      i++;
    } else if (c === "}" || c === "]") {
      stack.pop();
      i++;
    } else if (c === "," && top !== undefined) {
      if (top.array) top.key = (top.key as number) + 1;
      else expectKey = true;
      i++;
    } else if (c === "-" || (c >= "0" && c <= "9")) {
      NUMBER_TOKEN.lastIndex = i;
      const m = NUMBER_TOKEN.exec(s);
      if (m === null) return [...found.values()]; // not JSON after all: nothing more to learn
      i += m[0].length;
      if ((m[1] !== undefined || m[2] !== undefined) && Number.isInteger(Number(m[0]))) {
        const path = stack.map((f) => f.key as PathKey);
        found.set(JSON.stringify(path), path);
      }
    } else {
      i++; // whitespace, ':', the letters of true/false/null
    }
  }
  return [...found.values()];
}

/** Forgets every path found at or under `prefix`. */
function forgetUnder(found: Map<string, PathKey[]>, prefix: PathKey[]): void {
  const exact = JSON.stringify(prefix);
  const under = exact.slice(0, -1) + ",";
  for (const key of [...found.keys()]) {
    if (key === exact || key.startsWith(under)) found.delete(key);
  }
}

/** Each path's holder object in `parsed`, with the keys found in it. */
function holdersOf(paths: PathKey[][], parsed: unknown): WeakMap<object, Set<string>> {
  const holders = new WeakMap<object, Set<string>>();
  for (const path of paths) {
    let holder: unknown = parsed;
    for (const key of path.slice(0, -1)) {
      const own = typeof holder === "object" && holder !== null && Object.prototype.hasOwnProperty.call(holder, key);
      holder = own ? (holder as Record<PathKey, unknown>)[key] : undefined;
    }
    const last = path[path.length - 1];
    if (typeof holder !== "object" || holder === null || typeof last !== "string") continue;
    const keys = holders.get(holder) ?? new Set<string>();
    keys.add(last);
    holders.set(holder, keys);
  }
  return holders;
}
