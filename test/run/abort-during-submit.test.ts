// Ctrl-C (an abort) while the submit is in flight must not cut the POST: the service may have
// taken the job already, and a cut POST would leave an unknown, uncancellable, billed job.
// runJob lets the POST finish, then the wait sees the abort and cancels the still-queued job.

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { RunComfyClient } from "../../src/api/client.js";
import { MODEL_ID } from "../../src/model/input.js";
import { WaitAbortedError } from "../../src/run/errors.js";
import { runJob } from "../../src/run/run.js";
import { startSandbox } from "../../src/sandbox/index.js";

test("an abort during a slow submit: the POST completes, the queued job is cancelled, nothing is unknown", async () => {
  const long = { meanMs: 20_000, jitterMs: 0 };
  const sandbox = await startSandbox({ quiet: true, workers: 1, runTime: { 121: long, 241: long } });
  try {
    const image = await readFile(new URL("../../examples/golden-hour-street.jpg", import.meta.url));
    const input = {
      prompt: "a slow pan",
      image_urls: [`data:image/jpeg;base64,${image.toString("base64")}`],
    };
    const client = new RunComfyClient({ baseUrl: sandbox.url, token: "test-token-abort" });
    await client.submit(MODEL_ID, input); // takes the only worker, so the next job queues
    sandbox.setFaults("submit:stall@1=1"); // the next submit's answer arrives 1 s late
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("interrupted")), 200);
    let submittedId: string | undefined;
    await assert.rejects(
      runJob(client, input, {
        signal: controller.signal,
        onSubmitted: (submit) => {
          submittedId = submit.requestId;
        },
      }),
      (error: unknown) => {
        assert.ok(error instanceof WaitAbortedError, String(error));
        assert.equal(error.cancel.outcome, "cancelled");
        assert.equal(error.requestId, submittedId);
        return true;
      },
    );
    assert.ok(submittedId, "the request id of the job the service took is known");
    const job = sandbox.jobs().find((j) => j.id === submittedId);
    assert.equal(job?.state, "cancelled");
    const submits = sandbox.requests().filter((r) => r.route === "submit" && r.method === "POST");
    assert.equal(submits.length, 2, "one blocker, one aborted run: nothing resent");
  } finally {
    await sandbox.close();
  }
});
