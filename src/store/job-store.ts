// The job store: the one record of every paid request (the journal) and of every batch, behind
// one contract, so that the SDK, the CLI, the batch and the studio never see SQL. SQLite is the
// embedded default (one file, one machine); PostgreSQL is the shared one (many workers, many
// machines). Every method is async so both fit; every backend passes the same contract tests.
//
// The guarantees every backend keeps:
// - `beginSubmit` is durable (committed) before it returns: the intent row exists before the POST.
// - `submitAccepted` never loses a request id: if it cannot be committed, the backend keeps it
//   somewhere durable and replays it later, and prints it meanwhile.
// - A stored `submitting` row whose process is gone is reported as `submission_unknown`, and such a
//   row is never resubmitted silently by anyone.
// - Data URIs are stored as digest and size, never their bytes; secrets never reach storage.

import type { RunTimePrior } from "../run/schedule.js";
import type {
  BeginSubmitParams,
  FileRecord,
  JournalRecord,
  JournalRecordDetail,
  ListParams,
  ResultObservation,
  StatusObservation,
  SubmitAcceptedParams,
} from "./journal.js";

export type {
  BeginSubmitParams,
  FileRecord,
  JournalRecord as JobRecord,
  JournalRecordDetail as JobRecordDetail,
  ListParams,
  ResultObservation,
  StatusObservation,
  SubmitAcceptedParams,
};

/** A downloaded file, as recorded for a request. */
export type FileParams = Omit<FileRecord, "at" | "url" | "bytes" | "sha256"> &
  Partial<Pick<FileRecord, "url" | "bytes" | "sha256">>;

export interface JobStore {
  /** Which backend. */
  readonly kind: "sqlite" | "postgres";
  /** Where it is, for messages: a file path, or a URL without its password. */
  readonly location: string;

  /** Writes the intent row, durably, before the submit is sent. Returns its local id. */
  beginSubmit(params: BeginSubmitParams): Promise<number>;
  /** The service accepted the submit (also settles a `submission_unknown` row found later). */
  submitAccepted(localId: number, accepted: SubmitAcceptedParams): Promise<void>;
  /** The service definitely refused the submit: nothing was created, nothing billed. */
  submitRejected(localId: number, error: unknown): Promise<void>;
  /** The submit's outcome cannot be known: it may have been accepted and billed. */
  submitUnknown(localId: number, error: unknown): Promise<void>;
  /** A person decided an unknown submission will not be followed (nor resent by us). */
  markAbandoned(localId: number, reason?: string): Promise<void>;

  /** A status seen for an accepted request; false when the request is not in this store. */
  recordStatus(requestId: string, observation: StatusObservation): Promise<boolean>;
  /** The result endpoint's answer; false when the request is not in this store. */
  recordResult(requestId: string, result: ResultObservation): Promise<boolean>;
  /** An error met while following the request (its state is left as it is). */
  recordError(requestId: string, error: unknown): Promise<boolean>;
  /** A file downloaded for the request. */
  recordFile(requestId: string, file: FileParams): Promise<boolean>;

  /** One request with its history, by request id or local id. */
  get(id: string | number): Promise<JournalRecordDetail | undefined>;
  /** Newest first. */
  list(params?: ListParams): Promise<JournalRecord[]>;
  /** Rows whose submit may or may not have been accepted (never resubmitted silently). */
  unresolvedSubmissions(): Promise<JournalRecord[]>;
  /** How long this model takes to run, from past jobs (for the polling schedule). */
  runTimePrior(modelId: string, frames?: number): Promise<RunTimePrior | undefined>;

  close(): Promise<void>;
}
