// The states a journaled job can be in, apart from the journal itself so that the CLI can
// list them in --help without loading SQLite.

/**
 * Where a request stands, as far as this journal knows.
 * - `submitting`: the intent row is written, the POST is (or was) in flight.
 * - `submission_unknown`: the POST may or may not have been accepted (and billed).
 * - `rejected`: the service definitely refused it (nothing was created).
 * - `submitted`, `in_queue`, `in_progress`: accepted, not finished.
 * - `completed`: the status endpoint said so; success or failure is only known from the result.
 * - `succeeded`, `failed`, `cancelled`: final.
 * - `abandoned`: a person decided an unknown submission is to be forgotten.
 */
export const JOURNAL_STATES = [
  "submitting",
  "submission_unknown",
  "rejected",
  "submitted",
  "in_queue",
  "in_progress",
  "completed",
  "succeeded",
  "failed",
  "cancelled",
  "abandoned",
] as const;

export type JournalState = (typeof JOURNAL_STATES)[number];
