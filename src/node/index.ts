// Node-only SDK: everything runtime-neutral, plus local images, auto-fit, the job store,
// resumable downloads, and the `Dreamina` object that ties them together. Named exports only:
// what is not listed here is internal. The runtime-neutral entry is re-exported whole (this
// entry is a superset of it, and each of its names is listed in its own index).

export { defaultJournalPath, dreaminaHome } from "../config/paths.js";
export { type ResolvedToken, resolveToken, tokenFileCandidates } from "../config/token-file.js";
export {
  checkFileTarget,
  checkOutput,
  claimOutput,
  DownloadError,
  type DownloadErrorCode,
  type DownloadOptions,
  type DownloadProgress,
  type DownloadResult,
  type DownloadTransport,
  download,
  fileNameFromUrl,
  fsError,
  isLocalFsError,
  isOutputClaim,
  lockOutputFile,
  MIN_FREE_BYTES,
  type OutputClaim,
  OutputError,
  type OutputErrorCode,
  type OutputOptions,
  type OutputTarget,
  recoveryOutputPath,
  sanitizeFileName,
} from "../download/download.js";
export { nodeFetch } from "../http/node-fetch.js";
export { type CheckedImage, type CheckImageOptions, checkImage } from "../image/check.js";
export { checkDecodes, type DecodeCheck, decodeViolation, MAX_DECODE_PIXELS } from "../image/decode-check.js";
export {
  dimensionsComply,
  type FitFormat,
  type FitOptions,
  type FitPlan,
  type FitResult,
  fitImage,
  ImageFitError,
  type ImageFitErrorCode,
  planFit,
} from "../image/fit.js";
export {
  checkImageContent,
  loadImageBytes,
  type PreparedInput,
  type PrepareInputOptions,
  type PrepareInputParams,
  prepareInput,
  toDataUri,
} from "../image/prepare-input.js";
export {
  describeSource,
  ImageProbeError,
  type ImageProbeErrorCode,
  type ProbeKind,
  type ProbeOptions,
  type ProbeResult,
  probeImage,
} from "../image/probe.js";
export * from "../index.js";
export {
  type BatchInfo,
  BatchLockedError,
  type BatchRowOutcome,
  type BatchRowRecord,
  type BatchRowState,
  type BeginSubmitParams,
  FINAL_STATES,
  type FileParams,
  type FileRecord,
  isPostgresUrl,
  JOURNAL_STATES,
  type JobRecord,
  type JobRecordDetail,
  type JobStore,
  type JobStoreWrite,
  type JournalState,
  type ListParams,
  type OpenBatchParams,
  type OpenJobStoreOptions,
  openJobStore,
  type RecoveredSubmit,
  type RecoveryReport,
  type RedactedDataUri,
  type ResultObservation,
  recoveryDirFor,
  SqliteJobStore,
  type SqliteJobStoreOptions,
  type StatusObservation,
  StoreError,
  type StoreErrorCode,
  type SubmitAcceptedParams,
  type TimeInput,
  type Transition,
  UnrecordedSubmitError,
} from "../store/index.js";
export {
  Dreamina,
  type DreaminaOptions,
  type RunVideoOptions,
  type VideoRequest,
  type VideoResult,
  type WaitVideoOptions,
} from "./dreamina.js";
