// Who is calling (docs/contract.md §3, §7, §13): each credential a route accepts, tried
// in the order contract/formats.json gives (`auth_order`), the first valid one deciding.
// The only place a credential is checked; handlers/route.ts applies it to every route.
import { internal } from "./_generated/api";
import type { ActionCtx } from "./_generated/server";
import { workspaceOfKey } from "./apiKeys";
import type { Credential } from "./contract";
import { constantTimeEqual, signatureMatches } from "./transport";

/** Whom a credential admits: every workspace (`workspace` null), or one. */
export type Caller = { workspace: string | null };

/** What a credential is read from: the request, and the raw body a signature covers (null when not read). */
export type Presented = { ctx: ActionCtx; request: Request; body: Uint8Array<ArrayBuffer> | null };

/** The signature headers, in the order Flask reads them: the first one present is checked. */
const SIGNATURE_HEADERS = ["x-webhook-signature", "x-kapso-signature", "x-hub-signature-256"];

function setting(name: "CRM_API_KEY" | "KAPSO_WEBHOOK_SECRET"): string {
  return process.env[name] ?? "";
}

/** Does the request's x-api-key equal the deployment's CRM_API_KEY (compared in constant time)? */
function crmKeyMatches(request: Request): boolean {
  const expected = setting("CRM_API_KEY");
  const given = request.headers.get("x-api-key");
  return expected !== "" && given !== null && given !== "" && constantTimeEqual(given, expected);
}

const EVERY_WORKSPACE: Caller = { workspace: null };

/** Each credential's check: whom it admits, or null when it is absent, wrong or not set up. */
const CHECKS: Record<Credential, (presented: Presented) => Promise<Caller | null>> = {
  signature: async ({ request, body }) => {
    const secret = setting("KAPSO_WEBHOOK_SECRET");
    if (secret === "" || body === null) return null;
    const signature = SIGNATURE_HEADERS.map((name) => request.headers.get(name)).find((value) => value) ?? null;
    return (await signatureMatches(body, signature, secret)) ? EVERY_WORKSPACE : null;
  },
  crm_api_key: async ({ request }) => (crmKeyMatches(request) ? EVERY_WORKSPACE : null),
  workspace_key: async ({ ctx, request }) => {
    const workspace = await workspaceOfKey(ctx, request.headers.get("x-api-key"));
    return workspace === null ? null : { workspace };
  },
};

/** The caller the first valid credential of `order` admits, or null when none is valid. */
export async function identify(order: readonly Credential[], presented: Presented): Promise<Caller | null> {
  for (const credential of order) {
    const caller = await CHECKS[credential](presented);
    if (caller !== null) return caller;
  }
  return null;
}

/**
 * Is any credential of `order` set up on this deployment? Without one the route answers
 * 500 Service not configured. The key table is read only when the environment sets none.
 */
export async function configured(ctx: ActionCtx, order: readonly Credential[]): Promise<boolean> {
  if (order.includes("signature") && setting("KAPSO_WEBHOOK_SECRET") !== "") return true;
  if (order.includes("crm_api_key") && setting("CRM_API_KEY") !== "") return true;
  return order.includes("workspace_key") && (await ctx.runQuery(internal.apiKeys.anyActive, {}));
}
