// The run layer: polling schedule, waiting, and one job end to end. Runtime-neutral
// (imports src/api and src/model only; fetch, timers and AbortSignal).
export {
  type CancelReport,
  PreflightError,
  type StopCancelOutcome,
  WaitAbortedError,
  WaitGaveUpError,
  WaitTimeoutError,
} from "./errors.js";
export { type RunJobHooks, type RunJobOptions, type RunJobResult, runJob } from "./run.js";
export {
  createPollSchedule,
  DEFAULT_SCHEDULE_TUNING,
  defaultPollSchedule,
  estimateRemainingMs,
  mulberry32,
  type PollObservation,
  type PollSchedule,
  type PollState,
  queueMsPerPosition,
  type RunTimePrior,
  runStartBracket,
  type ScheduleTuning,
} from "./schedule.js";
export { type JobUpdate, type PollErrorInfo, updates, type WaitOptions, wait } from "./wait.js";
