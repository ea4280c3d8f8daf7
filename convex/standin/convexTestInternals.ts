// Everything the stand-in knows of convex-test's private members: the shape of its
// in-memory database (`DatabaseFake` in node_modules/convex-test/dist/index.js), how an
// instance's root database is reached, and the convex-test version this was read from.
// Another version may differ in any of them, so the stand-in checks the version as it
// starts (cli.ts) and the shape as it installs its index reads (indexedReads.ts).
import { AsyncLocalStorage } from "node:async_hooks";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

export type Doc = Record<string, unknown> & { _id: string; _creationTime: number };
export type RangeExpr = { type: "Eq" | "Gt" | "Gte" | "Lt" | "Lte"; fieldPath: string; value: unknown };
export type Query = {
  source:
    | { type: "FullTableScan"; tableName: string; order?: "asc" | "desc" | null }
    | { type: "IndexRange"; indexName: string; range: RangeExpr[]; order?: "asc" | "desc" | null }
    | { type: "Search"; indexName: string; filters: unknown[] };
  operators: unknown[];
};
export type Resolved = {
  sortedDocs: Doc[];
  filterFn: (doc: Doc) => boolean;
  limit: number | null;
  fieldPathsToSortBy: string[];
  order: "asc" | "desc";
};

/** The parts of convex-test's DatabaseFake the index reads read or wrap. */
export type DatabaseFake = {
  _documents: Record<string, Doc>;
  _writes: Record<string, Doc | null>[];
  _schema: { tables: Map<string, { indexes: { indexDescriptor: string; fields: string[] }[] }> } | null;
  get(table: string, id: string): Doc | null;
  commit(commitTs?: bigint | null): void;
  _iterateDocs(table: string, callback: (doc: Doc) => void): void;
  _resolveQuerySource(query: Query): Resolved;
  _evaluateQuery(query: Query): Doc[];
};

/** `db` as a DatabaseFake, once its members are seen to be there; else an error naming what is not. */
export function asDatabaseFake(db: object): DatabaseFake {
  const fake = db as DatabaseFake;
  const proto = Object.getPrototypeOf(fake) as DatabaseFake;
  for (const method of ["commit", "_iterateDocs", "_resolveQuerySource", "_evaluateQuery", "get"] as const) {
    if (typeof proto[method] !== "function") {
      throw new Error(`convex-test's DatabaseFake has no ${method}(): index reads cannot be installed`);
    }
  }
  if (typeof fake._documents !== "object" || !Array.isArray(fake._writes)) {
    throw new Error("convex-test's DatabaseFake has an unexpected shape: index reads cannot be installed");
  }
  return fake;
}

/**
 * The root DatabaseFake of a `convexTest` instance. convex-test keeps it in
 * the store of an AsyncLocalStorage that every call on the instance enters;
 * this runs one empty transaction and catches that store on its way in.
 */
export async function rootDatabaseOf(t: {
  run: (handler: (ctx: unknown) => Promise<unknown>) => Promise<unknown>;
}): Promise<object> {
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

const here = createRequire(import.meta.url);

function packageVersion(path: string, read: (json: Record<string, any>) => unknown): string {
  const value = read(JSON.parse(readFileSync(path, "utf8")));
  return typeof value === "string" ? value : "(none)";
}

/** The convex-test version package.json pins (exactly: the index reads rely on its internals). */
export function pinnedConvexTest(): string {
  return packageVersion(here.resolve("../package.json"), (p) => p.devDependencies?.["convex-test"]);
}

/** The convex-test version installed in node_modules. */
export function installedConvexTest(): string {
  return packageVersion(here.resolve("convex-test/package.json"), (p) => p.version);
}

/** The one line that says the installed convex-test is not the pinned one, or null when it is. */
export function convexTestMismatch(
  installed: string = installedConvexTest(),
  pinned: string = pinnedConvexTest(),
): string | null {
  if (installed === pinned) return null;
  return (
    `convex-test ${installed} is installed, but the index reads are written for ${pinned} (package.json): ` +
    "run `npm ci` in convex/, or set CONVEX_STANDIN_INDEXES=off"
  );
}
