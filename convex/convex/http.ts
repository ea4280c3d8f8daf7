// The router: the only public entry points of the Kontak Convex functions.
// Paths from contract/limits.json (convex_paths); the handlers are in handlers/, each
// made by handlers/route.ts (credentials, error handling). Unknown paths and methods
// answer JSON, never HTML or plain text.
import { httpRouter, type RoutableMethod } from "convex/server";
import { PATHS } from "./contract";
import { applyRoute, stateGetRoute, stateSetRoute, sweepRoute } from "./handlers/follow";
import { clearRoute, countsRoute, importRoute } from "./handlers/importRoutes";
import { keysRoute } from "./handlers/keys";
import { getByPhone } from "./handlers/lookup";
import { kontakRoute } from "./handlers/route";
import { kapsoChallenge, kapsoWebhook } from "./handlers/webhook";
import { json } from "./transport";

const http = httpRouter();
http.route({ path: PATHS.lookup, method: "GET", handler: getByPhone });
http.route({ path: PATHS.import, method: "POST", handler: importRoute });
http.route({ path: PATHS.import_clear, method: "POST", handler: clearRoute });
http.route({ path: PATHS.import_counts, method: "GET", handler: countsRoute });
http.route({ path: PATHS.webhook, method: "POST", handler: kapsoWebhook });
http.route({ path: PATHS.webhook, method: "GET", handler: kapsoChallenge });
http.route({ path: PATHS.keys, method: "POST", handler: keysRoute });
http.route({ path: PATHS.follow_state, method: "GET", handler: stateGetRoute });
http.route({ path: PATHS.follow_state, method: "POST", handler: stateSetRoute });
http.route({ path: PATHS.follow_apply, method: "POST", handler: applyRoute });
http.route({ path: PATHS.follow_sweep, method: "POST", handler: sweepRoute });

const KNOWN_PATHS = new Set<string>(Object.values(PATHS));
const fallback = kontakRoute({ path: "/*", access: "public" })(async (_ctx, request) => {
  const path = new URL(request.url).pathname;
  return KNOWN_PATHS.has(path)
    ? json(405, { error: "Method not allowed" })
    : json(404, { error: "Not found" });
});
const METHODS: RoutableMethod[] = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];
for (const method of METHODS) {
  http.route({ pathPrefix: "/", method, handler: fallback });
}

export default http;
