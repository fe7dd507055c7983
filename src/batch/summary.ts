// What a run did, in numbers: the live counts (progress) and the final summary with its exit code.

import type { BatchCounts, BatchSummary } from "./batch-types.js";
import { roundUsd } from "./budget.js";
import { diskFullMessage } from "./disk-full.js";
import type { BatchRunContext } from "./run-context.js";

export function countRows(ctx: BatchRunContext): BatchCounts {
  const c: BatchCounts = {
    total: 0,
    invalid: ctx.invalidLines,
    pending: 0,
    queued: 0,
    running: 0,
    downloading: 0,
    done: 0,
    failed: 0,
    unknown: 0,
    skipped: 0,
    spentUsd: 0,
    committedUsd: 0,
    startedAtMs: ctx.startedAt,
    finishedThisRun: 0,
  };
  for (const r of ctx.rows) {
    if (r.phase === "invalid") continue;
    c.total++;
    switch (r.phase) {
      case "pending":
        c.pending++;
        break;
      case "submitting":
      case "running":
        c.running++;
        break;
      case "queued":
        c.queued++;
        break;
      case "downloading":
        c.downloading++;
        break;
      case "done":
        c.done++;
        if (r.action === "done") c.skipped++;
        break;
      case "failed":
        c.failed++;
        break;
      case "unknown":
        c.unknown++;
        break;
    }
    if (r.settledNow) c.finishedThisRun++;
  }
  const budget = ctx.budget.snapshot();
  c.spentUsd = budget.spentUsd;
  c.committedUsd = budget.committedUsd;
  return c;
}

/**
 * The exit code: 0 all rows done; 1 some not; 65 invalid manifest (or a file in the way);
 * 75 disk full; 130 interrupted.
 */
export function summarize(
  ctx: BatchRunContext,
  report: { json: string; html: string | undefined } | undefined,
  reportError: string | undefined,
): BatchSummary {
  const o = ctx.options;
  const valid = ctx.rows.filter((r) => r.phase !== "invalid");
  const done = valid.filter((r) => r.phase === "done");
  const failed = valid.filter((r) => r.phase === "failed");
  const unknown = valid.filter((r) => r.phase === "unknown");
  const budget = ctx.budget.snapshot();
  const invalidManifest = ctx.invalidLines > 0 && !o.skipInvalid;
  const waiting = valid.filter((r) => r.notRunReason === "disk-full");
  const diskFull = ctx.diskFull && {
    path: ctx.diskFull.path,
    message: diskFullMessage({
      path: ctx.diskFull.path,
      done: done.length,
      valid: valid.length,
      waiting: waiting.filter((r) => r.requestId !== undefined).length,
      notSubmitted: waiting.filter((r) => r.requestId === undefined).length,
    }),
  };
  let exitCode: number;
  if (ctx.interrupted) exitCode = 130;
  else if (invalidManifest) exitCode = 65;
  else if (diskFull) exitCode = 75;
  else if (reportError !== undefined) exitCode = 1;
  else if (o.dryRun) exitCode = 0;
  else exitCode = ctx.invalidLines === 0 && done.length === valid.length ? 0 : 1;
  return {
    batchId: ctx.batch?.batchId,
    outDir: ctx.outDir,
    dryRun: Boolean(o.dryRun),
    rows: ctx.rows.length + new Set((ctx.manifest?.problems ?? []).map((p) => p.line)).size,
    valid: valid.length,
    invalid: ctx.invalidLines,
    done: done.length,
    failed: failed.length,
    unknown: unknown.length,
    notRun: valid.length - done.length - failed.length - unknown.length,
    alreadyDone: valid.filter((r) => r.action === "done").length,
    submitted: ctx.submitted,
    reattached: ctx.reattached,
    resubmitted: ctx.resubmitted,
    estimatedUsd: roundUsd(
      valid
        .filter((r) => (o.dryRun ? r.action === "submit" || r.action === "resubmit" : true))
        .reduce((s, r) => s + r.estimateUsd, 0),
    ),
    costUsd: roundUsd(valid.reduce((s, r) => s + (r.costUsd ?? 0), 0)),
    spentUsd: budget.spentUsd,
    budget: { limitUsd: budget.limitUsd, stopped: budget.stopped, committedUsd: budget.committedUsd },
    price: ctx.price,
    interrupted: ctx.interrupted,
    durationMs: Date.now() - ctx.startedAt,
    rateLimiter: o.rateLimiter?.stats(),
    report,
    reportError,
    diskFull,
    exitCode,
    failures: failed.map((r) => ({
      line: r.row.line,
      key: r.row.key,
      name: r.row.name,
      requestId: r.requestId,
      error: r.error ?? { name: "Error", message: "failed" },
    })),
    unknownRows: unknown.map((r) => ({
      line: r.row.line,
      key: r.row.key,
      name: r.row.name,
      localIds: r.unknownLocalIds,
    })),
  };
}
