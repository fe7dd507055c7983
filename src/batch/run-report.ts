// report.json and report.html at the end of a run: every manifest line with its status,
// timings (from the store), cost, file and error. Nothing is held whole: the store's times are
// read a page at a time into a small map, and each report row is built as it is written (once
// for the totals, once per file), so a 10,000-row report costs little more than a 1,000-row one.

import type { BatchJobTimes } from "../store/index.js";
import { FALLBACK_PRICE } from "./batch-types.js";
import { roundUsd } from "./budget.js";
import type { ManifestProblem } from "./manifest.js";
import { type BatchReport, type ReportRow, type ReportRowStatus, writeJsonRows } from "./report.js";
import { makeThumbnails, writeHtmlRows } from "./report-html.js";
import { problemReportRows } from "./report-rows.js";
import type { RowRun } from "./row-run.js";
import type { BatchRunContext } from "./run-context.js";

/** Times read from the store at once. */
const TIMES_PAGE = 1000;

/** A row's status in the report (a row not run says why: budget, interrupt, full disk...). */
export function statusOf(r: RowRun, interrupted: boolean): ReportRowStatus {
  switch (r.phase) {
    case "done":
      return "done";
    case "failed":
      return "failed";
    case "invalid":
      return "invalid";
    case "unknown":
      return "unknown";
    default:
      return r.notRunReason ?? (interrupted ? "interrupted" : "pending");
  }
}

/** The report's line for a row of this run, with its request's times (if it has one). */
export function reportRow(r: RowRun, rec: BatchJobTimes | undefined, interrupted: boolean): ReportRow {
  const submitted = rec?.submittedAt;
  const finished = rec?.finishedAt;
  return {
    line: r.row.line,
    key: r.row.key,
    name: r.row.name,
    image: r.row.image,
    prompt: r.row.prompt,
    frames: r.row.frames,
    seed: r.row.seed,
    status: statusOf(r, interrupted),
    requestId: r.requestId,
    timings: {
      createdAt: rec?.createdAt,
      submittedAt: submitted,
      startedAt: rec?.startedAt,
      finishedAt: finished,
      downloadedAt: r.downloadedAt ? new Date(r.downloadedAt).toISOString() : undefined,
      durationMs: submitted && finished ? Date.parse(finished) - Date.parse(submitted) : undefined,
    },
    estimateUsd: r.phase === "invalid" ? undefined : r.estimateUsd,
    costUsd: r.costUsd ?? rec?.cost,
    file: r.phase === "done" ? r.file : undefined,
    bytes: r.phase === "done" ? r.bytes : undefined,
    sha256: r.phase === "done" ? r.sha256 : undefined,
    error:
      r.phase === "invalid"
        ? r.problems
        : r.phase === "unknown"
          ? {
              message:
                "the submit's outcome is unknown: the job may exist and be billed. Left alone; " +
                "check it, or run again with --resubmit-unknown to submit it anyway",
              localIds: r.unknownLocalIds,
            }
          : r.error,
  };
}

/** The batch's requests' times by request id, read from the store a page at a time. */
async function jobTimes(ctx: BatchRunContext): Promise<Map<string, BatchJobTimes>> {
  const times = new Map<string, BatchJobTimes>();
  let after: number | undefined;
  for (;;) {
    const page = await ctx.store.batchJobTimes(ctx.batchId, { afterLocalId: after, limit: TIMES_PAGE });
    for (const t of page) times.set(t.requestId, t);
    if (page.length < TIMES_PAGE) return times;
    after = page.at(-1)!.localId;
  }
}

const NOT_RUN = new Set<ReportRowStatus>(["pending", "interrupted", "budget", "disk-full", "skipped"]);

export async function writeReports(
  ctx: BatchRunContext,
): Promise<{ json: string; html: string | undefined }> {
  const times = await jobTimes(ctx);
  // Every line of the manifest, in order: the lines that never became rows too (after a row of
  // the same line, as a stable sort of the rows then the problems puts them).
  const lines: (RowRun | ReportRow)[] = [...ctx.rows, ...problemReportRows(ctx.manifest?.problems ?? [])];
  const lineOf = (x: RowRun | ReportRow) => ("phase" in x ? x.row.line : x.line);
  lines.sort((a, b) => lineOf(a) - lineOf(b));
  const rows = function* (): Generator<ReportRow> {
    for (const x of lines) {
      yield "phase" in x
        ? reportRow(x, x.requestId ? times.get(x.requestId) : undefined, ctx.interrupted)
        : x;
    }
  };
  const totals = {
    rows: 0,
    done: 0,
    failed: 0,
    invalid: 0,
    unknown: 0,
    notRun: 0,
    estimatedUsd: 0,
    costUsd: 0,
  };
  // Summed in line order, as before: the same rounding.
  let estimatedUsd = 0;
  let costUsd = 0;
  for (const x of rows()) {
    totals.rows++;
    if (x.status === "done" || x.status === "failed" || x.status === "invalid" || x.status === "unknown") {
      totals[x.status]++;
    } else if (NOT_RUN.has(x.status)) totals.notRun++;
    estimatedUsd += x.estimateUsd ?? 0;
    costUsd += x.costUsd ?? 0;
  }
  totals.estimatedUsd = roundUsd(estimatedUsd);
  totals.costUsd = roundUsd(costUsd);
  const report: Omit<BatchReport, "rows"> & {
    rows: Iterable<ReportRow>;
    manifestProblems: ManifestProblem[];
  } = {
    batchId: ctx.batchId,
    manifest: ctx.manifest?.path,
    manifestDigest: ctx.manifest?.digest,
    outDir: ctx.outDir,
    generatedAt: new Date().toISOString(),
    interrupted: ctx.interrupted,
    budget: { limitUsd: ctx.budget.limitUsd, stopped: ctx.budget.stopped },
    price: {
      basePriceUsd: ctx.price?.basePriceUsd ?? FALLBACK_PRICE.basePriceUsd,
      priceUnit: ctx.price?.priceUnit ?? FALLBACK_PRICE.priceUnit,
      source: ctx.price?.source ?? "default",
    },
    totals,
    rows: rows(),
    manifestProblems: ctx.manifest?.problems ?? [],
  };
  const json = await writeJsonRows(ctx.outDir, report);
  let html: string | undefined;
  try {
    const images = new Map<string, string>();
    for (const r of ctx.rows) if (!r.row.imageIsUrl) images.set(r.row.key, r.row.imageSource);
    const thumbs =
      ctx.options.thumbnails === false ? new Map<string, string>() : await makeThumbnails(images);
    html = await writeHtmlRows(ctx.outDir, report, rows, thumbs);
  } catch {
    html = undefined;
  }
  return { json, html };
}
