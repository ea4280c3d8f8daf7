// POST /http/keys: key hashes from Kontak's `keys` commands and sync-convex (docs/contract.md
// §8, §13). CRM_API_KEY only, and not behind KONTAK_ALLOW_IMPORT: a revocation must reach Convex
// whenever it is made, not only while an import is allowed.
import { internal } from "../_generated/api";
import { parseKeys } from "../apiKeys";
import { PATHS } from "../contract";
import { json, readJson } from "../transport";
import { kontakRoute } from "./route";

/**
 * Most key rows accepted per request: this deployment's own bound, not a shared
 * rule. Kontak sends at most contract key_batch_size (limits.json) rows per request.
 */
const KEYS_ACCEPTED = 1000;

export const keysRoute = kontakRoute({ path: PATHS.keys, access: "crm_api_key" })(async (ctx, request) => {
  const read = await readJson(request);
  if (read instanceof Response) return read;
  const parsed = parseKeys(read.body, KEYS_ACCEPTED);
  if (typeof parsed === "string") return json(400, { error: parsed });
  const upserted = await ctx.runMutation(internal.apiKeys.upsert, parsed);
  return json(200, { upserted });
});
