// The sandbox against the contract (/work/shared/runcomfy-api.md): every endpoint, state
// and error code, with plain fetch.

import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { type Sandbox, startSandbox } from "../../src/sandbox/index.js";
import {
  auth,
  type Body,
  dataUri,
  getJson,
  MODEL_PATH,
  postJson,
  sleep,
  submit,
  testImage,
  waitDone,
} from "./helpers.js";

const MODEL_ID = "bytedance/dreamina-3-0/pro/image-to-video";
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

describe("sandbox contract", () => {
  let sandbox: Sandbox;
  let image: Buffer;
  let input: Body;

  before(async () => {
    // Fast jobs: a 121-frame run is ~60 s, so 600x makes it ~100 ms (rendering dominates).
    sandbox = await startSandbox({ quiet: true, timeScale: 600, seed: 1 });
    image = await testImage(480, 360, 1);
    input = { prompt: "a slow push-in", image_urls: [dataUri(image)], seed: 42 };
  });
  after(() => sandbox.close());

  test("url is the root without /v1", () => {
    assert.match(sandbox.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  });

  test("submit → status → result → CDN, with every documented field", async () => {
    const sub = await submit(sandbox.url, input);
    assert.equal(sub.status, 200);
    assert.deepEqual(Object.keys(sub.body).sort(), ["cancel_url", "request_id", "result_url", "status_url"]);
    const id = sub.body.request_id;
    assert.match(id, /^[A-Za-z0-9_-]{1,128}$/);
    assert.equal(sub.body.status_url, `${sandbox.url}/v1/requests/${id}/status`);
    assert.equal(sub.body.result_url, `${sandbox.url}/v1/requests/${id}/result`);
    assert.equal(sub.body.cancel_url, `${sandbox.url}/v1/requests/${id}/cancel`);

    const early = await getJson(sub.body.result_url);
    assert.equal(early.status, 200);
    assert.ok(["in_queue", "in_progress"].includes(early.body.status));
    assert.equal(early.body.output, undefined);
    assert.match(early.body.created_at, ISO);

    const final = await waitDone(sandbox.url, id);
    assert.deepEqual(final, {
      request_id: id,
      status: "completed",
      status_url: sub.body.status_url,
      result_url: sub.body.result_url,
    });

    const result = await getJson(sub.body.result_url);
    assert.equal(result.body.status, "succeeded");
    assert.equal(result.body.cost, undefined, "cost only with include_cost=true");
    assert.match(result.body.created_at, ISO);
    assert.match(result.body.finished_at, ISO);
    assert.ok(Date.parse(result.body.finished_at) >= Date.parse(result.body.created_at));
    const video: string = result.body.output.video;
    assert.match(video, new RegExp(`^${sandbox.url}/cdn/${id}/[^/]+\\.mp4$`));

    const withCost = await getJson(`${sub.body.result_url}?include_cost=true`);
    // 121 frames = 5 s at the catalog's per-second price.
    const detail = await getJson(`${sandbox.url}/v1/models/${MODEL_ID}`);
    assert.equal(withCost.body.cost, Math.round(detail.body.base_price_usd * 5 * 1e6) / 1e6);

    // The CDN needs no token and says what it serves.
    const file = await fetch(video);
    assert.equal(file.status, 200);
    assert.equal(file.headers.get("content-type"), "video/mp4");
    assert.equal(file.headers.get("accept-ranges"), "bytes");
    const bytes = Buffer.from(await file.arrayBuffer());
    assert.equal(Number(file.headers.get("content-length")), bytes.length);
    assert.equal(bytes.subarray(4, 8).toString("latin1"), "ftyp");
    const job = sandbox.jobs().find((j) => j.id === id)!;
    assert.equal(file.headers.get("etag"), `"${job.output!.sha256}"`);
    assert.equal(job.state, "succeeded");
    assert.equal(job.seed, 42);
  });

  test("the CDN serves single ranges, HEAD, 304 and 416", async () => {
    const sub = await submit(sandbox.url, input);
    await waitDone(sandbox.url, sub.body.request_id);
    const video: string = (await getJson(sub.body.result_url)).body.output.video;
    const whole = Buffer.from(await (await fetch(video)).arrayBuffer());

    const part = await fetch(video, { headers: { range: "bytes=100-199" } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get("content-range"), `bytes 100-199/${whole.length}`);
    assert.equal(part.headers.get("content-length"), "100");
    assert.deepEqual(Buffer.from(await part.arrayBuffer()), whole.subarray(100, 200));

    const open = await fetch(video, { headers: { range: `bytes=${whole.length - 10}-` } });
    assert.equal(open.status, 206);
    assert.deepEqual(Buffer.from(await open.arrayBuffer()), whole.subarray(whole.length - 10));

    const suffix = await fetch(video, { headers: { range: "bytes=-5" } });
    assert.deepEqual(Buffer.from(await suffix.arrayBuffer()), whole.subarray(whole.length - 5));

    const head = await fetch(video, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(Number(head.headers.get("content-length")), whole.length);
    assert.equal((await head.arrayBuffer()).byteLength, 0);

    const etag = head.headers.get("etag")!;
    assert.equal((await fetch(video, { headers: { "if-none-match": etag } })).status, 304);

    const beyond = await fetch(video, { headers: { range: `bytes=${whole.length}-` } });
    assert.equal(beyond.status, 416);
    assert.equal(beyond.headers.get("content-range"), `bytes */${whole.length}`);
    await beyond.arrayBuffer();

    const missing = await fetch(`${sandbox.url}/cdn/nope/video.mp4`);
    assert.equal(missing.status, 404);
    await missing.arrayBuffer();
  });

  test("auth: missing or malformed token is 401 + 400004 on every API route", async () => {
    const id = (await submit(sandbox.url, input)).body.request_id;
    const calls: [string, string][] = [
      ["POST", `${sandbox.url}${MODEL_PATH}`],
      ["GET", `${sandbox.url}/v1/requests/${id}/status`],
      ["GET", `${sandbox.url}/v1/requests/${id}/result`],
      ["POST", `${sandbox.url}/v1/requests/${id}/cancel`],
      ["GET", `${sandbox.url}/v1/models`],
      ["GET", `${sandbox.url}/v1/models/${MODEL_ID}`],
    ];
    for (const [method, url] of calls) {
      for (const headers of [{}, { authorization: "Basic abc" }, { authorization: "Bearer " }] as Record<
        string,
        string
      >[]) {
        const r = await fetch(url, { method, headers });
        assert.equal(r.status, 401, `${method} ${url}`);
        assert.equal(((await r.json()) as Body).error_code, 400004);
      }
    }
  });

  test("requests are partitioned by token: another token's request is 403 + 403001", async () => {
    const id = (await submit(sandbox.url, input, "token-a")).body.request_id;
    for (const suffix of ["status", "result"]) {
      const r = await getJson(`${sandbox.url}/v1/requests/${id}/${suffix}`, "token-b");
      assert.equal(r.status, 403);
      assert.equal(r.body.error_code, 403001);
      assert.equal(typeof r.body.error_message, "string");
    }
    const c = await postJson(`${sandbox.url}/v1/requests/${id}/cancel`, "token-b");
    assert.equal(c.status, 403);
    assert.equal(c.body.error_code, 403001);
    assert.equal((await getJson(`${sandbox.url}/v1/requests/${id}/status`, "token-a")).status, 200);
  });

  test("unknown request ids are 404 + 404001", async () => {
    for (const suffix of ["status", "result"]) {
      const r = await getJson(`${sandbox.url}/v1/requests/does-not-exist/${suffix}`);
      assert.equal(r.status, 404);
      assert.equal(r.body.error_code, 404001);
    }
    const c = await postJson(`${sandbox.url}/v1/requests/does-not-exist/cancel`);
    assert.equal(c.status, 404);
    assert.equal(c.body.error_code, 404001);
  });

  test("unrouted paths are 404 + error_code, wrong methods 405 + error_code and Allow", async () => {
    for (const path of ["/v2/models", "/v1/requests/abc/progress", "/v1/requests/%E0%A4%A/status", "/"]) {
      const r = await getJson(`${sandbox.url}${path}`);
      assert.equal(r.status, 404, path);
      assert.equal(r.body.error_code, 404002, path);
      assert.match(r.body.error_message, /No route for GET/, path);
    }
    const admin = await getJson(`${sandbox.url}/__sandbox/nothing`);
    assert.equal(admin.status, 404);
    assert.equal(admin.body.error_code, 404002);
    for (const [method, path, allow] of [
      ["GET", "/v1/requests/abc/cancel", "POST"],
      ["POST", "/v1/requests/abc/status", "GET"],
      ["DELETE", MODEL_PATH, "GET, POST"],
      ["PUT", "/v1/models", "GET"],
    ] as const) {
      const r = await fetch(`${sandbox.url}${path}`, { method, headers: auth() });
      assert.equal(r.status, 405, `${method} ${path}`);
      assert.equal(r.headers.get("allow"), allow);
      const body = (await r.json()) as Body;
      assert.equal(body.error_code, 405001);
      assert.match(body.error_message, new RegExp(`${method} is not allowed`));
    }
  });

  test("unknown model: 400 + 400001 on submit and detail", async () => {
    const r = await fetch(`${sandbox.url}/v1/models/acme/nothing`, {
      method: "POST",
      headers: auth(),
      body: JSON.stringify(input),
    });
    assert.equal(r.status, 400);
    assert.equal(((await r.json()) as Body).error_code, 400001);
    const d = await getJson(`${sandbox.url}/v1/models/acme/nothing`);
    assert.equal(d.status, 400);
    assert.equal(d.body.error_code, 400001);
  });

  test("invalid input: 422 with one detail entry per violation, nothing created", async () => {
    const jobsBefore = sandbox.jobs().length;
    const r = await submit(sandbox.url, {
      prompt: "x".repeat(801),
      image_urls: [dataUri(image)],
      frames: 120,
    });
    assert.equal(r.status, 422);
    assert.equal(typeof r.body.error_code, "number");
    assert.equal(typeof r.body.error_message, "string");
    assert.equal(r.body.detail.length, 2);
    const where = r.body.detail.map((d: Body) => d.loc.join("."));
    assert.deepEqual(where.sort(), ["body.frames", "body.prompt"]);

    // The same prompt rule as every client-side path: blank is refused.
    const blank = await submit(sandbox.url, { prompt: " \n ", image_urls: [dataUri(image)] });
    assert.equal(blank.status, 422);
    assert.deepEqual(
      blank.body.detail.map((d: Body) => d.loc.join(".")),
      ["body.prompt"],
    );

    const missing = await submit(sandbox.url, {});
    assert.equal(missing.status, 422);
    assert.deepEqual(missing.body.detail.map((d: Body) => d.loc.join(".")).sort(), [
      "body.image_urls",
      "body.prompt",
    ]);

    const notJson = await fetch(`${sandbox.url}${MODEL_PATH}`, {
      method: "POST",
      headers: auth(),
      body: "{",
    });
    assert.equal(notJson.status, 422);
    await notJson.arrayBuffer();
    assert.equal(sandbox.jobs().length, jobsBefore);
  });

  test("image rules are checked on the fetched bytes (size, dimensions, ratio, format)", async () => {
    const cases: [Buffer, string, string][] = [
      [await testImage(320, 400), "image/jpeg", "width_pixels>"],
      [await testImage(1000, 330), "image/jpeg", "width/height<"],
      [await testImage(400, 400, 0, "png"), "image/png", ""],
    ];
    for (const [bytes, mime, rule] of cases) {
      const r = await submit(sandbox.url, { prompt: "p", image_urls: [dataUri(bytes, mime)], seed: 1 });
      if (rule === "") {
        assert.equal(r.status, 200, JSON.stringify(r.body));
      } else {
        assert.equal(r.status, 422);
        assert.ok(
          r.body.detail.some((d: Body) => d.type === rule),
          JSON.stringify(r.body.detail),
        );
      }
    }
    const gif = Buffer.from("GIF89a\x01\x00\x01\x00\x00\x00\x00;", "latin1");
    const g = await submit(sandbox.url, { prompt: "p", image_urls: [dataUri(gif, "image/gif")] });
    assert.equal(g.status, 422);
  });

  test("http(s) image URLs are fetched server-side, with a size limit and failures reported", async () => {
    const big = await testImage(400, 400, 3);
    let hits = 0;
    const host: Server = createServer((req, res) => {
      hits++;
      if (req.url === "/ok.jpg") res.writeHead(200, { "content-type": "image/jpeg" }).end(big);
      else if (req.url === "/huge.jpg") res.writeHead(200).end(Buffer.alloc(2_000_000));
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => host.listen(0, "127.0.0.1", r));
    const origin = `http://127.0.0.1:${(host.address() as AddressInfo).port}`;
    const small = await startSandbox({ quiet: true, timeScale: 600, imageFetch: { maxBytes: 1_000_000 } });
    try {
      const ok = await submit(small.url, { prompt: "p", image_urls: [`${origin}/ok.jpg`], seed: 3 });
      assert.equal(ok.status, 200);
      assert.equal(small.jobs()[0]!.state === "in_queue" || small.jobs()[0]!.state === "in_progress", true);
      const notFound = await submit(small.url, { prompt: "p", image_urls: [`${origin}/missing.jpg`] });
      assert.equal(notFound.status, 422);
      assert.match(notFound.body.detail[0].msg, /127\.0\.0\.1:\d+ answered HTTP 404 Not Found/);
      const huge = await submit(small.url, { prompt: "p", image_urls: [`${origin}/huge.jpg`] });
      assert.equal(huge.status, 422);
      assert.match(huge.body.detail[0].msg, /larger than 1000000 bytes/);
      assert.equal(hits, 3);
    } finally {
      await small.close();
      host.close();
    }
  });

  test("an image fetch that fails says why: refused, DNS, timeout", async () => {
    // A port that was free a moment ago; a host that never answers; a name no resolver accepts
    // (a 64-character label cannot go into a DNS query, and .invalid is reserved anyway).
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    const closedPort = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const silent: Server = createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const silentOrigin = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const quick = await startSandbox({ quiet: true, timeScale: 600, imageFetch: { timeoutMs: 300 } });
    try {
      const cases: [string, RegExp][] = [
        [
          `http://127.0.0.1:${closedPort}/a.jpg`,
          new RegExp(`connection refused by 127\\.0\\.0\\.1:${closedPort}`),
        ],
        [
          `http://${"x".repeat(64)}.invalid/a.jpg`,
          /DNS lookup failed for x+\.invalid \((ENOTFOUND|EAI_\w+)\)/,
        ],
        [`${silentOrigin}/a.jpg`, /timed out after 300 ms \(127\.0\.0\.1:\d+\)/],
      ];
      for (const [url, why] of cases) {
        const r = await submit(quick.url, { prompt: "p", image_urls: [url] });
        assert.equal(r.status, 422, url);
        assert.deepEqual(r.body.detail[0].loc, ["body", "image_urls", 0]);
        assert.equal(r.body.detail[0].type, "image_fetch");
        assert.match(r.body.detail[0].msg, /^fetching the image failed: /);
        assert.match(r.body.detail[0].msg, why, url);
      }
      assert.equal(quick.jobs().length, 0);
    } finally {
      await quick.close();
      silent.closeAllConnections();
      silent.close();
    }
  });

  test("seed -1 is replaced by a picked seed, reported in jobs()", async () => {
    const r = await submit(sandbox.url, { prompt: "p", image_urls: [dataUri(image)] });
    const job = sandbox.jobs().find((j) => j.id === r.body.request_id)!;
    assert.equal(job.requestedSeed, -1);
    assert.ok(Number.isInteger(job.seed) && job.seed >= 0);
    assert.equal(job.frames, 121);
  });

  test("jobs() counts resubmits of the same input by the same token", async () => {
    const same = { prompt: "resubmitted", image_urls: [dataUri(image)], seed: 9 };
    const a = await submit(sandbox.url, same);
    const b = await submit(sandbox.url, same);
    const c = await submit(sandbox.url, same, "token-c");
    const byId = new Map(sandbox.jobs().map((j) => [j.id, j]));
    assert.equal(byId.get(a.body.request_id)!.submitCount, 1);
    assert.equal(byId.get(b.body.request_id)!.submitCount, 2);
    assert.equal(byId.get(c.body.request_id)!.submitCount, 1);
  });

  test("model list and detail", async () => {
    const all = await getJson(`${sandbox.url}/v1/models`);
    assert.equal(all.status, 200);
    assert.equal(all.body.total, all.body.models.length);
    assert.ok(all.body.models.some((m: Body) => m.model_id === MODEL_ID));
    assert.equal(all.body.models[0].input_schema, undefined);

    const page = await getJson(`${sandbox.url}/v1/models?limit=1&offset=1`);
    assert.equal(page.body.models.length, 1);
    assert.equal(page.body.total, all.body.total);
    assert.equal(page.body.models[0].model_id, all.body.models[1].model_id);

    const found = await getJson(`${sandbox.url}/v1/models?search=IMAGE-TO-VIDEO&include_schema=true`);
    assert.equal(found.body.total, 1);
    assert.equal(found.body.models[0].input_schema.properties.frames.enum.join(), "121,241");

    const detail = await getJson(`${sandbox.url}/v1/models/${MODEL_ID}`);
    assert.equal(detail.body.model_id, MODEL_ID);
    assert.equal(typeof detail.body.display_name, "string");
    assert.ok(detail.body.base_price_usd > 0);
    assert.equal(detail.body.price_unit, "second");
    assert.deepEqual(detail.body.input_schema.required, ["prompt", "image_urls"]);
  });

  test("the request log never holds a token, here or over HTTP", async () => {
    const secret = "tok-SECRET-7f3a";
    await submit(sandbox.url, input, secret);
    await getJson(`${sandbox.url}/v1/models`, secret);
    const entries = sandbox.requests();
    assert.ok(entries.some((e) => e.tokenPresent && e.tokenValid === true));
    assert.ok(entries.some((e) => e.tokenPresent === false && e.tokenValid === false));
    assert.ok(!JSON.stringify(entries).includes(secret));
    const http = await getJson(`${sandbox.url}/__sandbox/requests`, undefined);
    assert.equal(http.status, 200);
    assert.ok(Array.isArray(http.body) && http.body.length >= entries.length);
    assert.ok(!http.text.includes(secret));
    const jobs = await getJson(`${sandbox.url}/__sandbox/jobs`, undefined);
    assert.ok(!jobs.text.includes(secret));
    assert.ok(jobs.body.every((j: Body) => typeof j.inputSha256 === "string"));
  });

  test("a sandbox with a fixed token accepts only that token", async () => {
    const lines: string[] = [];
    const strict = await startSandbox({ token: "only-me", log: (l) => lines.push(l), timeScale: 600 });
    try {
      assert.equal((await getJson(`${strict.url}/v1/models`, "someone-else")).status, 401);
      assert.equal((await getJson(`${strict.url}/v1/models`, "only-me")).status, 200);
      assert.equal(lines.length, 2);
      assert.ok(lines.every((l) => !l.includes("only-me") && !l.includes("someone-else")));
      assert.deepEqual(
        strict.requests().map((e) => e.tokenValid),
        [false, true],
      );
    } finally {
      await strict.close();
    }
  });

  test("finished jobs expire after the retention time (404001, CDN 404)", async () => {
    const brief = await startSandbox({ quiet: true, timeScale: 600, retentionMs: 300 });
    try {
      const sub = await submit(brief.url, input);
      await waitDone(brief.url, sub.body.request_id);
      const video = (await getJson(sub.body.result_url)).body.output.video;
      await sleep(400);
      const gone = await getJson(sub.body.status_url);
      assert.equal(gone.status, 404);
      assert.equal(gone.body.error_code, 404001);
      assert.equal((await fetch(video)).status, 404);
    } finally {
      await brief.close();
    }
  });
});

describe("sandbox queue", () => {
  test("queue positions move as the queue drains; cancel works only while queued", async () => {
    // One worker, one second per job: the second and third jobs wait.
    const sandbox = await startSandbox({
      quiet: true,
      workers: 1,
      runTime: { 121: { meanMs: 1500, jitterMs: 0 } },
    });
    try {
      const image = dataUri(await testImage(400, 400, 5));
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        ids.push(
          (await submit(sandbox.url, { prompt: `job ${i}`, image_urls: [image], seed: 7 })).body.request_id,
        );
      }
      const [a, b, c] = ids as [string, string, string];
      const status = async (id: string) => (await getJson(`${sandbox.url}/v1/requests/${id}/status`)).body;
      assert.equal((await status(a)).status, "in_progress");
      assert.equal((await status(a)).queue_position, undefined);
      assert.deepEqual([(await status(b)).queue_position, (await status(c)).queue_position], [0, 1]);
      assert.equal((await getJson(`${sandbox.url}/v1/requests/${b}/result`)).body.status, "in_queue");

      const cancelB = await postJson(`${sandbox.url}/v1/requests/${b}/cancel`);
      assert.equal(cancelB.status, 202);
      assert.deepEqual(cancelB.body, { request_id: b, status: "cancelled", outcome: "cancelled" });
      assert.equal((await status(c)).queue_position, 0, "c moved up");
      // Cancelling again is harmless.
      assert.equal((await postJson(`${sandbox.url}/v1/requests/${b}/cancel`)).body.outcome, "cancelled");

      const cancelA = await postJson(`${sandbox.url}/v1/requests/${a}/cancel`);
      assert.equal(cancelA.status, 202);
      assert.deepEqual(cancelA.body, { request_id: a, status: "in_progress", outcome: "not_cancellable" });

      assert.equal((await waitDone(sandbox.url, a)).status, "completed");
      const resultA = await getJson(`${sandbox.url}/v1/requests/${a}/result`);
      assert.equal(resultA.body.status, "succeeded", "a running job is not stopped by cancel");

      const resultB = await getJson(`${sandbox.url}/v1/requests/${b}/result?include_cost=true`);
      assert.equal(resultB.body.status, "cancelled");
      assert.equal(resultB.body.output, undefined);
      assert.equal(resultB.body.cost, 0);
      assert.equal((await status(b)).status, "cancelled");

      assert.equal((await status(c)).status, "in_progress");
      await waitDone(sandbox.url, c);
      const cancelC = await postJson(`${sandbox.url}/v1/requests/${c}/cancel`);
      assert.deepEqual(cancelC.body, { request_id: c, status: "completed", outcome: "not_cancellable" });
    } finally {
      await sandbox.close();
    }
  });

  test("concurrent clients: many submits and polls at once all complete, each on its own token", async () => {
    const sandbox = await startSandbox({ quiet: true, timeScale: 600, workers: 2 });
    try {
      const image = dataUri(await testImage(400, 400, 6));
      const clients = Array.from({ length: 8 }, (_, i) => `client-${i}`);
      const outcomes = await Promise.all(
        clients.map(async (token, i) => {
          const sub = await submit(sandbox.url, { prompt: `p${i}`, image_urls: [image], seed: i % 2 }, token);
          assert.equal(sub.status, 200);
          await waitDone(sandbox.url, sub.body.request_id, token, 30_000);
          return (await getJson(sub.body.result_url, token)).body;
        }),
      );
      assert.ok(outcomes.every((r) => r.status === "succeeded"));
      // Two seeds, one image: two distinct renders, shared by the cache.
      const hashes = new Set(sandbox.jobs().map((j) => j.output!.sha256));
      assert.equal(hashes.size, 2);
      assert.ok(sandbox.jobs().filter((j) => j.output!.cached).length >= 6);
      // At most `workers` jobs ever ran at the same time.
      const spans = sandbox.jobs().map((j) => [Date.parse(j.startedAt!), Date.parse(j.finishedAt!)] as const);
      for (const [start] of spans) {
        const running = spans.filter(([s, f]) => s <= start && start < f).length;
        assert.ok(running <= 2, `${running} jobs running at once`);
      }
    } finally {
      await sandbox.close();
    }
  });
});
