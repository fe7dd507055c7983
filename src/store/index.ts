// The job store's public face: the contract, how to open one, its values and errors. The
// backends' insides (SQL, migrations, redaction, statistics) stay behind it.

export { BatchLockedError, StoreError, type StoreErrorCode, UnrecordedSubmitError } from "./errors.js";
export { isSharedBatchStore, type JobStore, type SharedBatchStore } from "./job-store.js";
export { isPostgresUrl, type OpenJobStoreOptions, openJobStore } from "./open.js";
export { recoveryDirFor } from "./recovery.js";
export { SqliteJobStore, type SqliteJobStoreOptions } from "./sqlite/index.js";
export { JOURNAL_STATES, type JournalState } from "./states.js";
export { FINAL_STATES } from "./transitions.js";
export type {
  BatchInfo,
  BatchJobTimes,
  BatchJobTimesPage,
  BatchQueueProgress,
  BatchRowOutcome,
  BatchRowRecord,
  BatchRowState,
  BeginSubmitParams,
  ClaimedRow,
  FileParams,
  FileRecord,
  JobRecord,
  JobRecordDetail,
  JobStoreWrite,
  JoinBatchParams,
  ListParams,
  OpenBatchParams,
  QueueRow,
  RecoveredSubmit,
  RecoveryReport,
  RedactedDataUri,
  ResultObservation,
  RunTimePrior,
  SharedThrottle,
  StatusObservation,
  SubmitAcceptedParams,
  TimeInput,
  Transition,
} from "./types.js";
