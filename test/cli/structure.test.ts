// The CLI's shape (issue 12): no import circle through it, one module per command with one
// `runX(options, ctx)`, one client factory, and exit codes told apart by code, never by name.

import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { describe, it } from "node:test";
// @ts-expect-error: a plain .mjs script, no types
import { findCycles } from "../../scripts/import-cycles.mjs";

const ROOT = process.cwd();
const CLI = join(ROOT, "src/cli");
const COMMANDS = [
  "run",
  "submit",
  "wait",
  "status",
  "result",
  "cancel",
  "jobs",
  "validate",
  "batch",
  "sandbox",
];

function cliSources(dir = CLI): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? cliSources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

describe("the CLI's structure", () => {
  it("the import walker finds a circle, type-only or lazy, when there is one", () => {
    const dir = mkdtempSync(join(tmpdir(), "dreamina-cycles-"));
    try {
      mkdirSync(join(dir, "commands"));
      writeFileSync(join(dir, "main.ts"), 'import { a } from "./commands/a.js";\nexport const m = a;\n');
      writeFileSync(
        join(dir, "commands/a.ts"),
        'import type { M } from "../main.js";\nexport const a = 1;\n',
      );
      writeFileSync(join(dir, "lazy.ts"), 'export const f = () => import("./lazy2.js");\n');
      writeFileSync(
        join(dir, "lazy2.ts"),
        '// import { f } from "./lazy.js" (a comment, no edge)\nexport { f } from "./lazy.js";\n',
      );
      const { cycles } = findCycles(dir) as { cycles: string[][] };
      const names = cycles.map((c) => c.map((f) => relative(dir, f)).join(" -> ")).sort();
      assert.deepEqual(names, [
        "commands/a.ts -> main.ts -> commands/a.ts",
        "lazy.ts -> lazy2.ts -> lazy.ts",
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("no import circle runs through src/cli", () => {
    const { cycles, files } = findCycles(join(ROOT, "src")) as { cycles: string[][]; files: number };
    assert.ok(files > 50, `walked ${files} files`);
    const throughCli = cycles.filter((c) => c.some((f) => f.startsWith(CLI)));
    assert.deepEqual(
      throughCli.map((c) => c.map((f) => relative(ROOT, f)).join(" -> ")),
      [],
    );
  });

  it("no import circle anywhere in src, type-only and lazy imports included", () => {
    const { cycles } = findCycles(join(ROOT, "src")) as { cycles: string[][] };
    assert.deepEqual(
      cycles.map((c) => c.map((f) => relative(ROOT, f)).join(" -> ")),
      [],
    );
  });

  it("one module per command, each with an options type, one runX(options, ctx) and registerX", () => {
    const files = readdirSync(join(CLI, "commands"))
      .filter((f) => f !== "index.ts")
      .map((f) => f.replace(/\.ts$/, ""));
    for (const name of COMMANDS) assert.ok(files.includes(name), `commands/${name}.ts`);
    // A command added later (any file here) keeps the same shape.
    for (const name of files) {
      const text = readFileSync(join(CLI, "commands", `${name}.ts`), "utf8");
      const Name = name[0]?.toUpperCase() + name.slice(1);
      assert.match(text, new RegExp(`export (type|interface) ${Name}Options\\b`), name);
      assert.match(
        text,
        new RegExp(`export async function run${Name}\\(\\w+: ${Name}Options, ctx: Factory\\)`),
        name,
      );
      assert.match(
        text,
        new RegExp(`export function register${Name}\\(program: Command, run: ActionRunner\\)`),
        name,
      );
      assert.equal(text.match(/export (async )?function run[A-Z]/g)?.length, 1, `${name}: one run function`);
      assert.ok(text.split("\n").length <= 400, `${name}.ts is ${text.split("\n").length} lines`);
    }
  });

  it("only the factory makes a client or opens a store; nothing dispatches on an error's name", () => {
    for (const file of cliSources()) {
      const text = readFileSync(file, "utf8");
      const where = relative(ROOT, file);
      if (!file.endsWith("factory.ts")) {
        assert.doesNotMatch(text, /new RunComfyClient\(|Journal\.open\(|openJobStore\(/, where);
      }
      assert.doesNotMatch(text, /\.name\s*===|name\s*===\s*["']|===\s*["']\w+Error["']/, where);
    }
  });
});
