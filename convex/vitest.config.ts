import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    // Convex functions run in a V8 isolate without Node APIs; edge-runtime is
    // the closest environment (as convex-test recommends).
    environment: "edge-runtime",
    server: { deps: { inline: ["convex-test"] } },
    include: ["tests/**/*.test.ts"],
    unstubEnvs: true,
    testTimeout: 30_000,
  },
});
