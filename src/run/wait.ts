// Waiting for a job: the public entry. `wait` and `updates` are two views of one poller
// (poll-job.ts); the options and update types live in wait-options.ts and are re-exported
// here so that callers import the whole of waiting from one place.

import type { RunComfyClient } from "../api/client.js";
import type { JobResult } from "../api/types.js";
import { pollJob } from "./poll-job.js";
import type { JobUpdate, WaitOptions } from "./wait-options.js";

export type { JobUpdate, PollErrorInfo, WaitOptions } from "./wait-options.js";

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
