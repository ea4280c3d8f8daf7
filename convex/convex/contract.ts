// The rules both backends share, read from the repository's contract/ files
// (Python reads the same files): nothing here is written in TypeScript.
import limitsJson from "../../contract/limits.json";

export const LIMITS = {
  /** Notes in a lookup answer, newest first (docs/contract.md §3). */
  notes: limitsJson.notes_limit,
  /** Messages summarised in a lookup answer, newest first (docs/contract.md §3, §5). */
  messages: limitsJson.messages_limit,
  /** Largest request body read, in bytes (docs/contract.md §7). */
  maxBodyBytes: limitsJson.max_body_bytes,
  /** Key rows Kontak sends per POST /http/keys (docs/contract.md §13). */
  keyBatchSize: limitsJson.key_batch_size,
} as const;

/** The HTTP paths of the Convex deployment (docs/contract.md §8). */
export const PATHS = limitsJson.convex_paths;
