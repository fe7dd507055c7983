// report.json and report.html at the end of a run: every manifest line with its status,
// timings (from the journal), cost, file and error.

import type { JobRecord } from "../store/index.js";
import { FALLBACK_PRICE } from "./batch-types.js";
import { roundUsd } from "./budget.js";
import type { ManifestProblem } from "./manifest.js";
import {
  type BatchReport,
  type ReportRow,
  type ReportRowStatus,
  writeHtmlReport,
  writeJsonReport,
} from "./report.js";
import { problemReportRows } from "./report-rows.js";
import type { RowRun } from "./row-run.js";
import type { BatchRunContext } from "./run-context.js";

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

export async function writeReports(
  ctx: BatchRunContext,
): Promise<{ json: string; html: string | undefined }> {
  const records = new Map<string, JobRecord>();
  for (const list of (await ctx.journalRecords()).values()) {
    for (const rec of list) if (rec.requestId) records.set(rec.requestId, rec);
  }
  const rows: ReportRow[] = ctx.rows.map((r) => {
    const rec = r.requestId ? records.get(r.requestId) : undefined;
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
      status: statusOf(r, ctx.interrupted),
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
  });
  // Every line of the manifest, in order: the lines that never became rows too.
  rows.push(...problemReportRows(ctx.manifest?.problems ?? []));
  rows.sort((a, b) => a.line - b.line);
  const totals = {
    rows: rows.length,
    done: rows.filter((x) => x.status === "done").length,
    failed: rows.filter((x) => x.status === "failed").length,
    invalid: rows.filter((x) => x.status === "invalid").length,
    unknown: rows.filter((x) => x.status === "unknown").length,
    notRun: rows.filter((x) =>
      ["pending", "interrupted", "budget", "disk-full", "skipped"].includes(x.status),
    ).length,
    estimatedUsd: roundUsd(rows.reduce((s, x) => s + (x.estimateUsd ?? 0), 0)),
    costUsd: roundUsd(rows.reduce((s, x) => s + (x.costUsd ?? 0), 0)),
  };
  const report: BatchReport & { manifestProblems: ManifestProblem[] } = {
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
    rows,
    manifestProblems: ctx.manifest?.problems ?? [],
  };
  const json = await writeJsonReport(ctx.outDir, report);
  let html: string | undefined;
  try {
    const images = new Map<string, string>();
    for (const r of ctx.rows) if (!r.row.imageIsUrl) images.set(r.row.key, r.row.imageSource);
    html = await writeHtmlReport(ctx.outDir, report, images, {
      thumbnails: ctx.options.thumbnails !== false,
    });
  } catch {
    html = undefined;
  }
  return { json, html };
}
