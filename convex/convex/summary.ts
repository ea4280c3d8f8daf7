// Conversation summary (docs/contract.md §5), identical to services/conversation_summary.py.
// The topics come from the shared configuration file contract/topics.json.
import topicsConfig from "../../contract/topics.json";
import rules from "../../contract/webhook_rules.json";

export type Topic = { name: string; keywords: string[] };

// Keywords are compared as written in the file (they are lower-case there).
export const TOPICS: readonly Topic[] = topicsConfig.topics.map((t) => ({
  name: t.name,
  keywords: [...t.keywords],
}));

const TOKEN = /[\p{L}\p{N}]+/gu;

/**
 * Code points of each message the summary reads (docs/webhook.md §6), the
 * same bound as PostgreSQL's left(content, 2000) and Python's content[:2000]:
 * a lookup's work does not grow with message size.
 */
export const SUMMARY_PREFIX_CHARS: number = rules.summary_prefix_chars;

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

/** Tokens of a message's prefix: maximal runs of Unicode letters or digits, lower-cased. */
export function tokenize(content: string | null): Set<string> {
  if (content === null) return new Set();
  // Cut before lower-casing, as Python does (lower-casing may change the length).
  return new Set(codePointPrefix(content, SUMMARY_PREFIX_CHARS).toLowerCase().match(TOKEN) ?? []);
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
