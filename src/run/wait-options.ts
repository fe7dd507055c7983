// What a wait takes and reports: its options and the updates it yields. Types only, in a file
// of their own so that the poller, the cancel path and the public entry share one definition.
// Defaults are applied where they are used (poll-job.ts, cancel-if-queued.ts), as documented below.

import type { RunComfyError } from "../api/errors.js";
import type { JobResult, JobStatusValue } from "../api/types.js";
import type { PollSchedule, RunTimePrior } from "./schedule.js";

export interface JobUpdate {
  requestId: string;
  /** Normalized status; after the result was read, the result's (`succeeded`, `failed`, `cancelled`). */
  status: JobStatusValue;
  /** The status text exactly as the service sent it. */
  rawStatus: string;
  /** Only while `in_queue`, when the service sent it. */
  queuePosition?: number | undefined;
  /** When this was learnt, ms since the epoch. */
  at: number;
  /** Since submit (`submittedAt`, else since the wait began), ms. */
  elapsedMs: number;
  /** A rough estimate of the time left, when there is something to base it on (a prior, a queue position). */
  expectedRemainingMs?: number | undefined;
  /** Polls (status requests, and result requests with `pollResultWhileRunning`) so far, failed ones included. */
  pollCount: number;
  /** On the last update only: the result that settled the job (any terminal status). */
  result?: JobResult | undefined;
}

/** Where a spell of failing polls stands, for whoever reports it. */
export interface PollErrorInfo {
  /** Since the first failure of this spell (no poll answered since), ms. */
  failingForMs: number;
  /** Left before the wait gives up (`giveUpAfterMs`), ms; undefined when it never does. */
  giveUpInMs: number | undefined;
}

export interface WaitOptions {
  /** Stops waiting at once (also mid-sleep); see `cancelOnAbort`. */
  signal?: AbortSignal | undefined;
  /** Overall deadline for the wait, ms from when it starts; throws WaitTimeoutError (a TimeoutError). */
  timeoutMs?: number | undefined;
  /** Called (and awaited) for every status seen and for the final result. */
  onUpdate?: ((update: JobUpdate) => void | Promise<void>) | undefined;
  /** Called when a status or result request failed with a retryable error and polling goes on. */
  onPollError?: ((error: RunComfyError, consecutiveErrors: number, info: PollErrorInfo) => void) | undefined;
  /**
   * Stop when every poll has failed (5xx, 429, connection refused or reset, timeouts) for this
   * long, ms, with no answer in between: throws WaitGaveUpError (the job is left alone). Default:
   * never; polling goes on, bounded by `timeoutMs` only.
   */
  giveUpAfterMs?: number | undefined;
  /** When to poll; `defaultPollSchedule` unless given. */
  pollSchedule?: PollSchedule | undefined;
  /**
   * Run-time prior of this model and frame count (from the journal), for a sparser, better-aimed
   * schedule. A function is asked again before every poll, so a wait that began without a prior
   * (the first jobs of a batch) uses one as soon as it exists.
   */
  prior?: RunTimePrior | (() => RunTimePrior | undefined) | undefined;
  /**
   * Once the job is seen running, poll the result instead of the status: the result answers
   * with the current state while unfinished, and with the outcome (and output) once finished,
   * so the end of the job costs one request instead of a status → result pair, and is known a
   * round trip sooner. Queue positions come only from the status, so the status is polled while
   * the job is queued (or not seen yet). Default false.
   */
  pollResultWhileRunning?: boolean | undefined;
  /** Passed to the schedule: a time-scaled sandbox runs this many times faster. */
  timeScale?: number | undefined;
  /** Ask the result for `cost` (US dollars). */
  includeCost?: boolean | undefined;
  /** On abort, cancel the job if it may still be queued. Default true. */
  cancelOnAbort?: boolean | undefined;
  /** On deadline, cancel the job if it may still be queued. Default false: the job is left alone. */
  cancelOnTimeout?: boolean | undefined;
  /** How long the cancel request may take, ms. Default 10 s. */
  cancelTimeoutMs?: number | undefined;
  /** When the job was submitted, ms since the epoch (a resumed wait polls at once). Default: now. */
  submittedAt?: number | undefined;
  /** Source of jitter for the schedule (a seeded PRNG makes a run replayable). Default Math.random. */
  random?: (() => number) | undefined;
  /** Clock, ms since the epoch. Default Date.now. */
  now?: (() => number) | undefined;
  /** Called with every terminal result the service returned (succeeded, failed or cancelled), before settling. */
  onResult?: ((result: JobResult) => void | Promise<void>) | undefined;
}
