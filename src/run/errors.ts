// Errors of the run layer. They extend the protocol layer's classes, so there is still one
// hierarchy: `instanceof AbortError`, `TimeoutError`, `InvalidInputError` keep working.

import {
  AbortError,
  InvalidInputError,
  RunComfyError,
  type RunComfyErrorOptions,
  TimeoutError,
} from "../api/errors.js";
import type { CancelResult, JobStatusValue } from "../api/types.js";
import type { ValidationReport, Violation } from "../model/violation.js";

/**
 * What happened to the job when waiting stopped early:
 * - `cancelled`: it was still queued and the service cancelled it (not run, not billed);
 * - `not_cancellable`: it was already running (or the service refused): it keeps running and is billed;
 * - `unknown`: the cancel request failed or its answer was not understood: it may still run;
 * - `not_attempted`: no cancel was tried (cancelOnAbort/cancelOnTimeout off, or the job had finished).
 */
export type StopCancelOutcome = "cancelled" | "not_cancellable" | "unknown" | "not_attempted";

export interface CancelReport {
  outcome: StopCancelOutcome;
  /** Whether a cancel request was sent. */
  attempted: boolean;
  /** True when the job may go on running (and be billed) after this. */
  jobMayContinue: boolean;
  /** One sentence for a person. */
  message: string;
  /** The service's answer to the cancel, when there was one. */
  response?: CancelResult | undefined;
  /** Why the cancel request failed, when it did. */
  error?: unknown;
}

interface StopOptions extends RunComfyErrorOptions {
  cancel: CancelReport;
  lastStatus?: JobStatusValue | undefined;
  lastRawStatus?: string | undefined;
}

/** The caller aborted a wait. `cancel` says whether the job was cancelled or keeps running. */
export class WaitAbortedError extends AbortError {
  static override readonly code: string = "wait_aborted";
  readonly cancel: CancelReport;
  /** The last status seen before stopping (undefined: none was seen yet). */
  readonly lastStatus: JobStatusValue | undefined;
  readonly lastRawStatus: string | undefined;
  constructor(message: string, options: StopOptions) {
    super(message, options);
    this.cancel = options.cancel;
    this.lastStatus = options.lastStatus;
    this.lastRawStatus = options.lastRawStatus;
  }
  /** Shorthand for `cancel.outcome`. */
  get cancelOutcome(): StopCancelOutcome {
    return this.cancel.outcome;
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), cancel: reportJSON(this.cancel), lastStatus: this.lastRawStatus };
  }
}

/** The wait's deadline (`timeoutMs`) passed. The job is left alone unless `cancelOnTimeout`. */
export class WaitTimeoutError extends TimeoutError {
  static override readonly code: string = "wait_timeout";
  readonly cancel: CancelReport;
  readonly timeoutMs: number;
  readonly lastStatus: JobStatusValue | undefined;
  readonly lastRawStatus: string | undefined;
  constructor(message: string, options: StopOptions & { timeoutMs: number }) {
    super(message, options);
    this.cancel = options.cancel;
    this.timeoutMs = options.timeoutMs;
    this.lastStatus = options.lastStatus;
    this.lastRawStatus = options.lastRawStatus;
  }
  get cancelOutcome(): StopCancelOutcome {
    return this.cancel.outcome;
  }
  override toJSON(): Record<string, unknown> {
    return {
      ...super.toJSON(),
      timeoutMs: this.timeoutMs,
      cancel: reportJSON(this.cancel),
      lastStatus: this.lastRawStatus,
    };
  }
}

/**
 * Every poll failed (5xx, 429, connection refused or reset, timeouts) for `giveUpAfterMs`
 * without one answer in between, so the wait stopped. The job was left alone: it may still run
 * and be billed; wait for it again once the service answers. `cause` is the last poll's error.
 */
export class WaitGaveUpError extends RunComfyError {
  static override readonly code: string = "wait_gave_up";
  /** How long every poll had been failing, ms. */
  readonly failingForMs: number;
  /** Failed polls in a row. */
  readonly consecutiveErrors: number;
  readonly lastStatus: JobStatusValue | undefined;
  readonly lastRawStatus: string | undefined;
  constructor(options: {
    requestId: string;
    /** The last poll's error. */
    cause: RunComfyError;
    failingForMs: number;
    consecutiveErrors: number;
    lastStatus?: JobStatusValue | undefined;
    lastRawStatus?: string | undefined;
  }) {
    const { requestId, cause } = options;
    const seen =
      options.lastRawStatus === undefined ? "no status seen yet" : `last status ${options.lastRawStatus}`;
    super(
      `Gave up waiting for request ${requestId}: every poll failed for ${Math.round(options.failingForMs / 1000)} s ` +
        `(${options.consecutiveErrors} in a row, ${seen}; the last: ${cause.message}). The job was left alone: it ` +
        `may still run and be billed. Its request id is ${requestId}: check or fetch it once the service answers.`,
      { requestId, cause, status: cause.status, retryable: true },
    );
    this.failingForMs = options.failingForMs;
    this.consecutiveErrors = options.consecutiveErrors;
    this.lastStatus = options.lastStatus;
    this.lastRawStatus = options.lastRawStatus;
  }
  override toJSON(): Record<string, unknown> {
    const last = this.cause instanceof RunComfyError ? this.cause.toJSON() : undefined;
    return {
      ...super.toJSON(),
      failingForMs: this.failingForMs,
      consecutiveErrors: this.consecutiveErrors,
      lastStatus: this.lastRawStatus,
      lastError: last,
    };
  }
}

function reportJSON(report: CancelReport): Record<string, unknown> {
  return {
    outcome: report.outcome,
    attempted: report.attempted,
    jobMayContinue: report.jobMayContinue,
    message: report.message,
    error: report.error instanceof Error ? report.error.message : report.error,
  };
}

/**
 * The input broke the model's rules; found locally, before any request (nothing was sent or
 * billed). Every violation is listed; `detail` has them in the protocol layer's shape.
 */
export class PreflightError extends InvalidInputError {
  static override readonly code: string = "preflight";
  readonly violations: Violation[];
  readonly warnings: Violation[];
  constructor(report: Pick<ValidationReport, "violations" | "warnings">) {
    const lines = report.violations.map((v) => `  - ${v.path}: ${v.message}`);
    super(
      `The input breaks ${report.violations.length} rule${report.violations.length === 1 ? "" : "s"} of the model ` +
        `(nothing was sent):\n${lines.join("\n")}`,
      {
        detail: report.violations.map((v) => ({ field: v.path, message: v.message, raw: v })),
      },
    );
    this.violations = report.violations;
    this.warnings = report.warnings;
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), violations: this.violations, warnings: this.warnings };
  }
}
