// The polling loop for one job: poll its status (or its result, once running) on a schedule,
// tolerate retryable failures, settle it from the result, and stop cleanly on abort or
// deadline. Runtime-neutral: fetch, timers and AbortSignal only.

import type { RunComfyClient } from "../api/client.js";
import { RunComfyError, UnknownStatusError } from "../api/errors.js";
import { isTerminalStatus } from "../api/parse.js";
import { sleep } from "../api/sleep.js";
import type { JobResult, JobStatusValue, StatusResult } from "../api/types.js";
import { cancelIfQueued } from "./cancel-if-queued.js";
import { WaitAbortedError, WaitGaveUpError, WaitTimeoutError } from "./errors.js";
import {
  defaultPollSchedule,
  estimateRemainingMs,
  type PollObservation,
  type RunTimePrior,
} from "./schedule.js";
import { settle } from "./settle.js";
import type { JobUpdate, WaitOptions } from "./wait-options.js";

/** Status said done but the result disagrees: re-check this many times before giving up. */
const MAX_RESULT_MISMATCH = 5;

function retryAfterOf(error: unknown): number | undefined {
  const value = (error as { retryAfterMs?: unknown } | null)?.retryAfterMs;
  return typeof value === "number" && Number.isFinite(value) && value >= 0 ? value : undefined;
}

/**
 * The poller itself: yields a JobUpdate for every status seen, returns the JobResult.
 * `wait` and `updates` are thin views of it.
 */
export async function* pollJob(
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
