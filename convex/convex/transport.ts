// HTTP transport for the handlers (handlers/*.ts): JSON answers, constant-time
// comparison, the request signature, capped body reads and the failure log line.
// No Convex function here, and nothing about Kontak's data.
import { LIMITS } from "./contract";
import { pyStrip } from "./pyCompat";

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

/** One log line for a failed action: only the error's class (messages may quote phones, contents). */
export function logFailure(route: string, error: unknown): void {
  const kind = error instanceof Error ? error.name : typeof error;
  console.error(`kontak http action failed route=${route} error=${kind}`);
}

/** The body parsed as JSON, or the 400 answer when it is not JSON. */
export async function readJson(request: Request): Promise<{ body: unknown } | Response> {
  try {
    return { body: JSON.parse(await request.text()) };
  } catch {
    return json(400, { error: "Invalid JSON" });
  }
}

/** The body's bytes, or null as soon as it is longer than `limit` (contract max_body_bytes unless given). */
export async function readBodyCapped(
  request: Request,
  limit: number = LIMITS.maxBodyBytes,
): Promise<Uint8Array<ArrayBuffer> | null> {
  const declared = Number(request.headers.get("content-length") ?? "");
  if (Number.isFinite(declared) && declared > limit) return null;
  if (request.body === null) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      return null;
    }
    chunks.push(value);
  }
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}

/** Bytes as lower-case hex. */
export function hex(bytes: ArrayBuffer): string {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A hex HMAC-SHA256 of the raw body with `secret`, optionally prefixed "sha256=". */
export async function signatureMatches(
  body: Uint8Array<ArrayBuffer>,
  signature: string | null,
  secret: string,
): Promise<boolean> {
  if (signature === null || signature === "") return false;
  let given = pyStrip(signature).toLowerCase();
  if (given.startsWith("sha256=")) given = given.slice("sha256=".length);
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const expected = hex(await crypto.subtle.sign("HMAC", key, body));
  return constantTimeEqual(given, expected);
}
