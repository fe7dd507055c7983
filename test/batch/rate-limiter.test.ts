// The shared rate limiter, on a fake clock: pacing, burst, 429 back-off, Retry-After pauses.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type Clock, RateLimiter } from "../../src/batch/rate-limiter.js";

/** A clock that only moves when told to; sleepers wake in time order. */
class FakeClock implements Clock {
  t = 0;
  #sleepers: { at: number; resolve: () => void }[] = [];
  now(): number {
    return this.t;
  }
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#sleepers.push({ at: this.t + ms, resolve });
    });
  }
  /** Advance to the next sleeper (or by `ms`), waking everyone due. */
  async advance(ms: number): Promise<void> {
    const until = this.t + ms;
    for (;;) {
      this.#sleepers.sort((a, b) => a.at - b.at);
      const next = this.#sleepers[0];
      if (!next || next.at > until) break;
      this.#sleepers.shift();
      this.t = next.at;
      next.resolve();
      await flush();
    }
    this.t = until;
    await flush();
  }
}

async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

/** Starts `n` acquires and records when each one got through. */
async function startMany(limiter: RateLimiter, clock: FakeClock, n: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) void limiter.acquire().then(() => times.push(clock.now()));
  await flush();
  return times;
}

describe("RateLimiter", () => {
  test("paces at rps after the initial burst", async () => {
    const clock = new FakeClock();
    const limiter = new RateLimiter({ rps: 10, burst: 2, clock });
    const times = await startMany(limiter, clock, 6);
    await clock.advance(1000);
    assert.deepEqual(times, [0, 0, 100, 200, 300, 400]);
  });

  test("reserve() is the pure bookkeeping: delays grow by one interval", () => {
    const clock = new FakeClock();
    const limiter = new RateLimiter({ rps: 4, burst: 1, clock });
    assert.deepEqual([limiter.reserve(0), limiter.reserve(0), limiter.reserve(0)], [0, 250, 500]);
    // After an idle spell the bucket has refilled (only up to the burst).
    assert.equal(limiter.reserve(5000), 0);
    assert.equal(limiter.reserve(5000), 250);
  });

  test("a 429 halves the rate once per cooldown window, and a Retry-After pauses everyone", async () => {
    const clock = new FakeClock();
    const limiter = new RateLimiter({ rps: 10, burst: 1, clock, decreaseCooldownMs: 1000 });
    limiter.onResponse(429, 2000);
    limiter.onResponse(429, 2000); // the same burst: counted once
    assert.equal(limiter.rate, 5);
    assert.equal(limiter.stats().decreases, 1);
    assert.equal(limiter.pausedUntil, 2000);
    const times = await startMany(limiter, clock, 3);
    await clock.advance(1999);
    assert.deepEqual(times, []);
    await clock.advance(1000);
    // At the end of the pause, one at a time at the new rate (no burst).
    assert.deepEqual(times, [2000, 2200, 2400]);
  });

  test("waiters booked before a pause wait for its end", async () => {
    const clock = new FakeClock();
    const limiter = new RateLimiter({ rps: 10, burst: 1, clock });
    const times = await startMany(limiter, clock, 3); // booked at 0, 100, 200
    await clock.advance(50);
    limiter.onResponse(429, 1000); // pause until 1050
    await clock.advance(2000);
    assert.equal(times[0], 0);
    assert.ok(times[1]! >= 1050 && times[2]! >= 1050, `got ${times}`);
  });

  test("additive increase back to the ceiling without 429s", () => {
    const clock = new FakeClock();
    const limiter = new RateLimiter({ rps: 8, clock, increasePerSecond: 1, decreaseCooldownMs: 0 });
    limiter.onResponse(429, 0);
    limiter.onResponse(429, 0);
    assert.equal(limiter.rate, 2);
    clock.t = 1000;
    limiter.onResponse(200);
    assert.equal(limiter.rate, 3);
    clock.t = 3000;
    limiter.onResponse(200);
    assert.equal(limiter.rate, 5);
    clock.t = 60_000;
    limiter.onResponse(200);
    assert.equal(limiter.rate, 8);
  });

  test("never below the floor; 503 with Retry-After pauses without cutting the rate", () => {
    const clock = new FakeClock();
    const limiter = new RateLimiter({ rps: 1, minRps: 0.5, clock, decreaseCooldownMs: 0 });
    for (let i = 0; i < 10; i++) limiter.onResponse(429);
    assert.equal(limiter.rate, 0.5);
    const other = new RateLimiter({ rps: 5, clock });
    other.onResponse(503, 3000);
    assert.equal(other.rate, 5);
    assert.equal(other.pausedUntil, 3000);
  });

  test("aborting the limiter's signal rejects waiters at once", async () => {
    const clock = new FakeClock();
    const controller = new AbortController();
    const limiter = new RateLimiter({
      rps: 1,
      burst: 1,
      signal: controller.signal,
      clock: {
        now: () => clock.now(),
        sleep: (ms, signal) =>
          new Promise((resolve, reject) => {
            signal?.addEventListener("abort", () => reject(new Error("aborted")), { once: true });
            void clock.sleep(ms).then(resolve);
          }),
      },
    });
    await limiter.acquire();
    const waiting = limiter.acquire();
    controller.abort();
    await assert.rejects(waiting);
  });

  test("hooks() feeds every attempt through the bucket", async () => {
    const limiter = new RateLimiter({ rps: 1000 });
    const hooks = limiter.hooks();
    await hooks.beforeRequest?.({ kind: "read", method: "GET", url: "http://x/v1/models", attempt: 1 });
    hooks.afterResponse?.({
      kind: "read",
      method: "GET",
      url: "http://x/v1/models",
      attempt: 1,
      status: 429,
      retryAfterMs: 10,
    });
    assert.equal(limiter.stats().requests, 1);
    assert.equal(limiter.stats().throttled, 1);
  });
});

describe("one rate limit for many workers", () => {
  test("a 429 tells the listeners the pause and the rate it fell to; unsubscribing stops that", () => {
    const clock = new FakeClock();
    const limiter = new RateLimiter({ rps: 10, clock });
    const heard: { pauseMs: number; rps: number }[] = [];
    const stop = limiter.onThrottle((t) => heard.push(t));
    limiter.onResponse(429, 2_000);
    assert.deepEqual(heard, [{ pauseMs: 2_000, rps: 5 }]);
    stop();
    clock.t += 5_000;
    limiter.onResponse(429, 1_000);
    assert.equal(heard.length, 1);
  });

  test("what another worker reported: this one pauses as long and goes no faster, while the report is fresh", () => {
    const clock = new FakeClock();
    const limiter = new RateLimiter({ rps: 10, clock });
    limiter.applyShared({ pauseMs: 3_000, rps: 2, ageMs: 100 });
    assert.equal(limiter.pausedUntil, 3_000);
    assert.equal(limiter.rate, 2);
    // The first slot is after the pause.
    assert.equal(limiter.reserve(), 3_000);
    // A report over a minute old pauses (if its pause still runs) but does not hold the rate down.
    const other = new RateLimiter({ rps: 10, clock });
    other.applyShared({ pauseMs: 0, rps: 1, ageMs: 61_000 });
    assert.equal(other.rate, 10);
    assert.equal(other.pausedUntil, 0);
  });
});
