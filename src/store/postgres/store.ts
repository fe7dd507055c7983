// The job store on PostgreSQL: the same journal as the SQLite one (same states, same rules, same
// stored forms), shared by every worker that points at the same database, plus the queue that
// lets many workers run one batch together (batch-queue.ts).
//
// The intent row's commit waits for the WAL flush whatever the server's `synchronous_commit`
// says: it must survive a server crash once the POST has gone out.

import type pg from "pg";
import type { RunTimePrior } from "../../run/schedule.js";
import type { SharedBatchStore } from "../job-store.js";
import type { JournalState } from "../states.js";
import type {
  BatchInfo,
  BatchJobTimes,
  BatchJobTimesPage,
  BatchQueueProgress,
  BatchRowOutcome,
  BatchRowRecord,
  BeginSubmitParams,
  ClaimedRow,
  FileParams,
  JobRecord,
  JobRecordDetail,
  JobStoreWrite,
  JoinBatchParams,
  ListParams,
  OpenBatchParams,
  QueueRow,
  RecoveryReport,
  ResultObservation,
  SharedThrottle,
  StatusObservation,
  SubmitAcceptedParams,
} from "../types.js";
import {
  batchProgress,
  claimRows,
  enqueueRows,
  recordRowOutcome,
  releaseRow,
  rowIntent,
} from "./batch-queue.js";
import { batchRows, joinBatch, openBatch, releaseBatch, renewBatchLease } from "./batches.js";
import { toMillis } from "./codec.js";
import { batchJobs, batchJobTimes, getJob, listJobs, runTimePrior, unresolvedJobs } from "./reads.js";
import { RecoveryFolder } from "./recovered.js";
import type { Liveness } from "./rows.js";
import type { Session } from "./session.js";
import { readThrottle, reportThrottle } from "./throttle.js";
import * as writes from "./writes.js";

export interface PostgresStoreSettings {
  now: () => number;
  graceMs: number;
  warn: (message: string) => void;
  recoveryDir: string;
}

export class PostgresJobStore implements SharedBatchStore {
  readonly kind = "postgres" as const;
  readonly location: string;
  /** The connection and this worker's presence (for the import and the tests, in this folder). */
  readonly session: Session;
  readonly live: Liveness;
  readonly #now: () => number;
  readonly #recovery: RecoveryFolder;

  constructor(session: Session, settings: PostgresStoreSettings) {
    this.session = session;
    this.location = session.location;
    this.#now = settings.now;
    this.live = {
      now: settings.now,
      graceMs: settings.graceMs,
      leaseMs: session.leaseMs,
      workerId: session.workerId,
      host: session.host,
    };
    this.#recovery = new RecoveryFolder(settings.recoveryDir, this.location, settings.warn);
  }

  get #owner(): writes.Owner {
    return { workerId: this.session.workerId, host: this.session.host, pid: process.pid };
  }

  #lastRecovery: RecoveryReport | undefined;

  /** Takes in request ids an earlier run had to keep outside the store (idempotent). */
  async replayRecovered(): Promise<RecoveryReport> {
    this.#lastRecovery = await this.#recovery.replay((entry) =>
      this.session.tx((client) => writes.applyRecovered(client, entry, this.#now())),
    );
    return this.#lastRecovery;
  }

  /** At open: a replay only when ids wait on this machine (else `lastRecovery` stays unset). */
  async replayIfPending(): Promise<void> {
    if (this.#recovery.pending) await this.replayRecovered();
  }

  /** What the last replay did (at open, or before a later write), if one ran. */
  get lastRecovery(): RecoveryReport | undefined {
    return this.#lastRecovery;
  }

  async beginSubmit(params: BeginSubmitParams): Promise<number> {
    await this.#beforeWrite();
    await this.session.register();
    const write = (client: pg.PoolClient) => writes.insertIntent(client, this.#owner, params, this.#now());
    // Without earlier rows to give up, one statement: no transaction to open.
    const supersedes = (params as { supersedes?: readonly number[] }).supersedes;
    return supersedes?.length ? await this.session.tx(write) : await this.#one(write);
  }

  /**
   * When the store cannot be written (the server went away), the id goes to a recovery file on
   * this machine and is announced on stderr; the next write (or open) takes it in. Throws, the
   * id in the message, only when that file cannot be written either.
   */
  async submitAccepted(localId: number, accepted: SubmitAcceptedParams): Promise<void> {
    let lastError: unknown;
    for (const pause of [0, 250, 1000]) {
      if (pause) await new Promise((r) => setTimeout(r, pause));
      try {
        await this.#beforeWrite();
        await this.session.tx(
          (client) => writes.recordAccepted(client, localId, accepted, this.#now()),
          true,
        );
        return;
      } catch (error) {
        lastError = error;
        if ((error as { code?: string }).code !== "store_unavailable") break;
      }
    }
    // A caller's mistake (no such row, a row not awaiting its outcome) is not the storage's.
    if ((lastError as { code?: string }).code === "store_error") throw lastError;
    this.#recovery.keep(localId, accepted, lastError, this.#now());
  }

  async submitRejected(localId: number, error: unknown): Promise<void> {
    await this.#settle(localId, "rejected", error);
  }

  async submitUnknown(localId: number, error: unknown): Promise<void> {
    await this.#settle(localId, "submission_unknown", error);
  }

  async markAbandoned(localId: number, reason?: string): Promise<void> {
    await this.#settle(localId, "abandoned", reason === undefined ? undefined : { message: reason });
  }

  async #settle(localId: number, state: JournalState, error: unknown): Promise<void> {
    await this.#beforeWrite();
    await this.#one((client) => writes.settle(client, localId, state, error, this.#now()));
  }

  async recordStatus(requestId: string, observation: StatusObservation): Promise<boolean> {
    await this.#beforeWrite();
    const at = toMillis(observation.at, this.#now);
    return await this.#one((client) => writes.recordStatus(client, requestId, observation, at));
  }

  async recordResult(requestId: string, result: ResultObservation): Promise<boolean> {
    await this.#beforeWrite();
    const at = toMillis(result.at, this.#now);
    return await this.#one((client) => writes.recordResult(client, requestId, result, at));
  }

  async recordError(requestId: string, error: unknown): Promise<boolean> {
    await this.#beforeWrite();
    return await this.#one((client) => writes.recordError(client, requestId, error, this.#now()));
  }

  async recordFile(requestId: string, file: FileParams): Promise<boolean> {
    await this.#beforeWrite();
    return await this.#one((client) => writes.recordFile(client, requestId, file, this.#now()));
  }

  /**
   * Many writes in one transaction. A write that does not apply (its request unknown here) is
   * skipped; a failure of the storage throws and commits none of them.
   */
  async writeBatch(list: readonly JobStoreWrite[]): Promise<void> {
    if (list.length === 0) return;
    await this.#beforeWrite();
    const worker = { host: this.session.host, pid: process.pid };
    const encoded = list.map((w) => writes.encodeWrite(w, this.#now, worker));
    await this.#one((client) =>
      client.query("SELECT dreamina.apply_writes($1::jsonb)", [JSON.stringify(encoded)]),
    );
  }

  async get(id: string | number): Promise<JobRecordDetail | undefined> {
    return await getJob(this.session, this.live, id);
  }

  async list(params: ListParams = {}): Promise<JobRecord[]> {
    return await listJobs(this.session, this.live, params);
  }

  /** Every request of a batch, newest first, with no limit. */
  async batchJobs(batchId: string): Promise<JobRecord[]> {
    return await batchJobs(this.session, this.live, batchId);
  }

  async batchJobTimes(batchId: string, page?: BatchJobTimesPage): Promise<BatchJobTimes[]> {
    return await batchJobTimes(this.session, batchId, page);
  }

  async unresolvedSubmissions(): Promise<JobRecord[]> {
    return await unresolvedJobs(this.session, this.live);
  }

  async runTimePrior(modelId: string, frames?: number, window = 50): Promise<RunTimePrior | undefined> {
    return await runTimePrior(this.session, modelId, frames, window);
  }

  // ---- a batch run by one process at a time ----

  /** Finds (by id, else by folder) or creates a batch and leases it to this worker. */
  async openBatch(params: OpenBatchParams): Promise<BatchInfo> {
    return await openBatch(this.session, params, this.#now());
  }

  /** The heartbeat renews it too; this renews it now. */
  async renewBatchLease(batchId: string): Promise<void> {
    await renewBatchLease(this.session, batchId);
  }

  async releaseBatch(batchId: string): Promise<void> {
    await releaseBatch(this.session, batchId);
  }

  async batchRows(batchId: string): Promise<Map<string, BatchRowRecord>> {
    return await batchRows(this.session, batchId);
  }

  // ---- one batch, many workers ----

  get worker(): { host: string; pid: number } {
    return { host: this.session.host, pid: process.pid };
  }

  get leaseMs(): number {
    return this.session.leaseMs;
  }

  /** Finds a batch by id or creates it (many workers at once: created once). No lease. */
  async joinBatch(params: JoinBatchParams): Promise<BatchInfo> {
    return await joinBatch(this.session, params, this.#now());
  }

  /** Adds a batch's rows to its queue (idempotent: every worker may enqueue the same file). */
  async enqueueRows(
    batchId: string,
    rows: readonly QueueRow[],
    budgetUsd?: number,
    options: { reopen?: readonly string[] | undefined } = {},
  ): Promise<void> {
    await enqueueRows(this.session, batchId, rows, { budgetUsd, reopen: options.reopen, now: this.#now() });
  }

  /** Up to `limit` rows leased to this worker (pending ones, or ones whose worker is gone). */
  async claimRows(batchId: string, limit: number, exclude?: readonly string[]): Promise<ClaimedRow[]> {
    return await claimRows(this.session, this.live, batchId, limit, exclude);
  }

  /**
   * The intent row of a claimed batch row, in one transaction with the checks that this worker
   * still holds the row and no earlier job of it is alive, and with the budget reservation.
   * Throws `batch_row_not_held`, `batch_row_submitted` or `budget_exceeded` (nothing written).
   */
  async beginRowSubmit(
    params: BeginSubmitParams & {
      batchId: string;
      rowKey: string;
      /** Unknown earlier jobs of this row given up in the same transaction (on purpose only). */
      supersedes?: readonly number[] | undefined;
    },
    estimateUsd?: number,
  ): Promise<number> {
    await this.#beforeWrite();
    await this.session.register();
    return await rowIntent(this.session, params, estimateUsd, this.#now());
  }

  /** A row's outcome; ends its lease. A `done` row never turns `failed`. */
  async recordBatchRow(batchId: string, rowKey: string, outcome: BatchRowOutcome): Promise<void> {
    await this.#one((client) =>
      recordRowOutcome(
        client,
        { host: this.session.host, pid: process.pid },
        batchId,
        rowKey,
        outcome,
        this.#now(),
      ),
    );
  }

  /** Puts a claimed row back (this worker stops before finishing it). */
  async releaseRow(batchId: string, rowKey: string): Promise<void> {
    await releaseRow(this.session, batchId, rowKey);
  }

  /** Rows by state and by worker, and the budget: the batch's progress across workers. */
  async batchProgress(batchId: string): Promise<BatchQueueProgress> {
    return await batchProgress(this.session, batchId);
  }

  // ---- one rate limit for all workers ----

  /** A 429 seen by this worker: every worker of `scope` pauses for `pauseMs` and slows to `rps`. */
  async reportThrottle(
    scope: string,
    throttle: { pauseMs: number; rps?: number | undefined },
  ): Promise<void> {
    await reportThrottle(this.session, scope, throttle);
  }

  /** What the other workers reported: read before sending, now and then. */
  async sharedThrottle(scope: string): Promise<SharedThrottle | undefined> {
    return await readThrottle(this.session, scope);
  }

  async close(): Promise<void> {
    await this.session.close();
  }

  async #beforeWrite(): Promise<void> {
    if (this.#recovery.pending) await this.replayRecovered().catch(() => {});
  }

  /** A single-statement write: no transaction needed. */
  async #one<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.session.pool.connect();
    } catch (error) {
      throw this.session.error(error);
    }
    try {
      return await fn(client);
    } catch (error) {
      throw this.session.error(error);
    } finally {
      client.release();
    }
  }
}
