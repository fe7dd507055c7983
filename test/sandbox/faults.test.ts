// Fault injection: the grammar, determinism under a seed, and what each fault looks like
// on the wire (seen with plain fetch and raw sockets).

import assert from "node:assert/strict";
import { request } from "node:http";
import { after, before, describe, test } from "node:test";
import { FaultPlan } from "../../src/sandbox/faults.js";
import {
  DEFAULT_MODES,
  FaultSpecError,
  formatFaultSpec,
  parseFaultSpec,
  type Sandbox,
  startSandbox,
} from "../../src/sandbox/index.js";
import { type Body, dataUri, getJson, MODEL_PATH, submit, testImage, waitDone } from "./helpers.js";

describe("fault grammar", () => {
  test("parses targets, kinds, parameters, shares, caps and the seed", () => {
    const config = parseFaultSpec(
      " submit:lost=0.1, status:429@2=5%, cdn:truncate@0.25=0.05#3, job:fail=1, api:503=0.01, seed=7 ",
    );
    assert.equal(config.seed, 7);
    assert.deepEqual(config.rules.slice(0, 4), [
      { endpoint: "submit", kind: "lost", share: 0.1, param: undefined },
      { endpoint: "status", kind: "429", share: 0.05, param: 2 },
      { endpoint: "cdn", kind: "truncate", share: 0.05, param: 0.25, max: 3 },
      { endpoint: "job", kind: "fail", share: 1, param: undefined },
    ]);
    assert.deepEqual(
      config.rules.slice(4).map((r) => r.endpoint),
      ["submit", "status", "result", "cancel", "models"],
    );
    assert.equal(parseFaultSpec("").rules.length, 0);
    assert.deepEqual(parseFaultSpec(formatFaultSpec(config)), config);
  });

  test("rejects what it does not understand, naming the item", () => {
    for (const bad of [
      "status:500",
      "status:500=2",
      "status:lost=0.1",
      "cdn:malformed=0.1",
      "nowhere:500=0.1",
      "status:teapot=0.1",
      "status:reset@3=0.1",
      "seed=x",
      "status:balance=0.1",
      "submit:balance@200=1",
      "submit:balance@402.5=1",
      "output=gif",
      "colour=blue",
      "job-error=",
    ]) {
      assert.throws(() => parseFaultSpec(bad), FaultSpecError, bad);
    }
    assert.throws(() => parseFaultSpec("output=gif"), /bad value "gif" for mode output.*video, videos/);
    assert.throws(() => parseFaultSpec("colour=blue"), /unknown mode "colour".*output, finished-status/);
    assert.throws(() => parseFaultSpec("status:balance=1"), /does not apply to status/);
  });

  test("modes: parsed beside faults, the last one wins, kept through the canonical form", () => {
    const config = parseFaultSpec(
      "submit:balance@400=1, output=videos, finished-status=outcome, job-error=array, error-key=message, " +
        "result-model-id=on, error-key=error, seed=3",
    );
    assert.deepEqual(config.rules, [{ endpoint: "submit", kind: "balance", share: 1, param: 400 }]);
    assert.deepEqual(config.modes, {
      output: "videos",
      "finished-status": "outcome",
      "job-error": "array",
      "error-key": "error",
      "result-model-id": "on",
    });
    assert.deepEqual(parseFaultSpec(formatFaultSpec(config)), config);
    assert.equal(parseFaultSpec("job:fail=1").modes, undefined);

    // The parsed form given directly: checked the same way; a mode set to undefined is left out.
    const plan = new FaultPlan({ rules: [], modes: { output: undefined, "job-error": "array" } });
    assert.deepEqual(plan.modes, { ...DEFAULT_MODES, "job-error": "array" });
    assert.equal(formatFaultSpec(plan.config), "job-error=array,seed=0");
    assert.throws(() => new FaultPlan({ rules: [], modes: { output: "gif" as "video" } }), FaultSpecError);
  });
});

/** Statuses of `n` sequential status calls (undefined for a reset). */
async function statusSequence(sandbox: Sandbox, id: string, n: number): Promise<(number | string)[]> {
  const seen: (number | string)[] = [];
  for (let i = 0; i < n; i++) {
    try {
      const r = await getJson(`${sandbox.url}/v1/requests/${id}/status`);
      seen.push(r.status === 200 && r.body.status === "PAUSED" ? "PAUSED" : r.status);
    } catch {
      seen.push("reset");
    }
  }
  return seen;
}

describe("fault determinism", () => {
  const spec = "status:500=0.15,status:429=0.1,status:unknown=0.1,status:reset=0.05";

  async function run(seed: number) {
    const sandbox = await startSandbox({ quiet: true, faults: `${spec},seed=${seed}`, timeScale: 0.001 });
    try {
      const image = dataUri(await testImage(400, 400, 8));
      const id = (await submit(sandbox.url, { prompt: "p", image_urls: [image], seed: 1 })).body.request_id;
      const seen = await statusSequence(sandbox, id, 60);
      return { seen, logged: sandbox.requests().map((e) => e.fault ?? "-") };
    } finally {
      await sandbox.close();
    }
  }

  test("same seed → same faults, in the same order; another seed → others", async () => {
    const a = await run(7);
    const b = await run(7);
    const c = await run(8);
    assert.deepEqual(a.seen, b.seen);
    assert.deepEqual(a.logged, b.logged);
    assert.notDeepEqual(a.seen, c.seen);
    // Roughly the configured shares (40 % in all) and every kind present.
    const hit = a.seen.filter((s) => s !== 200).length;
    assert.ok(hit >= 10 && hit <= 40, `hit ${hit} of 60`);
    for (const kind of [500, 429, "PAUSED", "reset"]) assert.ok(a.seen.includes(kind), `saw ${kind}`);
  });
});

describe("fault effects", () => {
  let sandbox: Sandbox;
  let image: string;
  before(async () => {
    sandbox = await startSandbox({ quiet: true, timeScale: 600 });
    image = dataUri(await testImage(400, 400, 9));
  });
  after(() => sandbox.close());

  const newJob = async () => {
    sandbox.setFaults(undefined);
    return (await submit(sandbox.url, { prompt: "p", image_urls: [image], seed: 2 })).body
      .request_id as string;
  };

  test("429 with Retry-After (seconds, HTTP date, none), capped by #", async () => {
    const id = await newJob();
    sandbox.setFaults("status:429@3=1#1");
    const first = await getJson(`${sandbox.url}/v1/requests/${id}/status`);
    assert.equal(first.status, 429);
    assert.equal(first.headers.get("retry-after"), "3");
    assert.equal(typeof first.body.error_code, "number");
    assert.equal((await getJson(`${sandbox.url}/v1/requests/${id}/status`)).status, 200, "cap spent");

    sandbox.setFaults("result:429-date@60=1");
    const dated = await getJson(`${sandbox.url}/v1/requests/${id}/result`);
    const when = Date.parse(dated.headers.get("retry-after")!);
    assert.ok(when > Date.now() + 50_000 && when < Date.now() + 70_000);

    sandbox.setFaults("models:429-bare=1");
    const bare = await getJson(`${sandbox.url}/v1/models`);
    assert.equal(bare.status, 429);
    assert.equal(bare.headers.get("retry-after"), null);
  });

  test("5xx: JSON 500, HTML 502/503", async () => {
    const id = await newJob();
    sandbox.setFaults("status:500=1");
    const e500 = await getJson(`${sandbox.url}/v1/requests/${id}/status`);
    assert.equal(e500.status, 500);
    assert.equal(typeof e500.body.error_code, "number");
    sandbox.setFaults("status:502=1");
    const e502 = await getJson(`${sandbox.url}/v1/requests/${id}/status`);
    assert.equal(e502.status, 502);
    assert.match(e502.headers.get("content-type")!, /text\/html/);
    assert.match(e502.text, /<h1>502 Bad Gateway<\/h1>/);
    sandbox.setFaults("cancel:503@4=1");
    const r = await fetch(`${sandbox.url}/v1/requests/${id}/cancel`, {
      method: "POST",
      headers: { authorization: "Bearer token-a" },
    });
    assert.equal(r.status, 503);
    assert.equal(r.headers.get("retry-after"), "4");
    assert.match(await r.text(), /<html>/);
  });

  test("HTTP 200 with error_code, malformed JSON, unknown status", async () => {
    const id = await newJob();
    sandbox.setFaults("result:error200@400004=1");
    const e = await getJson(`${sandbox.url}/v1/requests/${id}/result`);
    assert.equal(e.status, 200);
    assert.equal(e.body.error_code, 400004);

    sandbox.setFaults("status:malformed=1");
    const m = await getJson(`${sandbox.url}/v1/requests/${id}/status`);
    assert.equal(m.status, 200);
    assert.match(m.headers.get("content-type")!, /json/);
    assert.throws(() => JSON.parse(m.text));
    assert.ok(m.text.startsWith('{"request_id":'));

    sandbox.setFaults("status:unknown=1,result:unknown=1");
    assert.equal((await getJson(`${sandbox.url}/v1/requests/${id}/status`)).body.status, "PAUSED");
    assert.equal((await getJson(`${sandbox.url}/v1/requests/${id}/result`)).body.status, "PAUSED");
  });

  test("reset and stall", async () => {
    const id = await newJob();
    sandbox.setFaults("status:reset=1");
    await assert.rejects(fetch(`${sandbox.url}/v1/requests/${id}/status`));
    sandbox.setFaults("status:stall@0.4=1");
    const t0 = Date.now();
    const stalled = await getJson(`${sandbox.url}/v1/requests/${id}/status`);
    assert.equal(stalled.status, 200);
    assert.ok(Date.now() - t0 >= 380, `answered after ${Date.now() - t0} ms`);
    assert.equal(sandbox.requests().at(-1)!.fault, "stall@0.4");
  });

  test("submit:lost creates the job but the response never comes", async () => {
    sandbox.setFaults("submit:lost=1");
    const before = sandbox.jobs().length;
    await assert.rejects(
      fetch(`${sandbox.url}${MODEL_PATH}`, {
        method: "POST",
        headers: { authorization: "Bearer token-a", "content-type": "application/json" },
        body: JSON.stringify({ prompt: "lost", image_urls: [image], seed: 2 }),
      }),
    );
    const jobs = sandbox.jobs();
    assert.equal(jobs.length, before + 1);
    const lost = jobs.at(-1)!;
    const entry = sandbox.requests().find((e) => e.requestId === lost.id && e.route === "submit")!;
    assert.equal(entry.fault, "lost");
    assert.equal(entry.status, undefined);
    sandbox.setFaults(undefined);
    await waitDone(sandbox.url, lost.id);
    assert.equal((await getJson(`${sandbox.url}/v1/requests/${lost.id}/result`)).body.status, "succeeded");
  });

  test("job:fail: status says completed, result says failed with an error string", async () => {
    sandbox.setFaults("job:fail=1");
    const id = (await submit(sandbox.url, { prompt: "p", image_urls: [image], seed: 2 })).body.request_id;
    sandbox.setFaults(undefined);
    assert.equal((await waitDone(sandbox.url, id)).status, "completed");
    const result = await getJson(`${sandbox.url}/v1/requests/${id}/result?include_cost=true`);
    assert.equal(result.body.status, "failed");
    assert.equal(typeof result.body.error, "string");
    assert.equal(result.body.output, undefined);
    assert.equal(result.body.cost, 0);
    assert.equal(sandbox.jobs().find((j) => j.id === id)!.fault, "fail");
  });

  test("cdn:truncate sends the full Content-Length then closes early; cdn:slow trickles", async () => {
    const id = await newJob();
    await waitDone(sandbox.url, id);
    const video: string = (await getJson(`${sandbox.url}/v1/requests/${id}/result`)).body.output.video;
    const size = sandbox.jobs().find((j) => j.id === id)!.output!.size;

    sandbox.setFaults("cdn:truncate@0.3=1");
    const got = await new Promise<{ length: number; received: number; error: boolean }>((resolve) => {
      request(video, (res) => {
        let received = 0;
        res.on("data", (c: Buffer) => {
          received += c.length;
        });
        const done = (error: boolean) =>
          resolve({ length: Number(res.headers["content-length"]), received, error });
        res.on("end", () => done(false));
        res.on("error", () => done(true));
        res.on("aborted", () => done(true));
      }).end();
    });
    assert.equal(got.length, size);
    assert.equal(got.received, Math.floor(size * 0.3));
    assert.equal(got.error, true);

    sandbox.setFaults(`cdn:slow@${Math.ceil(size / 0.5)}=1`);
    const t0 = Date.now();
    const body = Buffer.from(await (await fetch(video)).arrayBuffer());
    assert.equal(body.length, size);
    assert.ok(Date.now() - t0 >= 400, `slow download took ${Date.now() - t0} ms`);
  });

  test("submit:balance: 402 (or the given 4xx) with error_code 400002, and nothing is created", async () => {
    const before = sandbox.jobs().length;
    sandbox.setFaults("submit:balance=1");
    const refused = await submit(sandbox.url, { prompt: "p", image_urls: [image], seed: 2 });
    assert.equal(refused.status, 402);
    assert.equal(refused.body.error_code, 400002);
    assert.match(refused.body.error_message, /Insufficient balance/);
    sandbox.setFaults("submit:balance@400=1");
    const as400 = await submit(sandbox.url, { prompt: "p", image_urls: [image], seed: 2 });
    assert.equal(as400.status, 400);
    assert.equal(as400.body.error_code, 400002);
    assert.equal(sandbox.jobs().length, before, "a refused submit creates no job");
    // The last submit's entry (an earlier test's slow download may be logged after it).
    const submits = sandbox.requests().filter((e) => e.route === "submit");
    assert.deepEqual(
      submits.slice(-2).map((e) => [e.fault, e.status]),
      [
        ["balance", 402],
        ["balance@400", 400],
      ],
    );
  });

  test("output=videos, result-model-id=on: the result's output is a videos array, and it names the model", async () => {
    const id = await newJob();
    await waitDone(sandbox.url, id);
    const plain = (await getJson(`${sandbox.url}/v1/requests/${id}/result`)).body;
    assert.equal(typeof plain.output.video, "string");
    assert.equal("model_id" in plain, false, "the contract's result has no model_id by default");
    sandbox.setFaults("output=videos,result-model-id=on");
    const shaped = (await getJson(`${sandbox.url}/v1/requests/${id}/result`)).body;
    assert.deepEqual(shaped.output, { videos: [plain.output.video] });
    assert.equal(shaped.model_id, "bytedance/dreamina-3-0/pro/image-to-video");
    assert.equal(shaped.status, "succeeded");
    sandbox.setFaults(undefined);
  });

  test("finished-status=outcome: status (and cancel) say succeeded or failed instead of completed", async () => {
    const ok = await newJob();
    sandbox.setFaults("job:fail=1");
    const bad = (await submit(sandbox.url, { prompt: "p", image_urls: [image], seed: 2 })).body.request_id;
    sandbox.setFaults(undefined);
    assert.equal((await waitDone(sandbox.url, ok)).status, "completed");
    assert.equal((await waitDone(sandbox.url, bad)).status, "completed");
    sandbox.setFaults("finished-status=outcome");
    assert.equal((await getJson(`${sandbox.url}/v1/requests/${ok}/status`)).body.status, "succeeded");
    assert.equal((await getJson(`${sandbox.url}/v1/requests/${bad}/status`)).body.status, "failed");
    const cancel = await fetch(`${sandbox.url}/v1/requests/${bad}/cancel`, {
      method: "POST",
      headers: { authorization: "Bearer token-a" },
    });
    assert.deepEqual(await cancel.json(), { request_id: bad, status: "failed", outcome: "not_cancellable" });
    const result = (await getJson(`${sandbox.url}/v1/requests/${bad}/result`)).body;
    assert.equal(result.status, "failed");
    assert.equal(typeof result.error, "string");
    sandbox.setFaults(undefined);
  });

  test("job-error=array: a failed result's error is [{errorCode, error, debugInfo}]", async () => {
    sandbox.setFaults("job:fail=1");
    const id = (await submit(sandbox.url, { prompt: "p", image_urls: [image], seed: 2 })).body.request_id;
    sandbox.setFaults(undefined);
    await waitDone(sandbox.url, id);
    sandbox.setFaults("job-error=array");
    const result = (await getJson(`${sandbox.url}/v1/requests/${id}/result`)).body;
    assert.equal(result.status, "failed");
    assert.ok(Array.isArray(result.error));
    assert.equal(result.error.length, 1);
    const [entry] = result.error;
    assert.deepEqual(Object.keys(entry), ["errorCode", "error", "debugInfo"]);
    assert.equal(entry.errorCode, 500001);
    assert.equal(entry.error, "Generation failed: internal worker error");
    assert.equal(entry.debugInfo.requestId, id);
    sandbox.setFaults(undefined);
  });

  test("error-key=message|error: every JSON error body carries its message under that key", async () => {
    for (const key of ["message", "error"]) {
      sandbox.setFaults(`error-key=${key}`);
      const missing = await getJson(`${sandbox.url}/v1/requests/no-such-id/status`);
      assert.equal(missing.status, 404);
      assert.deepEqual(Object.keys(missing.body), ["error_code", key]);
      assert.match(missing.body[key], /not found/);
      const invalid = await submit(sandbox.url, { prompt: "p" });
      assert.equal(invalid.status, 422);
      assert.deepEqual(Object.keys(invalid.body), ["error_code", key, "detail"]);
      sandbox.setFaults(`error-key=${key},status:500=1`);
      const fault = await getJson(`${sandbox.url}/v1/requests/no-such-id/status`);
      assert.equal(fault.status, 500);
      assert.equal(fault.body[key], "Internal server error.");
      assert.equal(fault.body.error_message, undefined);
    }
    sandbox.setFaults(undefined);
    assert.equal(
      typeof (await getJson(`${sandbox.url}/v1/requests/no-such-id/status`)).body.error_message,
      "string",
    );
  });

  test("faults apply before auth, like a gateway in front of the service", async () => {
    sandbox.setFaults("models:502=1");
    const r = await fetch(`${sandbox.url}/v1/models`);
    assert.equal(r.status, 502);
    await r.text();
    sandbox.setFaults(undefined);
    const ok: Body = await getJson(`${sandbox.url}/v1/models`);
    assert.equal(ok.status, 200);
  });
});
