// runBatch: a whole manifest, exactly once, as an async iterator of events.
//
//   1. validate every row (all of the model's rules, images probed with bounded parallelism);
//      invalid rows are reported with their line numbers and nothing is submitted unless all
//      rows are valid or `skipInvalid` is set;
//   2. price the batch (the model's base price, or a documented fallback) and plan it against
//      the journal: rows already done are skipped (their files checked by sha256, fetched
//      again when missing or damaged), rows in flight are re-attached by request id, rows whose
//      submit outcome is unknown are listed and left alone unless `resubmitUnknown`;
//      `dryRun` stops here;
//   3. run: at most `concurrency` jobs in flight (submit → terminal result), downloads beside
//      them; every submit is journaled before the POST (batch id + row key), every status
//      change and result after; a budget stops submitting before it would be exceeded;
//   4. write report.json and report.html into the output directory.
//
// An abort (Ctrl-C) stops submitting; submits already on the wire are allowed to finish so
// their request ids are journaled (aborting them would make their outcome unknown); waits and
// downloads stop, queued jobs are cancelled only with `cancelQueuedOnExit`, and everything is
// left resumable.

import { access } from "node:fs/promises";
import { resolve } from "node:path";
import { AbortError } from "../api/errors.js";
import { isSharedBatchStore, type JobRecord } from "../store/index.js";
import { BatchState, MARKER_FILE, sharedBatchIdFor } from "./batch-state.js";
import type {
  BatchEvent,
  BatchRun,
  BatchSummary,
  PlanAction,
  Problem,
  RowRef,
  RunBatchOptions,
} from "./batch-types.js";
import { roundUsd } from "./budget.js";
import { Channel } from "./channel.js";
import { isDiskFull } from "./disk-full.js";
import { startDownload } from "./downloads.js";
import { execute, jobQueue } from "./execute.js";
import type { Manifest, ManifestProblem, ManifestRow } from "./manifest.js";
import { OutputFiles, outputPath, sha256File, VIDEO_EXT } from "./output-files.js";
import { planRow, recordedFile } from "./plan.js";
import { loadPrice } from "./price.js";
import type { RowRun } from "./row-run.js";
import { BatchRunContext, type ManifestInfo } from "./run-context.js";
import { writeReports } from "./run-report.js";
import { executeShared, planShared, takeSharedOutcomes } from "./shared-run.js";
import { countRows, summarize } from "./summary.js";
import { validateEach } from "./validate-rows.js";

export function runBatch(rows: readonly ManifestRow[] | Manifest, options: RunBatchOptions): BatchRun {
  const manifest: ManifestInfo | undefined = Array.isArray(rows) ? options.manifest : (rows as Manifest);
  const list: readonly ManifestRow[] = Array.isArray(rows) ? rows : (rows as Manifest).rows;
  const ctx = new BatchRunContext(list, manifest, options);
  const channel = new Channel<BatchEvent>();
  const summary = run(ctx, (event) => channel.push(event)).then(
    (s) => {
      channel.close();
      return s;
    },
    (error) => {
      channel.fail(error);
      throw error;
    },
  );
  // The summary promise is also observed through the iterator; never an unhandled rejection.
  summary.catch(() => {});
  return {
    [Symbol.asyncIterator]: () => channel[Symbol.asyncIterator](),
    counts: () => countRows(ctx),
    summary,
  };
}

async function run(ctx: BatchRunContext, emit: (event: BatchEvent) => void): Promise<BatchSummary> {
  ctx.emit = emit;
  const o = ctx.options;
  const signal = o.signal;
  const onAbort = () => interrupt(ctx);
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const valid = await validate(ctx);
    // A dry run goes on to plan the valid rows, so that it reports every problem at once
    // (a file in the way is only found by the plan).
    if (!valid && (ctx.interrupted || !o.dryRun)) return finish(ctx);
    await loadPrice(ctx);
    if (o.dryRun) {
      await plan(ctx, true);
      return finish(ctx);
    }
    if (ctx.stopping) return finish(ctx);
    try {
      await plan(ctx, false);
    } catch (error) {
      // No room even for the batch's marker file: nothing may be submitted.
      if (!isDiskFull(error)) throw error;
      const sqlite = (error as { code?: unknown }).code === "SQLITE_FULL";
      ctx.noteDiskFull(sqlite ? ctx.store.location : resolve(ctx.outDir, MARKER_FILE));
      for (const r of ctx.rows) if (r.phase === "pending") ctx.waitForSpace(r);
      return await finish(ctx);
    }
    if (refused(ctx)) return await finish(ctx);
    if (ctx.shared) {
      if (!ctx.stopping) await executeShared(ctx, ctx.shared);
    } else if (!ctx.stopping) {
      for (const r of ctx.rows) if (r.action === "download") startDownload(ctx, r);
      await execute(ctx, jobQueue(ctx.rows));
    }
    await ctx.downloads.settled();
    return await finish(ctx);
  } finally {
    signal?.removeEventListener("abort", onAbort);
    ctx.images.clear();
    ctx.shared?.close();
    try {
      await ctx.commits.flush();
    } finally {
      await ctx.batch?.release();
    }
  }
}

// ---- 1. validation --------------------------------------------------------------------------

async function validate(ctx: BatchRunContext): Promise<boolean> {
  const started = Date.now();
  const problems = ctx.manifest?.problems ?? [];
  ctx.emit({ type: "validation-start", total: ctx.rows.length + problems.length });
  for (const p of problems) reportProblem(ctx, p);
  ctx.invalidLines = new Set(problems.map((p) => p.line)).size;
  let invalid = 0;
  try {
    // Each verdict is handed over and dropped: only a failed row's problems stay on the row.
    await validateEach(
      ctx.rows.map((r) => r.row),
      {
        concurrency: ctx.options.validateConcurrency,
        signal: ctx.options.signal,
        images: ctx.images,
      },
      (result, index) => {
        const r = ctx.rows[index]!;
        const warnings = result.warnings.map((w) => ({
          field: w.path,
          rule: w.rule,
          message: w.message,
        }));
        if (result.valid) {
          ctx.emit({ type: "row-validated", row: r.ref, warnings });
        } else {
          invalid++;
          r.phase = "invalid";
          r.problems = result.violations.map((v) => ({
            field: v.path,
            rule: v.rule,
            limit: v.limit,
            actual: v.actual,
            message: v.message,
          }));
          ctx.emit({ type: "row-invalid", line: r.row.line, row: r.ref, problems: r.problems });
        }
      },
    );
  } catch (error) {
    if (error instanceof AbortError || ctx.options.signal?.aborted) {
      ctx.interrupted = true;
      ctx.stopping = true;
      return false;
    }
    throw error;
  }
  ctx.invalidLines += invalid;
  const valid = ctx.rows.length - invalid;
  ctx.emit({ type: "validated", valid, invalid: ctx.invalidLines, durationMs: Date.now() - started });
  if (ctx.invalidLines > 0 && !ctx.options.skipInvalid) return false;
  return valid > 0 || ctx.invalidLines === 0;
}

function reportProblem(ctx: BatchRunContext, p: ManifestProblem): void {
  ctx.emit({
    type: "row-invalid",
    line: p.line,
    row: undefined,
    problems: [{ field: p.field, message: p.message }],
  });
}

// ---- 2. plan (the price: price.ts; each row's decision: plan.ts) --------------------------

async function plan(ctx: BatchRunContext, dryRun: boolean): Promise<void> {
  const store = ctx.store;
  // On a shared store, this process is one of the batch's workers (shared-run.ts).
  if (isSharedBatchStore(store) && !dryRun) return await planShared(ctx, store);
  ctx.batch = await BatchState.open(ctx.store, {
    outDir: ctx.outDir,
    manifestPath: ctx.manifest?.path,
    manifestDigest: ctx.manifest?.digest,
    readOnly: dryRun,
    // A dry run on a shared store looks at the batch its workers join.
    batchId: isSharedBatchStore(store)
      ? await sharedBatchIdFor({
          batchId: ctx.options.batchId,
          outDir: ctx.outDir,
          rowKeys: ctx.rows.map((r) => r.row.key),
        })
      : ctx.options.batchId,
  });
  // Every path is checked against the real folder, however --out was spelled.
  ctx.outDir = ctx.batch.info.outDir;
  const batchId = ctx.batch.batchId;
  const outcomes = dryRun && !ctx.batch.info.resumed ? new Map() : await ctx.batch.rows();
  const records = ctx.batch.info.resumed ? await ctx.journalRecords() : new Map<string, JobRecord[]>();
  await ctx.priors.load(ctx.rows.map((r) => r.row.frames));

  ctx.files = new OutputFiles({
    outDir: ctx.outDir,
    recorded: outcomes.values(),
    rowFiles: ctx.rows.map((r) => `${r.row.name}${VIDEO_EXT}`),
    force: Boolean(ctx.options.force),
  });

  const counts = { toSubmit: 0, toReattach: 0, toDownload: 0, alreadyDone: 0, unknown: 0, failedBefore: 0 };
  let estimatedUsd = 0;
  const planned: { row: RowRef; action: PlanAction; estimateUsd: number }[] = [];
  for (const r of ctx.rows) {
    if (r.phase === "invalid") continue;
    const recs = records.get(r.row.key) ?? [];
    const outcome = outcomes.get(r.row.key);
    const check = recordedFile(recs, outcome);
    const intact = check !== undefined && (dryRun || (await fileIntact(ctx, check.file, check.sha256)));
    // Never submitted, definitely rejected, cancelled while queued (not billed), or a failure
    // to retry: "submit".
    const { action, unknownSince, ...found } = planRow(recs, outcome, {
      resubmitUnknown: Boolean(ctx.options.resubmitUnknown),
      retryFailed: Boolean(ctx.options.retryFailed),
      fileIntact: intact,
    });
    Object.assign(r, found);
    if (unknownSince !== undefined) {
      ctx.emit({
        type: "row-unknown",
        row: r.ref,
        localIds: r.unknownLocalIds,
        since: unknownSince,
        resubmitting: action === "resubmit",
      });
    }
    if (action === "submit" || action === "resubmit") {
      // Checked before anything is sent: a video paid for must have somewhere to go.
      const refusal = await ctx.files.refusal(`${r.row.name}${VIDEO_EXT}`, r.row.key);
      if (refusal) {
        refuseRow(ctx, r, refusal);
        continue;
      }
    }
    r.action = action;
    planned.push({ row: r.ref, action, estimateUsd: r.estimateUsd });
    switch (action) {
      case "done":
        counts.alreadyDone++;
        r.phase = "done";
        ctx.budget.addSpent(r.costUsd ?? r.estimateUsd, r.costUsd !== undefined);
        ctx.emit({ type: "row-skipped", row: r.ref, reason: "done" });
        break;
      case "download":
        counts.toDownload++;
        ctx.budget.addSpent(r.costUsd ?? r.estimateUsd, r.costUsd !== undefined);
        break;
      case "reattach":
        counts.toReattach++;
        ctx.budget.track(r.row.key, r.estimateUsd);
        break;
      case "unknown":
        counts.unknown++;
        r.phase = "unknown";
        // May have been billed: counted in what is committed.
        ctx.budget.addSpent(r.estimateUsd, false);
        break;
      case "failed":
        counts.failedBefore++;
        r.phase = "failed";
        ctx.budget.addSpent(r.costUsd ?? r.estimateUsd, r.costUsd !== undefined);
        break;
      default:
        counts.toSubmit++;
        estimatedUsd += r.estimateUsd;
        break;
    }
  }
  // Refused: no plan to show (a dry run still shows what would run).
  if (refused(ctx) && !dryRun) return;
  ctx.emit({
    type: "plan",
    batchId,
    resumed: ctx.batch.info.resumed,
    manifestChanged: ctx.batch.info.previousDigest !== undefined,
    ...counts,
    estimatedUsd: roundUsd(estimatedUsd),
    rows: planned,
  });
}

function refuseRow(ctx: BatchRunContext, r: RowRun, problem: Problem): void {
  r.phase = "invalid";
  r.problems = [problem];
  ctx.invalidLines++;
  ctx.refusedRows++;
  ctx.emit({ type: "row-invalid", line: r.row.line, row: r.ref, problems: r.problems });
}

/** Whether rows were refused (a file in the way) and the batch must not start. */
function refused(ctx: BatchRunContext): boolean {
  return ctx.refusedRows > 0 && !ctx.options.skipInvalid;
}

async function fileIntact(ctx: BatchRunContext, file: string, sha256: string | undefined): Promise<boolean> {
  if (!sha256) return false;
  try {
    // A file name recorded by an older version may point anywhere: only a file inside --out counts.
    const path = outputPath(ctx.outDir, file);
    await access(path);
    return (await sha256File(path)) === sha256;
  } catch {
    return false;
  }
}

// ---- 3. execution: execute.ts, submit-and-wait.ts, downloads.ts; the interrupt here --------

function interrupt(ctx: BatchRunContext): void {
  if (ctx.stopping) return;
  ctx.stopping = true;
  ctx.interrupted = true;
  let inFlight = 0;
  for (const r of ctx.rows) {
    if (r.phase === "submitting") {
      // The POST may be on the wire: let it finish so its request id is journaled.
      r.abortAfterSubmit = true;
      inFlight++;
    } else if (r.controller) {
      r.controller.abort(new Error("interrupted"));
      inFlight++;
    }
  }
  ctx.downloads.abort(new Error("interrupted"));
  ctx.inFlightAtInterrupt = inFlight;
}

// ---- 4. reports (run-report.ts) and summary (summary.ts) ---------------------------------

async function finish(ctx: BatchRunContext): Promise<BatchSummary> {
  await ctx.commits.flush();
  // A shared batch's report and exit code are the whole batch's, whichever worker settled a row.
  if (ctx.shared && !ctx.options.dryRun) await takeSharedOutcomes(ctx, ctx.shared);
  // A group commit that failed on a timer (not for want of space): the store is broken.
  if (ctx.commits.error !== undefined) throw ctx.commits.error;
  if (ctx.interrupted) {
    ctx.emit({
      type: "interrupted",
      inFlight: ctx.inFlightAtInterrupt,
      cancelled: ctx.cancelledOnExit,
    });
  }
  let report: { json: string; html: string | undefined } | undefined;
  let reportError: string | undefined;
  const wantReport = ctx.options.report !== false && !ctx.options.dryRun && ctx.batch !== undefined;
  if (wantReport) {
    try {
      report = await writeReports(ctx);
      ctx.emit({ type: "report", ...report });
    } catch (error) {
      // The summary still comes out, and says why there is no report.
      if (isDiskFull(error)) ctx.noteDiskFull(resolve(ctx.outDir, "report.json"));
      reportError = `report.json could not be written: ${error instanceof Error ? error.message : String(error)}`;
    }
  }
  const summary = summarize(ctx, report, reportError);
  ctx.emit({ type: "summary", summary });
  return summary;
}

export { sha256File };
