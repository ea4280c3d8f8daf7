// Conversation summary (docs/contract.md §5), identical to services/conversation_summary.py.
// The topics come from the shared configuration file contract/topics.json; what a token is,
// for every code point, from contract/token_ranges.json (Python 3.11's Unicode 14 reading,
// not the newer Unicode of this JavaScript engine's \p{L}, \p{N} and toLowerCase).
import tokenTable from "../../contract/token_ranges.json";
import topicsConfig from "../../contract/topics.json";
import { RULES } from "./contract";

export type Topic = { name: string; keywords: string[] };

// Keywords are compared as written in the file (they are lower-case there).
export const TOPICS: readonly Topic[] = topicsConfig.topics.map((t) => ({
  name: t.name,
  keywords: [...t.keywords],
}));

type Ranges = readonly (readonly number[])[];

/** Is `cp` in one of the sorted, inclusive [first, last] `ranges`? */
function inRanges(ranges: Ranges, cp: number): boolean {
  let low = 0;
  let high = ranges.length - 1;
  while (low <= high) {
    const mid = (low + high) >> 1;
    if (cp < ranges[mid][0]) high = mid - 1;
    else if (cp > ranges[mid][1]) low = mid + 1;
    else return true;
  }
  return false;
}

const LETTERS_OR_DIGITS: Ranges = tokenTable.letters_or_digits;
const CASED: Ranges = tokenTable.final_sigma.cased;
const CASE_IGNORABLE: Ranges = tokenTable.final_sigma.case_ignorable;

/** A letter or digit of a token: Python 3.11's str.isalnum() (Unicode 14 categories L and N). */
export function isTokenCodePoint(cp: number): boolean {
  if (cp < 0x80) return (cp >= 0x30 && cp <= 0x39) || (cp >= 0x61 && cp <= 0x7a) || (cp >= 0x41 && cp <= 0x5a);
  return inRanges(LETTERS_OR_DIGITS, cp);
}

/** Python 3.11's str.lower() of each code point that it changes, U+03A3 aside (see lowerAt). */
const LOWER: ReadonlyMap<number, readonly number[]> = (() => {
  const lower = new Map<number, readonly number[]>();
  for (const [first, last, step, delta] of tokenTable.lower) {
    for (let cp = first; cp <= last; cp += step) lower.set(cp, [cp + delta]);
  }
  for (const [cp, to] of tokenTable.lower_special as [number, number[]][]) lower.set(cp, to);
  return lower;
})();

const CAPITAL_SIGMA = 0x3a3;

/**
 * Is the U+03A3 at `i` final (Python's handle_capital_sigma)? A cased code point before it
 * and none after it, case-ignorable ones skipped both ways.
 */
function finalSigma(cps: readonly number[], i: number): boolean {
  let j = i - 1;
  while (j >= 0 && inRanges(CASE_IGNORABLE, cps[j])) j--;
  if (j < 0 || !inRanges(CASED, cps[j])) return false;
  j = i + 1;
  while (j < cps.length && inRanges(CASE_IGNORABLE, cps[j])) j++;
  return j === cps.length || !inRanges(CASED, cps[j]);
}

/** The lower-case code points of `cps[i]`, as Python 3.11's str.lower() gives them in context. */
function lowerAt(cps: readonly number[], i: number): readonly number[] {
  const cp = cps[i];
  if (cp === CAPITAL_SIGMA) return [finalSigma(cps, i) ? 0x3c2 : 0x3c3];
  return LOWER.get(cp) ?? [cp];
}

/** The code points of `s`; a lone surrogate is one, as in Python. */
function codePoints(s: string): number[] {
  const cps: number[] = [];
  for (const ch of s) cps.push(ch.codePointAt(0)!);
  return cps;
}

/**
 * Code points of each message the summary reads (docs/webhook.md §6), the
 * same bound as PostgreSQL's left(content, 2000) and Python's content[:2000]:
 * a lookup's work does not grow with message size.
 */
export const SUMMARY_PREFIX_CHARS: number = RULES.summaryPrefixChars;

/** The first `n` code points of `s` (a lone surrogate counts as one, as in Python). */
export function codePointPrefix(s: string, n: number): string {
  if (s.length <= n) return s; // n UTF-16 units are at most n code points
  let units = 0;
  for (let points = 0; points < n && units < s.length; points++) {
    const c = s.charCodeAt(units);
    const paired = c >= 0xd800 && c <= 0xdbff && units + 1 < s.length && (s.charCodeAt(units + 1) & 0xfc00) === 0xdc00;
    units += paired ? 2 : 1;
  }
  return s.slice(0, units);
}

/**
 * Tokens of a message's prefix: maximal runs of letters or digits of the lower-cased text,
 * both as Python 3.11 reads them (contract/token_ranges.json), for every code point.
 */
export function tokenize(content: string | null): Set<string> {
  const tokens = new Set<string>();
  if (content === null) return tokens;
  // Cut before lower-casing, as Python does (lower-casing may change the length).
  const cps = codePoints(codePointPrefix(content, SUMMARY_PREFIX_CHARS));
  let run = "";
  for (let i = 0; i < cps.length; i++) {
    const cp = cps[i];
    if (cp < 0x80) {
      // ASCII, most of every message: A-Z lower-case to a-z, letters and digits join the run.
      const lower = cp >= 0x41 && cp <= 0x5a ? cp + 0x20 : cp;
      if (isTokenCodePoint(lower)) {
        run += String.fromCharCode(lower);
        continue;
      }
      if (run !== "") tokens.add(run);
      run = "";
      continue;
    }
    for (const c of lowerAt(cps, i)) {
      if (isTokenCodePoint(c)) {
        run += String.fromCodePoint(c);
      } else {
        if (run !== "") tokens.add(run);
        run = "";
      }
    }
  }
  if (run !== "") tokens.add(run);
  return tokens;
}

/**
 * Summary of a conversation from its newest messages' contents, given newest
 * first (the caller takes at most 10). null when there are no messages.
 */
export function summarize(
  contentsNewestFirst: readonly (string | null)[],
  topics: readonly Topic[] = TOPICS,
): string | null {
  if (contentsNewestFirst.length === 0) return null;
  const found: string[] = [];
  for (const content of contentsNewestFirst) {
    const tokens = tokenize(content);
    if (tokens.size === 0) continue;
    for (const topic of topics) {
      if (found.includes(topic.name)) continue;
      if (topic.keywords.some((k) => tokens.has(k))) found.push(topic.name);
    }
  }
  return found.length === 0 ? "General inquiry" : `Discussed: ${found.join(", ")}`;
}
