// wait() and updates() against a real local HTTP server playing scripted job histories.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  AbortError,
  JobCancelledError,
  JobFailedError,
  NotFoundError,
  TimeoutError,
  UnknownStatusError,
} from "../../src/api/errors.js";
import { WaitAbortedError, WaitGaveUpError, WaitTimeoutError } from "../../src/run/errors.js";
import type { PollSchedule } from "../../src/run/schedule.js";
import { type JobUpdate, updates, wait } from "../../src/run/wait.js";
import { JobServer, resultBody, statusBody } from "./job-server.js";

let server: JobServer;
before(async () => {
  server = await JobServer.start();
});
after(() => server.close());

/** Fast and fixed: every poll 10 ms apart. */
const fast: PollSchedule = () => 10;
const VIDEO = "https://cdn.runcomfy.net/out/video.mp4";

let n = 0;
function id(label: string): string {
  n++;
  return `${label}-${n}`;
}

describe("wait", () => {
  test("queued with positions → in_progress → completed, then the result (succeeded)", async () => {
    const rid = id("ok");
    server.script(rid, {
      status: [
        statusBody(rid, "in_queue", 3),
        statusBody(rid, "in_queue", 1),
        statusBody(rid, "in_progress"),
        statusBody(rid, "completed"),
      ],
      result: [resultBody(rid, "succeeded", { output: { video: VIDEO }, cost: 0.55 })],
    });
    const seen: JobUpdate[] = [];
    const result = await wait(server.client(), rid, {
      pollSchedule: fast,
      includeCost: true,
      prior: { meanMs: 60_000, stdMs: 9_000, samples: 10 },
      onUpdate: (u) => {
        seen.push(u);
      },
    });
    assert.equal(result.status, "succeeded");
    assert.equal(result.video, VIDEO);
    assert.equal(result.cost, 0.55);
    assert.deepEqual(
      seen.map((u) => [u.status, u.queuePosition, u.pollCount]),
      [
        ["in_queue", 3, 1],
        ["in_queue", 1, 2],
        ["in_progress", undefined, 3],
        ["completed", undefined, 4],
        ["succeeded", undefined, 4],
      ],
    );
    assert.equal(seen.at(-1)?.result, result);
    assert.ok(seen.every((u) => u.requestId === rid && typeof u.at === "number" && u.elapsedMs >= 0));
    assert.ok(seen[0]!.expectedRemainingMs !== undefined, "a queue position and a prior give an estimate");
    assert.equal(server.count("status", rid), 4);
    assert.equal(server.count("result", rid), 1);
    const resultHit = server.hits.find((h) => h.kind === "result" && h.requestId === rid);
    assert.equal(resultHit?.query, "?include_cost=true");
    assert.equal(server.count("cancel", rid), 0);
  });

  test("pending, waiting, starting, processing are ordinary states: polled through, raw text kept", async () => {
    const rid = id("aliases");
    server.script(rid, {
      status: [
        statusBody(rid, "pending", 2),
        statusBody(rid, "WAITING", 1),
        statusBody(rid, "starting"),
        statusBody(rid, "Processing"),
        statusBody(rid, "processing"),
        statusBody(rid, "completed"),
      ],
      result: [resultBody(rid, "succeeded", { output: { video: VIDEO } })],
    });
    const seen: JobUpdate[] = [];
    const result = await wait(server.client(), rid, {
      pollSchedule: fast,
      onUpdate: (u) => {
        seen.push(u);
      },
    });
    assert.equal(result.video, VIDEO);
    assert.deepEqual(
      seen.map((u) => [u.status, u.rawStatus, u.queuePosition]),
      [
        ["in_queue", "pending", 2],
        ["in_queue", "WAITING", 1],
        ["in_progress", "starting", undefined],
        ["in_progress", "Processing", undefined],
        ["in_progress", "processing", undefined],
        ["completed", "completed", undefined],
        ["succeeded", "succeeded", undefined],
      ],
    );
    // None of them is terminal or unknown: the result is read once, at the end.
    assert.equal(server.count("result", rid), 1);
  });

  test("a running-like alias lets pollResultWhileRunning switch to the result", async () => {
    const rid = id("aliases-result");
    server.script(rid, {
      status: [statusBody(rid, "waiting", 0), statusBody(rid, "starting")],
      result: [resultBody(rid, "processing"), resultBody(rid, "succeeded", { output: { video: VIDEO } })],
    });
    const seen: string[] = [];
    const result = await wait(server.client(), rid, {
      pollSchedule: fast,
      pollResultWhileRunning: true,
      onUpdate: (u) => void seen.push(`${u.status}/${u.rawStatus}`),
    });
    assert.equal(result.video, VIDEO);
    assert.deepEqual(seen, [
      "in_queue/waiting",
      "in_progress/starting",
      "in_progress/processing",
      "succeeded/succeeded",
    ]);
    assert.equal(server.count("status", rid), 2);
    assert.equal(server.count("result", rid), 2);
  });

  test("abort while starting (running-like) → not_cancellable, no cancel sent", async () => {
    const rid = id("aliases-abort");
    server.script(rid, { status: [statusBody(rid, "starting")] });
    const controller = new AbortController();
    const waiting = wait(server.client(), rid, {
      pollSchedule: fast,
      signal: controller.signal,
      onUpdate: () => controller.abort(),
    });
    await assert.rejects(waiting, (err: unknown) => {
      assert.ok(err instanceof WaitAbortedError);
      assert.equal(err.cancel.outcome, "not_cancellable");
      return true;
    });
    assert.equal(server.count("cancel", rid), 0);
  });

  test("completed on status but failed on result → JobFailedError with the service's error verbatim", async () => {
    const rid = id("failed");
    const jobError = [{ errorCode: 7001, error: "NSFW content detected", debugInfo: { stage: "filter" } }];
    server.script(rid, {
      status: [statusBody(rid, "in_progress"), statusBody(rid, "Completed")],
      result: [resultBody(rid, "failed", { error: jobError })],
    });
    const updatesSeen: string[] = [];
    await assert.rejects(
      wait(server.client(), rid, { pollSchedule: fast, onUpdate: (u) => void updatesSeen.push(u.status) }),
      (err: unknown) => {
        assert.ok(err instanceof JobFailedError);
        assert.equal(err.requestId, rid);
        assert.deepEqual(err.jobError, jobError);
        assert.match(err.message, /NSFW content detected/);
        return true;
      },
    );
    assert.deepEqual(updatesSeen, ["in_progress", "completed", "failed"]);
  });

  test("a plain-string error is kept as is", async () => {
    const rid = id("failed-str");
    server.script(rid, {
      status: [statusBody(rid, "completed")],
      result: [resultBody(rid, "failed", { error: "Generation failed: GPU lost" })],
    });
    await assert.rejects(wait(server.client(), rid, { pollSchedule: fast }), (err: unknown) => {
      assert.ok(err instanceof JobFailedError);
      assert.equal(err.jobError, "Generation failed: GPU lost");
      return true;
    });
  });

  test("cancelled → JobCancelledError", async () => {
    const rid = id("cancelled");
    server.script(rid, {
      status: [statusBody(rid, "in_queue", 2), statusBody(rid, "cancelled")],
      result: [resultBody(rid, "cancelled")],
    });
    await assert.rejects(wait(server.client(), rid, { pollSchedule: fast }), (err: unknown) => {
      assert.ok(err instanceof JobCancelledError);
      assert.equal(err.requestId, rid);
      return true;
    });
  });

  test("an unknown status consults the result once: terminal there → used", async () => {
    const rid = id("unknown-ok");
    server.script(rid, {
      status: [statusBody(rid, "in_progress"), statusBody(rid, "FINISHED_OK")],
      result: [resultBody(rid, "succeeded", { output: { videos: [VIDEO] } })],
    });
    const result = await wait(server.client(), rid, { pollSchedule: fast });
    assert.equal(result.video, VIDEO);
    assert.equal(server.count("result", rid), 1);
  });

  test("an unknown status and a non-terminal result → UnknownStatusError with the raw text, no endless poll", async () => {
    const rid = id("unknown");
    server.script(rid, {
      status: [statusBody(rid, "PAUSED")],
      result: [resultBody(rid, "in_progress")],
    });
    await assert.rejects(wait(server.client(), rid, { pollSchedule: fast }), (err: unknown) => {
      assert.ok(err instanceof UnknownStatusError);
      assert.equal(err.rawStatus, "PAUSED");
      assert.equal(err.requestId, rid);
      assert.match(err.message, /PAUSED/);
      return true;
    });
    assert.equal(server.count("status", rid), 1);
    assert.equal(server.count("result", rid), 1);
  });

  test("status completed while the result still says in_progress: re-checked, then settled", async () => {
    const rid = id("lag");
    server.script(rid, {
      status: [statusBody(rid, "completed")],
      result: [resultBody(rid, "in_progress"), resultBody(rid, "succeeded", { output: { video: VIDEO } })],
    });
    const result = await wait(server.client(), rid, { pollSchedule: fast });
    assert.equal(result.video, VIDEO);
    assert.equal(server.count("result", rid), 2);
  });

  test("abort mid-sleep while queued → cancel called once, AbortError with requestId and the outcome", async () => {
    const rid = id("abort-queued");
    server.script(rid, { status: [statusBody(rid, "in_queue", 4)] });
    const controller = new AbortController();
    // First poll at once, then a 30 s sleep: the abort must cut it short.
    const slow: PollSchedule = (s) => (s.history.length === 0 ? 0 : 30_000);
    const started = performance.now();
    const waiting = wait(server.client(), rid, {
      pollSchedule: slow,
      signal: controller.signal,
      onUpdate: () => {
        setTimeout(() => controller.abort(new Error("user pressed Ctrl-C")), 50);
      },
    });
    await assert.rejects(waiting, (err: unknown) => {
      assert.ok(err instanceof AbortError, "one hierarchy: still an AbortError");
      assert.ok(err instanceof WaitAbortedError);
      assert.equal(err.requestId, rid);
      assert.equal(err.cancelOutcome, "cancelled");
      assert.equal(err.cancel.attempted, true);
      assert.equal(err.cancel.jobMayContinue, false);
      assert.equal(err.lastStatus, "in_queue");
      assert.match(err.message, /Ctrl-C/);
      assert.match(err.message, /cancelled/);
      return true;
    });
    assert.ok(performance.now() - started < 2_000, "stopped at once, not after the sleep");
    assert.equal(server.count("cancel", rid), 1);
    assert.equal(server.count("status", rid), 1);
  });

  test("abort while running → not_cancellable reported honestly, no cancel success", async () => {
    const rid = id("abort-running");
    server.script(rid, {
      status: [statusBody(rid, "in_progress")],
      cancel: { http: 202, body: { request_id: rid, status: "in_progress", outcome: "not_cancellable" } },
    });
    const controller = new AbortController();
    const waiting = wait(server.client(), rid, {
      pollSchedule: (s) => (s.history.length === 0 ? 0 : 30_000),
      signal: controller.signal,
      onUpdate: () => {
        setTimeout(() => controller.abort(), 20);
      },
    });
    await assert.rejects(waiting, (err: unknown) => {
      assert.ok(err instanceof WaitAbortedError);
      assert.equal(err.requestId, rid);
      assert.equal(err.cancelOutcome, "not_cancellable");
      assert.equal(err.cancel.jobMayContinue, true);
      assert.match(err.message, /keeps running and is billed/);
      return true;
    });
    assert.equal(server.count("cancel", rid), 0, "the service cancels queued jobs only: not asked");
  });

  test("abort with cancelOnAbort: false leaves the queued job alone", async () => {
    const rid = id("abort-nocancel");
    server.script(rid, { status: [statusBody(rid, "in_queue", 1)] });
    const controller = new AbortController();
    await assert.rejects(
      wait(server.client(), rid, {
        pollSchedule: (s) => (s.history.length === 0 ? 0 : 30_000),
        signal: controller.signal,
        cancelOnAbort: false,
        onUpdate: () => void setTimeout(() => controller.abort(), 20),
      }),
      (err: unknown) => err instanceof WaitAbortedError && err.cancelOutcome === "not_attempted",
    );
    assert.equal(server.count("cancel", rid), 0);
  });

  test("an already aborted signal: no poll, cancel attempted (the job may still be queued)", async () => {
    const rid = id("pre-aborted");
    server.script(rid, { status: [statusBody(rid, "in_queue", 1)] });
    await assert.rejects(
      wait(server.client(), rid, { pollSchedule: fast, signal: AbortSignal.abort() }),
      (err: unknown) =>
        err instanceof WaitAbortedError && err.requestId === rid && err.cancelOutcome === "cancelled",
    );
    assert.equal(server.count("status", rid), 0);
    assert.equal(server.count("cancel", rid), 1);
  });

  test("deadline → TimeoutError with requestId; the job is left alone (no cancel)", async () => {
    const rid = id("deadline");
    server.script(rid, { status: [statusBody(rid, "in_queue", 2)] });
    const started = performance.now();
    await assert.rejects(
      wait(server.client(), rid, { pollSchedule: () => 40, timeoutMs: 250 }),
      (err: unknown) => {
        assert.ok(err instanceof TimeoutError, "one hierarchy: a TimeoutError");
        assert.ok(err instanceof WaitTimeoutError);
        assert.equal(err.requestId, rid);
        assert.equal(err.timeoutMs, 250);
        assert.equal(err.cancelOutcome, "not_attempted");
        assert.equal(err.cancel.jobMayContinue, true);
        assert.match(err.message, /in_queue/);
        return true;
      },
    );
    const took = performance.now() - started;
    assert.ok(took >= 240 && took < 1_500, `took ${took} ms`);
    assert.equal(server.count("cancel", rid), 0);
    assert.ok(server.count("status", rid) >= 2);
  });

  test("deadline with cancelOnTimeout while queued → cancelled", async () => {
    const rid = id("deadline-cancel");
    server.script(rid, { status: [statusBody(rid, "in_queue", 2)] });
    await assert.rejects(
      wait(server.client(), rid, { pollSchedule: () => 40, timeoutMs: 150, cancelOnTimeout: true }),
      (err: unknown) => err instanceof WaitTimeoutError && err.cancelOutcome === "cancelled",
    );
    assert.equal(server.count("cancel", rid), 1);
  });

  test("transient 503 and 429 while polling: keeps polling, honours Retry-After", async () => {
    const rid = id("transient");
    server.script(rid, {
      status: [
        statusBody(rid, "in_queue", 1),
        { http: 503, body: "<html><body>503 Service Unavailable</body></html>" },
        {
          http: 429,
          headers: { "retry-after": "1" },
          body: { error_code: 429001, error_message: "slow down" },
        },
        statusBody(rid, "in_progress"),
        statusBody(rid, "completed"),
      ],
      result: [resultBody(rid, "succeeded", { output: { video: VIDEO } })],
    });
    const errors: string[] = [];
    // The client does not retry here (maxAttempts 1), so the errors reach the poller.
    const result = await wait(server.client({ maxAttempts: 1 }), rid, {
      pollSchedule: (s) => Math.max(10, s.retryAfterMs ?? 0),
      onPollError: (e, k) => void errors.push(`${e.name}:${k}`),
    });
    assert.equal(result.video, VIDEO);
    assert.deepEqual(errors, ["ServerError:1", "RateLimitError:2"]);
    const times = server.hits.filter((h) => h.kind === "status" && h.requestId === rid).map((h) => h.at);
    assert.equal(times.length, 5);
    assert.ok(times[3]! - times[2]! >= 950, `Retry-After honoured (${times[3]! - times[2]!} ms)`);
  });

  test("giveUpAfterMs: every poll failing that long ends the wait with WaitGaveUpError; the job is left alone", async () => {
    const rid = id("gives-up");
    const failing = { http: 503, body: "<html><body>503 Service Unavailable</body></html>" };
    server.script(rid, { status: [statusBody(rid, "in_queue", 2), failing] });
    const reports: { count: number; failingForMs: number; giveUpInMs: number | undefined }[] = [];
    const started = Date.now();
    const error = await wait(server.client({ maxAttempts: 1 }), rid, {
      pollSchedule: () => 40,
      giveUpAfterMs: 300,
      onPollError: (_e, count, info) => void reports.push({ count, ...info }),
    }).then(
      () => assert.fail("expected WaitGaveUpError"),
      (e: unknown) => e,
    );
    const took = Date.now() - started;
    assert.ok(error instanceof WaitGaveUpError, String(error));
    assert.equal(error.name, "WaitGaveUpError");
    assert.equal(error.requestId, rid);
    assert.equal(error.retryable, true);
    assert.equal((error.cause as Error).name, "ServerError", "the last poll's error is the cause");
    assert.ok(error.failingForMs >= 300, `${error.failingForMs}`);
    assert.equal(error.lastRawStatus, "in_queue");
    assert.match(
      error.message,
      /every poll failed for 0 s \(\d+ in a row, last status in_queue; the last: .*503/,
    );
    assert.ok(took >= 300 && took < 2_000, `gave up at the give-up time, not a backoff later (${took} ms)`);
    assert.equal(server.count("cancel", rid), 0, "no cancel: the job may still run");
    assert.equal(reports[0]?.count, 1);
    assert.equal(reports[0]?.giveUpInMs, 300 - (reports[0]?.failingForMs ?? 0));
    assert.ok(reports.every((r, i) => i === 0 || r.failingForMs >= reports[i - 1]!.failingForMs));
    assert.equal(error.consecutiveErrors, reports.length + 1, "the last failure is the error, not a report");
  });

  test("giveUpAfterMs counts one spell: an answer in between starts it again", async () => {
    const rid = id("spells");
    const failing = { http: 502, body: "<html>bad gateway</html>" };
    const spell = Array.from({ length: 5 }, () => failing);
    server.script(rid, {
      status: [
        ...spell,
        statusBody(rid, "in_queue", 1),
        ...spell,
        statusBody(rid, "in_progress"),
        ...spell,
        statusBody(rid, "completed"),
      ],
      result: [resultBody(rid, "succeeded", { output: { video: VIDEO } })],
    });
    // A spell's five failures are four 100 ms sleeps apart: 400 ms plus the polls themselves, well
    // under the 1 s allowed even on a loaded machine (40 ms and 300 ms left too little: one spell
    // took 342 ms there). The three spells together span at least 16 sleeps, 1.6 s: counted as
    // one, they would give up.
    const result = await wait(server.client({ maxAttempts: 1 }), rid, {
      pollSchedule: () => 100,
      giveUpAfterMs: 1_000,
    });
    assert.equal(result.video, VIDEO);
  });

  test("the default schedule honours Retry-After from a failed poll too", async () => {
    const rid = id("retry-after-default");
    server.script(rid, {
      status: [
        {
          http: 429,
          headers: { "retry-after": "1" },
          body: { error_code: 429001, error_message: "slow down" },
        },
        statusBody(rid, "completed"),
      ],
      result: [resultBody(rid, "succeeded", { output: { video: VIDEO } })],
    });
    // submittedAt in the past: the default schedule's first check is due at once.
    await wait(server.client(), rid, { submittedAt: Date.now() - 60_000 });
    const times = server.hits.filter((h) => h.kind === "status" && h.requestId === rid).map((h) => h.at);
    assert.equal(times.length, 2);
    assert.ok(times[1]! - times[0]! >= 950);
  });

  test("a non-retryable error (404) ends the wait at once", async () => {
    await assert.rejects(wait(server.client(), "no-such-job", { pollSchedule: fast }), NotFoundError);
    assert.equal(server.count("status", "no-such-job"), 1);
  });
});

describe("wait with pollResultWhileRunning", () => {
  test("queued on status (positions), then the result is polled: its unfinished state, then the outcome", async () => {
    const rid = id("rp-ok");
    server.script(rid, {
      status: [statusBody(rid, "in_queue", 2), statusBody(rid, "in_progress")],
      result: [
        resultBody(rid, "in_progress"),
        resultBody(rid, "succeeded", { output: { video: VIDEO }, cost: 0.6 }),
      ],
    });
    const seen: JobUpdate[] = [];
    const terminal: string[] = [];
    const result = await wait(server.client(), rid, {
      pollSchedule: fast,
      includeCost: true,
      pollResultWhileRunning: true,
      onUpdate: (u) => void seen.push(u),
      onResult: (r) => void terminal.push(r.status),
    });
    assert.equal(result.video, VIDEO);
    assert.equal(result.cost, 0.6);
    assert.deepEqual(
      seen.map((u) => [u.status, u.queuePosition, u.pollCount, u.result !== undefined]),
      [
        ["in_queue", 2, 1, false],
        ["in_progress", undefined, 2, false],
        ["in_progress", undefined, 3, false],
        ["succeeded", undefined, 4, true],
      ],
    );
    assert.deepEqual(terminal, ["succeeded"]);
    // The end costs one request: no status → result pair.
    assert.equal(server.count("status", rid), 2);
    assert.equal(server.count("result", rid), 2);
    assert.ok(
      server.hits
        .filter((h) => h.kind === "result" && h.requestId === rid)
        .every((h) => h.query === "?include_cost=true"),
    );
  });

  test("failed on the result → JobFailedError with the service's error verbatim", async () => {
    const rid = id("rp-failed");
    server.script(rid, {
      status: [statusBody(rid, "in_progress")],
      result: [resultBody(rid, "failed", { error: "NSFW content detected" })],
    });
    await assert.rejects(
      wait(server.client(), rid, { pollSchedule: fast, pollResultWhileRunning: true }),
      (err: unknown) => {
        assert.ok(err instanceof JobFailedError);
        assert.equal(err.jobError, "NSFW content detected");
        return true;
      },
    );
    assert.equal(server.count("status", rid), 1);
    assert.equal(server.count("result", rid), 1);
  });

  test("an unknown state on the result hands over to the status: no endless poll, a clear error", async () => {
    const rid = id("rp-unknown");
    server.script(rid, {
      status: [statusBody(rid, "in_progress"), statusBody(rid, "PAUSED")],
      result: [resultBody(rid, "WEIRD")],
    });
    await assert.rejects(
      wait(server.client(), rid, { pollSchedule: fast, pollResultWhileRunning: true }),
      (err: unknown) => {
        assert.ok(err instanceof UnknownStatusError);
        assert.equal(err.requestId, rid);
        return true;
      },
    );
    assert.equal(server.count("status", rid), 2);
    assert.equal(server.count("result", rid), 2);
  });

  test("a prior given as a function is asked before every poll", async () => {
    const rid = id("rp-prior");
    server.script(rid, {
      status: [statusBody(rid, "in_progress")],
      result: [resultBody(rid, "in_progress"), resultBody(rid, "succeeded", { output: { video: VIDEO } })],
    });
    let asked = 0;
    const seenPriors: unknown[] = [];
    await wait(server.client(), rid, {
      pollSchedule: (state) => {
        seenPriors.push(state.prior);
        return 5;
      },
      pollResultWhileRunning: true,
      prior: () => {
        asked++;
        return asked >= 2 ? { meanMs: 1000, stdMs: 100, samples: 5 } : undefined;
      },
    });
    assert.ok(asked >= 3);
    assert.equal(seenPriors[0], undefined);
    assert.deepEqual(seenPriors.at(-1), { meanMs: 1000, stdMs: 100, samples: 5 });
  });
});

describe("updates", () => {
  test("yields every status, the last with the result", async () => {
    const rid = id("iter");
    server.script(rid, {
      status: [statusBody(rid, "in_queue", 1), statusBody(rid, "in_progress"), statusBody(rid, "completed")],
      result: [resultBody(rid, "succeeded", { output: { video: VIDEO } })],
    });
    const seen: string[] = [];
    let final: JobUpdate | undefined;
    for await (const u of updates(server.client(), rid, { pollSchedule: fast })) {
      seen.push(u.status);
      final = u;
    }
    assert.deepEqual(seen, ["in_queue", "in_progress", "completed", "succeeded"]);
    assert.equal(final?.result?.video, VIDEO);
  });

  test("breaking out stops polling without cancelling", async () => {
    const rid = id("iter-break");
    server.script(rid, { status: [statusBody(rid, "in_queue", 5)] });
    for await (const u of updates(server.client(), rid, { pollSchedule: fast })) {
      if (u.pollCount === 2) break;
    }
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(server.count("status", rid), 2);
    assert.equal(server.count("cancel", rid), 0);
  });

  test("errors surface from the iteration", async () => {
    const rid = id("iter-fail");
    server.script(rid, {
      status: [statusBody(rid, "completed")],
      result: [resultBody(rid, "failed", { error: "boom" })],
    });
    await assert.rejects(async () => {
      for await (const _ of updates(server.client(), rid, { pollSchedule: fast })) {
        // drain
      }
    }, JobFailedError);
  });
});
