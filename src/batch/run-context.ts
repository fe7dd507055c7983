// What one batch run shares between its phases and modules: the options, the store, the rows,
// the budget, the flags an interrupt or a full disk sets, and the few things every module does
// to a row (fail it, leave it for when there is space). Plain fields: each module takes the
// context as a parameter and reads or sets what it needs.

import { resolve } from "node:path";
import { isSharedBatchStore, type JobRecord, type JobStore } from "../store/index.js";
import type { BatchState } from "./batch-state.js";
import type { BatchEvent, Price, RunBatchOptions } from "./batch-types.js";
import { Budget } from "./budget.js";
import { diskFullRowError } from "./disk-full.js";
import { Downloads } from "./download-slots.js";
import { GroupCommit } from "./group-commit.js";
import { ImageCache } from "./input.js";
import type { Manifest, ManifestRow } from "./manifest.js";
import type { OutputFiles } from "./output-files.js";
import { errorInfo, newRowRun, type RowRun, releaseSettled } from "./row-run.js";
import { RunTimePriors } from "./run-time-prior.js";
import type { SharedBatch } from "./shared-batch.js";

export type ManifestInfo = Pick<Manifest, "path" | "digest" | "problems">;

export class BatchRunContext {
  readonly options: RunBatchOptions;
  readonly store: JobStore;
  readonly manifest: ManifestInfo | undefined;
  readonly rows: RowRun[];
  readonly budget: Budget;
  readonly startedAt = Date.now();
  /** As given (resolved) until the batch state is opened, then the real folder (symlinks resolved). */
  outDir: string;
  emit: (event: BatchEvent) => void = () => {};
  /** The batch in the store, once the plan has opened it. */
  batch: BatchState | undefined;
  /** Set when the store is shared (PostgreSQL) and this run is one of the batch's workers. */
  shared: SharedBatch | undefined;
  price: Price | undefined;
  /** The output directory's files: which this batch may replace. Set by the plan. */
  files: OutputFiles | undefined;
  /** Each distinct image checked once (while its file is unchanged), from validation to the last submit. */
  readonly images = new ImageCache();
  readonly commits: GroupCommit;
  readonly priors: RunTimePriors;
  readonly downloads: Downloads;
  /** Told each time this run settles a row (done or failed), after its events. */
  onRowSettled: ((r: RowRun) => void) | undefined;

  invalidLines = 0;
  /** Rows whose file is in the way; the batch refuses to start over them unless skipInvalid. */
  refusedRows = 0;
  /** Set by the first write into --out that failed for want of space. */
  diskFull: { path: string } | undefined;
  stopping = false;
  interrupted = false;
  budgetStopped = false;
  submitted = 0;
  reattached = 0;
  resubmitted: string[] = [];
  cancelledOnExit = 0;
  inFlightAtInterrupt = 0;

  constructor(rows: readonly ManifestRow[], manifest: ManifestInfo | undefined, options: RunBatchOptions) {
    this.options = options;
    const store = options.store ?? options.journal;
    if (!store) throw new TypeError("runBatch needs a job store (options.store)");
    this.store = store;
    this.manifest = manifest;
    this.outDir = resolve(options.outDir);
    // On a shared store the budget is the store's, for all the workers together (reserved with
    // each intent row); the local one only counts.
    this.budget = new Budget(isSharedBatchStore(store) ? undefined : options.budgetUsd);
    this.downloads = new Downloads(options.downloadConcurrency ?? Math.max(1, options.concurrency ?? 4));
    this.commits = new GroupCommit(store, (location) => this.noteDiskFull(location));
    this.priors = new RunTimePriors(store);
    this.rows = rows.map(newRowRun);
  }

  /** The batch's id in the store (the plan has opened it). */
  get batchId(): string {
    return this.batch!.batchId;
  }

  noteDiskFull(path: string): void {
    if (this.diskFull) return;
    this.diskFull = { path };
    const inFlight = this.rows.filter((r) => ["submitting", "queued", "running"].includes(r.phase)).length;
    this.emit({ type: "disk-full", path, inFlight });
  }

  /** A row left for the next run because the disk is full (its job may have run: then paid). */
  waitForSpace(r: RowRun): void {
    r.phase = "pending";
    r.notRunReason = "disk-full";
    r.error = diskFullRowError({ submitted: r.requestId !== undefined, finished: r.outputUrl !== undefined });
  }

  fail(r: RowRun, phase: "submit" | "wait" | "download", error: unknown): void {
    r.phase = "failed";
    r.error = errorInfo(error);
    r.errorPhase = phase;
    r.settledNow = true;
    releaseSettled(r);
    // A download failure is not recorded as the row's outcome: the next run fetches again. On a
    // shared batch it is (else the row would pass from worker to worker): a rerun reopens it.
    if ((phase !== "download" || this.shared) && this.batch) this.#recordFailed(r, r.error);
    this.emit({ type: "row-failed", row: r.ref, requestId: r.requestId, phase, error: r.error });
    this.onRowSettled?.(r);
  }

  /**
   * A shared batch's row that ended without a video in a way no worker should retry on its own
   * (a submit of unknown outcome, a job that failed): its outcome is recorded, so it leaves the
   * queue. The code says why to whoever reads it (another worker's report, a rerun).
   */
  settleShared(r: RowRun): void {
    if (!this.shared) return;
    const error = r.phase === "unknown" ? { ...r.error, code: "submission_unknown" } : r.error;
    this.#recordFailed(r, error ?? { name: "Error", message: "failed" });
  }

  /** The row's outcome "failed", committed with the next group. */
  #recordFailed(r: RowRun, error: unknown): void {
    this.commits.defer({
      kind: "batch_row",
      batchId: this.batchId,
      rowKey: r.row.key,
      outcome: {
        state: "failed",
        line: r.row.line,
        name: r.row.name,
        requestId: r.requestId,
        estimateUsd: r.estimateUsd,
        costUsd: r.costUsd,
        error,
      },
    });
  }

  /** The shared budget is spent (perhaps by another worker): this one submits no more. */
  sharedBudgetSpent(r: RowRun): void {
    if (this.budgetStopped) return;
    this.budgetStopped = true;
    this.emit({
      type: "budget-stop",
      limitUsd: this.options.budgetUsd ?? 0,
      committedUsd: this.budget.snapshot().committedUsd,
      nextEstimateUsd: r.estimateUsd,
      notSubmitted: this.rows.filter((x) => x.phase === "pending").length,
    });
  }

  /** Job records of this batch by row key, newest first. */
  async journalRecords(): Promise<Map<string, JobRecord[]>> {
    const records = await this.store.batchJobs(this.batchId);
    const out = new Map<string, JobRecord[]>();
    for (const rec of records) {
      if (!rec.rowKey) continue;
      const list = out.get(rec.rowKey) ?? [];
      list.push(rec);
      out.set(rec.rowKey, list);
    }
    return out;
  }
}
