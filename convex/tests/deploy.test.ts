// @vitest-environment node
// Deployability, offline (no Convex deployment is reachable from here):
//  - every function module bundles the way `npx convex deploy` bundles it for
//    Convex's default runtime (esbuild, platform "browser", the "convex" and
//    "module" conditions: convex/dist/esm/bundler/debugBundle.js), and nothing
//    in the bundle is a Node-only import;
//  - `npm run codegen` (convex codegen, which needs no deployment) leaves
//    convex/_generated/ exactly as committed.
// Runs in Node, not edge-runtime: it spawns esbuild and the Convex CLI.
import { execFile } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { promisify } from "node:util";
import * as esbuild from "esbuild";
import { describe, expect, test } from "vitest";

const PROJECT = resolve(__dirname, "..");
const FUNCTIONS = join(PROJECT, "convex");

/** Entry points as Convex picks them: JS/TS files outside _generated, no dotfiles. */
function entryPoints(dir: string = FUNCTIONS): string[] {
  const found: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (name.startsWith(".") || name.startsWith("#")) continue;
    if (statSync(path).isDirectory()) {
      if (relative(FUNCTIONS, path) !== "_generated") found.push(...entryPoints(path));
    } else if (/\.(m|c)?(j|t)sx?$/.test(name) && !name.endsWith(".d.ts")) {
      found.push(path);
    }
  }
  return found.sort();
}

// Node's own modules, with and without "node:". async_hooks is the one Convex
// shims for its default runtime, so it is allowed like Convex allows it.
const NODE_ONLY = new Set(
  builtinModules.flatMap((m) => [m, `node:${m}`]).filter((m) => !/^(node:)?async_hooks$/.test(m)),
);

type BundleResult = { errors: string[]; nodeImports: string[]; inputs: string[] };

/** Bundles `entries` as Convex does for its default (non-Node) runtime. */
async function bundleForConvex(entries: string[], outbase: string): Promise<BundleResult> {
  const nodeImports: string[] = [];
  const guard: esbuild.Plugin = {
    name: "no-node-only-imports",
    setup(build) {
      build.onResolve({ filter: /.*/ }, (args) => {
        if (!NODE_ONLY.has(args.path)) return undefined;
        nodeImports.push(`${relative(PROJECT, args.importer)} imports ${args.path}`);
        return { path: args.path, external: true };
      });
    },
  };
  try {
    const result = await esbuild.build({
      entryPoints: entries,
      bundle: true,
      platform: "browser",
      format: "esm",
      target: "esnext",
      outdir: "out",
      outbase,
      conditions: ["convex", "module"],
      write: false,
      splitting: true,
      metafile: true,
      logLevel: "silent",
      plugins: [guard],
    });
    return {
      errors: result.errors.map((e) => e.text),
      nodeImports,
      inputs: Object.keys(result.metafile?.inputs ?? {}),
    };
  } catch (error) {
    const failure = error as esbuild.BuildFailure;
    return { errors: (failure.errors ?? [{ text: String(error) }]).map((e) => e.text), nodeImports, inputs: [] };
  }
}

describe("deployability", () => {
  test("every function module bundles for Convex's default runtime with no Node-only import", async () => {
    const entries = entryPoints();
    expect(entries.map((e) => relative(FUNCTIONS, e))).toEqual(
      expect.arrayContaining([
        ...["follow.ts", "followBody.ts", "followContacts.ts", "followState.ts", "followTree.ts", "handlers/follow.ts"],
        ...["http.ts", "kapso.ts", "phones.ts", "schema.ts", "webhook.ts"],
      ]),
    );
    const result = await bundleForConvex(entries, FUNCTIONS);
    expect(result.errors).toEqual([]);
    expect(result.nodeImports).toEqual([]);
    // libphonenumber-js is bundled (not left external) and passes the guard.
    expect(result.inputs.some((p) => p.includes("node_modules/libphonenumber-js/"))).toBe(true);
  }, 60_000);

  test("the guard catches Node-only imports (node:crypto, fs, a dependency's require)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kontak-bundle-"));
    try {
      for (const [name, source] of [
        ["a.ts", 'import { createHash } from "node:crypto";\nexport const h = () => createHash("sha256");\n'],
        ["b.ts", 'import { readFileSync } from "fs";\nexport const r = () => readFileSync("x");\n'],
        ["c.ts", 'export const p = () => require("path").join("a", "b");\n'],
      ]) {
        writeFileSync(join(dir, name), source);
      }
      const result = await bundleForConvex(["a.ts", "b.ts", "c.ts"].map((n) => join(dir, n)), dir);
      expect(result.nodeImports.map((line) => line.split(" imports ")[1]).sort()).toEqual(["fs", "node:crypto", "path"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  test("npm run codegen leaves convex/_generated unchanged (offline, in a copy)", async () => {
    // A copy, so a failing run never rewrites the committed files; the
    // contract/ directory sits beside it because functions import its JSON.
    const root = mkdtempSync(join(tmpdir(), "kontak-codegen-"));
    try {
      const copy = join(root, "convex-project");
      cpSync(FUNCTIONS, join(copy, "convex"), { recursive: true });
      for (const file of ["package.json", "tsconfig.json"]) cpSync(join(PROJECT, file), join(copy, file));
      symlinkSync(join(PROJECT, "node_modules"), join(copy, "node_modules"), "dir");
      cpSync(join(PROJECT, "..", "contract"), join(root, "contract"), { recursive: true });
      const env = { ...process.env, CONVEX_DEPLOYMENT: "", CONVEX_DEPLOY_KEY: "", CONVEX_URL: "" };
      await promisify(execFile)("npm", ["run", "--silent", "codegen"], { cwd: copy, env, timeout: 120_000 });
      const generated = join(FUNCTIONS, "_generated");
      const names = readdirSync(generated).sort();
      expect(readdirSync(join(copy, "convex", "_generated")).sort()).toEqual(names);
      for (const name of names) {
        expect(readFileSync(join(copy, "convex", "_generated", name), "utf8"), name).toBe(
          readFileSync(join(generated, name), "utf8"),
        );
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }, 150_000);
});
