// The plan's decision for one row, from what the journal knows of it: a pure function (the
// caller reads the journal and checks the row's file; nothing here does I/O).

import type { BatchRowRecord, JobRecord } from "../store/index.js";
import type { ErrorInfo, PlanAction } from "./batch-types.js";

const ACTIVE_STATES = new Set(["submitted", "in_queue", "in_progress", "completed"]);

export interface PlanFlags {
  /** Submit again rows whose earlier submit outcome is unknown. */
  resubmitUnknown: boolean;
  /** Submit again rows whose job failed in an earlier run. */
  retryFailed: boolean;
  /** Whether the file of the row's recorded "done" outcome ({@link recordedFile}) is intact. */
  fileIntact: boolean;
}

/** What the plan decided for a row, and what it learned from the journal (only the fields it set). */
export interface RowPlan {
  action: PlanAction;
  requestId?: string | undefined;
  localId?: number | undefined;
  costUsd?: number | undefined;
  outputUrl?: string | undefined;
  submittedAt?: number | undefined;
  file?: string | undefined;
  sha256?: string | undefined;
  bytes?: number | undefined;
  unknownLocalIds?: number[];
  /** When the oldest submit of unknown outcome was written (action "unknown" or "resubmit"). */
  unknownSince?: string;
  error?: ErrorInfo;
  errorPhase?: "wait";
}

/**
 * The file the caller must check (exists inside --out, same sha256) before {@link planRow}:
 * set only when the row's job succeeded and its outcome says the file was written.
 */
export function recordedFile(
  records: readonly JobRecord[],
  outcome: BatchRowRecord | undefined,
): { file: string; sha256: string | undefined } | undefined {
  const succeeded = records.find((x) => x.state === "succeeded");
  if (!succeeded?.requestId || outcome?.state !== "done" || !outcome.file) return undefined;
  return { file: outcome.file, sha256: outcome.sha256 };
}

/**
 * `records`: the row's job records, newest first; `outcome`: the row's recorded outcome.
 * A success is downloaded again unless its file is intact; a job in flight is re-attached;
 * an unknown submit is left alone (or resubmitted); a failure stays failed (or is retried);
 * anything else (never submitted, definitely rejected, cancelled while queued) is submitted.
 */
export function planRow(
  records: readonly JobRecord[],
  outcome: BatchRowRecord | undefined,
  flags: PlanFlags,
): RowPlan {
  const succeeded = records.find((x) => x.state === "succeeded");
  const active = records.find((x) => ACTIVE_STATES.has(x.state) && x.requestId);
  const unknown = records.filter((x) => x.state === "submission_unknown" || x.state === "submitting");
  const latest = records[0];
  if (succeeded?.requestId) {
    const found = {
      requestId: succeeded.requestId,
      costUsd: succeeded.cost,
      outputUrl: succeeded.outputUrls[0],
      submittedAt: succeeded.submittedAt ? Date.parse(succeeded.submittedAt) : undefined,
    };
    if (outcome?.state === "done" && outcome.file && flags.fileIntact) {
      return { action: "done", ...found, file: outcome.file, sha256: outcome.sha256, bytes: outcome.bytes };
    }
    return { action: "download", ...found };
  }
  if (active?.requestId) {
    return {
      action: "reattach",
      requestId: active.requestId,
      localId: active.localId,
      submittedAt: active.submittedAt ? Date.parse(active.submittedAt) : undefined,
    };
  }
  if (unknown.length > 0) {
    return {
      action: flags.resubmitUnknown ? "resubmit" : "unknown",
      unknownLocalIds: unknown.map((x) => x.localId),
      unknownSince: unknown[unknown.length - 1]!.createdAt,
    };
  }
  if (latest && latest.state === "failed" && !flags.retryFailed) {
    return {
      action: "failed",
      requestId: latest.requestId,
      costUsd: latest.cost,
      error: {
        name: "JobFailedError",
        message: `the job failed in an earlier run${latest.jobError !== undefined ? `: ${describe(latest.jobError)}` : ""} (run with --retry-failed to submit it again)`,
        jobError: latest.jobError,
      },
      errorPhase: "wait",
    };
  }
  return { action: "submit" };
}

function describe(value: unknown): string {
  if (typeof value === "string") return value;
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}
