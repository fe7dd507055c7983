// The plan's per-row decision (src/batch/plan.ts), branch by branch, from journal records as
// the store returns them (newest first) and the row's recorded outcome.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type PlanFlags, planRow, recordedFile } from "../../src/batch/plan.js";
import type { BatchRowRecord, JobRecord } from "../../src/store/index.js";

let nextId = 1;
function rec(state: JobRecord["state"], fields: Partial<JobRecord> = {}): JobRecord {
  const localId = nextId++;
  return {
    localId,
    requestId: `req-${localId}`,
    modelId: "m",
    baseUrl: "http://127.0.0.1:1",
    batchId: "b",
    rowKey: "k",
    state,
    storedState: state,
    rawStatus: undefined,
    input: {},
    inputDigest: "d",
    prompt: undefined,
    frames: undefined,
    seed: undefined,
    statusUrl: undefined,
    resultUrl: undefined,
    cancelUrl: undefined,
    createdAt: "2026-12-01T10:00:00.000Z",
    submittedAt: "2026-12-01T10:00:01.000Z",
    startedAt: undefined,
    finishedAt: undefined,
    updatedAt: "2026-12-01T10:00:02.000Z",
    outputUrls: [],
    cost: undefined,
    jobError: undefined,
    lastError: undefined,
    serviceCreatedAt: undefined,
    serviceFinishedAt: undefined,
    pid: undefined,
    host: undefined,
    ...fields,
  };
}

function doneOutcome(fields: Partial<BatchRowRecord> = {}): BatchRowRecord {
  return {
    rowKey: "k",
    line: 1,
    name: "row",
    state: "done",
    requestId: "req-x",
    estimateUsd: 0.6,
    costUsd: 0.6,
    file: "row.mp4",
    bytes: 1234,
    sha256: "abc",
    error: undefined,
    updatedAt: "2026-12-01T10:00:03.000Z",
    ...fields,
  };
}

const flags: PlanFlags = { resubmitUnknown: false, retryFailed: false, fileIntact: false };

describe("plan: one row's decision", () => {
  test("nothing in the journal: submit, nothing else set", () => {
    assert.deepEqual(planRow([], undefined, flags), { action: "submit" });
  });

  test("succeeded, its file recorded and intact: done, with the file, cost and request id", () => {
    const ok = rec("succeeded", { cost: 0.6, outputUrls: ["http://127.0.0.1:1/v.mp4"] });
    const plan = planRow([ok], doneOutcome(), { ...flags, fileIntact: true });
    assert.equal(plan.action, "done");
    assert.equal(plan.requestId, ok.requestId);
    assert.equal(plan.costUsd, 0.6);
    assert.equal(plan.outputUrl, "http://127.0.0.1:1/v.mp4");
    assert.equal(plan.submittedAt, Date.parse("2026-12-01T10:00:01.000Z"));
    assert.equal(plan.file, "row.mp4");
    assert.equal(plan.sha256, "abc");
    assert.equal(plan.bytes, 1234);
  });

  test("succeeded but the file is missing or damaged: download again (the output URL kept)", () => {
    const ok = rec("succeeded", { outputUrls: ["http://127.0.0.1:1/v.mp4"] });
    const plan = planRow([ok], doneOutcome(), { ...flags, fileIntact: false });
    assert.equal(plan.action, "download");
    assert.equal(plan.outputUrl, "http://127.0.0.1:1/v.mp4");
    assert.equal(plan.file, undefined);
  });

  test("succeeded, no recorded outcome: download, even when told the file is intact", () => {
    const ok = rec("succeeded");
    assert.equal(planRow([ok], undefined, { ...flags, fileIntact: true }).action, "download");
    const failedOutcome = doneOutcome({ state: "failed", file: undefined });
    assert.equal(planRow([ok], failedOutcome, { ...flags, fileIntact: true }).action, "download");
  });

  test("a success wins over a later failure or an unknown submit", () => {
    const ok = rec("succeeded");
    const plan = planRow([rec("failed"), rec("submission_unknown"), ok], undefined, flags);
    assert.equal(plan.action, "download");
    assert.equal(plan.requestId, ok.requestId);
  });

  for (const state of ["submitted", "in_queue", "in_progress", "completed"] as const) {
    test(`a job ${state}: re-attach by its request id and local id`, () => {
      const active = rec(state);
      const plan = planRow([active], undefined, flags);
      assert.deepEqual(plan, {
        action: "reattach",
        requestId: active.requestId,
        localId: active.localId,
        submittedAt: Date.parse("2026-12-01T10:00:01.000Z"),
      });
    });
  }

  test("an active state without a request id is not re-attached", () => {
    assert.equal(planRow([rec("in_queue", { requestId: undefined })], undefined, flags).action, "submit");
  });

  test("submits of unknown outcome: left alone, every local id listed, since the oldest", () => {
    const newer = rec("submission_unknown", { createdAt: "2026-12-02T00:00:00.000Z" });
    const older = rec("submitting", { createdAt: "2026-12-01T00:00:00.000Z", requestId: undefined });
    const plan = planRow([newer, older], undefined, flags);
    assert.deepEqual(plan, {
      action: "unknown",
      unknownLocalIds: [newer.localId, older.localId],
      unknownSince: "2026-12-01T00:00:00.000Z",
    });
  });

  test("submits of unknown outcome with resubmitUnknown: resubmit (superseding them)", () => {
    const unknown = rec("submission_unknown");
    const plan = planRow([unknown], undefined, { ...flags, resubmitUnknown: true });
    assert.equal(plan.action, "resubmit");
    assert.deepEqual(plan.unknownLocalIds, [unknown.localId]);
  });

  test("the latest job failed: failed, with the service's error and cost", () => {
    const failed = rec("failed", { cost: 0.3, jobError: { reason: "nsfw" } });
    const plan = planRow([failed, rec("rejected")], undefined, flags);
    assert.equal(plan.action, "failed");
    assert.equal(plan.requestId, failed.requestId);
    assert.equal(plan.costUsd, 0.3);
    assert.equal(plan.errorPhase, "wait");
    assert.equal(plan.error?.name, "JobFailedError");
    assert.deepEqual(plan.error?.jobError, { reason: "nsfw" });
    assert.match(plan.error?.message ?? "", /failed in an earlier run: \{"reason":"nsfw"\}.*--retry-failed/);
  });

  test("a string job error is quoted as is; none, no colon", () => {
    assert.match(
      planRow([rec("failed", { jobError: "boom" })], undefined, flags).error!.message,
      /run: boom \(/,
    );
    assert.match(planRow([rec("failed")], undefined, flags).error!.message, /earlier run \(run with/);
  });

  test("the latest job failed, with retryFailed: submit", () => {
    assert.deepEqual(planRow([rec("failed")], undefined, { ...flags, retryFailed: true }), {
      action: "submit",
    });
  });

  test("an older failure, then a rejection or a cancel: submit (the latest decides)", () => {
    assert.equal(planRow([rec("rejected"), rec("failed")], undefined, flags).action, "submit");
    assert.equal(planRow([rec("cancelled"), rec("failed")], undefined, flags).action, "submit");
  });
});

describe("plan: which file to check", () => {
  test("only a success with a recorded done outcome naming a file", () => {
    const ok = rec("succeeded");
    assert.deepEqual(recordedFile([ok], doneOutcome()), { file: "row.mp4", sha256: "abc" });
    assert.equal(recordedFile([ok], undefined), undefined);
    assert.equal(recordedFile([ok], doneOutcome({ file: undefined })), undefined);
    assert.equal(recordedFile([rec("failed")], doneOutcome()), undefined);
    assert.equal(recordedFile([], doneOutcome()), undefined);
  });
});
