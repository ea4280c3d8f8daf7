// JSON values read the way services/kapso.py reads them (docs/webhook.md §2): Python's
// dict/list/str semantics, so both webhooks see the same fields in the same bodies.
// Pure functions, no Convex APIs; used by the Kapso readers, content.ts and judge.ts.
import { LIMITS } from "./contract";

export type Dict = Record<string, unknown>;

export function isDict(value: unknown): value is Dict {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** `value if isinstance(value, dict) else {}` */
export function dict(value: unknown): Dict {
  return isDict(value) ? value : {};
}

/** `d.get(key)`: own properties only ("constructor" is not a key of {}). */
export function get(d: Dict, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(d, key) ? d[key] : undefined;
}

/** `_list(value)`: a JSON array, or nothing (a string or object where a list belongs is not iterated). */
export function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

// Python's str.isspace() characters (str.strip() removes these); unlike JS
// \s it includes U+001C..U+001F and U+0085 and excludes U+FEFF.
const PY_SPACE = "\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
export const PY_BLANK = new RegExp(`^[${PY_SPACE}]*$`);
const PY_STRIP = new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, "g");

/** Python's str.strip(). */
export function pyStrip(s: string): string {
  return s.replace(PY_STRIP, "");
}

/** A non-blank string (§2), else null: any other JSON type counts as absent. */
export function text(value: unknown): string | null {
  return typeof value === "string" && !PY_BLANK.test(value) ? value : null;
}

/** The first non-blank string of `values`. */
export function first(...values: unknown[]): string | null {
  for (const value of values) {
    const t = text(value);
    if (t !== null) return t;
  }
  return null;
}

// A surrogate not part of a pair: JavaScript strings can hold one (JSON
// "\ud800"), PostgreSQL and Convex cannot store it.
export const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const LONE_SURROGATES = new RegExp(LONE_SURROGATE.source, "g");

/**
 * NUL removed, unpaired surrogates replaced by U+FFFD, then cut to at most
 * `max_text_bytes` of UTF-8 at a code point boundary (§4): what both backends store
 * for content, contact names and previews, and every stored row fits one Convex document.
 */
export function cleanText(value: string): string {
  return utf8Prefix(value.replace(/\u0000/g, "").replace(LONE_SURROGATES, "\ufffd"), LIMITS.maxTextBytes);
}

/** The longest prefix of `s` (no lone surrogate) whose UTF-8 holds at most `limit` bytes, whole code points only. */
function utf8Prefix(s: string, limit: number): string {
  // A UTF-16 unit is at most 3 bytes of UTF-8: no encoding needed below the limit.
  if (s.length * 3 <= limit) return s;
  const bytes = new TextEncoder().encode(s);
  if (bytes.length <= limit) return s;
  let cut = limit;
  while (cut > 0 && (bytes[cut] & 0xc0) === 0x80) cut--; // inside a code point: cut before it
  return new TextDecoder().decode(bytes.subarray(0, cut));
}

/** A contact name or username, cleaned; blank once cleaned counts as none (§4). */
export function cleanName(value: string | null): string | null {
  return value === null ? null : text(cleanText(value));
}

/** Python's len(): code points, a lone surrogate counting as one. */
export function codePointLength(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}
