#!/usr/bin/env node
// Finds import circles among the TypeScript sources: every relative `import`, `import type`,
// `export … from` and dynamic `import("…")` is an edge (a type-only circle still ties two
// modules together for a reader, and a lazy one for the bundle). Prints each circle and exits 1
// when there is one. `node scripts/import-cycles.mjs [dir]` (default: src).

import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const SPECIFIER =
  /(?:^|[\s;}])(?:import|export)\s+(?:type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)/g;

function sources(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...sources(path));
    else if (name.endsWith(".ts") && !name.endsWith(".d.ts")) out.push(path);
  }
  return out;
}

/** The relative imports of one file, resolved to .ts files (ours are written `./x.js`). */
export function importsOf(file, text = readFileSync(file, "utf8")) {
  // Comments may quote an import; strings may not hold one that matters here.
  const code = text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`])\/\/.*$/gm, "$1");
  const found = new Set();
  for (const match of code.matchAll(SPECIFIER)) {
    const spec = match[1] ?? match[2];
    if (!spec?.startsWith(".")) continue;
    const base = resolve(dirname(file), spec);
    for (const candidate of [base.replace(/\.js$/, ".ts"), `${base}.ts`, join(base, "index.ts")]) {
      if (existsSync(candidate) && statSync(candidate).isFile()) {
        found.add(candidate);
        break;
      }
    }
  }
  return [...found];
}

/** Every circle (as a list of files, the first repeated at the end), found by depth-first search. */
export function findCycles(dir) {
  const files = sources(resolve(dir));
  const graph = new Map(files.map((f) => [f, importsOf(f)]));
  const state = new Map(); // undefined: unseen, 1: on the stack, 2: done
  const stack = [];
  const cycles = [];
  const visit = (file) => {
    state.set(file, 1);
    stack.push(file);
    for (const next of graph.get(file) ?? []) {
      if (state.get(next) === 1) cycles.push([...stack.slice(stack.indexOf(next)), next]);
      else if (state.get(next) === undefined) visit(next);
    }
    stack.pop();
    state.set(file, 2);
  };
  for (const file of files) if (state.get(file) === undefined) visit(file);
  return { files: files.length, edges: [...graph.values()].reduce((n, e) => n + e.length, 0), cycles };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dir = process.argv[2] ?? "src";
  const { files, edges, cycles } = findCycles(dir);
  for (const cycle of cycles) console.log(cycle.map((f) => relative(process.cwd(), f)).join(" -> "));
  console.log(`${files} files, ${edges} imports, ${cycles.length} circle(s)`);
  process.exitCode = cycles.length > 0 ? 1 : 0;
}
