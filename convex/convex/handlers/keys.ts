// POST /http/keys: key hashes from Kontak's `keys` commands and sync-convex (docs/contract.md
// §8, §13). CRM_API_KEY only, and not behind KONTAK_ALLOW_IMPORT: a revocation must reach Convex
// whenever it is made, not only while an import is allowed.
import { internal } from "../_generated/api";
import { httpAction } from "../_generated/server";
import { parseKeys } from "../apiKeys";
import { PATHS } from "../contract";
import { crmKeyRefusal, guarded, json, readJson } from "../transport";

/**
 * Most key rows accepted per request: this deployment's own bound, not a shared
 * rule. Kontak sends at most contract key_batch_size (limits.json) rows per request.
 */
const KEYS_ACCEPTED = 1000;

export const keysRoute = httpAction((ctx, request) =>
  guarded(PATHS.keys, async () => {
    const refused = crmKeyRefusal(request);
    if (refused !== null) return refused;
    const read = await readJson(request);
    if (read instanceof Response) return read;
    const parsed = parseKeys(read.body, KEYS_ACCEPTED);
    if (typeof parsed === "string") return json(400, { error: parsed });
    const upserted = await ctx.runMutation(internal.apiKeys.upsert, parsed);
    return json(200, { upserted });
  }),
);
