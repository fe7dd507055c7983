// The job store's public face: the contract, how to open one, its values and errors. The
// backends' insides (SQL, migrations, redaction, statistics) stay behind it.

export { BatchLockedError, StoreError, type StoreErrorCode, UnrecordedSubmitError } from "./errors.js";
export type { JobStore } from "./job-store.js";
export { isPostgresUrl, type OpenJobStoreOptions, openJobStore } from "./open.js";
export { recoveryDirFor } from "./recovery.js";
export { SqliteJobStore, type SqliteJobStoreOptions } from "./sqlite/index.js";
export { JOURNAL_STATES, type JournalState } from "./states.js";
export { FINAL_STATES } from "./transitions.js";
export type {
  BatchInfo,
  BatchRowOutcome,
  BatchRowRecord,
  BatchRowState,
  BeginSubmitParams,
  FileParams,
  FileRecord,
  JobRecord,
  JobRecordDetail,
  JobStoreWrite,
  ListParams,
  OpenBatchParams,
  RecoveredSubmit,
  RecoveryReport,
  RedactedDataUri,
  ResultObservation,
  RunTimePrior,
  StatusObservation,
  SubmitAcceptedParams,
  TimeInput,
  Transition,
} from "./types.js";
