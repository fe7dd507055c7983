// Jobs and the workers that run them. One FIFO queue feeds `workers` slots; a started job
// renders its video right away (ffmpeg, off the event loop) and finishes when both the
// render and its simulated run time are over. Run times come from a per-frame-count model,
// jittered deterministically under the sandbox seed and divided by timeScale.

import { drawUnit } from "./random.js";
import type { RenderedVideo, Renderer } from "./render.js";

/** The state as the sandbox knows it; status and result each translate it their own way. */
export type JobState = "in_queue" | "in_progress" | "succeeded" | "failed" | "cancelled";

export interface RunTime {
  meanMs: number;
  /** Run times are uniform in mean ± jitter. */
  jitterMs: number;
}

/** Real-service order of magnitude: about a minute for 121 frames, two for 241. */
export const DEFAULT_RUN_TIME: Record<number, RunTime> = {
  121: { meanMs: 60_000, jitterMs: 15_000 },
  241: { meanMs: 120_000, jitterMs: 25_000 },
};

export interface Job {
  id: string;
  /** Whose job it is. Only compared, never logged or listed. */
  token: string;
  modelId: string;
  /** The input as accepted, defaults filled in. */
  input: Record<string, unknown>;
  frames: number;
  /** The seed asked for (-1 = "pick one"). */
  requestedSeed: number;
  /** The seed used for rendering. */
  seed: number;
  image: Uint8Array;
  /** sha256 of the image bytes. */
  imageSha256: string;
  /** sha256 of the canonical input JSON (with the image digest), to spot resubmits. */
  inputSha256: string;
  /** How many jobs this token had submitted with this same input, this one included. */
  submitCount: number;
  /** Global submit order, from 0 (the index of the job's deterministic draws). */
  index: number;
  state: JobState;
  createdAt: Date;
  startedAt?: Date | undefined;
  finishedAt?: Date | undefined;
  /** Simulated run time, after jitter and timeScale. */
  runMs: number;
  /** A job:fail fault decided at submit. */
  failByFault: boolean;
  error?: string | undefined;
  video?: RenderedVideo | undefined;
}

export interface SchedulerOptions {
  workers: number;
  timeScale: number;
  runTime: Record<number, RunTime>;
  seed: number;
  renderer: Renderer;
  shortSide: number;
  onChange?: ((job: Job) => void) | undefined;
}

export class Scheduler {
  readonly #options: SchedulerOptions;
  readonly #queue: Job[] = [];
  readonly #running = new Set<Job>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #closed = false;

  constructor(options: SchedulerOptions) {
    this.#options = { ...options, workers: Math.max(1, Math.floor(options.workers)) };
  }

  /** The run time for a job: mean ± jitter for its frame count (linear in frames otherwise). */
  plannedRunMs(frames: number, index: number): number {
    const { runTime, timeScale, seed } = this.#options;
    const model = runTime[frames] ?? {
      meanMs: (frames / 121) * (runTime[121]?.meanMs ?? 60_000),
      jitterMs: (frames / 121) * (runTime[121]?.jitterMs ?? 0),
    };
    const u = drawUnit(seed, "runtime", index);
    const ms = Math.max(0, model.meanMs + (2 * u - 1) * model.jitterMs);
    return ms / Math.max(timeScale, 1e-9);
  }

  enqueue(job: Job): void {
    this.#queue.push(job);
    this.#pump();
  }

  /** Jobs ahead of this one (0 = next to start), or undefined when it is not queued. */
  queuePosition(job: Job): number | undefined {
    const at = this.#queue.indexOf(job);
    return at < 0 ? undefined : at;
  }

  /** Cancels a queued job. False when it already started or finished (it runs on). */
  cancel(job: Job): boolean {
    const at = this.#queue.indexOf(job);
    if (at < 0 || job.state !== "in_queue") return false;
    this.#queue.splice(at, 1);
    job.state = "cancelled";
    job.finishedAt = new Date();
    this.#options.onChange?.(job);
    return true;
  }

  get queued(): number {
    return this.#queue.length;
  }

  get running(): number {
    return this.#running.size;
  }

  #pump(): void {
    while (!this.#closed && this.#running.size < this.#options.workers && this.#queue.length > 0) {
      const job = this.#queue.shift()!;
      this.#start(job);
    }
  }

  #start(job: Job): void {
    job.state = "in_progress";
    job.startedAt = new Date();
    this.#running.add(job);
    this.#options.onChange?.(job);
    const elapsed = new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        resolve();
      }, job.runMs);
      this.#timers.add(timer);
    });
    // A job doomed by a fault still occupies its slot for its run time, like a real failure.
    const rendered = job.failByFault
      ? Promise.resolve(undefined)
      : this.#options.renderer.render({
          image: job.image,
          seed: job.seed,
          frames: job.frames,
          shortSide: this.#options.shortSide,
        });
    Promise.all([rendered, elapsed]).then(
      ([video]) => {
        if (job.failByFault)
          this.#finish(job, "failed", undefined, "Generation failed: internal worker error");
        else this.#finish(job, "succeeded", video, undefined);
      },
      (error: unknown) => {
        const message = error instanceof Error ? error.message : String(error);
        // Wait out the run time anyway so failures do not arrive suspiciously fast.
        elapsed.then(() => this.#finish(job, "failed", undefined, `Generation failed: ${message}`));
      },
    );
  }

  #finish(job: Job, state: "succeeded" | "failed", video: RenderedVideo | undefined, error?: string): void {
    if (this.#closed) return;
    job.state = state;
    job.video = video;
    job.error = error;
    job.finishedAt = new Date();
    this.#running.delete(job);
    this.#options.onChange?.(job);
    this.#pump();
  }

  close(): void {
    this.#closed = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.#queue.length = 0;
  }
}
