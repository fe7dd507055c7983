// The plan and run phases of one worker of a shared batch (a PostgreSQL store): join the batch,
// queue its rows (every worker queues the same), then claim rows as slots free up and run each
// per the job a previous holder left (plan.ts decides, as for a rerun on SQLite). At the end,
// what the other workers settled is taken in, so this worker's report and exit code are the
// whole batch's.
//
// A file in the way is not refused up front here (another worker may be writing it right now):
// a video goes beside a file this batch did not write, as it does on SQLite once a job has run.

import type { BatchRowRecord, ClaimedRow, SharedBatchStore } from "../store/index.js";
import type { PlanAction, RowRef } from "./batch-types.js";
import { roundUsd } from "./budget.js";
import { startDownload } from "./downloads.js";
import { OutputFiles, VIDEO_EXT } from "./output-files.js";
import { planRow } from "./plan.js";
import type { RowRun } from "./row-run.js";
import type { BatchRunContext } from "./run-context.js";
import { SharedBatch } from "./shared-batch.js";
import { runSharedQueue } from "./shared-queue.js";
import { reattach, submitAndWait } from "./submit-and-wait.js";

export async function planShared(ctx: BatchRunContext, store: SharedBatchStore): Promise<void> {
  const o = ctx.options;
  const shared = await SharedBatch.join(store, {
    outDir: ctx.outDir,
    manifestPath: ctx.manifest?.path,
    manifestDigest: ctx.manifest?.digest,
    batchId: o.batchId,
    rowKeys: ctx.rows.map((r) => r.row.key),
  });
  ctx.shared = shared;
  ctx.batch = shared.state;
  ctx.outDir = shared.state.info.outDir;
  await ctx.priors.load(ctx.rows.map((r) => r.row.frames));
  const valid = ctx.rows.filter((r) => r.phase !== "invalid");
  const outcomes = await shared.enqueue(
    valid.map((r) => ({ key: r.row.key, line: r.row.line, name: r.row.name, estimateUsd: r.estimateUsd })),
    { budgetUsd: o.budgetUsd, resubmitUnknown: o.resubmitUnknown, retryFailed: o.retryFailed },
  );
  ctx.files = new OutputFiles({
    outDir: ctx.outDir,
    recorded: outcomes.values(),
    rowFiles: ctx.rows.map((r) => `${r.row.name}${VIDEO_EXT}`),
    force: Boolean(o.force),
  });
  const counts = { toSubmit: 0, toReattach: 0, toDownload: 0, alreadyDone: 0, unknown: 0, failedBefore: 0 };
  let estimatedUsd = 0;
  const planned: { row: RowRef; action: PlanAction; estimateUsd: number }[] = [];
  for (const r of valid) {
    const settled = takeOutcome(ctx, r, outcomes.get(r.row.key));
    if (settled === "done") {
      counts.alreadyDone++;
      ctx.emit({ type: "row-skipped", row: r.ref, reason: "done" });
    } else if (settled === "failed") {
      counts.failedBefore++;
    } else {
      counts.toSubmit++;
      estimatedUsd += r.estimateUsd;
    }
    planned.push({ row: r.ref, action: r.action ?? "submit", estimateUsd: r.estimateUsd });
  }
  shared.shareRateLimit(o.rateLimiter);
  ctx.emit({
    type: "plan",
    batchId: shared.batchId,
    resumed: shared.state.info.resumed,
    manifestChanged: shared.state.info.previousDigest !== undefined,
    ...counts,
    estimatedUsd: roundUsd(estimatedUsd),
    rows: planned,
  });
}

/** Rows come from the batch's queue, claimed as slots free up, until none is left for anyone. */
export async function executeShared(ctx: BatchRunContext, shared: SharedBatch): Promise<void> {
  const byKey = new Map(ctx.rows.filter((r) => r.phase !== "invalid").map((r) => [r.row.key, r]));
  await runSharedQueue(
    {
      row: (key) => byKey.get(key),
      stopping: () => ctx.stopping || ctx.diskFull !== undefined || ctx.budgetStopped,
      runClaimed: async (r, claimed) => {
        await runClaimed(ctx, r, claimed);
        // Not run after all (interrupted before its submit, the disk full, the budget spent, a
        // job of it found): back in the queue for whoever can.
        if (r.phase === "pending" && !r.heldElsewhere) await shared.release(r.row.key).catch(() => {});
      },
    },
    {
      store: shared.store,
      batchId: shared.batchId,
      concurrency: ctx.options.concurrency ?? 4,
      signal: ctx.options.signal,
    },
  );
}

/** What the other workers settled: taken in before the report, so that it is the whole batch's. */
export async function takeSharedOutcomes(ctx: BatchRunContext, shared: SharedBatch): Promise<void> {
  const outcomes = await shared.outcomes();
  for (const r of ctx.rows) if (r.phase !== "invalid") takeOutcome(ctx, r, outcomes.get(r.row.key));
}

/** A claimed row, per the newest job of it (none, or one a previous holder left). */
async function runClaimed(ctx: BatchRunContext, r: RowRun, claimed: ClaimedRow): Promise<void> {
  const { action, unknownSince, ...found } = planRow(claimed.job ? [claimed.job] : [], undefined, {
    resubmitUnknown: Boolean(ctx.options.resubmitUnknown),
    retryFailed: Boolean(ctx.options.retryFailed),
    fileIntact: false,
  });
  Object.assign(
    r,
    { unknownLocalIds: [], error: undefined, notRunReason: undefined, heldElsewhere: false },
    found,
  );
  r.action = action;
  r.phase = "pending";
  switch (action) {
    case "download":
      ctx.budget.addSpent(r.costUsd ?? r.estimateUsd, r.costUsd !== undefined);
      startDownload(ctx, r);
      return;
    case "reattach":
      ctx.budget.track(r.row.key, r.estimateUsd);
      await reattach(ctx, r);
      return;
    case "unknown":
      ctx.budget.addSpent(r.estimateUsd, false);
      r.phase = "unknown";
      r.error = {
        name: "SubmissionUnknownError",
        code: "submission_unknown",
        message:
          "the submit's outcome is unknown: the job may exist and be billed. Left alone; " +
          "check it, or run again with --resubmit-unknown to submit it anyway",
      };
      ctx.emit({
        type: "row-unknown",
        row: r.ref,
        localIds: r.unknownLocalIds,
        since: unknownSince ?? new Date().toISOString(),
        resubmitting: false,
      });
      ctx.settleShared(r);
      return;
    case "failed":
      ctx.budget.addSpent(r.costUsd ?? r.estimateUsd, r.costUsd !== undefined);
      r.phase = "failed";
      ctx.settleShared(r);
      return;
    default:
      // The store reserves the shared budget with the intent row; the local one only counts.
      ctx.budget.reserve(r.row.key, r.estimateUsd);
      await submitAndWait(ctx, r);
  }
}

/** A row settled by a worker of the shared batch (this one earlier, or another): taken as it is. */
function takeOutcome(
  ctx: BatchRunContext,
  r: RowRun,
  outcome: BatchRowRecord | undefined,
): "done" | "failed" | undefined {
  if (!outcome || (r.phase !== "pending" && r.phase !== "unknown")) return undefined;
  r.requestId = outcome.requestId ?? r.requestId;
  r.costUsd = outcome.costUsd ?? r.costUsd;
  if (outcome.state === "done") {
    r.phase = "done";
    r.action = "done";
    r.file = outcome.file;
    r.sha256 = outcome.sha256;
    r.bytes = outcome.bytes;
    ctx.budget.addSpent(r.costUsd ?? r.estimateUsd, r.costUsd !== undefined);
    return "done";
  }
  const error = outcome.error as RowRun["error"] | undefined;
  const unknown = error?.code === "submission_unknown";
  r.phase = unknown ? "unknown" : "failed";
  r.action = unknown ? "unknown" : "failed";
  r.error = error ?? { name: "Error", message: "failed (recorded by another worker)" };
  return "failed";
}
