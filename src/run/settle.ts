// Settling a wait from a terminal result: the result to return, or the error to throw
// (failed, cancelled, or a status this client does not know). Kept apart from the polling
// loop because both of its paths (the status poll and the result poll) settle the same way.

import { JobCancelledError, JobFailedError, type RunComfyError, UnknownStatusError } from "../api/errors.js";
import type { JobResult, JobStatusValue } from "../api/types.js";

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
export function settle(
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
