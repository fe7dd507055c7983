// Retries, Retry-After, the submit's never-resend rule, aborts and timeouts, timed from the
// server's own request log.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  AbortError,
  ConnectionError,
  RateLimitError,
  type RunComfyError,
  ServerError,
  SubmissionUnknownError,
  TimeoutError,
} from "../../src/api/errors.js";
import { MODEL_ID, ScriptedServer, testClient } from "../helpers/scripted-server.js";

let server: ScriptedServer;
before(async () => {
  server = await ScriptedServer.start();
});
after(() => server.close());

let seq = 0;
/** A fresh request id per test, so request counts never mix. */
function fresh() {
  const id = `req_${++seq}`;
  return { id, status: `/v1/requests/${id}/status`, result: `/v1/requests/${id}/result` };
}
const SUBMIT = `/v1/models/${MODEL_ID}`;
const OK = { body: { status: "in_progress" } };

function caught(p: Promise<unknown>): Promise<RunComfyError> {
  return p.then(
    () => assert.fail("expected an error"),
    (e: unknown) => e as RunComfyError,
  );
}

/** Asserts each gap is at least the planned delay and not absurdly longer. */
function assertGaps(gaps: number[], planned: number[]) {
  assert.equal(gaps.length, planned.length, `gaps ${gaps}`);
  gaps.forEach((gap, i) => {
    const want = planned[i] as number;
    assert.ok(gap >= want - 2, `gap ${i} was ${gap.toFixed(1)} ms, planned ${want}`);
    assert.ok(gap < want + 250, `gap ${i} was ${gap.toFixed(1)} ms, planned ${want}`);
  });
}

describe("reads retry", () => {
  for (const [name, failure] of [
    ["408", { status: 408 }],
    ["429", { status: 429, body: {} }],
    ["500", { status: 500, body: {} }],
    ["502 HTML", { status: 502, body: "<html>bad gateway</html>" }],
    ["503", { status: 503 }],
    ["a reset connection", { action: "reset" }],
  ] as const) {
    test(`after ${name}, then succeed`, async () => {
      const { id, status } = fresh();
      server.on("GET", status, failure, failure, OK);
      const s = await testClient(server).status(id);
      assert.equal(s.status, "in_progress");
      assert.equal(server.to(status).length, 3);
    });
  }

  test("bounded: maxAttempts requests, then the last error", async () => {
    const { id, status } = fresh();
    server.always("GET", status, { status: 500, body: { error_message: "down" } });
    const err = await caught(testClient(server, { retry: { maxAttempts: 4 } }).status(id));
    assert.ok(err instanceof ServerError);
    assert.equal(server.to(status).length, 4);
  });

  test("exponential backoff between attempts (random = 1: 20, 40, 80 ms)", async () => {
    const { id, status } = fresh();
    server.always("GET", status, { status: 503 });
    const retries: number[] = [];
    const client = testClient(server, {
      retry: { maxAttempts: 4, baseDelayMs: 20 },
      hooks: { onRetry: (i) => retries.push(i.delayMs) },
    });
    await caught(client.status(id));
    assert.deepEqual(retries, [20, 40, 80]);
    assertGaps(server.gaps(status), [20, 40, 80]);
  });

  test("jitter comes from the random option and stays below the ceiling", async () => {
    const { id, status } = fresh();
    server.always("GET", status, { status: 503 });
    const retries: number[] = [];
    const client = testClient(server, {
      random: () => 0.5,
      retry: { maxAttempts: 3, baseDelayMs: 100 },
      hooks: { onRetry: (i) => retries.push(i.delayMs) },
    });
    await caught(client.status(id));
    assert.deepEqual(retries, [50, 100]);
  });

  test("maxDelayMs caps one backoff", async () => {
    const { id, status } = fresh();
    server.always("GET", status, { status: 503 });
    const retries: number[] = [];
    const client = testClient(server, {
      retry: { maxAttempts: 4, baseDelayMs: 20, maxDelayMs: 30 },
      hooks: { onRetry: (i) => retries.push(i.delayMs) },
    });
    await caught(client.status(id));
    assert.deepEqual(retries, [20, 30, 30]);
  });

  test("maxElapsedMs stops retrying", async () => {
    const { id, status } = fresh();
    server.always("GET", status, { status: 503 });
    const client = testClient(server, {
      retry: { maxAttempts: 10, baseDelayMs: 1_000, maxDelayMs: 5_000, maxElapsedMs: 2_500 },
    });
    await caught(client.status(id));
    // 1 s + 2 s > 2.5 s: the second retry would start too late, however fast the server answers;
    // the first is taken if the first 503 comes back within 1.5 s (a process's first fetch on a
    // loaded machine took over 400 ms: 40 and 100 ms left it 60).
    assert.equal(server.to(status).length, 2);
  });

  for (const status of [400, 401, 403, 404, 422] as const) {
    test(`a ${status} is not retried`, async () => {
      const f = fresh();
      server.always("GET", f.status, { status, body: {} });
      await caught(testClient(server).status(f.id));
      assert.equal(server.to(f.status).length, 1);
    });
  }

  test("cancel retries on 503 (idempotent)", async () => {
    const { id } = fresh();
    const path = `/v1/requests/${id}/cancel`;
    server.on("POST", path, { status: 503 }, { status: 202, body: { outcome: "cancelled" } });
    const c = await testClient(server).cancel(id);
    assert.equal(c.outcome, "cancelled");
    assert.equal(server.to(path).length, 2);
  });
});

describe("Retry-After", () => {
  test("seconds: honoured on 429", async () => {
    const { id, status } = fresh();
    server.on("GET", status, { status: 429, headers: { "retry-after": "1" }, body: {} }, OK);
    await testClient(server).status(id);
    assertGaps(server.gaps(status), [1000]);
  });

  test("HTTP date: honoured on 429", async () => {
    const { id, status } = fresh();
    // HTTP dates have whole seconds: 2 s ahead means between 1 and 2 s from now.
    const at = new Date(Date.now() + 2000).toUTCString();
    server.on("GET", status, { status: 429, headers: { "retry-after": at }, body: {} }, OK);
    await testClient(server).status(id);
    const [gap] = server.gaps(status);
    assert.ok(gap !== undefined && gap >= 990 && gap < 2250, `gap ${gap}`);
  });

  test("an HTTP date in the past means retry now", async () => {
    const { id, status } = fresh();
    const at = new Date(Date.now() - 60_000).toUTCString();
    server.on("GET", status, { status: 429, headers: { "retry-after": at }, body: {} }, OK);
    await testClient(server).status(id);
    assertGaps(server.gaps(status), [0]);
  });

  test("capped by maxRetryAfterMs (seconds and date)", async () => {
    const { id, status } = fresh();
    const date = new Date(Date.now() + 3_600_000).toUTCString();
    server.on(
      "GET",
      status,
      { status: 429, headers: { "retry-after": "3600" }, body: {} },
      { status: 429, headers: { "retry-after": date }, body: {} },
      OK,
    );
    await testClient(server, { retry: { maxRetryAfterMs: 60 } }).status(id);
    assertGaps(server.gaps(status), [60, 60]);
  });

  test("honoured on 503 too", async () => {
    const { id, status } = fresh();
    server.on("GET", status, { status: 503, headers: { "retry-after": "1" } }, OK);
    await testClient(server, { retry: { baseDelayMs: 5 } }).status(id);
    assertGaps(server.gaps(status), [1000]);
  });

  test("an unreadable Retry-After falls back to backoff", async () => {
    const { id, status } = fresh();
    server.on("GET", status, { status: 429, headers: { "retry-after": "soon" }, body: {} }, OK);
    await testClient(server).status(id);
    assertGaps(server.gaps(status), [20]);
  });
});

describe("submit is never resent when it may have been taken", () => {
  const input = { prompt: "once", image_urls: ["https://example.com/a.png"] };

  for (const [name, response] of [
    ["500", { status: 500, body: { error_message: "oops" } }],
    ["502 HTML", { status: 502, body: "<html><body>Bad Gateway</body></html>" }],
    ["503", { status: 503 }],
    ["408", { status: 408 }],
    ["reset after send", { action: "reset" }],
  ] as const) {
    test(`${name} → SubmissionUnknownError, one request`, async () => {
      const before = server.to(SUBMIT).length;
      // Were it resent, the resend would be recorded (and answered 599 by the fallback).
      server.on("POST", SUBMIT, response);
      const t0 = Date.now();
      const err = await caught(testClient(server).submit(MODEL_ID, input));
      assert.ok(err instanceof SubmissionUnknownError, `got ${err.name}: ${err.message}`);
      assert.equal(server.to(SUBMIT).length, before + 1, "sent exactly once");
      assert.equal(err.modelId, MODEL_ID);
      assert.deepEqual(err.input, input);
      assert.ok(err.at.getTime() >= t0);
      assert.equal(err.retryable, false);
      assert.match(err.message, /not sent again/);
    });
  }

  test("timeout → SubmissionUnknownError, one request", async () => {
    const before = server.to(SUBMIT).length;
    server.on("POST", SUBMIT, { action: "hang" });
    const t0 = performance.now();
    const err = await caught(testClient(server, { timeoutMs: 150 }).submit(MODEL_ID, input));
    assert.ok(err instanceof SubmissionUnknownError, `got ${err.name}`);
    assert.ok(err.cause instanceof TimeoutError);
    assert.ok(performance.now() - t0 < 1000);
    assert.equal(server.to(SUBMIT).length, before + 1);
  });

  test("429 is retried (the service refused it)", async () => {
    const before = server.to(SUBMIT).length;
    server.on(
      "POST",
      SUBMIT,
      { status: 429, body: {} },
      { status: 429, body: {} },
      { body: { request_id: "r_429" } },
    );
    const r = await testClient(server).submit(MODEL_ID, input);
    assert.equal(r.requestId, "r_429");
    const sent = server.to(SUBMIT).slice(before);
    assert.equal(sent.length, 3);
    for (const req of sent) assert.deepEqual(JSON.parse(req.body), input);
  });

  test("429 every time: RateLimitError after maxAttempts", async () => {
    const before = server.to(SUBMIT).length;
    server.on("POST", SUBMIT, ...Array.from({ length: 3 }, () => ({ status: 429, body: {} })));
    const err = await caught(testClient(server).submit(MODEL_ID, input));
    assert.ok(err instanceof RateLimitError);
    assert.equal(server.to(SUBMIT).length, before + 3);
  });

  test("connection refused is retried; a server that starts listening later gets the job", async () => {
    const port = await ScriptedServer.freePort();
    const late = await ScriptedServer.start(port);
    await late.close();
    late.on("POST", SUBMIT, { body: { request_id: "r_late" } });
    let attempts = 0;
    const client = testClient(late, {
      hooks: {
        beforeRequest: async (info) => {
          attempts++;
          if (info.attempt === 2) await late.listen(port);
        },
      },
    });
    try {
      const r = await client.submit(MODEL_ID, input);
      assert.equal(r.requestId, "r_late");
      assert.equal(attempts, 2);
      assert.equal(late.requests.length, 1);
    } finally {
      await late.close();
    }
  });

  test("connection refused every time: ConnectionError(beforeSend) after maxAttempts", async () => {
    const port = await ScriptedServer.freePort();
    const attempts: number[] = [];
    const client = testClient(server, {
      baseUrl: `http://127.0.0.1:${port}`,
      hooks: { beforeRequest: (i) => void attempts.push(i.attempt) },
    });
    const err = await caught(client.submit(MODEL_ID, input));
    assert.ok(err instanceof ConnectionError, `got ${err.name}`);
    assert.equal(err.beforeSend, true);
    assert.match(err.message, /ECONNREFUSED/);
    assert.deepEqual(attempts, [1, 2, 3]);
  });
});

describe("abort", () => {
  test("mid-request: AbortError quickly, no retry", async () => {
    const { id, status } = fresh();
    server.always("GET", status, { action: "hang" });
    const controller = new AbortController();
    const pending = caught(testClient(server).status(id, { signal: controller.signal }));
    // The abort comes once the server holds the request, not a fixed 50 ms after the call: a
    // loaded machine once took longer than that to send it, and the abort came before the request.
    const deadline = Date.now() + 10_000;
    while (server.to(status).length === 0) {
      assert.ok(Date.now() < deadline, "the request never reached the server");
      await new Promise((r) => setTimeout(r, 5));
    }
    const t0 = performance.now();
    controller.abort(new Error("user pressed ^C"));
    const err = await pending;
    assert.ok(err instanceof AbortError, `got ${err.name}`);
    assert.equal(err.requestId, id);
    assert.match(err.message, /user pressed/);
    assert.ok(performance.now() - t0 < 500);
    assert.equal(server.to(status).length, 1);
  });

  test("mid-backoff: AbortError promptly, no further request", async () => {
    const { id, status } = fresh();
    server.always("GET", status, { status: 503 });
    const controller = new AbortController();
    const client = testClient(server, {
      retry: { baseDelayMs: 2000, maxAttempts: 5 },
      hooks: { onRetry: () => setTimeout(() => controller.abort(), 30) },
    });
    const t0 = performance.now();
    const err = await caught(client.status(id, { signal: controller.signal }));
    assert.ok(err instanceof AbortError, `got ${err.name}`);
    assert.ok(performance.now() - t0 < 500, "did not sleep the whole backoff");
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(server.to(status).length, 1);
  });

  test("an already aborted signal sends nothing", async () => {
    const { id, status } = fresh();
    const err = await caught(testClient(server).status(id, { signal: AbortSignal.abort() }));
    assert.ok(err instanceof AbortError);
    assert.equal(server.to(status).length, 0);
  });

  test("while the body is still arriving", async () => {
    const { id, result } = fresh();
    // Headers now, half the body, then nothing: the abort must also cut the body read.
    server.always("GET", result, { action: "stall", body: { status: "in_progress", pad: "x".repeat(100) } });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 30);
    const t0 = performance.now();
    const err = await caught(testClient(server).result(id, { signal: controller.signal }));
    assert.ok(err instanceof AbortError, `got ${err.name}`);
    assert.ok(performance.now() - t0 < 500);
    assert.equal(server.to(result).length, 1);
  });

  test("a body that stalls past the timeout: TimeoutError", async () => {
    const { id, result } = fresh();
    server.always("GET", result, { action: "stall", body: { status: "in_progress", pad: "x".repeat(100) } });
    const err = await caught(testClient(server, { timeoutMs: 80, retry: { maxAttempts: 1 } }).result(id));
    assert.ok(err instanceof TimeoutError, `got ${err.name}`);
  });
});

describe("abort on a submit", () => {
  const input = { prompt: "abort me" };

  test("after sending: SubmissionUnknownError caused by the AbortError, quickly, one request", async () => {
    const before = server.to(SUBMIT).length;
    server.on("POST", SUBMIT, { action: "hang" });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const t0 = performance.now();
    const err = await caught(testClient(server).submit(MODEL_ID, input, { signal: controller.signal }));
    assert.ok(err instanceof SubmissionUnknownError, `got ${err.name}`);
    assert.ok(err.cause instanceof AbortError);
    assert.deepEqual(err.input, input);
    assert.ok(performance.now() - t0 < 500);
    assert.equal(server.to(SUBMIT).length, before + 1);
  });

  test("during the backoff after a 429 (refused, so certainly not taken): plain AbortError", async () => {
    const before = server.to(SUBMIT).length;
    server.on("POST", SUBMIT, { status: 429, body: {} });
    const controller = new AbortController();
    const client = testClient(server, {
      retry: { baseDelayMs: 2000 },
      hooks: { onRetry: () => setTimeout(() => controller.abort(), 20) },
    });
    const err = await caught(client.submit(MODEL_ID, input, { signal: controller.signal }));
    assert.ok(err instanceof AbortError, `got ${err.name}`);
    assert.equal(server.to(SUBMIT).length, before + 1);
  });

  test("already aborted: plain AbortError, nothing sent", async () => {
    const before = server.to(SUBMIT).length;
    const err = await caught(testClient(server).submit(MODEL_ID, input, { signal: AbortSignal.abort() }));
    assert.ok(err instanceof AbortError, `got ${err.name}`);
    assert.equal(server.to(SUBMIT).length, before);
  });

  test("while a slow token source is consulted: plain AbortError, nothing sent", async () => {
    const before = server.to(SUBMIT).length;
    const controller = new AbortController();
    const client = testClient(server, {
      token: () => new Promise((resolve) => setTimeout(() => resolve("rc_slow_token_123456"), 60)),
    });
    setTimeout(() => controller.abort(), 10);
    const err = await caught(client.submit(MODEL_ID, input, { signal: controller.signal }));
    assert.ok(err instanceof AbortError, `got ${err.name}`);
    assert.equal(server.to(SUBMIT).length, before);
  });
});

describe("timeouts", () => {
  test("a read that hangs: TimeoutError per attempt, retried, bounded", async () => {
    const { id, status } = fresh();
    server.always("GET", status, { action: "hang" });
    const t0 = performance.now();
    const err = await caught(testClient(server, { timeoutMs: 80, retry: { maxAttempts: 2 } }).status(id));
    assert.ok(err instanceof TimeoutError, `got ${err.name}`);
    assert.match(err.message, /timed out after 80 ms/);
    assert.equal(server.to(status).length, 2);
    assert.ok(performance.now() - t0 < 1000);
  });

  test("a per-call timeout overrides the client's", async () => {
    const { id, status } = fresh();
    server.always("GET", status, { action: "hang" });
    const client = testClient(server, { timeoutMs: 10_000, retry: { maxAttempts: 1 } });
    const t0 = performance.now();
    const err = await caught(client.status(id, { timeoutMs: 60 }));
    assert.ok(err instanceof TimeoutError);
    assert.ok(performance.now() - t0 < 1000);
  });

  test("a slow answer within the timeout is fine", async () => {
    const { id, status } = fresh();
    server.on("GET", status, { ...OK, delayMs: 60 });
    const s = await testClient(server, { timeoutMs: 1000 }).status(id);
    assert.equal(s.status, "in_progress");
  });
});
