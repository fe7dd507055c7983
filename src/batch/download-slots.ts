// The slots the batch's downloads run in: a few at once, each tracked until it ends, all stopped
// at once by an interrupt. What one download does is downloads.ts.

import { setMaxListeners } from "node:events";
import { Semaphore } from "./channel.js";

export class Downloads {
  readonly #slots: Semaphore;
  readonly #inFlight = new Set<Promise<void>>();
  readonly #controller = (() => {
    const controller = new AbortController();
    // Every concurrent download listens on it.
    setMaxListeners(0, controller.signal);
    return controller;
  })();

  constructor(concurrency: number) {
    this.#slots = new Semaphore(concurrency);
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Stops every download (an interrupt). */
  abort(reason: unknown): void {
    this.#controller.abort(reason);
  }

  /** Resolves when the downloads started so far have ended. */
  async settled(): Promise<void> {
    await Promise.all(this.#inFlight);
  }

  /** Runs `work` when a slot is free; tracked until it ends. */
  run(work: () => Promise<void>): void {
    const task = (async () => {
      const release = await this.#slots.acquire();
      try {
        await work();
      } finally {
        release();
      }
    })();
    this.#inFlight.add(task);
    void task.finally(() => this.#inFlight.delete(task));
  }
}
