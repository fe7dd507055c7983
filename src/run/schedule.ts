// The polling schedule: when to ask for a job's status next. A pure, deterministic
// function of what has been seen so far (state and history in, next delay out), so it
// can be simulated exactly (bench/polling.ts) and replaced by callers (`PollSchedule`).
//
// Phases, in the order a job goes through them:
//   nothing seen yet  → a quick first check (1 s after submit; at once when resuming late);
//   in_queue + queue_position → poll around the expected exit from the queue, with the
//                        drain rate (seconds per position) learnt from the position history;
//   in_progress + prior → the run time is modelled as normal (mean, std from past jobs of
//                        the same model and frame count, widened for few samples and for
//                        the uncertainty of when the run started). Sparse early: one long
//                        sleep (≤ 60 s); from mean − 4.25 std after the earliest possible
//                        start no gap exceeds 4.9 s (the worst-case latency of fixed 5 s
//                        polling); from mean − 2.1 std, dense: a flat 1.95 s step (jittered
//                        downwards only), just under fixed 2 s's p99 latency; past
//                        mean + 2.5 std the prior is not trusted any more and the interval
//                        backs off (still ≤ 4.9 s). This is the shape of the optimal schedule
//                        for percentile latency targets (bench/polling-bound.ts solves it
//                        exactly for a client that knows when the run started: 5 s gaps,
//                        then a flat step at the latency bound); an optional hazard term
//                        (interval² × hazard ≤ c, off by default) shortens the step where
//                        completion is likeliest, buying a lower median for more requests;
//   anything else (no prior, no position) → 1 s growing ×1.5 to a 4 s cap.
// Errors back off exponentially; a Retry-After is never undercut; ±10 % jitter comes
// from `state.random` (draw it from a seeded PRNG such as `mulberry32` to replay exactly).
// All times in the state are wall-clock milliseconds; `timeScale` divides the schedule's
// own constants (a sandbox running ×20 faster than the service gets a ×20 faster schedule).

import type { JobStatusValue } from "../api/types.js";

/** What past jobs of the same model (and frame count) took to run, from in_progress to done. */
export interface RunTimePrior {
  /** Mean run time, ms (wall clock, as the caller measured it). */
  meanMs: number;
  /** Standard deviation of the run time, ms. */
  stdMs: number;
  /** How many past jobs the mean and std come from (few samples widen the estimate). Default 1. */
  samples?: number | undefined;
}

/** How many jobs a prior stands on. */
function sampleCount(prior: RunTimePrior): number {
  return prior.samples ?? 1;
}

/** One status response, as the poller saw it. */
export interface PollObservation {
  /** When the answer arrived, ms after submit. */
  atMs: number;
  status: JobStatusValue;
  queuePosition?: number | undefined;
}

export interface PollState {
  /** Now, ms after submit. */
  elapsedMs: number;
  /** Every status seen so far, oldest first. */
  history: readonly PollObservation[];
  /** Failed status requests in a row since the last good one. */
  consecutiveErrors?: number | undefined;
  /** The service's last Retry-After, ms: the next poll never comes sooner. */
  retryAfterMs?: number | undefined;
  /** Run-time prior for this model and frame count, when the journal has one. */
  prior?: RunTimePrior | undefined;
  /** A value in [0, 1) for jitter; the caller draws it (a seeded PRNG makes runs replayable). */
  random: number;
  /** How much faster than the real service time runs (a time-scaled sandbox). Default 1. */
  timeScale?: number | undefined;
}

/** Milliseconds to wait before the next status request. Replace it to poll your own way. */
export type PollSchedule = (state: PollState) => number;

/** The knobs of the default schedule, in service time (ms), before `timeScale`. */
export interface ScheduleTuning {
  firstCheckMs: number;
  /** No prior / no queue position: `backoffStartMs × backoffGrowth^n`, capped. */
  backoffStartMs: number;
  backoffGrowth: number;
  backoffCapMs: number;
  /** Assumed queue drain before any is observed: ms per queue position. */
  queueMsPerPosition: number;
  /** Weight (in positions) of that assumption against the observed drain. */
  queuePriorWeight: number;
  queueMinMs: number;
  queueMaxMs: number;
  /** The dense window opens at mean − denseFromStd × std (before it: long sleeps). */
  denseFromStd: number;
  /** The longest interval inside the dense window. */
  denseStepMs: number;
  /** Inside the window the interval also obeys interval² × hazard ≤ this (hazard per ms); ∞: off. */
  hazardConstantMs: number;
  /** The shortest interval the schedule ever asks for (Retry-After aside). */
  denseMinMs: number;
  /** Longest single sleep while running with a prior. */
  maxIntervalMs: number;
  /** Past mean + overdueAfterStd × std the prior is no longer trusted: back off. */
  overdueAfterStd: number;
  /** Back-off once overdue: interval = overdueStartMs + overdueSlope × time overdue, capped. */
  overdueStartMs: number;
  overdueSlope: number;
  overdueCapMs: number;
  /**
   * The hard cap on the worst case: once the job may be finished (the run may have started
   * mayFinishFromStd std before the mean, counted from the earliest it can have started), no
   * gap between polls exceeds maxGapMs, jitter included (errors and Retry-After aside).
   */
  maxGapMs: number;
  mayFinishFromStd: number;
  /** Relative std floor (a prior claiming 1 % spread is not believed). */
  minRelativeStd: number;
  /** Relative std assumed when the prior has fewer than 3 samples. */
  fewSamplesRelativeStd: number;
  /** Error back-off: errorStartMs × 2^(errors-1), capped. */
  errorStartMs: number;
  errorCapMs: number;
  /** ± fraction of jitter. */
  jitter: number;
  /**
   * Jitter of a dense-window step, downwards only, so denseStepMs is a true maximum: the step
   * sits just under the latency bound it serves, and jitter above it would break that bound.
   */
  denseJitter: number;
}

export const DEFAULT_SCHEDULE_TUNING: Readonly<ScheduleTuning> = Object.freeze({
  firstCheckMs: 1_000,
  backoffStartMs: 1_000,
  backoffGrowth: 1.5,
  backoffCapMs: 4_000,
  queueMsPerPosition: 10_000,
  queuePriorWeight: 2,
  queueMinMs: 2_000,
  queueMaxMs: 15_000,
  denseFromStd: 2.1,
  denseStepMs: 1_950,
  hazardConstantMs: Number.POSITIVE_INFINITY,
  denseMinMs: 700,
  maxIntervalMs: 60_000,
  overdueAfterStd: 2.5,
  overdueStartMs: 1_500,
  overdueSlope: 0.1,
  overdueCapMs: 10_000,
  maxGapMs: 4_900,
  mayFinishFromStd: 4.25,
  minRelativeStd: 0.05,
  fewSamplesRelativeStd: 0.25,
  errorStartMs: 1_000,
  errorCapMs: 30_000,
  jitter: 0.1,
  denseJitter: 0.04,
});

/** mulberry32: a tiny, fast, seeded PRNG returning floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// --- the normal distribution -------------------------------------------------------------

/** erfc with fractional error < 1.2e-7 everywhere (Numerical Recipes' Chebyshev fit). */
const ERFC_COEFFICIENTS = [
  -1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398, 1.48851587,
  -0.82215223, 0.17087277,
];

function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  let poly = 0;
  for (let i = ERFC_COEFFICIENTS.length - 1; i >= 0; i--) poly = ERFC_COEFFICIENTS[i]! + t * poly;
  const r = t * Math.exp(-z * z + poly);
  return x >= 0 ? r : 2 - r;
}

/** P(Z > z) for a standard normal. */
function survival(z: number): number {
  return 0.5 * erfc(z / Math.SQRT2);
}

function density(z: number): number {
  return Math.exp(-0.5 * z * z) / Math.sqrt(2 * Math.PI);
}

/** Hazard of N(mean, std) at x: density / survival, per ms. */
function hazard(x: number, mean: number, std: number): number {
  const z = (x - mean) / std;
  const s = survival(z);
  if (s < 1e-12) return z / std; // asymptote (Mills ratio); unreachable with overdueAfterStd ≤ 5
  return density(z) / (std * s);
}

// --- reading the history -----------------------------------------------------------------

function usablePrior(prior: RunTimePrior | undefined): prior is RunTimePrior {
  return (
    prior !== undefined &&
    Number.isFinite(prior.meanMs) &&
    prior.meanMs > 0 &&
    Number.isFinite(prior.stdMs) &&
    prior.stdMs >= 0 &&
    Number.isFinite(sampleCount(prior)) &&
    sampleCount(prior) >= 1
  );
}

/** When the run started, as a bracket [lo, hi] in ms after submit, once in_progress was seen. */
export function runStartBracket(history: readonly PollObservation[]): [number, number] | undefined {
  const first = history.findIndex((o) => o.status === "in_progress");
  if (first < 0) return undefined;
  const hi = history[first]!.atMs;
  let lo = 0;
  for (let i = first - 1; i >= 0; i--) {
    if (history[i]!.status === "in_queue") {
      lo = history[i]!.atMs;
      break;
    }
  }
  return [lo, hi];
}

/** Observed queue drain, blended with the assumption: ms per position. */
export function queueMsPerPosition(
  history: readonly PollObservation[],
  tuning: Pick<ScheduleTuning, "queueMsPerPosition" | "queuePriorWeight">,
  scale = 1,
): number {
  const assumed = tuning.queueMsPerPosition / scale;
  const queued = history.filter((o) => o.status === "in_queue" && o.queuePosition !== undefined);
  if (queued.length < 2) return assumed;
  const first = queued[0]!;
  const last = queued[queued.length - 1]!;
  const drained = (first.queuePosition ?? 0) - (last.queuePosition ?? 0);
  const took = last.atMs - first.atMs;
  if (took <= 0) return assumed;
  const w = tuning.queuePriorWeight;
  // No drop yet still teaches something: at least `took` ms for (less than) one position.
  return (assumed * w + took) / (w + Math.max(0, drained));
}

/** The prior widened for few samples and for when exactly the run started. */
function effectiveRunTime(
  prior: RunTimePrior,
  bracket: [number, number],
  tuning: ScheduleTuning,
): { mean: number; std: number; start: number } {
  const n = sampleCount(prior);
  const rel = n < 3 ? tuning.fewSamplesRelativeStd : tuning.minRelativeStd;
  const std0 = Math.max(prior.stdMs, rel * prior.meanMs);
  // Predictive spread of one new job: the sample spread plus the uncertainty of the mean.
  const predictive = std0 * Math.sqrt(1 + 1 / n);
  const width = bracket[1] - bracket[0];
  const std = Math.sqrt(predictive * predictive + (width * width) / 12);
  return { mean: prior.meanMs, std, start: (bracket[0] + bracket[1]) / 2 };
}

// --- the schedule ------------------------------------------------------------------------

/** A delay jittered downwards only, by up to `down` (a fraction). */
interface DownJittered {
  ms: number;
  down: number;
}

function unitRandom(state: PollState): number {
  return Number.isFinite(state.random) ? Math.min(Math.max(state.random, 0), 1) : 0.5;
}

/**
 * The delay before the next poll, before jitter and Retry-After. A sleep up to the dense
 * window is jittered downwards only, so it never lands deep inside the window.
 */
function baseDelay(state: PollState, t: ScheduleTuning, scale: number): number | DownJittered {
  const { history, elapsedMs } = state;
  const errors = state.consecutiveErrors ?? 0;
  if (errors > 0) return Math.min(t.errorCapMs, t.errorStartMs * 2 ** (errors - 1)) / scale;
  if (history.length === 0) return Math.max(0, t.firstCheckMs / scale - elapsedMs);

  const last = history[history.length - 1]!;
  const backoff = Math.min(t.backoffCapMs, t.backoffStartMs * t.backoffGrowth ** history.length) / scale;

  if (last.status === "in_queue") {
    const position = last.queuePosition;
    if (position === undefined || !Number.isFinite(position)) return backoff;
    const perPosition = queueMsPerPosition(history, t, scale);
    // position = how many places ahead: the exit is expected after about (position − ½) of them;
    // aim just before it, then every half position once at the front.
    const sinceSeen = Math.max(0, elapsedMs - last.atMs);
    const untilExit = position > 1 ? (position - 1) * perPosition : perPosition / 2;
    return Math.min(t.queueMaxMs / scale, Math.max(t.queueMinMs / scale, untilExit - sinceSeen));
  }

  if (last.status === "in_progress" && usablePrior(state.prior)) {
    const bracket = runStartBracket(history) ?? [0, last.atMs];
    const { mean, std, start } = effectiveRunTime(state.prior, bracket, t);
    const ran = elapsedMs - start;
    const overdueAt = mean + t.overdueAfterStd * std;
    if (ran >= overdueAt) {
      // The prior did not hold: a bounded back-off, growing with the time overdue.
      const overdue = ran - overdueAt;
      return Math.min(t.overdueCapMs / scale, t.overdueStartMs / scale + t.overdueSlope * overdue);
    }
    const minMs = t.denseMinMs / scale;
    const denseAt = mean - t.denseFromStd * std;
    // Sparse early: completion is improbable before the dense window, so sleep up to it.
    if (ran < denseAt) {
      return { ms: Math.min(t.maxIntervalMs / scale, Math.max(minMs, denseAt - ran)), down: t.jitter };
    }
    // Dense: at most denseStepMs, and shorter where the hazard is high: the largest I with
    // I² · hazard(ran + I) ≤ c (hazard grows with time, so the condition holds below one point).
    const step = t.denseStepMs / scale;
    const c = t.hazardConstantMs / scale;
    const fits = (i: number) => i * i * hazard(Math.min(ran + i, overdueAt), mean, std) <= c;
    if (fits(step)) return { ms: step, down: t.denseJitter };
    let lo = 0;
    let hi = step;
    while (hi - lo > 1 / scale) {
      const mid = (lo + hi) / 2;
      if (fits(mid)) lo = mid;
      else hi = mid;
    }
    return { ms: Math.max(minMs, lo), down: t.denseJitter };
  }

  return backoff;
}

/**
 * The longest the next poll may wait (Infinity when there is no bound): with a prior, from the
 * earliest moment the job may be finished, at most maxGapMs after it and between polls after it.
 */
function gapCap(state: PollState, t: ScheduleTuning, scale: number): number {
  const { history, elapsedMs } = state;
  const last = history[history.length - 1];
  if (last === undefined || !usablePrior(state.prior)) return Number.POSITIVE_INFINITY;
  const maxGap = t.maxGapMs / scale;
  // The run cannot have started before the last in_queue seen (or submit).
  let startLo = 0;
  if (last.status === "in_queue") startLo = last.atMs;
  else if (last.status === "in_progress") startLo = (runStartBracket(history) ?? [0, last.atMs])[0];
  else return Number.POSITIVE_INFINITY;
  const { mean, std } = effectiveRunTime(state.prior, [startLo, startLo], t);
  const mayFinishAt = startLo + Math.max(0, mean - t.mayFinishFromStd * std);
  return Math.max(maxGap, mayFinishAt + maxGap - elapsedMs);
}

/** Builds a schedule with some knobs changed (the bench tunes through this). */
export function createPollSchedule(tuning: Partial<ScheduleTuning> = {}): PollSchedule {
  const t: ScheduleTuning = { ...DEFAULT_SCHEDULE_TUNING, ...tuning };
  return (state) => {
    const scale = state.timeScale !== undefined && state.timeScale > 0 ? state.timeScale : 1;
    const base = baseDelay(state, t, scale);
    const r = unitRandom(state);
    let delay =
      typeof base === "number" ? base * (1 + t.jitter * (2 * r - 1)) : base.ms * (1 - base.down * r);
    delay = Math.round(delay);
    // Rounded down, so that rounding never stretches a gap past the cap.
    if ((state.consecutiveErrors ?? 0) === 0) delay = Math.min(delay, Math.floor(gapCap(state, t, scale)));
    if (state.retryAfterMs !== undefined && Number.isFinite(state.retryAfterMs)) {
      delay = Math.max(delay, Math.ceil(state.retryAfterMs));
    }
    return Math.max(0, delay);
  };
}

/** The schedule `wait` uses unless given another. */
export const defaultPollSchedule: PollSchedule = createPollSchedule();

/**
 * A rough expectation of the time left, ms, for progress displays: queue positions times the
 * drain rate, plus the prior's mean run time. Undefined when there is nothing to go on.
 */
export function estimateRemainingMs(
  state: Pick<PollState, "elapsedMs" | "history" | "prior" | "timeScale">,
): number | undefined {
  const last = state.history[state.history.length - 1];
  const prior = usablePrior(state.prior) ? state.prior : undefined;
  if (!last) return prior?.meanMs;
  const scale = state.timeScale !== undefined && state.timeScale > 0 ? state.timeScale : 1;
  if (last.status === "in_queue") {
    if (last.queuePosition === undefined) return undefined;
    const queue =
      Math.max(0, last.queuePosition - 0.5) *
      queueMsPerPosition(state.history, DEFAULT_SCHEDULE_TUNING, scale);
    const left = Math.max(0, queue - (state.elapsedMs - last.atMs));
    return prior ? left + prior.meanMs : undefined;
  }
  if (last.status === "in_progress" && prior) {
    const bracket = runStartBracket(state.history) ?? [0, last.atMs];
    const ran = state.elapsedMs - (bracket[0] + bracket[1]) / 2;
    return Math.max(0, prior.meanMs - ran);
  }
  return undefined;
}
