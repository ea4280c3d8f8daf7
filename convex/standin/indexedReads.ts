// Index reads for the local Convex stand-in (issue 13).
//
// convex-test's in-memory database (`DatabaseFake` in
// node_modules/convex-test/dist/index.js) answers every query by walking every
// document of the deployment, then sorting what matches: a lookup costs time
// proportional to all the data held. This module gives one DatabaseFake
// instance real indexes, without forking the package and without touching
// any other instance (vitest tests that build their own `convexTest` keep stock
// semantics):
//
// - Committed documents are kept per table (a Map in commit order, mirroring
//   the key order of `_documents`), and per index in a sorted list keyed by the
//   index fields followed by `_creationTime` and `_id` — Convex's implicit last
//   keys, exactly the sort convex-test applies. `by_creation_time` exists for
//   every table. The structures change only when the outermost transaction
//   commits, so a rollback needs nothing.
// - A query on an index range (or a full table scan, in `by_creation_time`
//   order) walks only its range, in asc or desc order, and merges in the
//   transaction's own pending writes (inserts, patches, replaces, deletes of
//   every nesting level), which hide their committed versions. Filters and
//   limits (`.filter`, `.take`, `.first`) stop the walk early.
// - Everything that decides semantics is convex-test's own code: each query is
//   first run through the original `_resolveQuerySource` over the pending
//   documents only, which validates the range expression and the index (same
//   errors), orders the pending documents and compiles the filter. Queries this
//   module does not handle (`by_id` ranges, search) take the original path,
//   whose table walk only visits the table's documents.
import { AsyncLocalStorage } from "node:async_hooks";
import { CommitTsPlaceholder, compareValues, jsonToConvex, type Value } from "convex/values";

type Doc = Record<string, unknown> & { _id: string; _creationTime: number };
type Key = (Value | undefined)[];
type Entry = { key: Key; doc: Doc };
type RangeExpr = { type: "Eq" | "Gt" | "Gte" | "Lt" | "Lte"; fieldPath: string; value: unknown };
type Query = {
  source:
    | { type: "FullTableScan"; tableName: string; order?: "asc" | "desc" | null }
    | { type: "IndexRange"; indexName: string; range: RangeExpr[]; order?: "asc" | "desc" | null }
    | { type: "Search"; indexName: string; filters: unknown[] };
  operators: unknown[];
};
type Resolved = {
  sortedDocs: Doc[];
  filterFn: (doc: Doc) => boolean;
  limit: number | null;
  fieldPathsToSortBy: string[];
  order: "asc" | "desc";
};

/** The parts of convex-test's DatabaseFake this module reads or wraps. */
type DatabaseFake = {
  _documents: Record<string, Doc>;
  _writes: Record<string, Doc | null>[];
  _schema: { tables: Map<string, { indexes: { indexDescriptor: string; fields: string[] }[] }> } | null;
  get(table: string, id: string): Doc | null;
  commit(commitTs?: bigint | null): void;
  _iterateDocs(table: string, callback: (doc: Doc) => void): void;
  _resolveQuerySource(query: Query): Resolved;
  _evaluateQuery(query: Query): Doc[];
};

/** What the index reads have done, for tests and diagnostics. */
export type IndexReadStats = {
  /** Queries answered from an index. */
  indexedQueries: number;
  /** Queries left to convex-test's original code path. */
  fallbackQueries: number;
  /** Documents looked at by indexed queries (committed and pending). */
  documentsExamined: number;
};

// ---------------------------------------------------------------------------
// Values, as convex-test evaluates them (same rules, reimplemented: they are
// not exported).

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

function evaluateFieldPath(fieldPath: string, doc: unknown): Value | undefined {
  let result: unknown = doc;
  for (const part of fieldPath.split(".")) {
    result =
      result !== undefined && result !== null && isSimpleObject(result)
        ? (result as Record<string, unknown>)[part]
        : undefined;
  }
  return result === undefined ? undefined : (resolvePending(result) as Value);
}

function evaluateQueryValue(value: unknown): Value | undefined {
  if (typeof value === "object" && value !== null && "$undefined" in value) return undefined;
  const converted = jsonToConvex(value as never);
  return converted === undefined ? undefined : (resolvePending(converted) as Value);
}

function tableNameFromId(id: string): string | null {
  const match = id.match(/^[0-9]+/);
  if (!match || match[0].length === id.length) return null;
  return id.slice(match[0].length);
}

/** Lexicographic comparison of the first `length` components (all of `b` by default). */
function comparePrefix(a: Key, b: Key, length = b.length): number {
  for (let i = 0; i < length; i++) {
    const c = compareValues(a[i], b[i]);
    if (c !== 0) return c;
  }
  return 0;
}

// ---------------------------------------------------------------------------
// A sorted list of entries in chunks (insert/remove cost O(log n + chunk)).

const CHUNK = 512;

type Position = { chunk: number; index: number };

export class SortedEntries {
  private chunks: Entry[][] = [];
  private size_ = 0;

  get size(): number {
    return this.size_;
  }

  private static compare(a: Entry, b: Entry): number {
    return comparePrefix(a.key, b.key, Math.max(a.key.length, b.key.length));
  }

  /** First position whose entry does not satisfy `before` (monotone: true...true false...false). */
  firstNot(before: (entry: Entry) => boolean): Position {
    const chunks = this.chunks;
    let lo = 0;
    let hi = chunks.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const chunk = chunks[mid];
      if (before(chunk[chunk.length - 1])) lo = mid + 1;
      else hi = mid;
    }
    if (lo === chunks.length) return { chunk: lo, index: 0 };
    const chunk = chunks[lo];
    let a = 0;
    let b = chunk.length;
    while (a < b) {
      const mid = (a + b) >> 1;
      if (before(chunk[mid])) a = mid + 1;
      else b = mid;
    }
    return { chunk: lo, index: a };
  }

  private locate(entry: Entry): Position {
    return this.firstNot((e) => SortedEntries.compare(e, entry) < 0);
  }

  insert(entry: Entry): void {
    this.size_ += 1;
    if (this.chunks.length === 0) {
      this.chunks.push([entry]);
      return;
    }
    let { chunk, index } = this.locate(entry);
    if (chunk === this.chunks.length) {
      chunk -= 1;
      index = this.chunks[chunk].length;
    }
    const target = this.chunks[chunk];
    target.splice(index, 0, entry);
    if (target.length > 2 * CHUNK) this.chunks.splice(chunk + 1, 0, target.splice(CHUNK));
  }

  remove(entry: Entry): boolean {
    const { chunk, index } = this.locate(entry);
    const target = this.chunks[chunk];
    if (target === undefined || index >= target.length || SortedEntries.compare(target[index], entry) !== 0) {
      return false;
    }
    target.splice(index, 1);
    if (target.length === 0) this.chunks.splice(chunk, 1);
    this.size_ -= 1;
    return true;
  }

  /** Entries from `from` onwards (asc), or before `from` backwards (desc). */
  *walk(from: Position, order: "asc" | "desc"): Generator<Entry> {
    const chunks = this.chunks;
    if (order === "asc") {
      for (let c = from.chunk, i = from.index; c < chunks.length; c++, i = 0) {
        const chunk = chunks[c];
        for (; i < chunk.length; i++) yield chunk[i];
      }
    } else {
      let c = from.chunk;
      let i = from.index - 1;
      if (i < 0) {
        c -= 1;
        i = c >= 0 ? chunks[c].length - 1 : -1;
      }
      for (; c >= 0; c--, i = c >= 0 ? chunks[c].length - 1 : -1) {
        const chunk = chunks[c];
        for (; i >= 0; i--) yield chunk[i];
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Per-table structures over the committed documents.

type Index = { fields: string[]; entries: SortedEntries };

class TableIndexes {
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
type Range = {
  /** Is the entry before the range (in asc order)? */
  before: (key: Key) => boolean;
  /** Is the entry after the range (in asc order)? */
  after: (key: Key) => boolean;
};

/** Bounds of a range expression already validated by convex-test (eq..., then gt/lt on one field). */
function rangeOf(range: RangeExpr[]): Range {
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

const installed = new WeakMap<object, IndexReadStats>();

/** Stats of a DatabaseFake with index reads, or null when it has none. */
export function indexReadStatsOf(db: object): IndexReadStats | null {
  return installed.get(db) ?? null;
}

/**
 * Gives one convex-test DatabaseFake instance index reads (see the top of this
 * file). Idempotent. Documents already committed are indexed at once.
 */
export function installIndexedReads(dbObject: object, options: { verify?: boolean } = {}): IndexReadStats {
  const existing = installed.get(dbObject);
  if (existing !== undefined) return existing;
  const db = dbObject as DatabaseFake;
  const proto = Object.getPrototypeOf(db) as DatabaseFake;
  for (const method of ["commit", "_iterateDocs", "_resolveQuerySource", "_evaluateQuery", "get"] as const) {
    if (typeof proto[method] !== "function") {
      throw new Error(`convex-test's DatabaseFake has no ${method}(): index reads cannot be installed`);
    }
  }
  if (typeof db._documents !== "object" || !Array.isArray(db._writes)) {
    throw new Error("convex-test's DatabaseFake has an unexpected shape: index reads cannot be installed");
  }
  const originalCommit = proto.commit;
  const originalResolve = proto._resolveQuerySource;
  const originalEvaluate = proto._evaluateQuery;

  const stats: IndexReadStats = { indexedQueries: 0, fallbackQueries: 0, documentsExamined: 0 };
  const tables = new Map<string, TableIndexes>();
  const tableOf = (name: string): TableIndexes => {
    let table = tables.get(name);
    if (table === undefined) {
      const fields = new Map<string, string[]>();
      for (const { indexDescriptor, fields: f } of db._schema?.tables.get(name)?.indexes ?? []) {
        fields.set(indexDescriptor, f);
      }
      table = new TableIndexes(fields);
      tables.set(name, table);
    }
    return table;
  };
  for (const [id, doc] of Object.entries(db._documents)) {
    const name = tableNameFromId(id);
    if (name !== null) tableOf(name).update(id, undefined, doc);
  }

  /** Ids of `table` written by the open transactions, in convex-test's order. */
  const pendingIds = (table: string): Set<string> => {
    const ids = new Set<string>();
    for (const layer of db._writes) {
      for (const id of Object.keys(layer)) if (tableNameFromId(id) === table) ids.add(id);
    }
    return ids;
  };

  // The outermost commit applies the writes to `_documents`: mirror them.
  const commit = function (this: DatabaseFake, commitTs: bigint | null = null): void {
    if (this._writes.length !== 1) return originalCommit.call(this, commitTs);
    const layer = this._writes[0];
    const ids = Object.keys(layer);
    const before = ids.map((id) => this._documents[id]);
    originalCommit.call(this, commitTs);
    ids.forEach((id, i) => {
      const name = tableNameFromId(id);
      if (name !== null) tableOf(name).update(id, before[i], this._documents[id]);
    });
  };

  // The original table walk, over one table's documents instead of all.
  const iterateDocs = function (this: DatabaseFake, table: string, callback: (doc: Doc) => void): void {
    const ids = new Set<string>(tables.get(table)?.docs.keys() ?? []);
    for (const id of pendingIds(table)) ids.add(id);
    for (const id of ids) {
      const doc = this.get(table, id);
      if (doc !== null) callback(doc);
    }
  };

  /**
   * The query's documents from an index, in query order, unfiltered; or null
   * when the original code path must answer it.
   */
  const plan = (
    query: Query,
  ): { resolved: Resolved; docs: () => Generator<Doc> } | null => {
    const source = query.source;
    let tableName: string;
    let indexName: string;
    let range: RangeExpr[];
    if (source.type === "FullTableScan") {
      tableName = source.tableName;
      indexName = "by_creation_time";
      range = [];
    } else if (source.type === "IndexRange") {
      [tableName, indexName] = source.indexName.split(".");
      range = source.range;
      if (indexName === "by_id") return null;
    } else {
      return null;
    }
    // The transaction's own versions of the table's written documents.
    const shadowed = pendingIds(tableName);
    const pending: Doc[] = [];
    for (const id of shadowed) {
      const doc = db.get(tableName, id);
      if (doc !== null) pending.push(doc);
    }
    // convex-test's own resolution over the pending documents only: validates
    // the range and the index, selects and orders them, compiles the filter.
    const view = Object.create(db) as DatabaseFake;
    view._iterateDocs = (_table, callback) => pending.forEach(callback);
    const resolved = originalResolve.call(view, query);
    // Declared in the schema (the resolution above threw otherwise) or by_creation_time.
    const index = tableOf(tableName).indexes.get(indexName);
    if (index === undefined) return null;
    const fields = index.fields;
    const order = resolved.order;
    const bounds = rangeOf(range);
    const sign = order === "asc" ? 1 : -1;
    const mine = resolved.sortedDocs.map((doc) => ({ key: TableIndexes.keyOf(fields, doc), doc }));
    const docs = function* (): Generator<Doc> {
      let p = 0;
      if (index.entries.size > 0) {
        const entries = index.entries;
        const from =
          order === "asc"
            ? entries.firstNot((e) => bounds.before(e.key))
            : entries.firstNot((e) => !bounds.after(e.key));
        for (const entry of entries.walk(from, order)) {
          if (order === "asc" ? bounds.after(entry.key) : bounds.before(entry.key)) break;
          stats.documentsExamined += 1;
          if (shadowed.has(entry.doc._id)) continue;
          while (p < mine.length && sign * comparePrefix(mine[p].key, entry.key) < 0) {
            stats.documentsExamined += 1;
            yield mine[p++].doc;
          }
          yield entry.doc;
        }
      }
      while (p < mine.length) {
        stats.documentsExamined += 1;
        yield mine[p++].doc;
      }
    };
    return { resolved, docs };
  };

  // convex-test's own answer on the same state, for `verify`.
  const stock = (): DatabaseFake => {
    const view = Object.create(db) as DatabaseFake;
    view._iterateDocs = proto._iterateDocs;
    view._resolveQuerySource = proto._resolveQuerySource;
    return view;
  };
  const check = (query: Query, mine: Doc[], theirs: Doc[]): void => {
    if (mine.length !== theirs.length || mine.some((doc, i) => doc !== theirs[i])) {
      throw new Error(
        `index read differs from convex-test's table walk for ${JSON.stringify(query)}: ` +
          `${JSON.stringify(mine.map((d) => d._id))} != ${JSON.stringify(theirs.map((d) => d._id))}`,
      );
    }
  };

  const resolveQuerySource = function (this: DatabaseFake, query: Query): Resolved {
    const planned = plan(query);
    if (planned === null) {
      stats.fallbackQueries += 1;
      return originalResolve.call(this, query);
    }
    stats.indexedQueries += 1;
    const resolved = { ...planned.resolved, sortedDocs: [...planned.docs()] };
    if (options.verify) check(query, resolved.sortedDocs, originalResolve.call(stock(), query).sortedDocs);
    return resolved;
  };

  const evaluateQuery = function (this: DatabaseFake, query: Query): Doc[] {
    const planned = plan(query);
    // The original evaluation resolves through resolveQuerySource (counted there).
    if (planned === null) return originalEvaluate.call(this, query);
    const { filterFn, limit } = planned.resolved;
    // `.limit(n)` with an n that is not a count: slice()'s own semantics.
    if (limit !== null && !(Number.isInteger(limit) && limit >= 0)) return originalEvaluate.call(this, query);
    stats.indexedQueries += 1;
    const results: Doc[] = [];
    if (limit === 0) return results;
    for (const doc of planned.docs()) {
      if (!filterFn(doc)) continue;
      results.push(doc);
      if (limit !== null && results.length >= limit) break;
    }
    if (options.verify) check(query, results, originalEvaluate.call(stock(), query));
    return results;
  };

  Object.assign(db, {
    commit,
    _iterateDocs: iterateDocs,
    _resolveQuerySource: resolveQuerySource,
    _evaluateQuery: evaluateQuery,
  });
  installed.set(dbObject, stats);
  return stats;
}

/**
 * The root DatabaseFake of a `convexTest` instance. convex-test keeps it in
 * the store of an AsyncLocalStorage that every call on the instance enters;
 * this runs one empty transaction and catches that store on its way in.
 */
export async function rootDatabaseOf(t: { run: (handler: (ctx: unknown) => Promise<unknown>) => Promise<unknown> }): Promise<object> {
  type ConvexGlobal = { components: Record<string, { db: object }>; transactionManager: unknown };
  const proto = AsyncLocalStorage.prototype as unknown as { run: (...args: unknown[]) => unknown };
  const originalRun = proto.run;
  let found: ConvexGlobal | null = null;
  proto.run = function (this: unknown, store: unknown, ...rest: unknown[]) {
    if (
      found === null &&
      typeof store === "object" &&
      store !== null &&
      "components" in store &&
      "transactionManager" in store
    ) {
      found = store as ConvexGlobal;
    }
    return originalRun.call(this, store, ...rest);
  };
  let pending: Promise<unknown>;
  try {
    pending = t.run(async () => null);
  } finally {
    proto.run = originalRun;
  }
  await pending;
  const db = (found as ConvexGlobal | null)?.components[""]?.db;
  if (db === undefined) throw new Error("convex-test's database could not be reached: index reads cannot be installed");
  return db;
}
