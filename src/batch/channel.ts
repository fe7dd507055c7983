// A tiny unbounded async queue: producers push, one consumer iterates. Closing ends the
// iteration after what was pushed is drained; failing ends it with an error.

export class Channel<T> implements AsyncIterable<T> {
  #items: T[] = [];
  #waiter: ((result: IteratorResult<T>) => void) | undefined;
  #failWaiter: ((error: unknown) => void) | undefined;
  #closed = false;
  #error: { error: unknown } | undefined;

  push(item: T): void {
    if (this.#closed) return;
    if (this.#waiter) {
      const resolve = this.#waiter;
      this.#waiter = undefined;
      this.#failWaiter = undefined;
      resolve({ value: item, done: false });
    } else {
      this.#items.push(item);
    }
  }

  close(): void {
    this.#closed = true;
    if (this.#waiter && this.#items.length === 0) {
      const resolve = this.#waiter;
      this.#waiter = undefined;
      this.#failWaiter = undefined;
      resolve({ value: undefined, done: true });
    }
  }

  fail(error: unknown): void {
    this.#error = { error };
    this.#closed = true;
    if (this.#failWaiter) {
      const reject = this.#failWaiter;
      this.#waiter = undefined;
      this.#failWaiter = undefined;
      reject(error);
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        if (this.#items.length > 0) return Promise.resolve({ value: this.#items.shift() as T, done: false });
        if (this.#error) return Promise.reject(this.#error.error);
        if (this.#closed) return Promise.resolve({ value: undefined, done: true });
        return new Promise<IteratorResult<T>>((resolve, reject) => {
          this.#waiter = resolve;
          this.#failWaiter = reject;
        });
      },
      return: () => {
        this.#closed = true;
        this.#items = [];
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}

/** At most `limit` holders at once; FIFO. */
export class Semaphore {
  #free: number;
  #waiting: (() => void)[] = [];
  constructor(limit: number) {
    this.#free = Math.max(1, limit);
  }
  async acquire(): Promise<() => void> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiting.shift();
      if (next) next();
      else this.#free++;
    };
  }
}
