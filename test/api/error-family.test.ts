// Every error class a public entry exports is a DreaminaError with a stable code: users branch on
// `code` (and the CLI picks its exit code from it) whichever part of the library threw. The walk
// finds the classes by what they are (an Error subclass), so a new one is checked without a list.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DreaminaError } from "../../src/api/dreamina-error.js";

const ENTRIES = {
  ".": () => import("../../src/index.js"),
  "./node": () => import("../../src/node/index.js"),
  "./batch": () => import("../../src/batch/index.js"),
  "./sandbox": () => import("../../src/sandbox/index.js"),
} as const;

type AnyClass = new (...args: never[]) => Error;

const cancel = { outcome: "not_attempted", attempted: false, jobMayContinue: true, message: "x" };

/** Minimal arguments for the constructors that need more than a message. */
const ARGS: Record<string, unknown[]> = {
  BatchLockedError: ["x", 1, "host"],
  DownloadError: ["download_cut", "x", "https://cdn.example/v.mp4"],
  ImageFitError: ["cannot_fit", "x"],
  ImageProbeError: ["not_found", "x", { source: "a.png" }],
  JobFailedError: ["x", { jobError: null }],
  MissingTokenError: [["$RUNCOMFY_API_TOKEN"]],
  OutputError: ["exists", "x", "/tmp/v.mp4"],
  PreflightError: [{ violations: [], warnings: [] }],
  RateLimiterStoppedError: [],
  SubmissionUnknownError: ["x", { modelId: "m", input: {} }],
  UnknownStatusError: ["x", { rawStatus: "odd" }],
  UnrecordedSubmitError: ["x", "req-1"],
  WaitAbortedError: ["x", { cancel }],
  WaitGaveUpError: [{ requestId: "r", cause: new DreaminaError("x"), failingForMs: 1, consecutiveErrors: 1 }],
  WaitTimeoutError: ["x", { cancel, timeoutMs: 1 }],
};

function errorClasses(module: Record<string, unknown>): [string, AnyClass][] {
  return Object.entries(module).filter(
    (entry): entry is [string, AnyClass] =>
      typeof entry[1] === "function" && (entry[1] === Error || entry[1].prototype instanceof Error),
  );
}

describe("the error family", () => {
  for (const [entry, load] of Object.entries(ENTRIES)) {
    it(`every error class exported by "dreamina-i2v${entry === "." ? "" : entry.slice(1)}" is a DreaminaError with a code`, async () => {
      const module = (await load()) as Record<string, unknown>;
      const classes = errorClasses(module);
      assert.ok(classes.length > 0 || entry === "./batch" || entry === "./sandbox", "found error classes");
      for (const [name, Class] of classes) {
        assert.ok(
          Class.prototype instanceof DreaminaError || Class === DreaminaError,
          `${name} extends DreaminaError`,
        );
        const staticCode = (Class as unknown as { code?: unknown }).code;
        assert.equal(typeof staticCode, "string", `${name}.code (static)`);
        const error = new (Class as unknown as new (...args: unknown[]) => Error)(...(ARGS[name] ?? ["x"]));
        assert.ok(error instanceof Class, `${name}: instanceof its class`);
        assert.ok(error instanceof DreaminaError, `${name}: instanceof DreaminaError`);
        const code = (error as DreaminaError).code;
        assert.match(code, /^[a-z][a-z0-9_]*$/, `${name}: code ${JSON.stringify(code)}`);
        assert.equal(error.name, name, `${name}: name`);
        // --json prints toJSON(): the code must be in it.
        assert.equal((error as DreaminaError).toJSON().code, code, `${name}: toJSON carries the code`);
      }
    });
  }

  it("the walk sees a plain Error subclass (so the check above can fail)", () => {
    class Stray extends Error {}
    const found = errorClasses({ Stray, notAClass: () => 1, value: 3 });
    assert.deepEqual(
      found.map(([name]) => name),
      ["Stray"],
    );
    assert.equal(Stray.prototype instanceof DreaminaError, false);
  });
});
