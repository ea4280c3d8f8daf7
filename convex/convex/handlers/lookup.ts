// GET /http/contacts/getByPhone?phone=…&workspace_id=… (docs/contract.md §3, §13).
import type { FunctionReturnType } from "convex/server";
import { internal } from "../_generated/api";
import { httpAction } from "../_generated/server";
import { authenticate } from "../apiKeys";
import { PATHS } from "../contract";
import { pyStrip } from "../kapso";
import { defaultRegion, normalizePhone } from "../phones";
import { constantTimeEqual, json, logFailure, UUID } from "../transport";

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

export const getByPhone = httpAction(async (ctx, request) => {
  try {
    // CRM_API_KEY, or a key of one workspace (docs/contract.md §13); its workspace is compared
    // with workspace_id once the parameters are valid (the key comes first, as in Flask).
    const caller = await authenticate(ctx, request);
    if (caller.kind === "not_configured") {
      return json(500, { found: false, error: "Service not configured" });
    }
    if (caller.kind === "unauthorized") return json(401, { found: false, error: "Unauthorized" });

    // The same checks, in the same order, as the Flask routes (services/lookup.py).
    const params = new URL(request.url).searchParams;
    const rawPhone = params.get("phone") ?? "";
    const rawWorkspace = params.get("workspace_id") ?? "";
    if (pyStrip(rawPhone) === "" || pyStrip(rawWorkspace) === "") {
      return json(400, { found: false, error: "Missing parameters" });
    }
    const phone = normalizePhone(rawPhone, defaultRegion());
    if (phone === null) return json(400, { found: false, error: "Invalid phone number" });
    const workspaceUuid = pyStrip(rawWorkspace);
    if (!UUID.test(workspaceUuid)) return json(400, { found: false, error: "Invalid workspace_id" });
    // Workspace ids are UUIDs, compared case-insensitively like PostgreSQL's uuid.
    const workspaceId = workspaceUuid.toLowerCase();
    // Another workspace: the same 401 as a wrong key, no hint whether it exists.
    if (caller.workspace !== null && !constantTimeEqual(workspaceId, caller.workspace)) {
      return json(401, { found: false, error: "Unauthorized" });
    }

    const result = await ctx.runQuery(internal.contacts.lookupContext, {
      workspace_id: workspaceId,
      phone,
    });
    return json(200, lookupBody(result));
  } catch (error) {
    logFailure(PATHS.lookup, error);
    return json(500, { found: false, error: "Internal server error" });
  }
});
