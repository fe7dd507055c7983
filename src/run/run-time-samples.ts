// A run's own run-time samples, measured without the poll latency. A store's prior measures
// from the first in_progress seen to the result seen, so it carries the poll latency: the
// schedule then aims late, polls later, detects later, and the next prior is later still. Here
// both ends are the middle of the bracket in which they happened (start: submit or last
// in_queue → first in_progress; end: last unfinished poll → the result), the same convention
// the schedule uses for the start, so the estimate is unbiased.

import type { RunTimePrior } from "./schedule.js";
import { trimmedStats } from "./trimmed-stats.js";

/** How many recent run times a run's own prior stands on (a store's window too). */
export const RUN_TIME_WINDOW = 50;

/** What one job's polls told about when it started and when it was last seen unfinished. */
export interface RunTimeBracket {
  /** The run started after this (the last in_queue seen; the submit when unset)... */
  startLo: number | undefined;
  /** ...and by this (the first in_progress seen). */
  startHi: number | undefined;
  /** The last unfinished poll: the job ended after it. */
  lastPollAt: number | undefined;
}

/** Notes an unfinished poll's status, seen at `at`. */
export function observePoll(bracket: RunTimeBracket, status: string, at: number): void {
  if (bracket.startHi === undefined) {
    if (status === "in_queue") bracket.startLo = at;
    else if (status === "in_progress") bracket.startHi = at;
  }
  bracket.lastPollAt = at;
}

/**
 * The run time from the middle of the start bracket to the middle of the end bracket (last
 * unfinished poll → the result seen at `resultAt`); undefined when an end was never bracketed.
 */
export function bracketRunTimeMs(
  bracket: RunTimeBracket,
  submittedAt: number,
  resultAt: number,
): number | undefined {
  const { startHi: hi, lastPollAt } = bracket;
  if (hi === undefined || lastPollAt === undefined) return undefined;
  const lo = bracket.startLo ?? submittedAt;
  const ms = (lastPollAt + resultAt) / 2 - (lo + hi) / 2;
  return ms >= 0 ? ms : undefined;
}

/** The newest `window` run times and their trimmed statistics. */
export class RunTimeSamples {
  readonly #samples: number[] = [];
  readonly #window: number;
  #prior: RunTimePrior | undefined;

  constructor(window = RUN_TIME_WINDOW) {
    this.#window = window;
  }

  get prior(): RunTimePrior | undefined {
    return this.#prior;
  }

  add(ms: number): RunTimePrior | undefined {
    this.#samples.push(ms);
    if (this.#samples.length > this.#window) this.#samples.shift();
    this.#prior = trimmedStats(this.#samples);
    return this.#prior;
  }
}
