// One request-rate limiter shared by every HTTP call of a batch (submit, status, result,
// cancel, models): a token bucket (GCRA, "virtual scheduling") at `rps`, with a small
// burst, that adapts to the service:
//   - on 429: multiplicative decrease (rate × `decrease`, at most once per `decreaseCooldownMs`
//     so one burst of 429s from requests already in flight counts once), and everyone pauses
//     until Retry-After when the service sent one;
//   - on any other answer: additive increase of `increasePerSecond` rps per second elapsed
//     since the last change, back up to the configured ceiling.
// The clock is injected, so the whole schedule is testable without waiting.

import { setMaxListeners } from "node:events";
import { AbortError } from "../api/errors.js";
import { sleep as abortableSleep } from "../api/sleep.js";
import type { TransportHooks } from "../api/transport.js";

/** The limiter was stopped while a request waited for its slot: that request was never sent. */
export class RateLimiterStoppedError extends AbortError {
  readonly notSent = true;
}

export interface Clock {
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => performance.timeOrigin + performance.now(),
  sleep: (ms, signal) => abortableSleep(ms, signal),
};

export interface RateLimiterOptions {
  /** Requests per second at most (the ceiling the rate climbs back to). */
  rps: number;
  /** Requests that may go at once after an idle spell. Default: max(1, min(rps, 4)). */
  burst?: number;
  /** The rate never drops below this. Default min(0.2, rps). */
  minRps?: number;
  /** Factor applied to the rate on a 429. Default 0.5. */
  decrease?: number;
  /** Rate regained per second without a 429. Default max(0.1, rps / 20). */
  increasePerSecond?: number;
  /** Several 429s within this window cut the rate only once. Default 1000 ms. */
  decreaseCooldownMs?: number;
  /** Longest pause a Retry-After may impose. Default 60 s. */
  maxPauseMs?: number;
  /** Pause after a 429 without Retry-After. Default: one interval at the new rate. */
  clock?: Clock;
  /** Aborting rejects every waiter (so a Ctrl-C never waits out a pause). */
  signal?: AbortSignal;
}

export interface RateLimiterStats {
  rate: number;
  ceiling: number;
  requests: number;
  responses: number;
  throttled: number;
  decreases: number;
  pausedUntil: number;
  /** Total time callers spent waiting for a slot, in ms. */
  waitedMs: number;
}

export class RateLimiter {
  readonly ceiling: number;
  readonly #burst: number;
  readonly #minRps: number;
  readonly #decrease: number;
  readonly #increasePerSecond: number;
  readonly #cooldownMs: number;
  readonly #maxPauseMs: number;
  readonly #clock: Clock;
  readonly #signal: AbortSignal | undefined;
  #rate: number;
  /** GCRA theoretical arrival time: when the bucket would be empty again. */
  #tat = 0;
  #pausedUntil = 0;
  #lastAdjust: number;
  #lastDecrease = Number.NEGATIVE_INFINITY;
  #stats = { requests: 0, responses: 0, throttled: 0, decreases: 0, waitedMs: 0 };
  readonly #throttleListeners = new Set<(throttle: { pauseMs: number; rps: number }) => void>();

  constructor(options: RateLimiterOptions) {
    if (!(options.rps > 0) || !Number.isFinite(options.rps)) {
      throw new RangeError(`rps must be a positive number (got ${options.rps})`);
    }
    this.ceiling = options.rps;
    this.#rate = options.rps;
    this.#burst = Math.max(1, Math.floor(options.burst ?? Math.min(options.rps, 4)));
    this.#minRps = Math.min(options.minRps ?? 0.2, options.rps);
    this.#decrease = options.decrease ?? 0.5;
    this.#increasePerSecond = options.increasePerSecond ?? Math.max(0.1, options.rps / 20);
    this.#cooldownMs = options.decreaseCooldownMs ?? 1000;
    this.#maxPauseMs = options.maxPauseMs ?? 60_000;
    this.#clock = options.clock ?? systemClock;
    this.#signal = options.signal;
    // Every request waiting for a slot listens on it.
    if (options.signal) setMaxListeners(0, options.signal);
    this.#lastAdjust = this.#clock.now();
  }

  get rate(): number {
    return this.#rate;
  }

  get pausedUntil(): number {
    return this.#pausedUntil;
  }

  /**
   * Books the next slot and returns how long to wait for it (0 = go now). Pure bookkeeping:
   * `acquire` is this plus the sleep.
   */
  reserve(now = this.#clock.now()): number {
    const interval = 1000 / this.#rate;
    const tolerance = (this.#burst - 1) * interval;
    const tat = Math.max(this.#tat, now);
    const start = Math.max(now, this.#pausedUntil, tat - tolerance);
    this.#tat = Math.max(tat, start) + interval;
    return start - now;
  }

  /** Waits for a slot. Rejects with an AbortError when the limiter's (or the given) signal aborts. */
  async acquire(signal?: AbortSignal): Promise<void> {
    const started = this.#clock.now();
    for (;;) {
      this.#checkAborted(signal);
      const delay = this.reserve();
      if (delay > 0) await this.#sleep(delay, signal);
      // A 429 may have paused everyone while this caller slept on an older booking.
      const now = this.#clock.now();
      if (now >= this.#pausedUntil) break;
      await this.#sleep(this.#pausedUntil - now, signal);
    }
    this.#stats.requests++;
    this.#stats.waitedMs += this.#clock.now() - started;
  }

  /** Tells the limiter how a request went: HTTP status and the Retry-After in ms, if any. */
  onResponse(status: number, retryAfterMs?: number): void {
    const now = this.#clock.now();
    this.#stats.responses++;
    if (status === 429) {
      this.#stats.throttled++;
      if (now - this.#lastDecrease >= this.#cooldownMs) {
        this.#rate = Math.max(this.#minRps, this.#rate * this.#decrease);
        this.#lastDecrease = now;
        this.#stats.decreases++;
      }
      this.#lastAdjust = now;
      const pause = Math.min(retryAfterMs ?? 1000 / this.#rate, this.#maxPauseMs);
      this.#pauseUntil(now + pause);
      for (const listener of this.#throttleListeners) listener({ pauseMs: pause, rps: this.#rate });
      return;
    }
    if (retryAfterMs !== undefined && status >= 500) {
      // A 503 with Retry-After: the service asked everyone to hold off, without a rate cut.
      this.#pauseUntil(now + Math.min(retryAfterMs, this.#maxPauseMs));
    }
    if (this.#rate < this.ceiling && now > this.#pausedUntil) {
      const elapsedS = Math.max(0, now - Math.max(this.#lastAdjust, this.#lastDecrease)) / 1000;
      this.#rate = Math.min(this.ceiling, this.#rate + this.#increasePerSecond * elapsedS);
    }
    this.#lastAdjust = now;
  }

  /**
   * Called on every 429 with the pause it imposed and the rate it fell to: how one worker tells
   * the others (see `applyShared`). Returns the function that unsubscribes.
   */
  onThrottle(listener: (throttle: { pauseMs: number; rps: number }) => void): () => void {
    this.#throttleListeners.add(listener);
    return () => this.#throttleListeners.delete(listener);
  }

  /**
   * What another worker of the same account reported: pause as long as it was told to, and go
   * no faster than the rate it fell to while that report is fresh (younger than a minute);
   * from there the rate climbs back as after a 429 of our own.
   */
  applyShared(throttle: { pauseMs: number; rps?: number | undefined; ageMs: number }): void {
    const now = this.#clock.now();
    if (throttle.pauseMs > 0) this.#pauseUntil(now + Math.min(throttle.pauseMs, this.#maxPauseMs));
    if (throttle.rps !== undefined && throttle.ageMs < 60_000 && throttle.rps < this.#rate) {
      this.#rate = Math.max(this.#minRps, throttle.rps);
      this.#lastAdjust = now;
      this.#lastDecrease = now;
    }
  }

  /** Hooks for RunComfyClient({ hooks }): every attempt of every call goes through the bucket. */
  hooks(extra: TransportHooks = {}): TransportHooks {
    return {
      beforeRequest: async (info) => {
        await this.acquire();
        await extra.beforeRequest?.(info);
      },
      afterResponse: (info) => {
        this.onResponse(info.status, info.retryAfterMs);
        extra.afterResponse?.(info);
      },
      onRetry: (info) => extra.onRetry?.(info),
    };
  }

  stats(): RateLimiterStats {
    return { ...this.#stats, rate: this.#rate, ceiling: this.ceiling, pausedUntil: this.#pausedUntil };
  }

  #pauseUntil(until: number): void {
    if (until <= this.#pausedUntil) return;
    this.#pausedUntil = until;
    // No burst right after the pause: the first slot is at its end, then one per interval.
    const interval = 1000 / this.#rate;
    const tolerance = (this.#burst - 1) * interval;
    this.#tat = Math.max(this.#tat, until + tolerance);
  }

  #checkAborted(signal?: AbortSignal): void {
    if (this.#signal?.aborted || signal?.aborted) {
      throw new RateLimiterStoppedError(
        "stopped while waiting for a request slot (the request was not sent)",
      );
    }
  }

  async #sleep(ms: number, signal?: AbortSignal): Promise<void> {
    const signals = [this.#signal, signal].filter((s): s is AbortSignal => s !== undefined);
    const combined =
      signals.length === 0 ? undefined : signals.length === 1 ? signals[0] : AbortSignal.any(signals);
    try {
      await this.#clock.sleep(ms, combined);
    } catch (error) {
      if (combined?.aborted) this.#checkAborted(signal);
      throw error;
    }
  }
}
