// Values and keys as convex-test evaluates them for a query (the same rules,
// reimplemented: they are not exported), and the id-to-table rule of its ids.
import { CommitTsPlaceholder, compareValues, jsonToConvex, type Value } from "convex/values";
import type { Doc } from "./convexTestInternals";

/** An index key: the index's fields, then `_creationTime` and `_id`. */
export type Key = (Value | undefined)[];
export type Entry = { key: Key; doc: Doc };

function isSimpleObject(value: unknown): boolean {
  if (typeof value !== "object" || value === null) return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === null || prototype === Object.prototype || prototype?.constructor?.name === "Object";
}

function hasPendingValues(value: unknown): boolean {
  if (value instanceof CommitTsPlaceholder) return true;
  if (Array.isArray(value)) return value.some(hasPendingValues);
  if (value !== null && value !== undefined && isSimpleObject(value)) {
    return Object.values(value as object).some(hasPendingValues);
  }
  return false;
}

const MAX_COMMIT_TS = 2n ** 63n - 1n;

/** The value as a transaction sees it before committing (placeholders at i64::MAX). */
function resolvePending(value: unknown): unknown {
  if (!hasPendingValues(value)) return value;
  if (value instanceof CommitTsPlaceholder) return MAX_COMMIT_TS;
  if (Array.isArray(value)) return value.map(resolvePending);
  return Object.fromEntries(Object.entries(value as object).map(([k, v]) => [k, resolvePending(v)]));
}

export function evaluateFieldPath(fieldPath: string, doc: unknown): Value | undefined {
  let result: unknown = doc;
  for (const part of fieldPath.split(".")) {
    result =
      result !== undefined && result !== null && isSimpleObject(result)
        ? (result as Record<string, unknown>)[part]
        : undefined;
  }
  return result === undefined ? undefined : (resolvePending(result) as Value);
}

export function evaluateQueryValue(value: unknown): Value | undefined {
  if (typeof value === "object" && value !== null && "$undefined" in value) return undefined;
  const converted = jsonToConvex(value as never);
  return converted === undefined ? undefined : (resolvePending(converted) as Value);
}

export function tableNameFromId(id: string): string | null {
  const match = id.match(/^[0-9]+/);
  if (!match || match[0].length === id.length) return null;
  return id.slice(match[0].length);
}

/** Lexicographic comparison of the first `length` components (all of `b` by default). */
export function comparePrefix(a: Key, b: Key, length = b.length): number {
  for (let i = 0; i < length; i++) {
    const c = compareValues(a[i], b[i]);
    if (c !== 0) return c;
  }
  return 0;
}
