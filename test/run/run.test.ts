// runJob against a real local HTTP server: preflight before any request, hook order around
// the submit (the journal's intent row goes in before the POST), and the outcome.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { InvalidInputError, JobFailedError, SubmissionUnknownError } from "../../src/api/errors.js";
import { PreflightError } from "../../src/run/errors.js";
import { runJob } from "../../src/run/run.js";
import { JobServer, MODEL_PATH, resultBody, statusBody } from "./job-server.js";

let server: JobServer;
before(async () => {
  server = await JobServer.start();
});
after(() => server.close());

const VIDEO = "https://cdn.runcomfy.net/out/video.mp4";
const INPUT = {
  prompt: "a slow dolly shot down a street",
  image_urls: ["https://example.com/street.jpg"],
  frames: 121,
};
const fast = () => 10;

describe("runJob", () => {
  test("preflight lists every violation and sends nothing", async () => {
    const before = server.hits.length;
    let hookCalled = false;
    await assert.rejects(
      runJob(
        server.client(),
        { prompt: "x".repeat(801), image_urls: "https://example.com/a.jpg", frames: 120 },
        {
          beforeSubmit: () => {
            hookCalled = true;
          },
        },
      ),
      (err: unknown) => {
        assert.ok(err instanceof PreflightError);
        assert.ok(err instanceof InvalidInputError, "one hierarchy");
        const paths = err.violations.map((v) => v.path).sort();
        assert.deepEqual(paths, ["frames", "image_urls", "prompt"]);
        assert.equal(err.detail.length, 3);
        for (const p of paths) assert.match(err.message, new RegExp(p));
        return true;
      },
    );
    assert.equal(server.hits.length, before, "no request at all");
    assert.equal(hookCalled, false);
  });

  test("hooks run in order, beforeSubmit before the POST; the result comes back", async () => {
    const rid = "run-ok-1";
    server.submitIds.push(rid);
    server.script(rid, {
      status: [statusBody(rid, "in_queue", 1), statusBody(rid, "in_progress"), statusBody(rid, "completed")],
      result: [resultBody(rid, "succeeded", { output: { video: VIDEO } })],
    });
    const events: string[] = [];
    let warnings = 0;
    const out = await runJob(server.client(), INPUT, {
      pollSchedule: fast,
      collectUpdates: true,
      onWarnings: (w) => {
        warnings = w.length;
      },
      beforeSubmit: async (input, { modelId }) => {
        await new Promise((r) => setTimeout(r, 20));
        assert.deepEqual(input, INPUT);
        assert.equal(modelId, "bytedance/dreamina-3-0/pro/image-to-video");
        events.push(`beforeSubmit(submits so far: ${server.count("submit")})`);
      },
      onSubmitted: (s, { submittedAt }) => {
        assert.ok(submittedAt > 0);
        events.push(`onSubmitted(${s.requestId})`);
      },
      onUpdate: (u) => void events.push(`update(${u.status})`),
      onResult: (r) => void events.push(`onResult(${r.status})`),
      onSubmitError: () => void events.push("onSubmitError"),
    });
    const submitsBefore = Number(/\d+/.exec(events[0]!)![0]);
    assert.deepEqual(events.slice(1), [
      `onSubmitted(${rid})`,
      "update(in_queue)",
      "update(in_progress)",
      "update(completed)",
      "onResult(succeeded)",
      "update(succeeded)",
    ]);
    assert.equal(server.count("submit"), submitsBefore + 1, "exactly one POST, after beforeSubmit");
    const submit = server.hits.find((h) => h.kind === "submit" && h.body.includes("dolly"));
    assert.equal(submit?.path, MODEL_PATH);
    assert.deepEqual(JSON.parse(submit!.body), INPUT);
    assert.equal(out.requestId, rid);
    assert.equal(out.result.video, VIDEO);
    assert.ok(out.finishedAt >= out.submittedAt);
    assert.deepEqual(
      out.updates?.map((u) => u.status),
      ["in_queue", "in_progress", "completed", "succeeded"],
    );
    assert.ok(warnings >= 1, "the uninspected image URL is a warning, not a violation");
  });

  test("a failed job: onResult sees it, then JobFailedError", async () => {
    const rid = "run-fail-1";
    server.submitIds.push(rid);
    server.script(rid, {
      status: [statusBody(rid, "completed")],
      result: [resultBody(rid, "failed", { error: "content policy" })],
    });
    let resultStatus = "";
    await assert.rejects(
      runJob(server.client(), INPUT, {
        pollSchedule: fast,
        onResult: (r) => {
          resultStatus = r.status;
        },
      }),
      (err: unknown) =>
        err instanceof JobFailedError && err.jobError === "content policy" && err.requestId === rid,
    );
    assert.equal(resultStatus, "failed");
  });

  test("a submit whose outcome is unknown: onSubmitError, no wait, not resent", async () => {
    // No id scripted: the server answers the POST with a 500 (ambiguous for a submit).
    server.submitIds = [];
    const before = server.count("submit");
    let seen: unknown;
    await assert.rejects(
      runJob(server.client({ maxAttempts: 3, baseDelayMs: 1 }), INPUT, {
        pollSchedule: fast,
        onSubmitError: (e) => {
          seen = e;
        },
      }),
      SubmissionUnknownError,
    );
    assert.ok(seen instanceof SubmissionUnknownError);
    assert.equal(server.count("submit"), before + 1, "never resubmitted");
  });

  test("a throwing beforeSubmit stops the run before the POST", async () => {
    const before = server.count("submit");
    await assert.rejects(
      runJob(server.client(), INPUT, {
        beforeSubmit: () => {
          throw new Error("journal is read-only");
        },
      }),
      /read-only/,
    );
    assert.equal(server.count("submit"), before);
  });
});
