// The values a job store takes and gives back, shared by every backend.

import type { JobStatusValue } from "../api/types.js";
import type { RunTimePrior } from "../run/schedule.js";
import type { JournalState } from "./states.js";

/** The polling schedule's own type: the store is where its numbers come from. */
export type { RunTimePrior };

/** Written in place of a `data:` URI: enough to recognise the image again, never its bytes. */
export interface RedactedDataUri {
  dataUri: true;
  mime: string;
  sha256: string;
  bytes: number;
}

export type TimeInput = Date | number | string;

export interface BeginSubmitParams {
  modelId: string;
  /** The model input exactly as it will be POSTed; stored with data URIs replaced. */
  input: unknown;
  baseUrl: string;
  batchId?: string | undefined;
  /** The batch row this request belongs to (its key in the batch file). */
  rowKey?: string | undefined;
  /**
   * Earlier submits of the same row whose outcome is unknown, given up (`abandoned`) in the same
   * transaction that writes the new intent row (`--resubmit-unknown`): if the intent row cannot
   * be written, they stay unknown. A row settled meanwhile is left as it is.
   */
  supersedes?: readonly number[] | undefined;
}

export interface SubmitAcceptedParams {
  requestId: string;
  statusUrl?: string | undefined;
  resultUrl?: string | undefined;
  cancelUrl?: string | undefined;
}

export interface StatusObservation {
  status: JobStatusValue;
  rawStatus?: string | undefined;
  queuePosition?: number | undefined;
  /** When it was observed; now by default. */
  at?: TimeInput | undefined;
}

export interface ResultObservation {
  status: JobStatusValue;
  rawStatus?: string | undefined;
  outputUrls?: string[] | undefined;
  error?: unknown;
  cost?: number | undefined;
  /** The service's own timestamps, verbatim (their format is undocumented). */
  createdAt?: string | undefined;
  finishedAt?: string | undefined;
  raw?: unknown;
  at?: TimeInput | undefined;
}

export interface FileRecord {
  path: string;
  url: string | undefined;
  bytes: number | undefined;
  sha256: string | undefined;
  at: string;
}

/** A downloaded file, as recorded for a request. */
export interface FileParams {
  path: string;
  url?: string | undefined;
  bytes?: number | undefined;
  sha256?: string | undefined;
}

export interface Transition {
  /** A JournalState, or the service status that caused it. */
  status: string;
  rawStatus: string | undefined;
  queuePosition: number | undefined;
  at: string;
}

export interface JobRecord {
  localId: number;
  requestId: string | undefined;
  modelId: string;
  baseUrl: string;
  batchId: string | undefined;
  rowKey: string | undefined;
  /**
   * The state to act on. A row still `submitting` whose process is gone (or that is older than
   * the grace period) is reported as `submission_unknown`: it may have been accepted.
   */
  state: JournalState;
  /** The state as stored, for diagnosis. */
  storedState: JournalState;
  rawStatus: string | undefined;
  /** The input as stored: data URIs replaced by {@link RedactedDataUri}. */
  input: unknown;
  inputDigest: string;
  prompt: string | undefined;
  frames: number | undefined;
  seed: number | undefined;
  statusUrl: string | undefined;
  resultUrl: string | undefined;
  cancelUrl: string | undefined;
  createdAt: string;
  submittedAt: string | undefined;
  startedAt: string | undefined;
  finishedAt: string | undefined;
  updatedAt: string;
  outputUrls: string[];
  cost: number | undefined;
  /** The service's job error (from the result), verbatim but redacted. */
  jobError: unknown;
  /** The last error this tool met for this request (submit refusal, poll failure...). */
  lastError: unknown;
  serviceCreatedAt: string | undefined;
  serviceFinishedAt: string | undefined;
  /** The process that wrote the intent row. */
  pid: number | undefined;
  host: string | undefined;
}

export interface JobRecordDetail extends JobRecord {
  transitions: Transition[];
  /** Every distinct queue position seen, in order. */
  queuePositions: number[];
  files: FileRecord[];
  result: unknown;
}

export interface ListParams {
  /** Default 50, at most 10,000; newest first. */
  limit?: number | undefined;
  /** Filters on the reported state (a dead `submitting` row is `submission_unknown`). */
  state?: JournalState | readonly JournalState[] | undefined;
  batchId?: string | undefined;
  /** Only rows created at or after this time. */
  since?: TimeInput | undefined;
}

/** One accepted submit that the store could not record when it happened (kept in a file). */
export interface RecoveredSubmit {
  kind: "submit_accepted";
  /** The store it belongs to (a path, or a URL without its password). */
  journal: string;
  localId: number;
  requestId: string;
  statusUrl?: string | undefined;
  resultUrl?: string | undefined;
  cancelUrl?: string | undefined;
  /** When the service's acceptance was seen (ISO 8601). */
  at: string;
  pid: number;
  host: string;
  /** Why the store could not take it. */
  error: string;
}

/** What a replay of the recovery files did. */
export interface RecoveryReport {
  /** Ids taken into the store now, with the row that got each. */
  replayed: RecoveredSubmit[];
  /** Ids that match no row awaiting them (the store was replaced?): kept, and warned about. */
  unmatched: (RecoveredSubmit & { file: string })[];
  /** Files that could not be read (being written, or torn): kept. */
  unreadable: string[];
}

// ---- batches ---------------------------------------------------------------------------------

/** A row's outcome as its batch records it (submission state itself lives in the jobs). */
export type BatchRowState = "done" | "failed";

/**
 * What a batch's report needs of one accepted request (one with a request id): its times as
 * this client recorded them, and its cost. Read a page at a time, so that a report of any
 * size never holds the batch's whole records.
 */
export interface BatchJobTimes {
  localId: number;
  requestId: string;
  createdAt: string;
  submittedAt: string | undefined;
  startedAt: string | undefined;
  finishedAt: string | undefined;
  cost: number | undefined;
}

/** A page of {@link JobStore.batchJobTimes}: local ids above `afterLocalId`, at most `limit`. */
export interface BatchJobTimesPage {
  afterLocalId?: number | undefined;
  /** Default 1,000; at most 10,000. */
  limit?: number | undefined;
}

export interface BatchRowRecord {
  rowKey: string;
  line: number | undefined;
  name: string | undefined;
  state: BatchRowState;
  requestId: string | undefined;
  estimateUsd: number | undefined;
  costUsd: number | undefined;
  file: string | undefined;
  bytes: number | undefined;
  sha256: string | undefined;
  error: unknown;
  updatedAt: string;
}

interface BatchRowCommon {
  line?: number | undefined;
  name?: string | undefined;
  estimateUsd?: number | undefined;
  costUsd?: number | undefined;
}

/** What {@link JobStore.recordBatchRow} writes (it replaces the row's earlier outcome). */
export type BatchRowOutcome =
  | (BatchRowCommon & {
      state: "done";
      requestId: string;
      /** The file's name inside the batch's output folder. */
      file: string;
      bytes: number;
      sha256: string;
    })
  | (BatchRowCommon & { state: "failed"; requestId?: string | undefined; error: unknown });

export interface OpenBatchParams {
  /** The output folder's real path (symlinks resolved): the batch's identity when no id is given. */
  outDir: string;
  /** The output folder's `device:inode`, when known: the same folder reached by another path. */
  outDevIno?: string | undefined;
  manifestPath?: string | undefined;
  manifestDigest?: string | undefined;
  /** This batch id (from the folder's marker file, or chosen): found, or created with it. */
  batchId?: string | undefined;
  /**
   * When there is no `batchId` (or no batch has it) and this is false, the newest batch with
   * the same `outDir` is taken up again. Set when `batchId` was chosen by the caller. Default false.
   */
  exactId?: boolean | undefined;
  /** Take the batch even if another live process holds its lease. Default false. */
  force?: boolean | undefined;
  /** Take no lease and create nothing (a dry run only reads). Default false. */
  readOnly?: boolean | undefined;
}

export interface BatchInfo {
  batchId: string;
  outDir: string;
  manifestPath: string | undefined;
  manifestDigest: string | undefined;
  createdAt: string;
  /** Whether this took up a batch that already existed. */
  resumed: boolean;
  /** Set when the manifest's content changed since the batch was last run. */
  previousDigest: string | undefined;
}

// ---- batched writes ---------------------------------------------------------------------------

/**
 * A write a crash may lose without harm (statuses, results, errors, files, row outcomes), to be
 * committed with others in one transaction by {@link JobStore.writeBatch}. The writes a crash must
 * never lose (the intent row, the request id) are never batched.
 */
export type JobStoreWrite =
  | { kind: "status"; requestId: string; observation: StatusObservation }
  | { kind: "result"; requestId: string; result: ResultObservation }
  | { kind: "error"; requestId: string; error: unknown }
  | { kind: "file"; requestId: string; file: FileParams }
  | { kind: "batch_row"; batchId: string; rowKey: string; outcome: BatchRowOutcome };

// ---- one batch, many workers (a store that can share a batch: PostgreSQL) ----------------------

export interface QueueRow {
  rowKey: string;
  line?: number | undefined;
  name?: string | undefined;
  /** The cost this row's submit reserves from the budget. */
  estimateUsd?: number | undefined;
  /** What a worker needs to run the row (its validated input, say): stored as JSON, no secrets. */
  payload?: unknown;
}

export interface ClaimedRow {
  rowKey: string;
  line: number | undefined;
  name: string | undefined;
  estimateUsd: number | undefined;
  payload: unknown;
  /** How many times a worker claimed it (1 the first time). */
  attempts: number;
  /**
   * The newest job of this row, if a worker (this one earlier, or a killed one) started one:
   * with a request id, follow it; `submission_unknown` (or `submitting` with a live owner
   * elsewhere), never submit again.
   */
  job: JobRecord | undefined;
}

export interface BatchQueueProgress {
  /** Rows by state: pending, claimed, done, failed. */
  states: Record<string, number>;
  /** Who holds or held the rows: `host:pid` → rows claimed now, done, failed. */
  workers: { host: string; pid: number; claimed: number; done: number; failed: number }[];
  budgetUsd: number | undefined;
  reservedUsd: number;
}

/** What the other workers of a batch reported about the service's rate limit. */
export interface SharedThrottle {
  /** How long every worker should still wait before sending, by the server's clock. */
  pauseMs: number;
  /** The lowest rate a worker settled on after a 429, if any. */
  rps: number | undefined;
  /** How long ago a worker last reported a 429 (a rate that old may be climbed back from). */
  ageMs: number;
}

export interface JoinBatchParams {
  /** The batch's id: every worker of the batch gives the same one. */
  batchId: string;
  /** This worker's output folder (real path); the first worker's is kept as the batch's. */
  outDir: string;
  manifestPath?: string | undefined;
  manifestDigest?: string | undefined;
}
