// The SQLite job store: one file, one machine, the embedded default. The SQL lives in the files
// beside this one; this class is the JobStore contract over them: transactions, the request ids
// kept outside the file when it cannot take them, the batch tables made on first use.

import { randomUUID } from "node:crypto";
import { redactSecrets } from "../../api/redact.js";
import { StoreError, UnrecordedSubmitError } from "../errors.js";
import type { JobStore } from "../job-store.js";
import {
  hasRecoveredSubmits,
  recoveryDirFor,
  removeRecoveredFiles,
  writeRecoveredSubmit,
} from "../recovery.js";
import { redactText } from "../redact.js";
import type { JournalState } from "../states.js";
import type {
  BatchInfo,
  BatchJobTimes,
  BatchJobTimesPage,
  BatchRowOutcome,
  BatchRowRecord,
  BeginSubmitParams,
  FileParams,
  JobRecord,
  JobRecordDetail,
  JobStoreWrite,
  ListParams,
  OpenBatchParams,
  RecoveryReport,
  ResultObservation,
  RunTimePrior,
  StatusObservation,
  SubmitAcceptedParams,
} from "../types.js";
import * as batches from "./batches.js";
import { isStorageFailure, SqliteConnection, type SqliteConnectionOptions } from "./connection.js";
import * as jobs from "./jobs.js";
import { BATCH_MIGRATIONS, BATCH_MODULE, migrateModule } from "./migrations.js";
import * as queries from "./queries.js";
import { type AppliedRecovery, applyRecovered, recoveredEntry } from "./recovery.js";

export interface SqliteJobStoreOptions extends SqliteConnectionOptions {
  /**
   * Where the store says what must not go unseen (a request id it had to keep outside the
   * database). Default: a line on stderr, never silenced.
   */
  onWarning?: ((message: string) => void) | undefined;
}

function warnOnStderr(message: string): void {
  process.stderr.write(`warning: ${redactSecrets(message)}\n`);
}

export class SqliteJobStore implements JobStore {
  readonly kind = "sqlite" as const;
  readonly location: string;
  readonly #conn: SqliteConnection;
  /** `<path>.recovered`; undefined in memory. */
  readonly #recoveryDir: string | undefined;
  /** Ids were kept in the recovery folder by this process: the next write takes them in. */
  #recoveryPending = false;
  #lastRecovery: RecoveryReport | undefined;
  #batchTablesReady = false;
  readonly #warn: (message: string) => void;

  private constructor(conn: SqliteConnection, options: SqliteJobStoreOptions) {
    this.#conn = conn;
    this.location = conn.path;
    this.#recoveryDir = conn.path === ":memory:" ? undefined : recoveryDirFor(conn.path);
    this.#warn = options.onWarning ?? warnOnStderr;
  }

  /** Opens (creating folders and the file if needed), migrates, takes in kept request ids. */
  static open(path: string, options: SqliteJobStoreOptions = {}): SqliteJobStore {
    const store = new SqliteJobStore(SqliteConnection.open(path, options), options);
    store.#replayAtOpen();
    return store;
  }

  /** The file's settings that make the guarantees (WAL, synchronous=FULL, the busy timeout), for diagnosis. */
  settings(): ReturnType<SqliteConnection["settings"]> {
    return this.#conn.settings();
  }

  async close(): Promise<void> {
    this.#conn.close();
  }

  /**
   * `fn` in a BEGIN IMMEDIATE transaction (a savepoint when one is already open). Ids this
   * process had to keep in the recovery folder are taken in first, in the same transaction: the
   * status writes that follow an accepted submit then find its row.
   */
  #immediate<T>(fn: () => T): T {
    if (!this.#recoveryPending || this.#conn.inTransaction || !this.#recoveryDir)
      return this.#conn.immediate(fn);
    const dir = this.#recoveryDir;
    let applied: AppliedRecovery | undefined;
    const out = this.#conn.immediate(() => {
      applied = applyRecovered(this.#conn, dir);
      return fn();
    });
    if (applied) this.#finishReplay(applied);
    return out;
  }

  // ---- submits ----

  async beginSubmit(params: BeginSubmitParams): Promise<number> {
    // One transaction, one fsync: the row and its first transition are durable together.
    return this.#immediate(() => jobs.insertIntent(this.#conn, params));
  }

  /**
   * When the write fails for a reason of the storage (locked past the busy timeout, a full or
   * read-only disk), the id is kept in the recovery folder beside the file and announced through
   * `onWarning` (stderr), and this returns normally: the id is safe, the job goes on. Throws
   * UnrecordedSubmitError (the id in its message) only when that fails too.
   */
  async submitAccepted(localId: number, params: SubmitAcceptedParams): Promise<void> {
    try {
      this.#immediate(() => jobs.acceptSubmit(this.#conn, localId, params));
    } catch (error) {
      if (error instanceof StoreError) throw error; // a caller's mistake, not the storage's
      this.#keepAcceptedOutside(localId, params, error);
    }
  }

  #keepAcceptedOutside(localId: number, params: SubmitAcceptedParams, error: unknown): void {
    const reason = redactText(error instanceof Error ? error.message : String(error));
    const billed = `the service accepted request ${params.requestId} (it runs and is billed)`;
    let fileError: unknown = new Error("the journal is in memory");
    if (this.#recoveryDir) {
      try {
        const file = writeRecoveredSubmit(
          this.#recoveryDir,
          recoveredEntry(this.#conn, localId, params, reason),
        );
        this.#recoveryPending = true;
        this.#warn(
          `${billed}, but the journal ${this.location} could not record it (${reason}). The id is kept in ` +
            `${file} and goes into the journal the next time it can be written (\`dreamina jobs\` does it).`,
        );
        return;
      } catch (writeError) {
        fileError = writeError;
      }
    }
    const message =
      `${billed}, but it could not be recorded: the journal ${this.location} failed (${reason}) and so did ` +
      `the recovery folder ${this.#recoveryDir ?? "(none)"} (${fileError instanceof Error ? fileError.message : String(fileError)}). ` +
      `Note the id ${params.requestId}: \`dreamina wait ${params.requestId}\` fetches the video.`;
    this.#warn(message);
    throw new UnrecordedSubmitError(message, params.requestId, { cause: error });
  }

  async submitRejected(localId: number, error: unknown): Promise<void> {
    this.#settle(localId, "rejected", error);
  }

  async submitUnknown(localId: number, error: unknown): Promise<void> {
    this.#settle(localId, "submission_unknown", error);
  }

  async markAbandoned(localId: number, reason?: string): Promise<void> {
    this.#settle(localId, "abandoned", reason === undefined ? undefined : { message: reason });
  }

  #settle(localId: number, state: JournalState, error: unknown): void {
    this.#immediate(() => jobs.settleSubmit(this.#conn, localId, state, error));
  }

  // ---- following a request ----

  async recordStatus(requestId: string, observation: StatusObservation): Promise<boolean> {
    return this.#immediate(() => jobs.recordStatus(this.#conn, requestId, observation));
  }

  async recordResult(requestId: string, result: ResultObservation): Promise<boolean> {
    return this.#immediate(() => jobs.recordResult(this.#conn, requestId, result));
  }

  async recordError(requestId: string, error: unknown): Promise<boolean> {
    return this.#immediate(() => jobs.recordError(this.#conn, requestId, error));
  }

  async recordFile(requestId: string, file: FileParams): Promise<boolean> {
    return this.#immediate(() => jobs.recordFile(this.#conn, requestId, file));
  }

  async writeBatch(writes: readonly JobStoreWrite[]): Promise<void> {
    if (writes.length === 0) return;
    if (writes.some((w) => w.kind === "batch_row")) this.#ensureBatchTables();
    this.#immediate(() => {
      for (const write of writes) {
        try {
          // Each write in its own savepoint: one that fails is undone alone.
          this.#conn.immediate(() => this.#apply(write));
        } catch (error) {
          if (isStorageFailure(error)) throw error;
          // One bad write (a row settled meanwhile by another tool) must not lose the others.
        }
      }
    });
  }

  #apply(write: JobStoreWrite): void {
    const conn = this.#conn;
    switch (write.kind) {
      case "status":
        jobs.recordStatus(conn, write.requestId, write.observation);
        return;
      case "result":
        jobs.recordResult(conn, write.requestId, write.result);
        return;
      case "error":
        jobs.recordError(conn, write.requestId, write.error);
        return;
      case "file":
        jobs.recordFile(conn, write.requestId, write.file);
        return;
      case "batch_row":
        batches.upsertBatchRow(conn, write.batchId, write.rowKey, write.outcome);
        return;
    }
  }

  // ---- reading ----

  async get(id: string | number): Promise<JobRecordDetail | undefined> {
    return queries.getJob(this.#conn, id);
  }

  async list(params: ListParams = {}): Promise<JobRecord[]> {
    return queries.listJobs(this.#conn, params);
  }

  async batchJobs(batchId: string): Promise<JobRecord[]> {
    return queries.batchJobs(this.#conn, batchId);
  }

  async batchJobTimes(batchId: string, page?: BatchJobTimesPage): Promise<BatchJobTimes[]> {
    return queries.batchJobTimes(this.#conn, batchId, page);
  }

  async unresolvedSubmissions(): Promise<JobRecord[]> {
    return queries.unresolvedSubmissions(this.#conn);
  }

  async runTimePrior(modelId: string, frames?: number, window?: number): Promise<RunTimePrior | undefined> {
    return queries.runTimePrior(this.#conn, modelId, frames, window);
  }

  // ---- request ids kept outside ----

  /**
   * Takes the ids kept in the recovery folder into the file (idempotent: an id already recorded
   * is simply dropped), then removes their files, only after the commit. Throws if the file
   * cannot be written (the files stay for next time).
   */
  async replayRecovered(): Promise<RecoveryReport> {
    return this.#replay();
  }

  #replay(): RecoveryReport {
    const dir = this.#recoveryDir;
    if (!dir) return { replayed: [], unmatched: [], unreadable: [] };
    const applied = this.#conn.immediate(() => applyRecovered(this.#conn, dir));
    this.#finishReplay(applied);
    return this.#lastRecovery!;
  }

  get lastRecovery(): RecoveryReport | undefined {
    return this.#lastRecovery;
  }

  #replayAtOpen(): void {
    const dir = this.#recoveryDir;
    if (!dir || !hasRecoveredSubmits(dir)) return;
    try {
      this.#replay();
    } catch (error) {
      this.#recoveryPending = true;
      this.#warn(
        `request ids kept in ${dir} could not be taken into the journal yet ` +
          `(${error instanceof Error ? error.message : String(error)}); they stay there and are tried again`,
      );
    }
  }

  /** After the commit: remove what is in the file now, and say what could not be matched. */
  #finishReplay(applied: AppliedRecovery): void {
    removeRecoveredFiles(applied.committed);
    this.#recoveryPending = false;
    this.#lastRecovery = {
      replayed: applied.replayed,
      unmatched: applied.unmatched,
      unreadable: applied.unreadable,
    };
    for (const u of applied.unmatched) {
      this.#warn(
        `request ${u.requestId} (accepted ${u.at}) is kept in ${u.file} but matches no journal row awaiting ` +
          `it (local id ${u.localId}); it was not lost: \`dreamina wait ${u.requestId}\` fetches it. Remove the file once done.`,
      );
    }
  }

  // ---- batches ----

  /** The batch tables, made on first use (a store only ever listed never needs them). */
  #ensureBatchTables(): void {
    if (this.#batchTablesReady) return;
    migrateModule(this.#conn.db, BATCH_MODULE, BATCH_MIGRATIONS);
    this.#batchTablesReady = true;
  }

  async openBatch(params: OpenBatchParams): Promise<BatchInfo> {
    this.#ensureBatchTables();
    return this.#immediate(() => batches.openBatch(this.#conn, params, () => `b-${randomUUID()}`));
  }

  async renewBatchLease(batchId: string): Promise<void> {
    this.#ensureBatchTables();
    batches.renewLease(this.#conn, batchId);
  }

  async releaseBatch(batchId: string): Promise<void> {
    if (!this.#conn.open) return;
    this.#ensureBatchTables();
    batches.releaseLease(this.#conn, batchId);
  }

  async batchRows(batchId: string): Promise<Map<string, BatchRowRecord>> {
    this.#ensureBatchTables();
    return batches.batchRows(this.#conn, batchId);
  }

  async recordBatchRow(batchId: string, rowKey: string, outcome: BatchRowOutcome): Promise<void> {
    this.#ensureBatchTables();
    this.#immediate(() => batches.upsertBatchRow(this.#conn, batchId, rowKey, outcome));
  }
}
