// A run's own run-time samples (src/run/run-time-samples.ts): the bracket-midpoint math and
// the sample window.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  bracketRunTimeMs,
  observePoll,
  RUN_TIME_WINDOW,
  type RunTimeBracket,
  RunTimeSamples,
} from "../../src/run/run-time-samples.js";

const empty = (): RunTimeBracket => ({ startLo: undefined, startHi: undefined, lastPollAt: undefined });

describe("run-time samples", () => {
  test("middle of the start bracket to middle of the end bracket", () => {
    const b = empty();
    observePoll(b, "in_queue", 1_000); // last seen queued
    observePoll(b, "in_queue", 2_000);
    observePoll(b, "in_progress", 4_000); // first seen running
    observePoll(b, "in_progress", 9_000); // last seen unfinished
    assert.deepEqual(b, { startLo: 2_000, startHi: 4_000, lastPollAt: 9_000 });
    // start ≈ 3,000, end ≈ (9,000 + 11,000) / 2 = 10,000
    assert.equal(bracketRunTimeMs(b, 0, 11_000), 7_000);
  });

  test("never seen queued: the start bracket opens at the submit", () => {
    const b = empty();
    observePoll(b, "in_progress", 2_000);
    assert.equal(bracketRunTimeMs(b, 1_000, 4_000), (2_000 + 4_000) / 2 - (1_000 + 2_000) / 2);
  });

  test("statuses after the first in_progress do not move the start", () => {
    const b = empty();
    observePoll(b, "in_progress", 2_000);
    observePoll(b, "in_queue", 3_000);
    assert.equal(b.startLo, undefined);
    assert.equal(b.startHi, 2_000);
    assert.equal(b.lastPollAt, 3_000);
  });

  test("no sample when the start was never seen running, or the result precedes it", () => {
    const queuedOnly = empty();
    observePoll(queuedOnly, "in_queue", 1_000);
    assert.equal(bracketRunTimeMs(queuedOnly, 0, 5_000), undefined);
    assert.equal(bracketRunTimeMs(empty(), 0, 5_000), undefined);
    const b = empty();
    observePoll(b, "in_progress", 10_000);
    assert.equal(bracketRunTimeMs(b, 9_000, Number.NaN), undefined);
    assert.equal(
      bracketRunTimeMs({ startLo: 20_000, startHi: 30_000, lastPollAt: 1_000 }, 0, 2_000),
      undefined,
    );
  });

  test("the window keeps the newest samples; the prior is their trimmed statistics", () => {
    const s = new RunTimeSamples(3);
    assert.equal(s.prior, undefined);
    s.add(100);
    s.add(200);
    s.add(300);
    assert.deepEqual(s.prior, { meanMs: 200, stdMs: 100, samples: 3 });
    s.add(400); // 100 leaves
    assert.deepEqual(s.prior, { meanMs: 300, stdMs: 100, samples: 3 });
    assert.equal(new RunTimeSamples().add(5)?.samples, 1);
    assert.equal(RUN_TIME_WINDOW, 50);
  });
});
