// The cancel path of a stopped wait: cancel the job only when it may still be queued (the
// service cancels nothing else), and report honestly what became of it either way.

import type { RunComfyClient } from "../api/client.js";
import { isTerminalStatus } from "../api/parse.js";
import type { JobStatusValue } from "../api/types.js";
import type { CancelReport } from "./errors.js";
import type { WaitOptions } from "./wait-options.js";

/**
 * Cancels the job if it may still be queued and the caller wants it (`wanted`, from
 * cancelOnAbort / cancelOnTimeout for `reason`); the report says what became of the job.
 */
export async function cancelIfQueued(
  client: RunComfyClient,
  requestId: string,
  lastStatus: JobStatusValue | undefined,
  wanted: boolean,
  reason: "abort" | "deadline",
  options: Pick<WaitOptions, "cancelTimeoutMs">,
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
