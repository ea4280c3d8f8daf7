// GET /http/contacts/getByPhone?phone=…&bsuid=…&workspace_id=… (docs/contract.md §3, §4a, §8, §13).
import type { FunctionReturnType } from "convex/server";
import { internal } from "../_generated/api";
import { isUuid, PATHS } from "../contract";
import { isValidBsuid } from "../kapsoValues";
import { defaultRegion, normalizePhone } from "../phones";
import { pyStrip } from "../pyCompat";
import { constantTimeEqual, json } from "../transport";
import { kontakRoute } from "./route";

type LookupResult = FunctionReturnType<typeof internal.contacts.lookupContext>;

/** The docs/contract.md §3 body with its keys in the documented order (contract/openapi.json LookupResult). */
function lookupBody(r: LookupResult): unknown {
  if (!r.found) return { found: false, context: null };
  return {
    found: true,
    contact: {
      name: r.contact.name,
      lead_status: r.contact.lead_status,
      lead_score: r.contact.lead_score,
      tags: r.contact.tags,
      is_returning: r.contact.is_returning,
      first_contact_date: r.contact.first_contact_date,
    },
    notes: r.notes,
    conversation_summary: r.conversation_summary,
    last_interaction: r.last_interaction,
  };
}

/** Every error of this route has the lookup's shape: `{"found": false, "error": …}`. */
const errorBody = (message: string) => ({ found: false, error: message });
const refuse = (status: number, message: string) => json(status, errorBody(message));

type LookupParams = { workspace_id: string; phone: string | null; bsuid: string | null };

/**
 * The lookup's parameters, checked in the order of the Flask routes (services/lookup.py):
 * presence (a phone or a BSUID, and a workspace_id), then the BSUID, the phone and the
 * workspace_id. The parameters or the 400 answer.
 */
function readParams(params: URLSearchParams): LookupParams | Response {
  const rawPhone = params.get("phone") ?? "";
  const bsuid = pyStrip(params.get("bsuid") ?? "");
  const workspaceUuid = pyStrip(params.get("workspace_id") ?? "");
  const hasPhone = pyStrip(rawPhone) !== "";
  if ((!hasPhone && bsuid === "") || workspaceUuid === "") return refuse(400, "Missing parameters");
  if (bsuid !== "" && !isValidBsuid(bsuid)) return refuse(400, "Invalid bsuid");
  const phone = hasPhone ? normalizePhone(rawPhone, defaultRegion()) : null;
  if (hasPhone && phone === null) return refuse(400, "Invalid phone number");
  if (!isUuid(workspaceUuid)) return refuse(400, "Invalid workspace_id");
  // Workspace ids are UUIDs, compared case-insensitively like PostgreSQL's uuid.
  return { workspace_id: workspaceUuid.toLowerCase(), phone, bsuid: bsuid === "" ? null : bsuid };
}

// CRM_API_KEY, or a key of one workspace (docs/contract.md §13), checked before the parameters
// as in Flask; a workspace key's workspace is compared with workspace_id once they are valid.
const lookupRoute = kontakRoute({ path: PATHS.lookup, access: "lookup", errorBody });

export const getByPhone = lookupRoute(async (ctx, request, caller) => {
  const params = readParams(new URL(request.url).searchParams);
  if (params instanceof Response) return params;
  // Another workspace: the same 401 as a wrong key, no hint whether it exists.
  if (caller.workspace !== null && !constantTimeEqual(params.workspace_id, caller.workspace)) {
    return refuse(401, "Unauthorized");
  }
  // BSUID first, then the phone (docs/contract.md §4a).
  const result = await ctx.runQuery(internal.contacts.lookupContext, params);
  return json(200, lookupBody(result));
});
