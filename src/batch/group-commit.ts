// Journal writes that a crash may lose without harm (statuses, results, "file downloaded"):
// committed together every GROUP_COMMIT_MS, one fsync for many rows. The writes a crash must
// never lose (the intent row before a POST, the request id after it) are never deferred.

import type { JobStore, JobStoreWrite } from "../store/index.js";
import { isDiskFull } from "./disk-full.js";

/** How long non-critical journal writes wait to be committed together. */
export const GROUP_COMMIT_MS = 250;

export class GroupCommit {
  readonly #store: JobStore;
  /** Told when the store's disk is full (the writes are then kept for the next group). */
  readonly #onDiskFull: (location: string) => void;
  #deferred: JobStoreWrite[] = [];
  #flushTimer: NodeJS.Timeout | undefined;
  /** The group commit in progress (commits run one after the other, in order). */
  #flushing: Promise<void> = Promise.resolve();
  /** A group commit from the timer that failed for another reason than a full disk: rethrown at the end. */
  #error: unknown;

  constructor(store: JobStore, onDiskFull: (location: string) => void) {
    this.#store = store;
    this.#onDiskFull = onDiskFull;
  }

  /** The first timer commit that failed for another reason than a full disk (undefined if none). */
  get error(): unknown {
    return this.#error;
  }

  defer(write: JobStoreWrite): void {
    this.#deferred.push(write);
    this.#flushTimer ??= setTimeout(() => {
      this.flush().catch((error: unknown) => {
        this.#error ??= error;
      });
    }, GROUP_COMMIT_MS);
  }

  /** Commits the deferred writes in one transaction (after any commit already in progress). */
  flush(): Promise<void> {
    if (this.#flushTimer) clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    if (this.#deferred.length === 0) return this.#flushing;
    const writes = this.#deferred;
    this.#deferred = [];
    const run = this.#flushing.then(() => this.#commit(writes));
    this.#flushing = run.catch(() => {});
    return run;
  }

  async #commit(writes: JobStoreWrite[]): Promise<void> {
    try {
      await this.#store.writeBatch(writes);
    } catch (error) {
      // The store's disk is full (this often runs from a timer: throwing would end the
      // process). Nothing was committed: kept for the next group. If they never fit, the next
      // run learns the same again (results are polled by request id, files found by content).
      if (!isDiskFull(error)) throw error;
      this.#deferred.unshift(...writes);
      this.#onDiskFull(this.#store.location);
    }
  }
}
