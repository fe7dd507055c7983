// The batch's run-time estimate, asked by every wait before each poll: the batch's own samples
// once there are enough (src/run/run-time-samples.ts), else the journal's prior, cached.

import { MODEL_ID } from "../model/input.js";
import { bracketRunTimeMs, observePoll, RunTimeSamples } from "../run/run-time-samples.js";
import type { RunTimePrior } from "../run/schedule.js";
import type { JobUpdate } from "../run/wait.js";
import type { JobStore } from "../store/index.js";
import { GROUP_COMMIT_MS } from "./group-commit.js";
import type { RowRun } from "./row-run.js";

/** How long a run-time prior read from the journal is reused once it stands on enough jobs. */
const PRIOR_TTL_MS = 5_000;
const PRIOR_SOLID_SAMPLES = 10;
/** The batch's own run-time observations replace the journal's prior from this many on. */
const OWN_PRIOR_MIN_SAMPLES = 3;
/** Frame count of a row that names none (the model's default). */
const DEFAULT_FRAMES = 121;

export class RunTimePriors {
  readonly #store: JobStore;
  /** The journal's priors by frame count, and when each was read. */
  readonly #priors = new Map<number, { prior: RunTimePrior | undefined; at: number }>();
  readonly #priorReads = new Map<number, Promise<void>>();
  /** Run times this run observed, by frame count. */
  readonly #runTimes = new Map<number, RunTimeSamples>();

  constructor(store: JobStore) {
    this.#store = store;
  }

  /**
   * A solid journal prior is kept for PRIOR_TTL_MS; a missing or thin one only until the next
   * group commit may have added results: at the start of a batch, a prior cached as "none" for
   * seconds made every job of those seconds poll on the no-prior back-off (≈15 polls per job
   * instead of ≈5).
   */
  prior(frames: number | undefined): RunTimePrior | undefined {
    const key = frames ?? DEFAULT_FRAMES;
    const own = this.#runTimes.get(key)?.prior;
    if (own && (own.samples ?? 0) >= OWN_PRIOR_MIN_SAMPLES) return own;
    const cached = this.#priors.get(key);
    const solid = cached?.prior !== undefined && (cached.prior.samples ?? 1) >= PRIOR_SOLID_SAMPLES;
    // The store answers asynchronously: a stale prior serves this poll, a fresh one the next.
    if (!cached || Date.now() - cached.at >= (solid ? PRIOR_TTL_MS : GROUP_COMMIT_MS)) {
      void this.#refresh(key);
    }
    return cached?.prior;
  }

  /** The priors of every frame count in the batch, read once before the first submit. */
  async load(frames: Iterable<number | undefined>): Promise<void> {
    const keys = new Set([...frames].map((f) => f ?? DEFAULT_FRAMES));
    await Promise.all([...keys].map((key) => this.#refresh(key)));
  }

  /** A row's poll update: its run-time bracket, and a sample once it succeeded. */
  observe(r: RowRun, update: JobUpdate): void {
    if (r.submittedAt === undefined || r.action === "reattach") return; // started before this run
    if (update.result) {
      if (update.result.status !== "succeeded") return;
      const ms = bracketRunTimeMs(r.runTime, r.submittedAt, update.at);
      if (ms === undefined) return;
      const key = r.row.frames ?? DEFAULT_FRAMES;
      let samples = this.#runTimes.get(key);
      if (!samples) {
        samples = new RunTimeSamples();
        this.#runTimes.set(key, samples);
      }
      samples.add(ms);
      return;
    }
    observePoll(r.runTime, update.status, update.at);
  }

  #refresh(key: number): Promise<void> {
    let read = this.#priorReads.get(key);
    if (read) return read;
    read = (async () => {
      let prior: RunTimePrior | undefined;
      try {
        const p = await this.#store.runTimePrior(MODEL_ID, key);
        if (p) prior = { meanMs: p.meanMs, stdMs: p.stdMs, samples: p.samples ?? 1 };
      } catch {
        prior = undefined;
      }
      this.#priors.set(key, { prior, at: Date.now() });
    })().finally(() => this.#priorReads.delete(key));
    this.#priorReads.set(key, read);
    return read;
  }
}
