// Exit codes come from the error's code (exit-codes.ts), never from its class or name: a new
// class with a known code gets that code's exit, a look-alike name without the code gets 1.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DreaminaError } from "../../src/api/dreamina-error.js";
import {
  AuthenticationError,
  ConnectionError,
  NotFoundError,
  RunComfyError,
  SubmissionUnknownError,
  TimeoutError,
} from "../../src/api/errors.js";
import { CliError } from "../../src/cli/cli-error.js";
import { EXIT, exitCodeFor } from "../../src/cli/exit-codes.js";
import { DownloadError } from "../../src/download/download-error.js";
import { ImageFitError } from "../../src/image/fit.js";
import { ImageProbeError } from "../../src/image/probe-core.js";
import { WaitGaveUpError } from "../../src/run/errors.js";
import { FaultSpecError } from "../../src/sandbox/faults.js";

class SomethingNew extends DreaminaError {}

describe("exitCodeFor", () => {
  it("decides by code: any class carrying a known code exits as that code says", () => {
    assert.equal(exitCodeFor(new SomethingNew("x", { code: "rate_limited" })), EXIT.tempFail);
    assert.equal(exitCodeFor(new SomethingNew("x", { code: "missing_token" })), EXIT.noPermission);
    assert.equal(exitCodeFor(new SomethingNew("x", { code: "job_failed" })), EXIT.failure);
    assert.equal(exitCodeFor(new SomethingNew("x", { code: "no_such_code" })), EXIT.failure);
  });

  it("a name alone decides nothing", () => {
    const lookAlike = Object.assign(new Error("x"), { name: "AuthenticationError" });
    assert.equal(exitCodeFor(lookAlike), EXIT.failure);
    const probeLookAlike = Object.assign(new Error("x"), { name: "ImageProbeError" });
    assert.equal(exitCodeFor(probeLookAlike), EXIT.failure);
    // Prototype keys are not codes.
    assert.equal(exitCodeFor(new SomethingNew("x", { code: "constructor" })), EXIT.failure);
    assert.equal(exitCodeFor(Object.assign(new Error("x"), { code: "toString" })), EXIT.failure);
  });

  it("the service's errors", () => {
    assert.equal(exitCodeFor(new AuthenticationError("no")), EXIT.noPermission);
    assert.equal(exitCodeFor(new TimeoutError("slow")), EXIT.tempFail);
    assert.equal(exitCodeFor(new ConnectionError("refused")), EXIT.unavailable);
    const gaveUp = new WaitGaveUpError({
      requestId: "r",
      cause: new ConnectionError("refused"),
      failingForMs: 300_000,
      consecutiveErrors: 9,
    });
    assert.equal(exitCodeFor(gaveUp), EXIT.unavailable);
    assert.equal(exitCodeFor(new RunComfyError("teapot", { status: 418 })), EXIT.dataError);
    assert.equal(exitCodeFor(new RunComfyError("later", { status: 429 })), EXIT.tempFail);
    assert.equal(exitCodeFor(new RunComfyError("down", { status: 503 })), EXIT.unavailable);
    const unknown = new SubmissionUnknownError("?", {
      modelId: "m",
      input: {},
      cause: new ConnectionError("reset"),
    });
    assert.equal(exitCodeFor(unknown), EXIT.unavailable);
  });

  it("the image probe's spellings of the service's codes name a source: the image's problem, not the service's", () => {
    const probe = (code: "timeout" | "not_found" | "html") => new ImageProbeError(code, "x", { source: "u" });
    assert.ok(probe("timeout") instanceof DreaminaError);
    assert.equal(exitCodeFor(probe("timeout")), EXIT.noInput);
    assert.equal(exitCodeFor(probe("not_found")), EXIT.noInput);
    assert.equal(exitCodeFor(probe("html")), EXIT.dataError);
    assert.equal(exitCodeFor(new TimeoutError("slow")), EXIT.tempFail);
    assert.equal(exitCodeFor(new NotFoundError("gone", { status: 404 })), EXIT.dataError);
    assert.equal(exitCodeFor(new ImageFitError("bad_option", "x")), EXIT.usage);
    assert.equal(exitCodeFor(new ImageFitError("too_many_pixels", "x")), EXIT.dataError);
    assert.equal(exitCodeFor(new FaultSpecError("x")), EXIT.usage);
  });

  it("outside the family only errno codes are read: another library's code means what it says there", () => {
    assert.equal(exitCodeFor(Object.assign(new Error("x"), { code: "timeout" })), EXIT.failure);
    assert.equal(exitCodeFor(Object.assign(new Error("x"), { code: "usage" })), EXIT.failure);
    assert.equal(exitCodeFor(new SomethingNew("x", { code: "timeout" })), EXIT.tempFail);
  });

  it("downloads: a cut is temporary, a CDN 5xx unavailable, the rest a failure", () => {
    assert.equal(exitCodeFor(new DownloadError("download_cut", "cut", "u")), EXIT.tempFail);
    assert.equal(
      exitCodeFor(new DownloadError("download_http_status", "x", "u", { status: 502 })),
      EXIT.unavailable,
    );
    assert.equal(
      exitCodeFor(new DownloadError("download_http_status", "x", "u", { status: 404 })),
      EXIT.failure,
    );
  });

  it("the CLI's own codes, and a wrapped error keeps the exit code of what it wraps", () => {
    assert.equal(exitCodeFor(new CliError("usage", "x")), EXIT.usage);
    assert.equal(exitCodeFor(new CliError("input_unreadable", "x")), EXIT.noInput);
    assert.equal(exitCodeFor(new CliError("output_unavailable", "x")), EXIT.tempFail);
    const wrapped = CliError.wrap(new RunComfyError("down", { status: 500 }), "more");
    assert.equal(wrapped.code, "service_error");
    assert.equal(wrapped.name, "RunComfyError");
    assert.equal(exitCodeFor(wrapped), EXIT.unavailable);
    assert.equal(exitCodeFor(Object.assign(new Error("gone"), { code: "ENOENT" })), EXIT.noInput);
    assert.equal(exitCodeFor("a string"), EXIT.failure);
    assert.equal(exitCodeFor(undefined), EXIT.failure);
  });
});
