// One rate limit for all the workers of a batch, through a real PostgreSQL: a 429 that one
// worker's limiter meets pauses and slows another worker's limiter (two stores, as two processes
// would have), within about a second.

import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { RateLimiter } from "../../src/batch/rate-limiter.js";
import { linkSharedThrottle } from "../../src/batch/shared-throttle.js";
import { openPostgresJobStore } from "../../src/store/postgres/index.js";
import { skipWithoutPostgres, startTestPostgres, type TestPostgres } from "../helpers/postgres.js";

const server = await startTestPostgres();
const skip = skipWithoutPostgres(server);
after(async () => {
  if (!skip) await (server as TestPostgres).stop();
});

describe("shared throttle", { skip }, () => {
  test("a 429 seen by worker A pauses and slows worker B", async () => {
    const url = await (server as TestPostgres).freshDatabase();
    const dir = await mkdtemp(join(tmpdir(), "dreamina-throttle-"));
    const open = () => openPostgresJobStore(url, { recoveryDir: dir, onWarning: () => {} });
    const [a, b] = await Promise.all([open(), open()]);
    const limiterA = new RateLimiter({ rps: 20 });
    const limiterB = new RateLimiter({ rps: 20 });
    const linkA = linkSharedThrottle(limiterA, a, "batch:t", { intervalMs: 100 });
    const linkB = linkSharedThrottle(limiterB, b, "batch:t", { intervalMs: 100 });
    try {
      limiterA.onResponse(429, 5_000);
      const deadline = Date.now() + 5_000;
      while (limiterB.pausedUntil <= Date.now() && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(limiterB.pausedUntil > Date.now() + 3_000, "B pauses for about the Retry-After A was given");
      assert.equal(limiterB.rate, 10, "B slows to the rate A fell to");
      // A third worker of another batch is not held back.
      const limiterC = new RateLimiter({ rps: 20 });
      const linkC = linkSharedThrottle(limiterC, b, "batch:other", { intervalMs: 100 });
      await new Promise((r) => setTimeout(r, 300));
      linkC.stop();
      assert.equal(limiterC.pausedUntil, 0);
    } finally {
      linkA.stop();
      linkB.stop();
      await a.close();
      await b.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
