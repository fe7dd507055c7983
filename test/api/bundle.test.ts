// The runtime-neutral entry must bundle for a browser: no Node built-ins anywhere in its graph.

import assert from "node:assert/strict";
import { test } from "node:test";
import { build } from "esbuild";

test("src/index.ts bundles for the browser with no node: imports", async () => {
  const result = await build({
    entryPoints: ["src/index.ts"],
    platform: "browser",
    format: "esm",
    bundle: true,
    write: false,
    logLevel: "silent",
    metafile: true,
  });
  assert.deepEqual(result.errors, []);
  const code = result.outputFiles.map((f) => f.text).join("\n");
  assert.ok(code.includes("RunComfyClient"));
  assert.doesNotMatch(code, /["']node:/);
  assert.doesNotMatch(code, /\brequire\(/);
  const inputs = Object.keys(result.metafile.inputs);
  assert.ok(
    // The runtime-neutral layers only: protocol, model rules, run orchestration.
    inputs.every((p) => /^src\/(api|model|run)\//.test(p) || p === "src/index.ts"),
    inputs.join(", "),
  );
});

test("the check can fail: a Node-only module does not bundle for the browser", async () => {
  await assert.rejects(
    build({
      entryPoints: ["src/config/token-file.ts"],
      platform: "browser",
      bundle: true,
      write: false,
      logLevel: "silent",
    }),
  );
});
