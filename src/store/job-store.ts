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
