// Writes a download's body to its `.part` file without copying it.

import type { FileHandle } from "node:fs/promises";

/**
 * Every this many bytes a datasync is started in the background, so the disk writes back while
 * the network keeps delivering and the final fsync (before the rename) has little left to do:
 * the total is then about max(network, disk), not their sum.
 */
const SYNC_EVERY = 16 << 20;

/**
 * Appends received chunks to a file without copying them: chunks that arrive while a write is in
 * flight wait in a queue, then go out together in one writev, so a slow disk means fewer, larger
 * writes. add() returns the promise of the write that carries the chunk: the chunk's memory is
 * not needed after it (the transport reads into it again). Every SYNC_EVERY bytes a datasync is
 * started in the background, so that the final fsync has little left to do.
 */
export class Appender {
  readonly #file: FileHandle;
  #queue: Uint8Array[] = [];
  #queued = 0;
  /** Settles when the queued chunks have been written. */
  #queueWritten: Deferred | undefined;
  /** The write loop, while it runs (it never rejects: a failure is kept in #error). */
  #writing: Promise<void> | undefined;
  #syncing: Promise<void> | undefined;
  #unsynced = 0;
  #error: unknown;
  #failed = false;

  constructor(file: FileHandle) {
    this.#file = file;
  }

  get failed(): boolean {
    return this.#failed;
  }

  /** Queues `chunk` (kept, not copied); the promise settles once it is written. */
  add(chunk: Uint8Array): Promise<void> {
    if (this.#failed) return Promise.reject(this.#error);
    this.#queue.push(chunk);
    this.#queued += chunk.byteLength;
    this.#queueWritten ??= deferred();
    const written = this.#queueWritten.promise;
    this.#writing ??= this.#writeLoop();
    return written;
  }

  /** Waits for the queue to be written, then fsyncs the file. */
  async finish(): Promise<void> {
    await this.#writing;
    if (this.#failed) throw this.#error;
    // The fsync runs alongside a background datasync still in flight rather than after it: both
    // wait for the same writeback, so the tail is one flush, not two.
    await Promise.all([this.#syncing, this.#file.sync()]);
    if (this.#failed) throw this.#error;
  }

  async close(): Promise<void> {
    this.#queue = [];
    this.#queueWritten?.reject(new Error("the file was closed"));
    this.#queueWritten = undefined;
    await this.#writing;
    await this.#syncing;
    await this.#file.close();
  }

  async #writeLoop(): Promise<void> {
    const file = this.#file;
    let written: Deferred | undefined;
    try {
      while (this.#queue.length > 0 && !this.#failed) {
        let batch = this.#queue;
        const total = this.#queued;
        let bytes = total;
        written = this.#queueWritten;
        this.#queue = [];
        this.#queued = 0;
        this.#queueWritten = undefined;
        for (;;) {
          const { bytesWritten } = await file.writev(batch);
          if (bytesWritten >= bytes) break;
          // A short write (rare on a file): the rest, from where it stopped.
          if (bytesWritten === 0) throw new Error("the disk accepted no bytes");
          bytes -= bytesWritten;
          batch = dropBytes(batch, bytesWritten);
        }
        written?.resolve();
        written = undefined;
        this.#unsynced += total;
        if (this.#unsynced >= SYNC_EVERY && !this.#syncing) {
          this.#unsynced = 0;
          this.#syncing = file
            .datasync()
            .catch((error: unknown) => this.#fail(error))
            .finally(() => {
              this.#syncing = undefined;
            });
        }
      }
    } catch (error) {
      this.#fail(error);
      written?.reject(error);
    } finally {
      // After a failure (here or in a background datasync), what is still queued never will be.
      if (this.#failed) {
        this.#queueWritten?.reject(this.#error);
        this.#queueWritten = undefined;
        this.#queue = [];
        this.#queued = 0;
      }
      this.#writing = undefined;
    }
  }

  #fail(error: unknown): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#error = error;
  }
}

interface Deferred {
  promise: Promise<void>;
  resolve(): void;
  reject(error: unknown): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A rejection nobody waits for (the download already failed) is not an unhandled one.
  promise.catch(() => {});
  return { promise, resolve, reject };
}

/** `chunks` without their first `n` bytes. */
function dropBytes(chunks: Uint8Array[], n: number): Uint8Array[] {
  let skip = n;
  let i = 0;
  while (skip >= chunks[i]!.byteLength) skip -= chunks[i++]!.byteLength;
  return [chunks[i]!.subarray(skip), ...chunks.slice(i + 1)];
}
