// One row's job: submit it (the intent journaled before the POST, the request id after it) or
// re-attach to it by request id, wait for its end with the batch's poll schedule, then hand a
// success to the downloads. Exported per row, so that another way of picking rows can drive them.

import { AbortError, SubmissionUnknownError } from "../api/errors.js";
import type { JobResult } from "../api/types.js";
import { WaitAbortedError } from "../run/errors.js";
import { runJob } from "../run/run.js";
import { createPollSchedule, type PollSchedule } from "../run/schedule.js";
import { type JobUpdate, type WaitOptions, wait } from "../run/wait.js";
import { isDiskFull } from "./disk-full.js";
import { startDownload } from "./downloads.js";
import { prepareRowInput } from "./input.js";
import { errorInfo, type RowRun } from "./row-run.js";
import type { BatchRunContext } from "./run-context.js";
import { RowNotSubmittedError } from "./shared-batch.js";

/**
 * The batch's poll schedule: the run layer's (sparse early, dense around the end the journal's
 * run-time prior expects) with a narrower, sparser dense window. A batch is about throughput:
 * with dozens of jobs in flight, polling each one every second or two near its expected end
 * costs more requests (rate limit, CPU) than a few seconds of detection latency is worth.
 * Simulated on 1 s ± 0.25 s jobs: 5.4 polls per job instead of 25, ~5 % detection latency.
 */
export const BATCH_POLL_SCHEDULE: PollSchedule = createPollSchedule({
  denseStepMs: 6_000,
  denseFromStd: 0.6,
  hazardConstantMs: 2_000,
  denseMinMs: 1_500,
});

/**
 * The intent row, committed before the POST: its local id, or a throw (nothing is then sent).
 * The unknown earlier submits are given up in the same transaction that writes the new intent
 * row: if anything stops the run before this point, they stay "unknown" and the next run lists
 * them again instead of submitting silently.
 */
export async function writeIntent(
  ctx: BatchRunContext,
  r: RowRun,
  params: { modelId: string; input: unknown },
): Promise<number> {
  const intent = {
    modelId: params.modelId,
    input: params.input,
    baseUrl: ctx.options.client.baseUrl,
    batchId: ctx.batchId,
    rowKey: r.row.key,
    supersedes: r.action === "resubmit" ? r.unknownLocalIds : undefined,
  };
  // A shared batch's intent row also checks that this worker still holds the row, that no job
  // of it may be alive, and reserves the budget (RowNotSubmittedError when any of those fails).
  return ctx.shared ? await ctx.shared.intent(intent, r.estimateUsd) : await ctx.store.beginSubmit(intent);
}

/** Submits the row's job (its budget already reserved) and waits for its end. */
export async function submitAndWait(ctx: BatchRunContext, r: RowRun): Promise<void> {
  const store = ctx.store;
  r.controller = new AbortController();
  r.phase = "submitting";
  r.error = undefined;
  let input: unknown;
  try {
    input = await prepareRowInput(r.row, { signal: ctx.options.signal, cache: ctx.images });
  } catch (error) {
    if (ctx.stopping) {
      r.phase = "pending";
      r.notRunReason = "interrupted";
      ctx.budget.release(r.row.key);
      return;
    }
    ctx.budget.release(r.row.key);
    ctx.fail(r, "submit", error);
    return;
  }
  let localId: number | undefined;
  let accepted = false;
  try {
    const result = await runJob(ctx.options.client, input, {
      ...waitOptions(ctx, r),
      skipValidation: true, // validated with the probe's facts already
      beforeSubmit: async (_input, { modelId }) => {
        if (ctx.stopping) throw new AbortError("interrupted before submit");
        if (ctx.diskFull) throw new AbortError("the disk is full: not submitted");
        // Assigned only once committed: a commit that fails (a full disk) leaves no intent row.
        localId = await writeIntent(ctx, r, { modelId, input });
        if (r.action === "resubmit") ctx.resubmitted.push(r.row.key);
        r.localId = localId;
      },
      onSubmitted: async (submit, { submittedAt }) => {
        accepted = true;
        await store.submitAccepted(localId!, {
          requestId: submit.requestId,
          statusUrl: submit.statusUrl,
          resultUrl: submit.resultUrl,
          cancelUrl: submit.cancelUrl,
        });
        r.requestId = submit.requestId;
        r.submittedAt = submittedAt;
        r.phase = "queued";
        ctx.submitted++;
        ctx.emit({ type: "submitted", row: r.ref, requestId: submit.requestId });
        // Interrupted while the POST was on the wire: now that the id is safe, stop.
        if (r.abortAfterSubmit) r.controller?.abort(new Error("interrupted"));
      },
      onSubmitError: async (error) => {
        if (localId === undefined) return;
        if (isDefiniteRefusal(error)) await store.submitRejected(localId, error);
        else await store.submitUnknown(localId, error);
      },
      onUpdate: (update) => onUpdate(ctx, r, update),
      onResult: (result) => onResult(ctx, r, result),
    });
    onJobSucceeded(ctx, r, result.result);
  } catch (error) {
    if (!accepted) {
      if (error instanceof RowNotSubmittedError) {
        // The shared store refused the intent row: nothing was written, nothing sent.
        r.phase = "pending";
        ctx.budget.release(r.row.key);
        if (error.reason === "budget_exceeded") {
          r.notRunReason = "budget";
          ctx.sharedBudgetSpent(r);
        } else if (error.reason === "batch_row_not_held") {
          r.heldElsewhere = true;
        }
        return;
      }
      if (error instanceof AbortError && localId === undefined) {
        // Stopped before anything was sent.
        r.phase = "pending";
        r.notRunReason = "interrupted";
        if (ctx.diskFull && !ctx.stopping) ctx.waitForSpace(r);
        ctx.budget.release(r.row.key);
        return;
      }
      if (localId !== undefined && !isDefiniteRefusal(error)) {
        r.phase = "unknown";
        r.unknownLocalIds = localId === undefined ? [] : [localId];
        r.error = errorInfo(error);
        r.errorPhase = "submit";
        ctx.budget.settle(r.row.key, undefined);
        ctx.emit({
          type: "row-unknown",
          row: r.ref,
          localIds: r.unknownLocalIds,
          since: new Date().toISOString(),
          resubmitting: false,
        });
        // A shared batch's row leaves the queue: no worker may submit it again (only a rerun
        // with --resubmit-unknown puts it back).
        ctx.settleShared(r);
        return;
      }
      ctx.budget.release(r.row.key);
      if (localId === undefined && isDiskFull(error)) {
        // The journal could not take the intent row: nothing was sent, and nothing more may be.
        ctx.noteDiskFull(ctx.store.location);
        ctx.waitForSpace(r);
        return;
      }
      ctx.fail(r, "submit", error);
      return;
    }
    onWaitError(ctx, r, error);
  } finally {
    r.controller = undefined;
  }
}

/** Waits for the row's job submitted by an earlier run (its `requestId`). */
export async function reattach(ctx: BatchRunContext, r: RowRun): Promise<void> {
  r.controller = new AbortController();
  r.phase = "running";
  ctx.reattached++;
  ctx.emit({ type: "reattached", row: r.ref, requestId: r.requestId! });
  try {
    const result = await wait(ctx.options.client, r.requestId!, {
      ...waitOptions(ctx, r),
      submittedAt: r.submittedAt,
      onUpdate: (update) => onUpdate(ctx, r, update),
      onResult: (result) => onResult(ctx, r, result),
    });
    onJobSucceeded(ctx, r, result);
  } catch (error) {
    onWaitError(ctx, r, error);
  } finally {
    r.controller = undefined;
  }
}

/** How every row waits, whether it was just submitted or re-attached after a restart. */
function waitOptions(ctx: BatchRunContext, r: RowRun): WaitOptions {
  const o = ctx.options;
  return {
    signal: r.controller?.signal,
    includeCost: true,
    cancelOnAbort: Boolean(o.cancelQueuedOnExit),
    timeScale: o.timeScale,
    pollSchedule: o.pollSchedule ?? BATCH_POLL_SCHEDULE,
    prior: () => ctx.priors.prior(r.row.frames),
    pollResultWhileRunning: true,
    timeoutMs: o.waitTimeoutMs,
  };
}

function onUpdate(ctx: BatchRunContext, r: RowRun, update: JobUpdate): void {
  ctx.priors.observe(r, update);
  if (update.result) return; // the result is journaled by onResult
  const key = `${update.status}/${update.queuePosition ?? ""}`;
  if (key === r.lastStatusKey) return;
  r.lastStatusKey = key;
  if (update.status === "in_queue") r.phase = "queued";
  else if (update.status === "in_progress") r.phase = "running";
  ctx.commits.defer({
    kind: "status",
    requestId: update.requestId,
    observation: {
      status: update.status,
      rawStatus: update.rawStatus,
      queuePosition: update.queuePosition,
      at: update.at,
    },
  });
  ctx.emit({
    type: "status",
    row: r.ref,
    requestId: update.requestId,
    status: update.status === "unknown" ? update.rawStatus : update.status,
    queuePosition: update.queuePosition,
  });
}

function onResult(ctx: BatchRunContext, r: RowRun, result: JobResult): void {
  const at = Date.now();
  // A JobResult carries every field the store keeps; `at` is when it was seen, not written.
  ctx.commits.defer({ kind: "result", requestId: result.requestId, result: { ...result, at } });
  r.costUsd = result.cost;
}

function onJobSucceeded(ctx: BatchRunContext, r: RowRun, result: JobResult): void {
  ctx.budget.settle(r.row.key, result.cost);
  r.costUsd = result.cost;
  r.outputUrl = result.video ?? result.outputUrls[0];
  startDownload(ctx, r);
}

function onWaitError(ctx: BatchRunContext, r: RowRun, error: unknown): void {
  if (error instanceof WaitAbortedError || (error instanceof AbortError && ctx.stopping)) {
    // Interrupted: the job stays in the journal as it is and is re-attached next time.
    const cancelled = error instanceof WaitAbortedError && error.cancel.outcome === "cancelled";
    if (cancelled && r.requestId) {
      const requestId = r.requestId;
      ctx.commits.defer({
        kind: "status",
        requestId,
        observation: { status: "cancelled", rawStatus: "cancelled" },
      });
      ctx.budget.release(r.row.key);
      ctx.cancelledOnExit++;
    }
    r.phase = "pending";
    r.notRunReason = "interrupted";
    return;
  }
  // The job ran (or may have): its estimate stays spent unless the service said otherwise.
  ctx.budget.settle(r.row.key, r.costUsd);
  if (r.requestId) {
    const requestId = r.requestId;
    ctx.commits.defer({ kind: "error", requestId, error });
  }
  ctx.fail(r, "wait", error);
}

/**
 * Whether a submit error means the service certainly created nothing. The client already
 * turns every doubtful failure into SubmissionUnknownError; an AbortError is doubtful too
 * (the POST may have been on the wire), unless the rate limiter stopped it before sending.
 */
function isDefiniteRefusal(error: unknown): boolean {
  if (error instanceof SubmissionUnknownError) return false;
  if (error instanceof AbortError) return (error as { notSent?: boolean }).notSent === true;
  return true;
}
