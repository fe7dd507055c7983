// The batch's public types: its options, the events it yields, its counts and its summary.

import type { RunComfyClient } from "../api/client.js";
import type { PollSchedule } from "../run/schedule.js";
import type { JobStore } from "../store/index.js";
import type { Manifest } from "./manifest.js";
import type { RateLimiter, RateLimiterStats } from "./rate-limiter.js";

/**
 * Used when the models endpoint cannot be read: the sandbox's (and, at the time of writing,
 * the service's published) price for this model, US$ 0.12 per second of video.
 */
export const FALLBACK_PRICE = { basePriceUsd: 0.12, priceUnit: "second" } as const;

export interface Price {
  basePriceUsd: number;
  priceUnit: string;
  source: "service" | "default" | "given";
  /** Why the fallback was used. */
  note?: string | undefined;
}

export interface RunBatchOptions {
  client: RunComfyClient;
  /** The job store (the journal): every submit, status, result and row outcome goes there. */
  store?: JobStore | undefined;
  /** The former name of `store`, still accepted. */
  journal?: JobStore | undefined;
  /** Where videos and reports go (created if needed). Also identifies the batch. */
  outDir: string;
  /**
   * On a shared store (PostgreSQL): the batch's id, the same for every worker that should run it
   * together. Default: the one in `outDir`'s marker file, else one derived from the rows.
   */
  batchId?: string | undefined;
  /** Jobs in flight at most (submitted and not finished). Default 4. */
  concurrency?: number | undefined;
  /** US dollars: no submit that would take the committed total above this. */
  budgetUsd?: number | undefined;
  dryRun?: boolean | undefined;
  skipInvalid?: boolean | undefined;
  /** Submit again rows whose earlier submit outcome is unknown (they may be billed twice). */
  resubmitUnknown?: boolean | undefined;
  /** Submit again rows whose job failed on the service in an earlier run. */
  retryFailed?: boolean | undefined;
  /**
   * Overwrite files in the output directory that this batch did not write. Without it, a row
   * whose file exists is refused before it is submitted (like an invalid row), and the video of
   * a job that already ran goes beside such a file, under a free name.
   */
  force?: boolean | undefined;
  /** On abort, cancel jobs still queued (running jobs cannot be stopped). */
  cancelQueuedOnExit?: boolean | undefined;
  /** Interrupt: stop submitting, stop waiting, leave a resumable state. */
  signal?: AbortSignal | undefined;
  /** The limiter plugged into the client's hooks, for its statistics. */
  rateLimiter?: RateLimiter | undefined;
  /** Images probed at once during validation. Default 16. */
  validateConcurrency?: number | undefined;
  /** Downloads at once. Default: concurrency. */
  downloadConcurrency?: number | undefined;
  /** A time-scaled sandbox runs this many times faster: the poll schedule follows. */
  timeScale?: number | undefined;
  pollSchedule?: PollSchedule | undefined;
  /** Skip the models call. */
  price?: { basePriceUsd: number; priceUnit: string } | undefined;
  /** Write report.json / report.html. Default true (not on a dry run). */
  report?: boolean | undefined;
  /** Thumbnails in report.html. Default true. */
  thumbnails?: boolean | undefined;
  /** Manifest identity and parse problems when `rows` is a plain array. */
  manifest?: Pick<Manifest, "path" | "digest" | "problems"> | undefined;
  /** Give up waiting for one job after this long (it is left alone, the row fails). */
  waitTimeoutMs?: number | undefined;
}

export interface RowRef {
  line: number;
  key: string;
  name: string;
}

export interface Problem {
  field?: string | undefined;
  rule?: string | undefined;
  /** The rule's limit and the value that broke it, when the rule has them (e.g. 320 and 300 px). */
  limit?: unknown;
  actual?: unknown;
  message: string;
}

export type BatchEvent =
  | { type: "validation-start"; total: number }
  | { type: "row-validated"; row: RowRef; warnings: Problem[] }
  | { type: "row-invalid"; line: number; row: RowRef | undefined; problems: Problem[] }
  | { type: "validated"; valid: number; invalid: number; durationMs: number }
  | { type: "price"; price: Price }
  | {
      type: "plan";
      batchId: string;
      resumed: boolean;
      manifestChanged: boolean;
      toSubmit: number;
      toReattach: number;
      toDownload: number;
      alreadyDone: number;
      unknown: number;
      failedBefore: number;
      estimatedUsd: number;
      rows: { row: RowRef; action: PlanAction; estimateUsd: number }[];
    }
  | { type: "row-skipped"; row: RowRef; reason: "done" }
  | { type: "row-unknown"; row: RowRef; localIds: number[]; since: string; resubmitting: boolean }
  | { type: "submitted"; row: RowRef; requestId: string }
  | { type: "reattached"; row: RowRef; requestId: string }
  | { type: "status"; row: RowRef; requestId: string; status: string; queuePosition: number | undefined }
  | {
      type: "downloaded";
      row: RowRef;
      requestId: string;
      path: string;
      bytes: number;
      sha256: string;
      resumed: boolean;
    }
  | {
      type: "row-done";
      row: RowRef;
      requestId: string;
      costUsd: number | undefined;
      file: string;
      sha256: string;
      /** Set when the video could not go under the row's own name (a file was in the way). */
      note?: string | undefined;
    }
  | {
      type: "row-failed";
      row: RowRef;
      requestId: string | undefined;
      phase: "submit" | "wait" | "download";
      error: ErrorInfo;
    }
  | {
      type: "budget-stop";
      limitUsd: number;
      committedUsd: number;
      nextEstimateUsd: number;
      notSubmitted: number;
    }
  | { type: "interrupted"; inFlight: number; cancelled: number }
  /** The disk under --out is full (first seen writing `path`): no more submits. */
  | { type: "disk-full"; path: string; inFlight: number }
  | { type: "report"; json: string; html: string | undefined }
  | { type: "summary"; summary: BatchSummary };

export type PlanAction = "submit" | "reattach" | "download" | "done" | "unknown" | "resubmit" | "failed";

export interface ErrorInfo {
  name: string;
  message: string;
  /** The service's job error, verbatim, when the job itself failed. */
  jobError?: unknown;
  code?: string | undefined;
  status?: number | undefined;
}

export interface BatchCounts {
  total: number;
  invalid: number;
  /** Waiting for a slot (or stopped by the budget / an interrupt before submitting). */
  pending: number;
  queued: number;
  running: number;
  downloading: number;
  done: number;
  failed: number;
  unknown: number;
  /** Done in an earlier run. */
  skipped: number;
  spentUsd: number;
  committedUsd: number;
  startedAtMs: number;
  /** Rows settled (done or failed) by this run: the throughput's numerator. */
  finishedThisRun: number;
}

export interface BatchSummary {
  batchId: string | undefined;
  outDir: string;
  dryRun: boolean;
  rows: number;
  valid: number;
  invalid: number;
  done: number;
  failed: number;
  unknown: number;
  notRun: number;
  alreadyDone: number;
  submitted: number;
  reattached: number;
  resubmitted: string[];
  estimatedUsd: number;
  costUsd: number;
  spentUsd: number;
  budget: { limitUsd: number | undefined; stopped: boolean; committedUsd: number };
  price: Price | undefined;
  interrupted: boolean;
  durationMs: number;
  rateLimiter: RateLimiterStats | undefined;
  report: { json: string; html: string | undefined } | undefined;
  /** Why report.json could not be written (report is then undefined). */
  reportError: string | undefined;
  /** Set when the disk under --out filled up: what happened and what to do, in one message. */
  diskFull: { path: string; message: string } | undefined;
  /** 0 all rows done; 1 some not; 65 invalid manifest (or a file in the way); 75 disk full; 130 interrupted. */
  exitCode: number;
  failures: { line: number; key: string; name: string; requestId: string | undefined; error: ErrorInfo }[];
  unknownRows: { line: number; key: string; name: string; localIds: number[] }[];
}

export interface BatchRun extends AsyncIterable<BatchEvent> {
  counts(): BatchCounts;
  /** The summary, once the run has ended. */
  readonly summary: Promise<BatchSummary>;
}
