// Small helpers for the HTTP actions in http.ts.

/** A JSON response; the body's key order is kept as given. */
export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/**
 * Compares two strings as UTF-8 bytes in time that depends only on their
 * lengths: no early exit on the first difference, and a length difference is
 * folded into the result instead of returning early.
 */
export function constantTimeEqual(given: string, expected: string): boolean {
  const encoder = new TextEncoder();
  const a = encoder.encode(given);
  const b = encoder.encode(expected);
  const n = Math.max(a.length, b.length);
  let diff = a.length ^ b.length;
  for (let i = 0; i < n; i++) {
    diff |= (i < a.length ? a[i] : 0) ^ (i < b.length ? b[i] : 0);
  }
  return diff === 0;
}

export type KeyCheck = "ok" | "not_configured" | "unauthorized";

/** Checks the request's x-api-key against the deployment's CRM_API_KEY. */
export function checkApiKey(request: Request): KeyCheck {
  const expected = process.env.CRM_API_KEY;
  if (expected === undefined || expected === "") return "not_configured";
  const given = request.headers.get("x-api-key");
  if (given === null || given === "") return "unauthorized";
  return constantTimeEqual(given, expected) ? "ok" : "unauthorized";
}

export function importAllowed(): boolean {
  return (process.env.KONTAK_ALLOW_IMPORT ?? "").trim().toLowerCase() === "true";
}
