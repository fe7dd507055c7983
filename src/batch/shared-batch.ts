// A batch on a shared store (PostgreSQL), as one of its workers sees it: which batch every worker
// joins, the rows it queues (and puts back in the queue on a rerun), what it does with a row it
// claims given the job a previous holder left, how its intent row is written, and what the other
// workers settled by the end. Its plan and run phase are shared-run.ts, the claim loop
// shared-queue.ts; the rest of the run (submit and wait, downloads, reports) is the same as on
// SQLite.

import { AbortError } from "../api/errors.js";
import type { BatchRowRecord, JobRecord, SharedBatchStore } from "../store/index.js";
import type { BeginSubmitParams } from "../store/types.js";
import { BatchState, type JoinBatchOptions } from "./batch-state.js";
import { planRow } from "./plan.js";
import type { RateLimiter } from "./rate-limiter.js";
import { linkSharedThrottle, type SharedThrottleLink } from "./shared-throttle.js";

/** The intent row could not be written: nothing was sent (the submit is abandoned, not failed). */
export class RowNotSubmittedError extends AbortError {
  readonly notSent = true;
  /** `budget_exceeded`: the batch's budget is spent; `batch_row_not_held`: another worker has the row now; `batch_row_submitted`: a job of the row exists already. */
  readonly reason: "budget_exceeded" | "batch_row_not_held" | "batch_row_submitted";
  constructor(reason: RowNotSubmittedError["reason"], message: string, cause: unknown) {
    super(message, { cause });
    this.reason = reason;
  }
}

export interface QueuedRow {
  key: string;
  line: number;
  name: string;
  estimateUsd: number;
}

export class SharedBatch {
  readonly store: SharedBatchStore;
  readonly state: BatchState;
  #throttle: SharedThrottleLink | undefined;

  private constructor(store: SharedBatchStore, state: BatchState) {
    this.store = store;
    this.state = state;
  }

  get batchId(): string {
    return this.state.batchId;
  }

  /** Joins (or creates) the batch every worker with these rows (or this `--out`, or `--batch`) joins. */
  static async join(store: SharedBatchStore, options: JoinBatchOptions): Promise<SharedBatch> {
    return new SharedBatch(store, await BatchState.join(store, options));
  }

  /**
   * Queues the rows (idempotent: every worker queues the same ones) and puts back in the queue
   * the rows settled as failed that this run should try again, as a rerun on SQLite would: a
   * video never fetched, a submit refused or cancelled while queued; a job that failed on the
   * service only with `retryFailed`, one whose outcome is unknown only with `resubmitUnknown`.
   * Returns the rows' recorded outcomes as they were before.
   */
  async enqueue(
    rows: readonly QueuedRow[],
    options: {
      budgetUsd?: number | undefined;
      resubmitUnknown?: boolean | undefined;
      retryFailed?: boolean | undefined;
    },
  ): Promise<Map<string, BatchRowRecord>> {
    const outcomes = this.state.info.resumed ? await this.store.batchRows(this.batchId) : new Map();
    const reopen: string[] = [];
    if ([...outcomes.values()].some((o) => o.state === "failed")) {
      const jobs = new Map<string, JobRecord[]>();
      for (const job of await this.store.batchJobs(this.batchId)) {
        if (job.rowKey) jobs.set(job.rowKey, [...(jobs.get(job.rowKey) ?? []), job]);
      }
      const flags = {
        resubmitUnknown: Boolean(options.resubmitUnknown),
        retryFailed: Boolean(options.retryFailed),
        fileIntact: false,
      };
      for (const row of rows) {
        if (outcomes.get(row.key)?.state !== "failed") continue;
        // Left settled only where a rerun on SQLite would leave it: unknown, or failed on the service.
        const { action } = planRow(jobs.get(row.key) ?? [], undefined, flags);
        if (action !== "unknown" && action !== "failed") reopen.push(row.key);
      }
    }
    await this.store.enqueueRows(
      this.batchId,
      rows.map((r) => ({ rowKey: r.key, line: r.line, name: r.name, estimateUsd: r.estimateUsd })),
      options.budgetUsd,
      { reopen },
    );
    for (const key of reopen) outcomes.delete(key);
    return outcomes;
  }

  /**
   * The intent row of a claimed row: refused, with nothing written and nothing sent, when the
   * budget is spent, another worker holds the row now, or a job of it exists already.
   */
  async intent(
    params: BeginSubmitParams & { rowKey: string; supersedes?: readonly number[] | undefined },
    estimateUsd: number,
  ): Promise<number> {
    try {
      return await this.store.beginRowSubmit({ ...params, batchId: this.batchId }, estimateUsd);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (code === "budget_exceeded" || code === "batch_row_not_held" || code === "batch_row_submitted") {
        throw new RowNotSubmittedError(code, (error as Error).message, error);
      }
      throw error;
    }
  }

  /** Puts a row this worker claimed but did not finish back in the queue. */
  async release(rowKey: string): Promise<void> {
    await this.store.releaseRow(this.batchId, rowKey);
  }

  /** Every row's recorded outcome: what all the workers settled. */
  async outcomes(): Promise<Map<string, BatchRowRecord>> {
    return await this.store.batchRows(this.batchId);
  }

  /** One rate limit for all the workers of this batch, until `close`. */
  shareRateLimit(limiter: RateLimiter | undefined): void {
    if (!limiter || this.#throttle) return;
    this.#throttle = linkSharedThrottle(limiter, this.store, `batch:${this.batchId}`);
  }

  close(): void {
    this.#throttle?.stop();
    this.#throttle = undefined;
  }
}
