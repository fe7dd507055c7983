// The job store: the one record of every paid request (the journal) and of every batch, behind
// one contract, so that the SDK, the CLI, the batch and the studio never see SQL. SQLite is the
// embedded default (one file, one machine); PostgreSQL is the shared one (many workers, many
// machines). Every method is async so both fit; every backend passes the same contract tests
// (test/store/contract.ts).
//
// The guarantees every backend keeps:
// - `beginSubmit` is durable (committed) before it returns: the intent row exists before the POST.
// - `submitAccepted` never loses a request id: if it cannot be committed, the backend keeps it
//   somewhere durable and replays it later, and prints it meanwhile (it throws
//   UnrecordedSubmitError, the id in its message, only when even that fails).
// - A stored `submitting` row whose process is gone is reported as `submission_unknown`, and such a
//   row is never resubmitted silently by anyone.
// - States only move forward: a stale status seen by another process never takes a finished job
//   back to running; `rejected`, `succeeded`, `failed`, `cancelled` and `abandoned` are final.
// - Data URIs are stored as digest and size, never their bytes; secrets never reach storage.
// - A batch is leased to one live process at a time (BatchLockedError for the others).

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
  RunTimePrior,
  SharedThrottle,
  StatusObservation,
  SubmitAcceptedParams,
} from "./types.js";

export interface JobStore {
  /** Which backend. */
  readonly kind: "sqlite" | "postgres";
  /** Where it is, for messages: a file path, or a URL without its password. */
  readonly location: string;

  // ---- submits (never batched: each is committed before it returns) ----

  /**
   * Writes the intent row, durably, before the submit is sent (and gives up `supersedes` in the
   * same transaction). Returns its local id.
   */
  beginSubmit(params: BeginSubmitParams): Promise<number>;
  /** The service accepted the submit (also settles a `submission_unknown` row found later). */
  submitAccepted(localId: number, accepted: SubmitAcceptedParams): Promise<void>;
  /** The service definitely refused the submit: nothing was created, nothing billed. */
  submitRejected(localId: number, error: unknown): Promise<void>;
  /** The submit's outcome cannot be known: it may have been accepted and billed. */
  submitUnknown(localId: number, error: unknown): Promise<void>;
  /** A person decided an unknown submission will not be followed (nor resent by us). */
  markAbandoned(localId: number, reason?: string): Promise<void>;

  // ---- following a request ----

  /** A status seen for an accepted request; false when the request is not in this store. */
  recordStatus(requestId: string, observation: StatusObservation): Promise<boolean>;
  /** The result endpoint's answer; false when the request is not in this store. */
  recordResult(requestId: string, result: ResultObservation): Promise<boolean>;
  /** An error met while following the request (its state is left as it is). */
  recordError(requestId: string, error: unknown): Promise<boolean>;
  /** A file downloaded for the request. */
  recordFile(requestId: string, file: FileParams): Promise<boolean>;
  /**
   * Many writes in one transaction (one commit, one fsync): what a batch observes, grouped.
   * A write that does not apply (its request unknown here, its row settled meanwhile) is skipped
   * without failing the others; a failure of the storage itself (a full disk) throws and
   * commits none of them, so the caller can keep them for later.
   */
  writeBatch(writes: readonly JobStoreWrite[]): Promise<void>;

  // ---- reading ----

  /**
   * One request with its history. A string is a request id first, then (all digits) a local id;
   * a number is a local id.
   */
  get(id: string | number): Promise<JobRecordDetail | undefined>;
  /** Newest first (created time, then local id). */
  list(params?: ListParams): Promise<JobRecord[]>;
  /** Every request of a batch, newest first, with no limit (a batch may have more than `list`'s). */
  batchJobs(batchId: string): Promise<JobRecord[]>;
  /**
   * The times and cost of a batch's accepted requests, one page at a time, by local id
   * ascending (pass the last one's `localId` as `afterLocalId` for the next page; a page shorter
   * than `limit` is the last).
   */
  batchJobTimes(batchId: string, page?: BatchJobTimesPage): Promise<BatchJobTimes[]>;
  /** Rows whose submit may or may not have been accepted (never resubmitted silently). */
  unresolvedSubmissions(): Promise<JobRecord[]>;
  /**
   * How long this model takes to run, from the last `window` (default 50) succeeded jobs with
   * these frames (trimmed mean and standard deviation). Undefined when there is no history.
   */
  runTimePrior(modelId: string, frames?: number, window?: number): Promise<RunTimePrior | undefined>;

  // ---- request ids kept outside the store ----

  /** Takes in the request ids that had to be kept outside the store (idempotent). */
  replayRecovered(): Promise<RecoveryReport>;
  /** What the last replay did (at open, or before a later write), if one ran. */
  readonly lastRecovery: RecoveryReport | undefined;

  // ---- batches ----

  /**
   * Finds (by id, else by output folder) or creates a batch, and leases it to this process
   * (unless `readOnly`). Throws BatchLockedError when another live process holds the lease of
   * this batch or of any batch writing into the same folder (unless `force`).
   */
  openBatch(params: OpenBatchParams): Promise<BatchInfo>;
  /** Keeps this process's lease alive (called every 15 s while a batch runs). */
  renewBatchLease(batchId: string): Promise<void>;
  /** Gives the lease up, if this process holds it (other processes may take the batch). */
  releaseBatch(batchId: string): Promise<void>;
  /** Every row outcome recorded for the batch, by row key. */
  batchRows(batchId: string): Promise<Map<string, BatchRowRecord>>;
  /** Records a row's outcome (replacing an earlier one). */
  recordBatchRow(batchId: string, rowKey: string, outcome: BatchRowOutcome): Promise<void>;

  close(): Promise<void>;
}

/**
 * A store that lets many workers (processes, machines) run one batch together: rows are queued
 * once and claimed with leases, each row's intent row is written with the checks that keep it
 * exactly once across workers and with the budget's reservation, and a 429 seen by one worker is
 * shared with the others. PostgreSQL is one; SQLite (one machine, one process per batch) is not.
 */
export interface SharedBatchStore extends JobStore {
  /** How long a silent worker keeps its rows before another may take them over. */
  readonly leaseMs: number;
  /** Finds the batch by id or creates it (many workers starting at once create it once). */
  joinBatch(params: JoinBatchParams): Promise<BatchInfo>;
  /**
   * Queues rows (those already queued are left as they are); `budgetUsd` sets the batch's budget,
   * `reopen` puts rows settled as failed back in the queue.
   */
  enqueueRows(
    batchId: string,
    rows: readonly QueueRow[],
    budgetUsd?: number,
    options?: { reopen?: readonly string[] | undefined },
  ): Promise<void>;
  /** This worker, as the store names it in `batchProgress`. */
  readonly worker: { host: string; pid: number };
  /**
   * Up to `limit` rows leased to this worker: pending ones, or ones whose worker is gone; never
   * one of `exclude` (rows this worker cannot run).
   */
  claimRows(batchId: string, limit: number, exclude?: readonly string[]): Promise<ClaimedRow[]>;
  /**
   * The intent row of a claimed row, committed before the submit, in one transaction with the
   * checks (this worker holds the row; no earlier job of it is alive but those it supersedes)
   * and the budget reservation. Throws a StoreError with code `batch_row_not_held`,
   * `batch_row_submitted` or `budget_exceeded`; nothing is written then.
   */
  beginRowSubmit(
    params: BeginSubmitParams & {
      batchId: string;
      rowKey: string;
      supersedes?: readonly number[] | undefined;
    },
    estimateUsd?: number,
  ): Promise<number>;
  /** Puts a claimed row back in the queue (this worker stops before finishing it). */
  releaseRow(batchId: string, rowKey: string): Promise<void>;
  /** Rows by state and by worker, and the budget. */
  batchProgress(batchId: string): Promise<BatchQueueProgress>;
  /** A 429 seen by this worker: every worker of `scope` pauses and slows down. */
  reportThrottle(scope: string, throttle: { pauseMs: number; rps?: number | undefined }): Promise<void>;
  /** What the other workers of `scope` reported. */
  sharedThrottle(scope: string): Promise<SharedThrottle | undefined>;
}

/** Whether this store can share a batch among many workers. */
export function isSharedBatchStore(store: JobStore): store is SharedBatchStore {
  return typeof (store as Partial<SharedBatchStore>).claimRows === "function";
}
