#!/usr/bin/env node
// Entry point of the local Convex stand-in (docs/contract.md §8). Plain JavaScript
// so that `node convex/standin/main.mjs` runs from any directory: it registers
// tsx (TypeScript loader, resolved from this package) and loads cli.ts.
import { register } from "tsx/esm/api";

register();
await import("./cli.ts");
