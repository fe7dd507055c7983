// Waiting for a job: poll its status on a schedule, settle it from the result, and stop
// cleanly on abort or deadline (cancelling a still-queued job, and saying honestly when a
// running one cannot be stopped). Runtime-neutral: fetch, timers and AbortSignal only.

import type { RunComfyClient } from "../api/client.js";
import { JobCancelledError, JobFailedError, RunComfyError, UnknownStatusError } from "../api/errors.js";
import { isTerminalStatus } from "../api/parse.js";
import { sleep } from "../api/sleep.js";
import type { JobResult, JobStatusValue, StatusResult } from "../api/types.js";
import { type CancelReport, WaitAbortedError, WaitGaveUpError, WaitTimeoutError } from "./errors.js";
import {
  defaultPollSchedule,
  estimateRemainingMs,
  type PollObservation,
  type PollSchedule,
  type RunTimePrior,
} from "./schedule.js";

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

/** Status said done but the result disagrees: re-check this many times before giving up. */
const MAX_RESULT_MISMATCH = 5;

function retryAfterOf(error: unknown): number | undefined {
  const value = (error as { retryAfterMs?: unknown } | null)?.retryAfterMs;
  return typeof value === "number" && Number.isFinite(value) && value >= 0 ? value : undefined;
}

function describeJobError(error: unknown): string {
  if (error === undefined || error === null || error === "") return "no error detail was given";
  if (typeof error === "string") return error;
  try {
    return JSON.stringify(error);
  } catch {
    return String(error);
  }
}

function hasError(error: unknown): boolean {
  if (error === undefined || error === null || error === "") return false;
  if (Array.isArray(error)) return error.length > 0;
  return true;
}

/** How a terminal result settles the wait: a result to return, or an error to throw. */
function settle(
  requestId: string,
  result: JobResult,
  statusSaid: JobStatusValue,
  rawStatusSaid: string,
): { result: JobResult } | { error: RunComfyError } | { retry: true } {
  const failed = () =>
    new JobFailedError(`Job ${requestId} failed: ${describeJobError(result.error)}`, {
      requestId,
      jobError: result.error,
      body: result.raw,
    });
  const cancelled = () =>
    new JobCancelledError(`Job ${requestId} was cancelled (it will not produce a video).`, {
      requestId,
      body: result.raw,
    });
  switch (result.status) {
    case "succeeded":
      return { result };
    case "completed":
      // Not the documented result value; the error field decides.
      return hasError(result.error) ? { error: failed() } : { result };
    case "failed":
      return { error: failed() };
    case "cancelled":
      return { error: cancelled() };
    default:
      break;
  }
  // The result is not terminal (or unknown) although the status was.
  if (statusSaid === "failed") return { error: failed() };
  if (statusSaid === "cancelled") return { error: cancelled() };
  if (result.status === "unknown" || statusSaid === "unknown") {
    return {
      error: new UnknownStatusError(
        `Job ${requestId}: the service reported status ${JSON.stringify(rawStatusSaid)}, which this client ` +
          `does not know, and its result says ${JSON.stringify(result.rawStatus)}. Stopped polling; check the job by its request id.`,
        {
          requestId,
          rawStatus: result.status === "unknown" ? result.rawStatus : rawStatusSaid,
          body: result.raw,
        },
      ),
    };
  }
  return { retry: true };
}

/**
 * The poller itself: yields a JobUpdate for every status seen, returns the JobResult.
 * `wait` and `updates` are thin views of it.
 */
async function* pollJob(
  client: RunComfyClient,
  requestId: string,
  options: WaitOptions = {},
): AsyncGenerator<JobUpdate, JobResult, void> {
  const now = options.now ?? Date.now;
  const random = options.random ?? Math.random;
  const schedule = options.pollSchedule ?? defaultPollSchedule;
  const startedAt = now();
  const submittedAt = options.submittedAt ?? startedAt;
  const history: PollObservation[] = [];
  let pollCount = 0;
  let consecutiveErrors = 0;
  /** When the current spell of failing polls began (undefined: the last poll was answered). */
  let failingSince: number | undefined;
  let retryAfterMs: number | undefined;
  let lastStatus: JobStatusValue | undefined;
  let lastRawStatus: string | undefined;
  let mismatches = 0;
  // Set when a result poll returned a status this client does not know: the status (which
  // consults the result and then stops with a clear error) decides from there on.
  let resultPollingOff = false;
  const priorOf =
    typeof options.prior === "function" ? options.prior : () => options.prior as RunTimePrior | undefined;

  // One signal for everything in flight: the caller's abort or our deadline, whichever first.
  const inner = new AbortController();
  let stopReason: "abort" | "deadline" | undefined;
  const onCallerAbort = () => {
    stopReason ??= "abort";
    inner.abort(options.signal?.reason);
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  if (options.signal?.aborted) onCallerAbort();
  else options.signal?.addEventListener("abort", onCallerAbort, { once: true });
  if (options.timeoutMs !== undefined && !inner.signal.aborted) {
    timer = setTimeout(
      () => {
        stopReason ??= "deadline";
        inner.abort(new Error(`deadline of ${options.timeoutMs} ms passed`));
      },
      Math.max(0, options.timeoutMs),
    );
  }

  const update = async (status: StatusResult | JobResult, result?: JobResult): Promise<JobUpdate> => {
    const at = now();
    const elapsedMs = at - submittedAt;
    const u: JobUpdate = {
      requestId,
      status: status.status,
      rawStatus: status.rawStatus,
      at,
      elapsedMs,
      pollCount,
    };
    if ("queuePosition" in status && status.queuePosition !== undefined)
      u.queuePosition = status.queuePosition;
    if (!result) {
      const remaining = estimateRemainingMs({
        elapsedMs,
        history,
        prior: priorOf(),
        timeScale: options.timeScale,
      });
      if (remaining !== undefined) u.expectedRemainingMs = remaining;
    } else {
      u.result = result;
      u.expectedRemainingMs = 0;
    }
    await options.onUpdate?.(u);
    return u;
  };

  /** Records a retryable failure (giving up after a long enough spell of them); rethrows anything else. */
  const tolerate = (error: unknown): void => {
    if (inner.signal.aborted) throw error;
    if (!(error instanceof RunComfyError) || !error.retryable) throw error;
    consecutiveErrors++;
    retryAfterMs = retryAfterOf(error);
    failingSince ??= now();
    const failingForMs = now() - failingSince;
    const giveUpAfterMs = options.giveUpAfterMs;
    if (giveUpAfterMs !== undefined && failingForMs >= giveUpAfterMs) {
      throw new WaitGaveUpError({
        requestId,
        cause: error,
        failingForMs,
        consecutiveErrors,
        lastStatus,
        lastRawStatus,
      });
    }
    options.onPollError?.(error, consecutiveErrors, {
      failingForMs,
      giveUpInMs: giveUpAfterMs === undefined ? undefined : giveUpAfterMs - failingForMs,
    });
  };
  const answered = (): void => {
    consecutiveErrors = 0;
    failingSince = undefined;
    retryAfterMs = undefined;
  };

  try {
    for (;;) {
      let delay = schedule({
        elapsedMs: now() - submittedAt,
        history,
        consecutiveErrors,
        retryAfterMs,
        prior: priorOf(),
        random: random(),
        timeScale: options.timeScale,
      });
      if (failingSince !== undefined && options.giveUpAfterMs !== undefined) {
        // The last try falls at the give-up time, not a backoff later.
        delay = Math.min(delay, failingSince + options.giveUpAfterMs - now());
      }
      await sleep(Math.max(0, delay), inner.signal, requestId);

      if (options.pollResultWhileRunning && lastStatus === "in_progress" && !resultPollingOff) {
        let polled: JobResult;
        pollCount++;
        try {
          polled = await client.result(requestId, { signal: inner.signal, includeCost: options.includeCost });
        } catch (error) {
          tolerate(error);
          continue;
        }
        answered();
        if (polled.status === "in_queue" || polled.status === "in_progress") {
          // Unfinished: the result is a status observation (back in the queue → status polls again).
          lastStatus = polled.status;
          lastRawStatus = polled.rawStatus;
          history.push({ atMs: now() - submittedAt, status: polled.status });
          yield await update(polled);
          continue;
        }
        if (polled.status === "unknown") {
          resultPollingOff = true;
          continue;
        }
        // Terminal on the result itself (succeeded, failed, cancelled, completed): it decides.
        const outcome = settle(requestId, polled, polled.status, polled.rawStatus);
        if (!("retry" in outcome)) {
          lastStatus = polled.status;
          lastRawStatus = polled.rawStatus;
          await options.onResult?.(polled);
          yield await update(polled, polled);
          if ("error" in outcome) throw outcome.error;
          return outcome.result;
        }
        resultPollingOff = true; // unreachable for terminal statuses; never loop on it
        continue;
      }

      let status: StatusResult;
      pollCount++;
      try {
        status = await client.status(requestId, { signal: inner.signal });
      } catch (error) {
        tolerate(error);
        continue;
      }
      answered();
      lastStatus = status.status;
      lastRawStatus = status.rawStatus;
      history.push({ atMs: now() - submittedAt, status: status.status, queuePosition: status.queuePosition });
      yield await update(status);

      if (status.status !== "unknown" && !isTerminalStatus(status.status)) continue;

      // Done (or a status we do not know): the result decides.
      let result: JobResult;
      try {
        result = await client.result(requestId, { signal: inner.signal, includeCost: options.includeCost });
      } catch (error) {
        tolerate(error);
        continue;
      }
      const outcome = settle(requestId, result, status.status, status.rawStatus);
      if ("retry" in outcome) {
        mismatches++;
        if (mismatches >= MAX_RESULT_MISMATCH) {
          throw new UnknownStatusError(
            `Job ${requestId}: status says ${JSON.stringify(status.rawStatus)} but the result still says ` +
              `${JSON.stringify(result.rawStatus)} after ${mismatches} checks. Stopped polling; check the job by its request id.`,
            { requestId, rawStatus: result.rawStatus, body: result.raw },
          );
        }
        continue;
      }
      lastStatus = result.status;
      lastRawStatus = result.rawStatus;
      await options.onResult?.(result);
      yield await update(result, result);
      if ("error" in outcome) throw outcome.error;
      return outcome.result;
    }
  } catch (error) {
    if (!inner.signal.aborted || stopReason === undefined) throw error;
    throw await stopError(stopReason);
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    options.signal?.removeEventListener("abort", onCallerAbort);
  }

  async function stopError(reason: "abort" | "deadline"): Promise<RunComfyError> {
    const wantCancel =
      reason === "abort" ? options.cancelOnAbort !== false : options.cancelOnTimeout === true;
    const cancel = await cancelIfQueued(client, requestId, lastStatus, wantCancel, reason, options);
    const seen = lastRawStatus === undefined ? "no status seen yet" : `last status ${lastRawStatus}`;
    if (reason === "abort") {
      const why = options.signal?.reason;
      const because = why instanceof Error ? `: ${why.message}` : typeof why === "string" ? `: ${why}` : "";
      return new WaitAbortedError(
        `Stopped waiting for request ${requestId} (${seen})${because}. ${cancel.message}`,
        { requestId, cause: why, cancel, lastStatus, lastRawStatus },
      );
    }
    return new WaitTimeoutError(
      `Gave up waiting for request ${requestId} after ${options.timeoutMs} ms (${seen}). ${cancel.message}`,
      { requestId, retryable: false, timeoutMs: options.timeoutMs ?? 0, cancel, lastStatus, lastRawStatus },
    );
  }
}

async function cancelIfQueued(
  client: RunComfyClient,
  requestId: string,
  lastStatus: JobStatusValue | undefined,
  wanted: boolean,
  reason: "abort" | "deadline",
  options: WaitOptions,
): Promise<CancelReport> {
  const later = `Its request id is ${requestId}: check or fetch it later.`;
  if (lastStatus !== undefined && isTerminalStatus(lastStatus)) {
    return {
      outcome: "not_attempted",
      attempted: false,
      jobMayContinue: false,
      message: "The job had already finished; nothing to cancel.",
    };
  }
  if (!wanted) {
    const option = reason === "abort" ? "cancelOnAbort is off" : "cancelOnTimeout is off";
    return {
      outcome: "not_attempted",
      attempted: false,
      jobMayContinue: true,
      message: `The job was left alone (${option}): it may still run and be billed. ${later}`,
    };
  }
  if (lastStatus === "in_progress") {
    // The service cancels queued jobs only; asking would be a no-op.
    return {
      outcome: "not_cancellable",
      attempted: false,
      jobMayContinue: true,
      message: `The job was already running (in_progress), and only queued jobs can be cancelled: it keeps running and is billed. ${later}`,
    };
  }
  // Queued, or nothing seen yet (a fresh job is most likely queued; cancelling a running one is a harmless no-op).
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new Error("cancel took too long")),
    options.cancelTimeoutMs ?? 10_000,
  );
  try {
    const response = await client.cancel(requestId, { signal: controller.signal });
    switch (response.outcome) {
      case "cancelled":
        return {
          outcome: "cancelled",
          attempted: true,
          jobMayContinue: false,
          response,
          message: "The job was still queued and has been cancelled: it will not run or be billed.",
        };
      case "not_cancellable":
        return {
          outcome: "not_cancellable",
          attempted: true,
          jobMayContinue: true,
          response,
          message: `The service could not cancel it (not_cancellable: it had already started): it keeps running and is billed. ${later}`,
        };
      default:
        return {
          outcome: "unknown",
          attempted: true,
          jobMayContinue: true,
          response,
          message: `The service's answer to the cancel was not understood (${JSON.stringify(response.rawOutcome ?? null)}): the job may still run and be billed. ${later}`,
        };
    }
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    return {
      outcome: "unknown",
      attempted: true,
      jobMayContinue: true,
      error,
      message: `Cancelling it failed (${why}): the job may still run and be billed. ${later}`,
    };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Waits for a job to finish and returns its result.
 * Throws JobFailedError (the service's error verbatim in `jobError`), JobCancelledError,
 * UnknownStatusError, WaitAbortedError (an AbortError; `cancel` says what became of the job),
 * WaitTimeoutError (a TimeoutError; the job is left alone unless `cancelOnTimeout`), or a
 * non-retryable protocol error (NotFoundError, AuthenticationError...). Retryable errors while
 * polling (429, 5xx, connection) do not end the wait: it keeps polling, bounded by `timeoutMs`,
 * and by `giveUpAfterMs` of nothing but failures (WaitGaveUpError).
 */
export async function wait(
  client: RunComfyClient,
  requestId: string,
  options: WaitOptions = {},
): Promise<JobResult> {
  const poller = pollJob(client, requestId, options);
  for (;;) {
    const step = await poller.next();
    if (step.done) return step.value;
  }
}

/**
 * The same wait as an async iterable of updates: one per status seen, the last one carrying
 * `result`. Errors are thrown from the iteration. Leaving the loop early (break) stops polling
 * without cancelling the job. The generator's return value is the JobResult.
 */
export function updates(
  client: RunComfyClient,
  requestId: string,
  options: WaitOptions = {},
): AsyncGenerator<JobUpdate, JobResult, void> {
  return pollJob(client, requestId, options);
}
