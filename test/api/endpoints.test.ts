// Every endpoint's happy path against a real server: exact paths, query strings, headers,
// camelCase results with the raw body beside them.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { RunComfyClient } from "../../src/api/client.js";
import { MODEL_ID, ScriptedServer, TEST_TOKEN, testClient } from "../helpers/scripted-server.js";

let server: ScriptedServer;
before(async () => {
  server = await ScriptedServer.start();
});
after(() => server.close());

const ID = "req_abc-123";
const MODEL_PATH = `/v1/models/${MODEL_ID}`;

function last() {
  const r = server.requests.at(-1);
  assert.ok(r, "the server received a request");
  return r;
}

describe("base URL forms", () => {
  const cases: [string, (url: string) => string, string][] = [
    ["root", (u) => u, "/v1"],
    ["root with trailing slash", (u) => `${u}/`, "/v1"],
    ["ending in /v1", (u) => `${u}/v1`, "/v1"],
    ["ending in /v1/", (u) => `${u}/v1/`, "/v1"],
    ["with a path prefix", (u) => `${u}/proxy/rc`, "/proxy/rc/v1"],
    ["with a path prefix and /v1/", (u) => `${u}/proxy/rc/v1/`, "/proxy/rc/v1"],
  ];
  for (const [name, make, root] of cases) {
    test(name, async () => {
      server.on("GET", `${root}/requests/${ID}/status`, { body: { request_id: ID, status: "in_progress" } });
      const client = testClient(server, { baseUrl: make(server.url) });
      assert.equal(client.baseUrl, `${server.url}${root}`);
      const status = await client.status(ID);
      assert.equal(status.status, "in_progress");
      assert.equal(last().path, `${root}/requests/${ID}/status`);
    });
  }

  test("rejects a non-http base URL", () => {
    assert.throws(() => new RunComfyClient({ token: TEST_TOKEN, baseUrl: "ftp://example.com" }), TypeError);
  });
});

describe("submit", () => {
  test("POSTs the input itself to /v1/models/<model id with slashes> with the token", async () => {
    const input = { prompt: "a cat", image_urls: ["https://example.com/a.png"], frames: 121 };
    server.on("POST", MODEL_PATH, {
      body: {
        request_id: ID,
        status_url: `${server.url}/v1/requests/${ID}/status`,
        result_url: `${server.url}/v1/requests/${ID}/result`,
        cancel_url: `${server.url}/v1/requests/${ID}/cancel`,
      },
    });
    const result = await testClient(server).submit(MODEL_ID, input);
    const req = last();
    assert.equal(req.method, "POST");
    assert.equal(req.url, MODEL_PATH);
    assert.equal(req.authorization, `Bearer ${TEST_TOKEN}`);
    assert.match(String(req.headers["content-type"]), /^application\/json/);
    assert.deepEqual(JSON.parse(req.body), input);
    assert.equal(result.requestId, ID);
    assert.equal(result.statusUrl, `${server.url}/v1/requests/${ID}/status`);
    assert.equal(result.resultUrl, `${server.url}/v1/requests/${ID}/result`);
    assert.equal(result.cancelUrl, `${server.url}/v1/requests/${ID}/cancel`);
    assert.equal(result.raw.request_id, ID);
  });

  test("model id segments are encoded, slashes kept", async () => {
    server.on("POST", "/v1/models/owner/a%20b/c", { body: { request_id: ID } });
    await testClient(server).submit("owner/a b/c", {});
    assert.equal(last().path, "/v1/models/owner/a%20b/c");
  });
});

describe("status", () => {
  test("GET /v1/requests/<id>/status with queue position while in_queue", async () => {
    server.on("GET", `/v1/requests/${ID}/status`, {
      body: { request_id: ID, status: "in_queue", queue_position: 3, status_url: "x", result_url: "y" },
    });
    const s = await testClient(server).status(ID);
    assert.equal(last().method, "GET");
    assert.equal(last().url, `/v1/requests/${ID}/status`);
    assert.equal(last().authorization, `Bearer ${TEST_TOKEN}`);
    assert.deepEqual(
      { requestId: s.requestId, status: s.status, rawStatus: s.rawStatus, queuePosition: s.queuePosition },
      { requestId: ID, status: "in_queue", rawStatus: "in_queue", queuePosition: 3 },
    );
    assert.equal(s.raw.status_url, "x");
  });

  test("queue_position is dropped once the job is not in_queue", async () => {
    server.on("GET", `/v1/requests/${ID}/status`, {
      body: { request_id: ID, status: "in_progress", queue_position: 0 },
    });
    const s = await testClient(server).status(ID);
    assert.equal(s.queuePosition, undefined);
    assert.equal(s.raw.queue_position, 0);
  });

  const values: [string, string][] = [
    ["IN_QUEUE", "in_queue"],
    ["In_Progress", "in_progress"],
    ["COMPLETED", "completed"],
    ["Succeeded", "succeeded"],
    ["FAILED", "failed"],
    ["Cancelled", "cancelled"],
    // RunComfy's own Python client treats these as ordinary non-terminal states.
    ["pending", "in_queue"],
    ["WAITING", "in_queue"],
    ["starting", "in_progress"],
    ["Processing", "in_progress"],
    ["exploded", "unknown"],
  ];
  for (const [raw, expected] of values) {
    test(`status "${raw}" → ${expected}`, async () => {
      server.on("GET", `/v1/requests/${ID}/status`, { body: { request_id: ID, status: raw } });
      const s = await testClient(server).status(ID);
      assert.equal(s.status, expected);
      assert.equal(s.rawStatus, raw);
    });
  }

  test("an invalid request id is refused before any request", async () => {
    const before = server.requests.length;
    await assert.rejects(testClient(server).status("../../models"), TypeError);
    await assert.rejects(testClient(server).result("a/b"), TypeError);
    await assert.rejects(testClient(server).cancel("x".repeat(129)), TypeError);
    assert.equal(server.requests.length, before);
  });
});

describe("result", () => {
  test("succeeded with one video, timestamps, raw", async () => {
    server.on("GET", `/v1/requests/${ID}/result`, {
      body: {
        request_id: ID,
        status: "succeeded",
        output: { video: "https://cdn.runcomfy.net/v.mp4" },
        created_at: "2025-01-01T00:00:00Z",
        finished_at: "2025-01-01T00:01:00Z",
      },
    });
    const r = await testClient(server).result(ID);
    assert.equal(last().url, `/v1/requests/${ID}/result`, "no include_cost unless asked");
    assert.equal(r.status, "succeeded");
    assert.deepEqual(r.outputUrls, ["https://cdn.runcomfy.net/v.mp4"]);
    assert.equal(r.video, "https://cdn.runcomfy.net/v.mp4");
    assert.equal(r.createdAt, "2025-01-01T00:00:00Z");
    assert.equal(r.finishedAt, "2025-01-01T00:01:00Z");
    assert.equal(r.cost, undefined);
    assert.equal(r.error, undefined);
    assert.deepEqual(r.output, { video: "https://cdn.runcomfy.net/v.mp4" });
    assert.equal(r.raw.status, "succeeded");
  });

  test("output URLs from anywhere under output, in document order, without duplicates", async () => {
    const output = {
      videos: ["https://cdn.runcomfy.net/1.mp4", "https://cdn.runcomfy.net/2.mp4"],
      meta: { note: "not a url", nested: [{ url: "http://cdn.runcomfy.com/3.mp4" }, 42, null] },
      video: "https://cdn.runcomfy.net/1.mp4",
      images: ["ftp://nope", "https://cdn.runcomfy.net/4.png"],
    };
    server.on("GET", `/v1/requests/${ID}/result`, { body: { request_id: ID, status: "succeeded", output } });
    const r = await testClient(server).result(ID);
    assert.deepEqual(r.outputUrls, [
      "https://cdn.runcomfy.net/1.mp4",
      "https://cdn.runcomfy.net/2.mp4",
      "http://cdn.runcomfy.com/3.mp4",
      "https://cdn.runcomfy.net/4.png",
    ]);
    assert.equal(r.video, "https://cdn.runcomfy.net/1.mp4");
  });

  test("videos only: video is the first of videos", async () => {
    server.on("GET", `/v1/requests/${ID}/result`, {
      body: { status: "succeeded", output: { videos: ["https://c/a.mp4", "https://c/b.mp4"] } },
    });
    const r = await testClient(server).result(ID);
    assert.equal(r.video, "https://c/a.mp4");
    assert.equal(r.requestId, ID, "falls back to the id asked for");
  });

  test("include_cost=true is sent and cost read", async () => {
    server.on("GET", `/v1/requests/${ID}/result`, {
      body: { request_id: ID, status: "succeeded", output: { video: "https://c/v.mp4" }, cost: 0.42 },
    });
    const r = await testClient(server).result(ID, { includeCost: true });
    assert.equal(last().path, `/v1/requests/${ID}/result`);
    assert.equal(last().query.get("include_cost"), "true");
    assert.equal(last().url, `/v1/requests/${ID}/result?include_cost=true`);
    assert.equal(r.cost, 0.42);
  });

  test("failed: error kept verbatim (string)", async () => {
    server.on("GET", `/v1/requests/${ID}/result`, {
      body: { request_id: ID, status: "failed", error: "GPU on fire" },
    });
    const r = await testClient(server).result(ID);
    assert.equal(r.status, "failed");
    assert.equal(r.error, "GPU on fire");
    assert.deepEqual(r.outputUrls, []);
    assert.equal(r.video, undefined);
  });

  test("failed: error kept verbatim (array shape)", async () => {
    const error = [{ errorCode: 7, error: "bad image", debugInfo: { a: 1 } }];
    server.on("GET", `/v1/requests/${ID}/result`, { body: { request_id: ID, status: "FAILED", error } });
    const r = await testClient(server).result(ID);
    assert.equal(r.status, "failed");
    assert.deepEqual(r.error, error);
  });

  test("unfinished result answers with the current state", async () => {
    server.on("GET", `/v1/requests/${ID}/result`, { body: { request_id: ID, status: "in_progress" } });
    const r = await testClient(server).result(ID);
    assert.equal(r.status, "in_progress");
    assert.deepEqual(r.outputUrls, []);
  });

  test("unknown result status is 'unknown' with rawStatus", async () => {
    server.on("GET", `/v1/requests/${ID}/result`, { body: { request_id: ID, status: "Melting" } });
    const r = await testClient(server).result(ID);
    assert.equal(r.status, "unknown");
    assert.equal(r.rawStatus, "Melting");
  });
});

describe("cancel", () => {
  for (const outcome of ["cancelled", "not_cancellable"] as const) {
    test(`202 with outcome ${outcome}`, async () => {
      server.on("POST", `/v1/requests/${ID}/cancel`, {
        status: 202,
        body: { request_id: ID, status: outcome === "cancelled" ? "cancelled" : "in_progress", outcome },
      });
      const c = await testClient(server).cancel(ID);
      const req = last();
      assert.equal(req.method, "POST");
      assert.equal(req.url, `/v1/requests/${ID}/cancel`);
      assert.equal(req.body, "", "cancel sends no body");
      assert.equal(req.authorization, `Bearer ${TEST_TOKEN}`);
      assert.equal(c.outcome, outcome);
      assert.equal(c.rawOutcome, outcome);
      assert.equal(c.requestId, ID);
      assert.equal(c.raw.outcome, outcome);
    });
  }

  test("an unrecognised outcome is 'unknown', kept raw", async () => {
    server.on("POST", `/v1/requests/${ID}/cancel`, {
      status: 202,
      body: { request_id: ID, outcome: "maybe" },
    });
    const c = await testClient(server).cancel(ID);
    assert.equal(c.outcome, "unknown");
    assert.equal(c.rawOutcome, "maybe");
  });
});

describe("models", () => {
  test("list: GET /v1/models with every query parameter", async () => {
    server.on("GET", "/v1/models", {
      body: {
        models: [{ model_id: MODEL_ID, display_name: "Dreamina", base_price_usd: 0.1, price_unit: "second" }],
        total: 1,
      },
    });
    const list = await testClient(server).models.list({
      limit: 5,
      offset: 10,
      search: "dream ina",
      category: "video",
      includeSchema: true,
    });
    const req = last();
    assert.equal(req.method, "GET");
    assert.equal(req.path, "/v1/models");
    assert.deepEqual(Object.fromEntries(req.query), {
      limit: "5",
      offset: "10",
      search: "dream ina",
      category: "video",
      include_schema: "true",
    });
    assert.equal(list.total, 1);
    assert.equal(list.models[0]?.modelId, MODEL_ID);
    assert.equal(list.models[0]?.displayName, "Dreamina");
    assert.equal(list.raw.total, 1);
  });

  test("list without parameters sends no query", async () => {
    server.on("GET", "/v1/models", { body: { models: [], total: 0 } });
    const list = await testClient(server).models.list();
    assert.equal(last().url, "/v1/models");
    assert.deepEqual(list.models, []);
  });

  test("get: GET /v1/models/<model id with slashes>", async () => {
    const schema = { type: "object", properties: { prompt: { type: "string" } } };
    server.on("GET", MODEL_PATH, {
      body: {
        model_id: MODEL_ID,
        display_name: "Dreamina 3.0 Pro",
        base_price_usd: 0.05,
        price_unit: "second",
        input_schema: schema,
      },
    });
    const m = await testClient(server).models.get(MODEL_ID);
    assert.equal(last().url, MODEL_PATH);
    assert.equal(last().authorization, `Bearer ${TEST_TOKEN}`);
    assert.deepEqual(
      {
        modelId: m.modelId,
        displayName: m.displayName,
        basePriceUsd: m.basePriceUsd,
        priceUnit: m.priceUnit,
        inputSchema: m.inputSchema,
      },
      {
        modelId: MODEL_ID,
        displayName: "Dreamina 3.0 Pro",
        basePriceUsd: 0.05,
        priceUnit: "second",
        inputSchema: schema,
      },
    );
    assert.equal(m.raw.model_id, MODEL_ID);
  });
});

test("sends Accept and a User-Agent", async () => {
  server.on("GET", `/v1/requests/${ID}/status`, { body: { status: "in_queue" } });
  await testClient(server).status(ID);
  assert.equal(last().headers.accept, "application/json");
  assert.match(String(last().headers["user-agent"]), /^dreamina-i2v\//);
});
