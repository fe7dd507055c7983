// The public surface, name by name: each entry of package.json "exports" is imported and its
// runtime names compared with the lists below, so a name exported by accident (or dropped) fails
// here and has to be chosen. Types have no runtime name and are not compared here.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";

/** "dreamina-i2v": the runtime-neutral SDK. */
const ROOT = [
  "AbortError",
  "AuthenticationError",
  "ConnectionError",
  "DEFAULT_BASE_URL",
  "DEFAULT_FRAMES",
  "DEFAULT_RETRY_POLICY",
  "DEFAULT_SCHEDULE_TUNING",
  "DEFAULT_SEED",
  "DreaminaError",
  "EXAMPLE_IMAGE_URL",
  "EXAMPLE_PROMPT",
  "FRAMES_PER_SECOND",
  "FRAMES_VALUES",
  "InsufficientBalanceError",
  "InvalidInputError",
  "JobCancelledError",
  "JobFailedError",
  "MAX_HEADER_BYTES",
  "MODEL_ID",
  "MissingTokenError",
  "NotFoundError",
  "PROMPT_MAX_LENGTH",
  "PermissionDeniedError",
  "PreflightError",
  "RateLimitError",
  "RunComfyClient",
  "RunComfyError",
  "ServerError",
  "SubmissionUnknownError",
  "TOKEN_ENV_VARS",
  "TimeoutError",
  "UnexpectedResponseError",
  "UnknownStatusError",
  "VERSION",
  "WaitAbortedError",
  "WaitGaveUpError",
  "WaitTimeoutError",
  "apiRoot",
  "backoffDelay",
  "checkImageFacts",
  "codePointLength",
  "collectOutputUrls",
  "createPollSchedule",
  "decimalFraction",
  "defaultPollSchedule",
  "estimateCostUsd",
  "estimateRemainingMs",
  "exifOrientation",
  "formatName",
  "imageLimits",
  "imageValidations",
  "inputSchema",
  "isTerminalStatus",
  "mulberry32",
  "normalizeStatus",
  "outputSchema",
  "parseDataUri",
  "parseRetryAfter",
  "parseValidationRule",
  "pngStructureProblem",
  "queueMsPerPosition",
  "redactSecrets",
  "registerSecret",
  "runJob",
  "runStartBracket",
  "runtimeEnv",
  "sleep",
  "sniffImage",
  "sniffJpegFrom",
  "tokenFromEnv",
  "updates",
  "validate",
  "videoSeconds",
  "wait",
  "withDefaults",
];

/** "dreamina-i2v/node": everything in ROOT, and these. */
const NODE_ONLY = [
  "BatchLockedError",
  "DownloadError",
  "Dreamina",
  "FINAL_STATES",
  "ImageFitError",
  "ImageProbeError",
  "JOURNAL_STATES",
  "MAX_DECODE_PIXELS",
  "MIN_FREE_BYTES",
  "OutputError",
  "SqliteJobStore",
  "StoreError",
  "UnrecordedSubmitError",
  "checkDecodes",
  "checkFileTarget",
  "checkImage",
  "checkImageContent",
  "checkOutput",
  "claimOutput",
  "decodeViolation",
  "defaultJournalPath",
  "describeSource",
  "dimensionsComply",
  "download",
  "dreaminaHome",
  "fileNameFromUrl",
  "fitImage",
  "fsError",
  "isLocalFsError",
  "isOutputClaim",
  "isPostgresUrl",
  "loadImageBytes",
  "lockOutputFile",
  "nodeFetch",
  "openJobStore",
  "planFit",
  "prepareInput",
  "probeImage",
  "recoveryDirFor",
  "recoveryOutputPath",
  "resolveToken",
  "sanitizeFileName",
  "toDataUri",
  "tokenFileCandidates",
];

const SURFACE: Record<string, string[]> = {
  ".": ROOT,
  "./node": [...ROOT, ...NODE_ONLY],
  "./batch": [
    "BatchLockedError",
    "BatchProgress",
    "BatchState",
    "Budget",
    "FALLBACK_PRICE",
    "MANIFEST_FIELDS",
    "MARKER_FILE",
    "RateLimiter",
    "RateLimiterStoppedError",
    "deriveRowKey",
    "escapeHtml",
    "formatDuration",
    "formatUsd",
    "makeThumbnails",
    "parseManifest",
    "plainLine",
    "readManifest",
    "renderHtml",
    "rowInput",
    "runBatch",
    "sha256File",
    "systemClock",
    "validateRow",
    "validateRows",
    "writeHtmlReport",
    "writeJsonReport",
  ],
  "./sandbox": [
    "BASE_PRICE_USD",
    "DEFAULT_MODES",
    "DEFAULT_RUN_TIME",
    "ERROR_CODES",
    "FPS",
    "FaultSpecError",
    "MODE_VALUES",
    "PRICE_UNIT",
    "formatFaultSpec",
    "motionForSeed",
    "outputSize",
    "parseFaultSpec",
    "startSandbox",
  ],
};

interface PackageJson {
  exports: Record<string, string | { default: string }>;
}

/** The code entries of package.json "exports", each with its source file. */
function codeEntries(): [string, string][] {
  const pkg = JSON.parse(readFileSync("package.json", "utf8")) as PackageJson;
  return Object.entries(pkg.exports).flatMap(([name, target]) => {
    const file = typeof target === "string" ? target : target.default;
    const match = /^\.\/dist\/(.+)\.js$/.exec(file);
    return match ? [[name, `../../src/${match[1]}.ts`] as [string, string]] : [];
  });
}

describe("the public surface", () => {
  it("package.json exports exactly the code entries listed here", () => {
    assert.deepEqual(
      codeEntries()
        .map(([name]) => name)
        .sort(),
      Object.keys(SURFACE).sort(),
    );
  });

  for (const [name, file] of codeEntries()) {
    it(`"dreamina-i2v${name.slice(1)}" exports exactly its listed names`, async () => {
      const module = (await import(file)) as Record<string, unknown>;
      assert.deepEqual(Object.keys(module).sort(), [...(SURFACE[name] ?? [])].sort());
    });
  }

  it("no public entry re-exports a module whole", () => {
    for (const [, file] of codeEntries()) {
      const text = readFileSync(new URL(file, import.meta.url), "utf8");
      assert.doesNotMatch(text, /^export \*/m, file);
    }
  });
});
