// The job state machine, the same for every backend: which state a status moves a row to, and
// which state a stored row is reported in. Backends store; this decides.

import type { JobStatusValue } from "../api/types.js";
import type { JournalState } from "./states.js";
import type { TimeInput } from "./types.js";

/** States nothing moves a row out of (a `completed` row still settles to one of them). */
export const FINAL_STATES: readonly JournalState[] = [
  "rejected",
  "succeeded",
  "failed",
  "cancelled",
  "abandoned",
];

/** Statuses that end a job on the service (`completed` included: nothing more will run). */
const TERMINAL_STATES: ReadonlySet<string> = new Set(["completed", "succeeded", "failed", "cancelled"]);
const STICKY_STATES: ReadonlySet<string> = new Set(FINAL_STATES);

export function isTerminal(state: string): boolean {
  return TERMINAL_STATES.has(state);
}

export function isFinal(state: string): boolean {
  return STICKY_STATES.has(state);
}

/** States in which a submit outcome (accepted, rejected, unknown, abandoned) may be recorded. */
export function awaitsSubmitOutcome(state: JournalState): boolean {
  return state === "submitting" || state === "submission_unknown";
}

/**
 * The state a row moves to when `status` is seen. An unknown status changes nothing acted on
 * (it stays visible in the transitions); a final state stays (a `completed` row settles); a
 * stale poll in another process never takes a finished job back to running.
 */
export function nextState(current: JournalState, status: JobStatusValue): JournalState {
  if (status === "unknown") return current;
  const settlesCompleted = current === "completed" && STICKY_STATES.has(status);
  if (STICKY_STATES.has(current) && !settlesCompleted) return current;
  if (TERMINAL_STATES.has(current) && !TERMINAL_STATES.has(status)) return current;
  return status;
}

/** The label a status is recorded with in the transitions (an unknown one keeps its raw text). */
export function transitionLabel(status: JobStatusValue, rawStatus: string | undefined): string {
  return status === "unknown" ? `unknown:${rawStatus ?? ""}` : status;
}

/** Whether a transition must be added: the status or the queue position changed. */
export function transitionChanged(
  last: { status: string; queuePosition: number | undefined } | undefined,
  label: string,
  queuePosition: number | undefined,
): boolean {
  return !last || last.status !== label || last.queuePosition !== queuePosition;
}

export interface ReportedStateInput {
  state: JournalState;
  createdAtMs: number;
  pid: number | undefined;
  host: string | undefined;
}

/**
 * The state to act on. A row still `submitting` whose process is gone (or that is older than
 * the grace period) is reported as `submission_unknown`: it may have been accepted.
 */
export function reportedState(
  row: ReportedStateInput,
  context: { nowMs: number; graceMs: number; host: string },
): JournalState {
  if (row.state !== "submitting") return row.state;
  if (context.nowMs - row.createdAtMs > context.graceMs) return "submission_unknown";
  // Only a process on this machine can be checked; elsewhere, trust the grace period.
  if (row.host === context.host && row.pid !== undefined && !processAlive(row.pid)) {
    return "submission_unknown";
  }
  return "submitting";
}

export function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

export function toMillis(at: TimeInput | undefined, now: () => number): number {
  if (at === undefined) return now();
  const ms = at instanceof Date ? at.getTime() : typeof at === "number" ? at : Date.parse(at);
  if (!Number.isFinite(ms)) throw new TypeError(`not a time: ${String(at)}`);
  return ms;
}

/** A queue position worth recording (an integer), else undefined. */
export function queuePositionOf(value: number | undefined): number | undefined {
  return Number.isInteger(value) ? value : undefined;
}
