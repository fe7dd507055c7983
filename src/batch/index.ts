// The batch SDK: run a manifest of image + prompt rows exactly once, resumably, with a shared
// rate limiter, a budget, and reports. Node only (journal, files, sharp for thumbnails).

export { type BatchInfo, BatchLockedError, type BatchRowRecord } from "../store/index.js";
export { BatchState, MARKER_FILE, type OpenBatchOptions } from "./batch-state.js";
export {
  type BatchCounts,
  type BatchEvent,
  type BatchRun,
  type BatchSummary,
  type ErrorInfo,
  FALLBACK_PRICE,
  type PlanAction,
  type Price,
  type RowRef,
  type RunBatchOptions,
} from "./batch-types.js";
export { Budget, type BudgetSnapshot } from "./budget.js";
export {
  deriveRowKey,
  MANIFEST_FIELDS,
  type Manifest,
  type ManifestProblem,
  type ManifestRow,
  type ProblemRow,
  parseManifest,
  readManifest,
} from "./manifest.js";
export { BatchProgress, formatDuration, formatUsd, plainLine } from "./progress.js";
export {
  type Clock,
  RateLimiter,
  type RateLimiterOptions,
  type RateLimiterStats,
  RateLimiterStoppedError,
  systemClock,
} from "./rate-limiter.js";
export {
  type BatchReport,
  type ReportRow,
  type ReportRowStatus,
  writeJsonReport,
} from "./report.js";
export {
  escapeHtml,
  makeThumbnails,
  renderHtml,
  writeHtmlReport,
} from "./report-html.js";
export { runBatch, sha256File } from "./runner.js";
export { type RowValidation, rowInput, validateRow, validateRows } from "./validate-rows.js";
