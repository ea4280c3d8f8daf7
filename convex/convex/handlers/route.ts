// Every HTTP action of the router is made here (in the style of convex-helpers'
// customQuery): the route names the credentials it accepts, and the wrapper checks them,
// then runs the handler, answering anything it throws with one log line and a JSON 500.
import type { PublicHttpAction } from "convex/server";
import { httpAction, type ActionCtx } from "../_generated/server";
import { FORMATS, type Credential } from "../contract";
import { configured, identify, type Caller } from "../credentials";
import { json, logFailure, readBodyCapped } from "../transport";

/**
 * Which credentials a route accepts (docs/contract.md §3, §7, §8, §13): none; CRM_API_KEY
 * only; the import gate (CRM_API_KEY, then KONTAK_ALLOW_IMPORT=true); or a kind of route
 * of contract/formats.json `auth_order` (the lookup, the webhook).
 */
export type Access = "public" | "crm_api_key" | "import" | keyof typeof FORMATS.authOrder;

const ORDERS: Record<Exclude<Access, "public">, readonly Credential[]> = {
  crm_api_key: ["crm_api_key"],
  import: ["crm_api_key"],
  ...FORMATS.authOrder,
};

/** The admitted caller; on the webhook also the raw body, which its signature covers. */
export type Admitted<A extends Access> = Caller & { body: A extends "webhook" ? Uint8Array<ArrayBuffer> : null };

export type RouteOptions<A extends Access> = {
  /** The route, as the failure log line names it. */
  path: string;
  access: A;
  /** The body of an error answer (default `{"error": message}`). */
  errorBody?: (message: string) => Record<string, unknown>;
  /** The answer to an error the handler throws on purpose, or null for a failure (logged, 500). */
  known?: (error: unknown) => Response | null;
};

type Refusal = { status: number; message: string };

function importAllowed(): boolean {
  return (process.env.KONTAK_ALLOW_IMPORT ?? "").trim().toLowerCase() === "true";
}

/**
 * The caller, or why it is refused. Configuration, then credentials; a route whose
 * credentials include the signature reads the body in between (413 over the limit),
 * and only once the deployment is known to be configured.
 */
async function admit(ctx: ActionCtx, request: Request, access: Access): Promise<Admitted<Access> | Refusal> {
  if (access === "public") return { workspace: null, body: null };
  const order = ORDERS[access];
  let known: Promise<boolean> | null = null;
  const isConfigured = () => (known ??= configured(ctx, order));
  const notConfigured: Refusal = { status: 500, message: "Service not configured" };
  let body: Uint8Array<ArrayBuffer> | null = null;
  if (order.includes("signature")) {
    if (!(await isConfigured())) return notConfigured;
    body = await readBodyCapped(request);
    if (body === null) return { status: 413, message: "Payload too large" };
  }
  const caller = await identify(order, { ctx, request, body });
  // A credential that is valid is set up, so the configuration is read only for a refusal.
  if (caller === null) return (await isConfigured()) ? { status: 401, message: "Unauthorized" } : notConfigured;
  if (access === "import" && !importAllowed()) return { status: 403, message: "Import disabled" };
  return { ...caller, body };
}

export type RouteHandler<A extends Access> = (
  ctx: ActionCtx,
  request: Request,
  caller: Admitted<A>,
) => Promise<Response>;

/**
 * The maker of a route's HTTP action: `kontakRoute(options)(handler)` admits callers by
 * `options.access`, then answers with `handler`. (Two calls, so that the action's type
 * never waits on the handler's, which refers to the generated API that lists the action.)
 */
export function kontakRoute<A extends Access>(
  options: RouteOptions<A>,
): (handler: RouteHandler<A>) => PublicHttpAction {
  const errorBody = options.errorBody ?? ((message: string) => ({ error: message }));
  return (handler) =>
    httpAction(async (ctx, request) => {
      try {
        const admitted = await admit(ctx, request, options.access);
        if ("status" in admitted) return json(admitted.status, errorBody(admitted.message));
        return await handler(ctx, request, admitted as Admitted<A>);
      } catch (error) {
        const answer = options.known?.(error) ?? null;
        if (answer !== null) return answer;
        logFailure(options.path, error);
        return json(500, errorBody("Internal server error"));
      }
    });
}
