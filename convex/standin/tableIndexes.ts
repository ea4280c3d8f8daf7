// Per-table structures over the committed documents: each index as sorted entries, keyed
// by its fields then Convex's implicit `_creationTime` and `_id` (the order convex-test
// sorts by); and the index range a query's range expression selects.
import type { Value } from "convex/values";
import type { Doc, RangeExpr } from "./convexTestInternals";
import { comparePrefix, evaluateFieldPath, evaluateQueryValue, type Key } from "./queryValues";
import { SortedEntries } from "./sortedEntries";

export type Index = { fields: string[]; entries: SortedEntries };

export class TableIndexes {
  /** Committed documents in `_documents` key order. */
  readonly docs = new Map<string, Doc>();
  readonly indexes = new Map<string, Index>();

  constructor(indexFields: Map<string, string[]>) {
    this.indexes.set("by_creation_time", { fields: [], entries: new SortedEntries() });
    for (const [name, fields] of indexFields) this.indexes.set(name, { fields, entries: new SortedEntries() });
  }

  static keyOf(fields: string[], doc: Doc): Key {
    const key: Key = fields.map((field) => evaluateFieldPath(field, doc));
    key.push(evaluateFieldPath("_creationTime", doc), evaluateFieldPath("_id", doc));
    return key;
  }

  update(id: string, before: Doc | undefined, after: Doc | undefined): void {
    if (before === after) return;
    for (const index of this.indexes.values()) {
      if (before !== undefined) index.entries.remove({ key: TableIndexes.keyOf(index.fields, before), doc: before });
      if (after !== undefined) index.entries.insert({ key: TableIndexes.keyOf(index.fields, after), doc: after });
    }
    if (after === undefined) this.docs.delete(id);
    else this.docs.set(id, after);
  }
}

/** The range of an index that a validated range expression selects. */
export type Range = {
  /** Is the entry before the range (in asc order)? */
  before: (key: Key) => boolean;
  /** Is the entry after the range (in asc order)? */
  after: (key: Key) => boolean;
};

/** Bounds of a range expression already validated by convex-test (eq..., then gt/lt on one field). */
export function rangeOf(range: RangeExpr[]): Range {
  const prefix: Key = [];
  let lower: { value: Value | undefined; inclusive: boolean } | null = null;
  let upper: { value: Value | undefined; inclusive: boolean } | null = null;
  for (const expr of range) {
    const value = evaluateQueryValue(expr.value);
    if (expr.type === "Eq") prefix.push(value);
    else if (expr.type === "Gt" || expr.type === "Gte") lower = { value, inclusive: expr.type === "Gte" };
    else upper = { value, inclusive: expr.type === "Lte" };
  }
  const n = prefix.length;
  const lowerKey = lower === null ? prefix : [...prefix, lower.value];
  const upperKey = upper === null ? prefix : [...prefix, upper.value];
  const lowerInclusive = lower === null || lower.inclusive;
  const upperInclusive = upper === null || upper.inclusive;
  return {
    before: (key) => {
      const c = comparePrefix(key, lowerKey, lower === null ? n : n + 1);
      return lowerInclusive ? c < 0 : c <= 0;
    },
    after: (key) => {
      const c = comparePrefix(key, upperKey, upper === null ? n : n + 1);
      return upperInclusive ? c > 0 : c >= 0;
    },
  };
}
