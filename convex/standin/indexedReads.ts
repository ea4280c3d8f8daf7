// Index reads for the local Convex stand-in.
//
// convex-test's in-memory database (`DatabaseFake`, convexTestInternals.ts) answers every
// query by walking every document of the deployment, then sorting what matches: a lookup
// costs time proportional to all the data held. This module gives one DatabaseFake
// instance real indexes, without forking the package and without touching any other
// instance (vitest tests that build their own `convexTest` keep stock semantics):
//
// - Committed documents are kept per table (a Map in commit order, mirroring the key
//   order of `_documents`), and per index in a sorted list keyed by the index fields
//   followed by `_creationTime` and `_id` — Convex's implicit last keys, exactly the sort
//   convex-test applies (tableIndexes.ts). `by_creation_time` exists for every table.
//   The structures change only when the outermost transaction commits, so a rollback
//   needs nothing.
// - A query on an index range (or a full table scan, in `by_creation_time` order) walks
//   only its range, in asc or desc order, and merges in the transaction's own pending
//   writes (inserts, patches, replaces, deletes of every nesting level), which hide their
//   committed versions. Filters and limits (`.filter`, `.take`, `.first`) stop the walk
//   early.
// - Everything that decides semantics is convex-test's own code: each query is first run
//   through the original `_resolveQuerySource` over the pending documents only, which
//   validates the range expression and the index (same errors), orders the pending
//   documents and compiles the filter. Queries this module does not handle (`by_id`
//   ranges, search) take the original path, whose table walk only visits the table's
//   documents.
import {
  asDatabaseFake,
  type DatabaseFake,
  type Doc,
  type Query,
  type RangeExpr,
  type Resolved,
} from "./convexTestInternals";
import { comparePrefix, tableNameFromId } from "./queryValues";
import { rangeOf, TableIndexes, type Index } from "./tableIndexes";

/** What the index reads have done, for tests and diagnostics. */
export type IndexReadStats = {
  /** Queries answered from an index. */
  indexedQueries: number;
  /** Queries left to convex-test's original code path. */
  fallbackQueries: number;
  /** Documents looked at by indexed queries (committed and pending). */
  documentsExamined: number;
};

/** An index-range query: its table, its index and the range expression. */
type Target = { tableName: string; indexName: string; range: RangeExpr[] };

/** A query answered from an index: convex-test's resolution, and the documents in query order, unfiltered. */
type Plan = { resolved: Resolved; docs: () => Generator<Doc> };

/** The index and range a query reads, or null when the original code path must answer it. */
function targetOf(query: Query): Target | null {
  const source = query.source;
  if (source.type === "FullTableScan") return { tableName: source.tableName, indexName: "by_creation_time", range: [] };
  if (source.type !== "IndexRange") return null;
  const [tableName, indexName] = source.indexName.split(".");
  return indexName === "by_id" ? null : { tableName, indexName, range: source.range };
}

/** The index reads of one DatabaseFake: its committed documents per table and index. */
class IndexedReads {
  readonly stats: IndexReadStats = { indexedQueries: 0, fallbackQueries: 0, documentsExamined: 0 };
  private readonly tables = new Map<string, TableIndexes>();
  /** convex-test's own methods, from the prototype. */
  private readonly original: DatabaseFake;

  constructor(
    private readonly db: DatabaseFake,
    private readonly verify: boolean,
  ) {
    this.original = Object.getPrototypeOf(db) as DatabaseFake;
    for (const [id, doc] of Object.entries(db._documents)) this.mirror(id, undefined, doc);
  }

  private tableOf(name: string): TableIndexes {
    let table = this.tables.get(name);
    if (table === undefined) {
      const fields = new Map<string, string[]>();
      for (const index of this.db._schema?.tables.get(name)?.indexes ?? [])
        fields.set(index.indexDescriptor, index.fields);
      table = new TableIndexes(fields);
      this.tables.set(name, table);
    }
    return table;
  }

  /** Mirrors one committed change of document `id` (absent before: an insert; after: a delete). */
  private mirror(id: string, before: Doc | undefined, after: Doc | undefined): void {
    const name = tableNameFromId(id);
    if (name !== null) this.tableOf(name).update(id, before, after);
  }

  /** Ids of `table` written by the open transactions, in convex-test's order. */
  private pendingIds(table: string): Set<string> {
    const ids = new Set<string>();
    for (const layer of this.db._writes) {
      for (const id of Object.keys(layer)) if (tableNameFromId(id) === table) ids.add(id);
    }
    return ids;
  }

  /** The outermost commit applies the writes to `_documents`: mirror them. */
  commit(self: DatabaseFake, commitTs: bigint | null): void {
    if (self._writes.length !== 1) return this.original.commit.call(self, commitTs);
    const ids = Object.keys(self._writes[0]);
    const before = ids.map((id) => self._documents[id]);
    this.original.commit.call(self, commitTs);
    ids.forEach((id, i) => this.mirror(id, before[i], self._documents[id]));
  }

  /** The original table walk, over one table's documents instead of all. */
  iterateDocs(self: DatabaseFake, table: string, callback: (doc: Doc) => void): void {
    const ids = new Set<string>(this.tables.get(table)?.docs.keys() ?? []);
    for (const id of this.pendingIds(table)) ids.add(id);
    for (const id of ids) {
      const doc = self.get(table, id);
      if (doc !== null) callback(doc);
    }
  }

  /**
   * convex-test's own resolution of `query` over the given pending documents only: it
   * validates the range and the index, selects and orders them, compiles the filter.
   */
  private resolveOver(pending: Doc[], query: Query): Resolved {
    const view = Object.create(this.db) as DatabaseFake;
    view._iterateDocs = (_table, callback) => pending.forEach(callback);
    return this.original._resolveQuerySource.call(view, query);
  }

  /** The query's documents from an index, in query order, unfiltered; or null for the original path. */
  private plan(query: Query): Plan | null {
    const target = targetOf(query);
    if (target === null) return null;
    // The transaction's own versions of the table's written documents.
    const shadowed = this.pendingIds(target.tableName);
    const pending = [...shadowed].map((id) => this.db.get(target.tableName, id)).filter((doc) => doc !== null);
    const resolved = this.resolveOver(pending, query);
    // Declared in the schema (the resolution above threw otherwise) or by_creation_time.
    const index = this.tableOf(target.tableName).indexes.get(target.indexName);
    if (index === undefined) return null;
    return { resolved, docs: () => this.merged(index, target.range, resolved, shadowed) };
  }

  /** The committed entries of the range (but those the transaction shadows) merged with its own, in query order. */
  private *merged(index: Index, range: RangeExpr[], resolved: Resolved, shadowed: Set<string>): Generator<Doc> {
    const { order } = resolved;
    const bounds = rangeOf(range);
    const sign = order === "asc" ? 1 : -1;
    const mine = resolved.sortedDocs.map((doc) => ({ key: TableIndexes.keyOf(index.fields, doc), doc }));
    let p = 0;
    const entries = index.entries;
    const from =
      order === "asc" ? entries.firstNot((e) => bounds.before(e.key)) : entries.firstNot((e) => !bounds.after(e.key));
    const walk = entries.size > 0 ? entries.walk(from, order) : [];
    for (const entry of walk) {
      if (order === "asc" ? bounds.after(entry.key) : bounds.before(entry.key)) break;
      this.stats.documentsExamined += 1;
      if (shadowed.has(entry.doc._id)) continue;
      while (p < mine.length && sign * comparePrefix(mine[p].key, entry.key) < 0) {
        this.stats.documentsExamined += 1;
        yield mine[p++].doc;
      }
      yield entry.doc;
    }
    for (; p < mine.length; p++) {
      this.stats.documentsExamined += 1;
      yield mine[p].doc;
    }
  }

  /** convex-test's own answer on the same state, compared with this module's when verifying. */
  private check(query: Query, mine: Doc[], answer: (stock: DatabaseFake) => Doc[]): void {
    if (!this.verify) return;
    const stock = Object.create(this.db) as DatabaseFake;
    stock._iterateDocs = this.original._iterateDocs;
    stock._resolveQuerySource = this.original._resolveQuerySource;
    const theirs = answer(stock);
    if (mine.length !== theirs.length || mine.some((doc, i) => doc !== theirs[i])) {
      throw new Error(
        `index read differs from convex-test's table walk for ${JSON.stringify(query)}: ` +
          `${JSON.stringify(mine.map((d) => d._id))} != ${JSON.stringify(theirs.map((d) => d._id))}`,
      );
    }
  }

  resolveQuerySource(self: DatabaseFake, query: Query): Resolved {
    const planned = this.plan(query);
    if (planned === null) {
      this.stats.fallbackQueries += 1;
      return this.original._resolveQuerySource.call(self, query);
    }
    this.stats.indexedQueries += 1;
    const resolved = { ...planned.resolved, sortedDocs: [...planned.docs()] };
    this.check(query, resolved.sortedDocs, (stock) => this.original._resolveQuerySource.call(stock, query).sortedDocs);
    return resolved;
  }

  evaluateQuery(self: DatabaseFake, query: Query): Doc[] {
    const planned = this.plan(query);
    // The original evaluation resolves through resolveQuerySource (counted there).
    if (planned === null) return this.original._evaluateQuery.call(self, query);
    const { filterFn, limit } = planned.resolved;
    // `.limit(n)` with an n that is not a count: slice()'s own semantics.
    if (limit !== null && !(Number.isInteger(limit) && limit >= 0))
      return this.original._evaluateQuery.call(self, query);
    this.stats.indexedQueries += 1;
    const results: Doc[] = [];
    if (limit === 0) return results;
    for (const doc of planned.docs()) {
      if (!filterFn(doc)) continue;
      results.push(doc);
      if (limit !== null && results.length >= limit) break;
    }
    this.check(query, results, (stock) => this.original._evaluateQuery.call(stock, query));
    return results;
  }

  /** Puts the four wrapped methods on the instance itself (its prototype, shared, stays as it is). */
  install(): void {
    const reads = this;
    Object.assign(this.db, {
      commit(this: DatabaseFake, commitTs: bigint | null = null) {
        reads.commit(this, commitTs);
      },
      _iterateDocs(this: DatabaseFake, table: string, callback: (doc: Doc) => void) {
        reads.iterateDocs(this, table, callback);
      },
      _resolveQuerySource(this: DatabaseFake, query: Query) {
        return reads.resolveQuerySource(this, query);
      },
      _evaluateQuery(this: DatabaseFake, query: Query) {
        return reads.evaluateQuery(this, query);
      },
    });
  }
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
export function installIndexedReads(db: object, options: { verify?: boolean } = {}): IndexReadStats {
  const existing = installed.get(db);
  if (existing !== undefined) return existing;
  const reads = new IndexedReads(asDatabaseFake(db), options.verify ?? false);
  reads.install();
  installed.set(db, reads.stats);
  return reads.stats;
}
