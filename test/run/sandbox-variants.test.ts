// The run layer and the Node SDK against the sandbox's documented variants of a finished job:
// the output as a `videos` array, a result that names its model, a status endpoint that says
// `succeeded` or `failed` itself, and a job error in the array shape. Each has to end the
// wait the same way the plain shapes do: a video is found, a failure keeps the service's
// error verbatim, and the journal records it.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { RunComfyClient } from "../../src/api/client.js";
import { JobFailedError } from "../../src/api/errors.js";
import { Dreamina } from "../../src/node/dreamina.js";
import { runJob } from "../../src/run/run.js";
import type { JobUpdate } from "../../src/run/wait.js";
import { type Sandbox, startSandbox } from "../../src/sandbox/index.js";
import { assertMp4, FAKE_TOKEN, sha256File } from "../helpers/cli.js";
import { jpeg } from "../helpers/images.js";
import { dataUri } from "../sandbox/helpers.js";

let sandbox: Sandbox;
let dir: string;
let imageFile: string;
let imageUri: string;

before(async () => {
  sandbox = await startSandbox({
    quiet: true,
    runTime: { 121: { meanMs: 300, jitterMs: 0 }, 241: { meanMs: 600, jitterMs: 0 } },
    renderShortSide: 160,
  });
  dir = mkdtempSync(join(tmpdir(), "dreamina-variants-"));
  const bytes = await jpeg(640, 480);
  imageFile = join(dir, "photo.jpg");
  writeFileSync(imageFile, bytes);
  imageUri = dataUri(bytes);
});

after(async () => {
  await sandbox.close();
  rmSync(dir, { recursive: true, force: true });
});

const fast = () => 25;
const client = () =>
  new RunComfyClient({ baseUrl: sandbox.url, token: FAKE_TOKEN, retry: { maxAttempts: 1 } });
const input = (prompt: string) => ({ prompt, image_urls: [imageUri], seed: 5 });

/** The result as the sandbox sends it, read with plain fetch (not with the client under test). */
async function rawResult(requestId: string): Promise<Record<string, unknown>> {
  const response = await fetch(`${sandbox.url}/v1/requests/${requestId}/result`, {
    headers: { authorization: `Bearer ${FAKE_TOKEN}` },
  });
  return (await response.json()) as Record<string, unknown>;
}

/** Runs a job, returning what it threw (or failing the test when it did not throw). */
async function failedRun(prompt: string, options: { pollResultWhileRunning?: boolean } = {}) {
  const seen: JobUpdate[] = [];
  const error = await runJob(client(), input(prompt), {
    pollSchedule: fast,
    ...options,
    onUpdate: (u) => void seen.push(u),
  }).then(
    () => assert.fail("the job should fail"),
    (e: unknown) => e,
  );
  assert.ok(error instanceof JobFailedError, String(error));
  return { error, seen };
}

describe("output as a videos array, result with model_id", () => {
  test("runJob: video and outputUrls come from videos; model_id is tolerated and kept raw", async () => {
    sandbox.setFaults("output=videos,result-model-id=on");
    try {
      const { result } = await runJob(client(), input("videos array"), { pollSchedule: fast });
      assert.equal(result.status, "succeeded");
      const raw = await rawResult(result.requestId);
      const videos = (raw.output as { videos: string[] }).videos;
      assert.ok(Array.isArray(videos) && videos.length === 1, JSON.stringify(raw.output));
      assert.equal(result.video, videos[0]);
      assert.deepEqual(result.outputUrls, videos);
      assert.equal(result.raw.model_id, "bytedance/dreamina-3-0/pro/image-to-video");
      assert.ok(!result.outputUrls.includes(String(result.raw.model_id)), "an id is not an output");
    } finally {
      sandbox.setFaults(undefined);
    }
  });

  test("Dreamina.run: the video from videos[0] is downloaded and journaled", async () => {
    sandbox.setFaults("output=videos,result-model-id=on");
    const dreamina = new Dreamina({ baseUrl: sandbox.url, token: FAKE_TOKEN, journal: join(dir, "j1.db") });
    try {
      const video = await dreamina.run(
        { image: imageFile, prompt: "videos array, downloaded", frames: 121 },
        { output: join(dir, "videos.mp4"), pollSchedule: fast },
      );
      const file = video.files[0];
      assert.ok(file);
      assertMp4(file.path);
      assert.equal(
        sha256File(file.path),
        sandbox.jobs().find((j) => j.id === video.requestId)?.output?.sha256,
      );
      const row = await (await dreamina.store())?.get(video.requestId);
      assert.equal(row?.state, "succeeded");
      assert.deepEqual(row?.outputUrls, [video.video]);
    } finally {
      await dreamina.close();
      sandbox.setFaults(undefined);
    }
  });
});

describe("a status endpoint that says succeeded or failed itself", () => {
  test("succeeded on status: the wait reads the result once and returns the video", async () => {
    sandbox.setFaults("finished-status=outcome");
    try {
      const seen: JobUpdate[] = [];
      const { result } = await runJob(client(), input("outcome ok"), {
        pollSchedule: fast,
        onUpdate: (u) => void seen.push(u),
      });
      assert.equal(result.status, "succeeded");
      assert.ok(result.video);
      const fromStatus = seen.filter((u) => !u.result).map((u) => u.rawStatus);
      assert.equal(fromStatus.at(-1), "succeeded", fromStatus.join(","));
      assert.equal(seen.at(-1)?.result, result);
      const results = sandbox
        .requests()
        .filter((e) => e.route === "result" && e.requestId === result.requestId);
      assert.equal(results.length, 1);
    } finally {
      sandbox.setFaults(undefined);
    }
  });

  for (const pollResultWhileRunning of [false, true]) {
    test(`failed on status → JobFailedError with the result's error verbatim (pollResultWhileRunning ${pollResultWhileRunning})`, async () => {
      sandbox.setFaults("finished-status=outcome,job:fail=1");
      try {
        const { error, seen } = await failedRun("outcome failed", { pollResultWhileRunning });
        const raw = await rawResult(error.requestId ?? "");
        assert.equal(raw.status, "failed");
        assert.equal(error.jobError, raw.error);
        assert.equal(error.jobError, "Generation failed: internal worker error");
        assert.match(error.message, /failed: Generation failed: internal worker error/);
        assert.equal(seen.at(-1)?.status, "failed");
        if (!pollResultWhileRunning) {
          assert.equal(seen.filter((u) => !u.result).at(-1)?.rawStatus, "failed", "the status said it");
        }
      } finally {
        sandbox.setFaults(undefined);
      }
    });
  }
});

describe("a job error in the array shape [{errorCode, error, debugInfo}]", () => {
  for (const finished of ["completed", "outcome"]) {
    test(`kept verbatim in JobFailedError and shown in its message (finished-status=${finished})`, async () => {
      sandbox.setFaults(`job:fail=1,job-error=array,finished-status=${finished}`);
      try {
        const { error } = await failedRun(`array error ${finished}`);
        const raw = await rawResult(error.requestId ?? "");
        assert.ok(Array.isArray(raw.error));
        assert.deepEqual(error.jobError, raw.error);
        assert.equal(error.message, `Job ${error.requestId} failed: ${JSON.stringify(raw.error)}`);
        assert.deepEqual(error.toJSON().jobError, raw.error);
      } finally {
        sandbox.setFaults(undefined);
      }
    });
  }

  test("Dreamina.run: the journal keeps the array as the job's error, the row is failed", async () => {
    sandbox.setFaults("job:fail=1,job-error=array");
    const dreamina = new Dreamina({ baseUrl: sandbox.url, token: FAKE_TOKEN, journal: join(dir, "j2.db") });
    try {
      const error = await dreamina
        .run({ image: imageFile, prompt: "array error, journaled", frames: 121 }, { pollSchedule: fast })
        .catch((e: unknown) => e);
      assert.ok(error instanceof JobFailedError, String(error));
      const row = await (await dreamina.store())?.get(error.requestId ?? "");
      assert.equal(row?.state, "failed");
      assert.deepEqual(row?.jobError, error.jobError);
      const [entry] = (row?.jobError ?? []) as { error?: string }[];
      assert.equal(entry?.error, "Generation failed: internal worker error");
    } finally {
      await dreamina.close();
      sandbox.setFaults(undefined);
    }
  });
});
