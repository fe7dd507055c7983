// One manifest row as this run sees it: where it is (its phase), what the plan decided, and
// what the run learned (request id, cost, file). Every module of the batch reads and writes it.

import type { RunTimeBracket } from "../run/run-time-samples.js";
import type { ErrorInfo, PlanAction, Problem, RowRef } from "./batch-types.js";
import type { ManifestRow } from "./manifest.js";
import type { ReportRowStatus } from "./report.js";

export type Phase =
  | "pending"
  | "submitting"
  | "queued"
  | "running"
  | "downloading"
  | "done"
  | "failed"
  | "unknown"
  | "invalid";

export interface RowRun {
  row: ManifestRow;
  ref: RowRef;
  /** Why the row is invalid (a model rule, or a file in the way). */
  problems: Problem[] | undefined;
  phase: Phase;
  action: PlanAction | undefined;
  estimateUsd: number;
  requestId: string | undefined;
  localId: number | undefined;
  costUsd: number | undefined;
  file: string | undefined;
  bytes: number | undefined;
  sha256: string | undefined;
  error: ErrorInfo | undefined;
  errorPhase: "submit" | "wait" | "download" | undefined;
  /** Set by an interrupt while the submit is on the wire: abort as soon as it settles. */
  abortAfterSubmit: boolean;
  controller: AbortController | undefined;
  outputUrl: string | undefined;
  submittedAt: number | undefined;
  downloadedAt: number | undefined;
  unknownLocalIds: number[];
  notRunReason: ReportRowStatus | undefined;
  lastStatusKey: string | undefined;
  /** When the run started and when it was last seen unfinished, as this run saw it. */
  runTime: RunTimeBracket;
  /** True when this run settled the row. */
  settledNow: boolean;
  /** Shared batch: another worker holds the row now (this one never puts it back in the queue). */
  heldElsewhere?: boolean | undefined;
}

export function newRowRun(row: ManifestRow): RowRun {
  return {
    row,
    ref: { line: row.line, key: row.key, name: row.name },
    problems: undefined,
    phase: "pending",
    action: undefined,
    estimateUsd: 0,
    requestId: undefined,
    localId: undefined,
    costUsd: undefined,
    file: undefined,
    bytes: undefined,
    sha256: undefined,
    error: undefined,
    errorPhase: undefined,
    abortAfterSubmit: false,
    controller: undefined,
    outputUrl: undefined,
    submittedAt: undefined,
    downloadedAt: undefined,
    unknownLocalIds: [],
    notRunReason: undefined,
    lastStatusKey: undefined,
    runTime: { startLo: undefined, startHi: undefined, lastPollAt: undefined },
    settledNow: false,
  };
}

/**
 * Drops what a settled row (done or failed) no longer needs: the URL it was fetched from and
 * the last status it showed. A long batch keeps every row to the end (for its report), so what
 * each keeps adds up.
 */
export function releaseSettled(r: RowRun): void {
  r.outputUrl = undefined;
  r.lastStatusKey = undefined;
}

export function errorInfo(error: unknown): ErrorInfo {
  if (error instanceof Error) {
    const e = error as Error & { jobError?: unknown; code?: unknown; status?: unknown };
    return {
      name: e.name,
      message: e.message,
      ...(e.jobError !== undefined ? { jobError: e.jobError } : {}),
      ...(typeof e.code === "string" ? { code: e.code } : {}),
      ...(typeof e.status === "number" ? { status: e.status } : {}),
    };
  }
  return { name: "Error", message: String(error) };
}
