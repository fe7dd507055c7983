// What the page can do to jobs: submit one through the SDK (so it is journaled like any other,
// and followed to the end by this server whether or not a page stays open), cancel a queued
// one, and settle a submission whose outcome is unknown without ever sending it again.

import { mkdir } from "node:fs/promises";
import { DreaminaError } from "../api/dreamina-error.js";
import { JobCancelledError, JobFailedError } from "../api/errors.js";
import type { Frames } from "../model/input.js";
import type { Dreamina } from "../node/dreamina.js";
import type { JobStore as Journal } from "../store/index.js";
import type { ImageStore } from "./images.js";
import type { LiveJobs } from "./live.js";

export interface SubmitRequest {
  image: { upload: string } | { url: string };
  prompt: string;
  frames: Frames;
  /** null: a random seed, picked here so that the journal keeps the one used. */
  seed: number | null;
}

/** A refusal the page shows as it is (status and words). */
export class StudioRequestError extends DreaminaError {
  static override readonly code: string = "studio_request";
  readonly status: 400 | 404 | 409 | 413 | 415 | 422;
  constructor(status: StudioRequestError["status"], message: string) {
    super(message);
    this.status = status;
  }
}

/** A job that failed or was cancelled at the service: the page shows it, nothing to report. */
function shownInPage(error: unknown): boolean {
  return error instanceof JobFailedError || error instanceof JobCancelledError;
}

export interface StudioJobsOptions {
  sdk: Dreamina;
  journal: Journal;
  images: ImageStore;
  live: LiveJobs;
  videosDir: string;
  timeScale: number | undefined;
  onError: (error: unknown) => void;
}

export class StudioJobs {
  readonly #o: StudioJobsOptions;
  readonly #owned = new Set<string>();
  readonly #running = new Set<Promise<unknown>>();
  readonly #stop = new AbortController();

  constructor(options: StudioJobsOptions) {
    this.#o = options;
  }

  ownedHere(requestId: string | undefined): boolean {
    return requestId !== undefined && this.#owned.has(requestId);
  }

  /** Resolves once the service accepted the job; the wait and the download go on in the background. */
  async submit(request: SubmitRequest): Promise<{ requestId: string }> {
    let image: string;
    if ("upload" in request.image) {
      const path = this.#o.images.pathOf(request.image.upload);
      if (!path || !(await this.#o.images.read(request.image.upload))) {
        throw new StudioRequestError(404, "that image is no longer in the studio; add it again");
      }
      image = path;
    } else image = request.image.url;
    const seed = request.seed ?? Math.floor(Math.random() * 2 ** 31);
    await mkdir(this.#o.videosDir, { recursive: true });
    const live = this.#o.live;
    return new Promise((resolve, reject) => {
      let submitted = false;
      const run = this.#o.sdk
        .run(
          { image, prompt: request.prompt, frames: request.frames, seed },
          {
            output: this.#o.videosDir,
            timeScale: this.#o.timeScale,
            signal: this.#stop.signal,
            // Closing the studio leaves the job to `dreamina wait`; only a person cancels one.
            cancelOnAbort: false,
            onSubmitted: (submit) => {
              submitted = true;
              this.#owned.add(submit.requestId);
              resolve({ requestId: submit.requestId });
              setImmediate(() => void live.refresh());
            },
            onUpdate: () => void live.refresh(),
          },
        )
        .then(
          () => {},
          (error: unknown) => {
            // Before the submit, the error is the answer to the page's request; after it, the
            // page shows a failed or cancelled job itself, and only the unexpected is reported.
            reject(error);
            if (submitted && !this.#stop.signal.aborted && !shownInPage(error)) this.#o.onError(error);
          },
        )
        .finally(() => {
          this.#running.delete(run);
          void live.refresh();
        });
      this.#running.add(run);
    });
  }

  async cancel(localId: number): Promise<{ outcome: string }> {
    const journal = this.#o.journal;
    const record = await journal.get(localId);
    if (!record) throw new StudioRequestError(404, `no job ${localId} in the journal`);
    if (!record.requestId || !["submitted", "in_queue"].includes(record.state)) {
      throw new StudioRequestError(
        409,
        `only a queued job can be cancelled; this one is ${record.state.replace("_", " ")}` +
          (record.state === "in_progress" ? " (it is running and will be billed)" : ""),
      );
    }
    const result = await this.#o.sdk.client.cancel(record.requestId);
    if (result.outcome === "cancelled") {
      await journal.recordStatus(record.requestId, { status: "cancelled", rawStatus: result.rawStatus });
    }
    await this.#o.live.refresh();
    return { outcome: result.outcome };
  }

  /**
   * Follows a job nobody follows any more (its process ended), or fetches the video of a
   * finished one: the same wait as `dreamina wait`, into the studio's folder.
   */
  async follow(localId: number): Promise<void> {
    const record = await this.#o.journal.get(localId);
    if (!record) throw new StudioRequestError(404, `no job ${localId} in the journal`);
    const requestId = record.requestId;
    if (
      !requestId ||
      !["submitted", "in_queue", "in_progress", "completed", "succeeded"].includes(record.state)
    ) {
      throw new StudioRequestError(
        409,
        `there is nothing to follow: this job is ${record.state.replace("_", " ")}`,
      );
    }
    if (this.#owned.has(requestId)) return;
    this.#owned.add(requestId);
    await mkdir(this.#o.videosDir, { recursive: true });
    const live = this.#o.live;
    const run = this.#o.sdk
      .wait(requestId, {
        output: this.#o.videosDir,
        timeScale: this.#o.timeScale,
        signal: this.#stop.signal,
        cancelOnAbort: false,
        onUpdate: () => void live.refresh(),
      })
      .then(
        () => {},
        (error: unknown) => {
          if (!this.#stop.signal.aborted && !shownInPage(error)) this.#o.onError(error);
        },
      )
      .finally(() => {
        this.#running.delete(run);
        void live.refresh();
      });
    this.#running.add(run);
    await live.refresh();
  }

  /** A submission whose outcome is unknown is forgotten on purpose (never resent). */
  async abandon(localId: number): Promise<void> {
    const record = await this.#o.journal.get(localId);
    if (!record) throw new StudioRequestError(404, `no job ${localId} in the journal`);
    if (record.state !== "submission_unknown") {
      throw new StudioRequestError(409, "only a submission whose outcome is unknown can be set aside");
    }
    await this.#o.journal.markAbandoned(localId, "set aside from the studio");
    await this.#o.live.refresh();
  }

  /** Stops following jobs (they keep running at the service; `dreamina wait` picks them up). */
  async close(): Promise<void> {
    this.#stop.abort(new Error("the studio is closing"));
    await Promise.allSettled([...this.#running]);
  }
}
