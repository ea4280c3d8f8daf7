// Conversation summary (SPEC section 5), identical to services/summary.py.
// The topics come from the shared configuration file contract/topics.json.
import topicsConfig from "../../contract/topics.json";

export type Topic = { name: string; keywords: string[] };

// Keywords are compared as written in the file (they are lower-case there).
export const TOPICS: readonly Topic[] = topicsConfig.topics.map((t) => ({
  name: t.name,
  keywords: [...t.keywords],
}));

const TOKEN = /[\p{L}\p{N}]+/gu;

/** Tokens of a message: maximal runs of Unicode letters or digits, lower-cased. */
export function tokenize(content: string | null): Set<string> {
  if (content === null) return new Set();
  return new Set(content.toLowerCase().match(TOKEN) ?? []);
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
