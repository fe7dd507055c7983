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

import { setMaxListeners } from "node:events";
import { access } from "node:fs/promises";
import { resolve } from "node:path";
import { AbortError, SubmissionUnknownError } from "../api/errors.js";
import type { JobResult } from "../api/types.js";
import { estimateCostUsd, MODEL_ID } from "../model/input.js";
import { WaitAbortedError } from "../run/errors.js";
import { runJob } from "../run/run.js";
import { createPollSchedule, type PollSchedule, type RunTimePrior } from "../run/schedule.js";
import { trimmedStats } from "../run/trimmed-stats.js";
import { type JobUpdate, type WaitOptions, wait } from "../run/wait.js";
import type { JobRecord, JobStore, JobStoreWrite } from "../store/index.js";
import { BatchState, MARKER_FILE } from "./batch-state.js";
import {
  type BatchCounts,
  type BatchEvent,
  type BatchRun,
  type BatchSummary,
  type ErrorInfo,
  FALLBACK_PRICE,
  type PlanAction,
  type Price,
  type Problem,
  type RowRef,
  type RunBatchOptions,
} from "./batch-types.js";
import { Budget } from "./budget.js";
import { Channel, Semaphore } from "./channel.js";
import { diskFullMessage, diskFullRowError, isDiskFull } from "./disk-full.js";
import { fetchRowVideo } from "./fetch-video.js";
import { ImageCache, prepareRowInput } from "./input.js";
import type { Manifest, ManifestProblem, ManifestRow } from "./manifest.js";
import { OutputFiles, OutputPathError, outputPath, sha256File, VIDEO_EXT } from "./output-files.js";
import {
  type BatchReport,
  type ReportRow,
  type ReportRowStatus,
  writeHtmlReport,
  writeJsonReport,
} from "./report.js";
import { problemReportRows } from "./report-rows.js";
import { type RowValidation, validateRows } from "./validate-rows.js";

type Phase =
  | "pending"
  | "submitting"
  | "queued"
  | "running"
  | "downloading"
  | "done"
  | "failed"
  | "unknown"
  | "invalid";

interface RowRun {
  row: ManifestRow;
  ref: RowRef;
  validation: RowValidation | undefined;
  /** Why the row is invalid (a model rule, or a file in the way). */
  problems: Problem[] | undefined;
  phase: Phase;
  action: PlanAction | undefined;
  estimateUsd: number;
  requestId: string | undefined;
  localId: number | undefined;
  costUsd: number | undefined;
  file: string | undefined;
  bytes: number | undefined;
  sha256: string | undefined;
  error: ErrorInfo | undefined;
  errorPhase: "submit" | "wait" | "download" | undefined;
  /** Set by an interrupt while the submit is on the wire: abort as soon as it settles. */
  abortAfterSubmit: boolean;
  controller: AbortController | undefined;
  outputUrl: string | undefined;
  submittedAt: number | undefined;
  downloadedAt: number | undefined;
  unknownLocalIds: number[];
  notRunReason: ReportRowStatus | undefined;
  lastStatusKey: string | undefined;
  /** When the run started, as this run saw it: after `runStartLo` (submit, or the last in_queue), by `runStartHi`. */
  runStartLo: number | undefined;
  runStartHi: number | undefined;
  /** The last unfinished poll: the job ended after it. */
  lastPollAt: number | undefined;
  /** True when this run settled the row. */
  settledNow: boolean;
}

const ACTIVE_STATES = new Set(["submitted", "in_queue", "in_progress", "completed"]);
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

/** How long non-critical journal writes wait to be committed together. */
const GROUP_COMMIT_MS = 250;
/** How long a run-time prior read from the journal is reused once it stands on enough jobs. */
const PRIOR_TTL_MS = 5_000;
const PRIOR_SOLID_SAMPLES = 10;
/** The batch's own run-time observations replace the journal's prior from this many on. */
const OWN_PRIOR_MIN_SAMPLES = 3;
/** How many recent run times the batch's own prior stands on (the journal's window too). */
const RUN_TIME_WINDOW = 50;

export function runBatch(rows: readonly ManifestRow[] | Manifest, options: RunBatchOptions): BatchRun {
  const manifest: Pick<Manifest, "path" | "digest" | "problems"> | undefined = Array.isArray(rows)
    ? options.manifest
    : (rows as Manifest);
  const list: readonly ManifestRow[] = Array.isArray(rows) ? rows : (rows as Manifest).rows;
  const runner = new Runner(list, manifest, options);
  const channel = new Channel<BatchEvent>();
  const summary = runner
    .run((event) => channel.push(event))
    .then(
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
    counts: () => runner.counts(),
    summary,
  };
}

class Runner {
  readonly #rows: RowRun[];
  readonly #manifest: Pick<Manifest, "path" | "digest" | "problems"> | undefined;
  readonly #o: RunBatchOptions;
  readonly #store: JobStore;
  /** As given (resolved) until the batch state is opened, then the real folder (symlinks resolved). */
  #outDir: string;
  readonly #budget: Budget;
  readonly #startedAt = Date.now();
  #emit: (event: BatchEvent) => void = () => {};
  #state: BatchState | undefined;
  #price: Price | undefined;
  #invalidLines = 0;
  /** The output directory's files: which this batch may replace. Set by the plan. */
  #files: OutputFiles | undefined;
  /** Rows whose file is in the way; the batch refuses to start over them unless skipInvalid. */
  #refusedRows = 0;
  /** Set by the first write into --out that failed for want of space. */
  #diskFull: { path: string } | undefined;
  #stopping = false;
  #interrupted = false;
  #submitted = 0;
  #reattached = 0;
  #resubmitted: string[] = [];
  #priors = new Map<number, { prior: RunTimePrior | undefined; at: number }>();
  /** Run times this run observed, by frame count (the newest RUN_TIME_WINDOW), and their stats. */
  #runTimes = new Map<number, { samples: number[]; prior: RunTimePrior | undefined }>();
  #downloads: Semaphore;
  #downloadsInFlight = new Set<Promise<void>>();
  /**
   * Journal writes that a crash may lose without harm (statuses, results, "file downloaded"):
   * committed together every GROUP_COMMIT_MS, one fsync for many rows. The writes a crash must
   * never lose (the intent row before a POST, the request id after it) are never deferred.
   */
  #deferred: JobStoreWrite[] = [];
  #flushTimer: NodeJS.Timeout | undefined;
  /** The group commit in progress (commits run one after the other, in order). */
  #flushing: Promise<void> = Promise.resolve();
  /** A group commit from the timer that failed for another reason than a full disk: rethrown at the end. */
  #flushError: unknown;
  /** Each distinct image checked once (while its file is unchanged), from validation to the last submit. */
  readonly #images = new ImageCache();

  constructor(
    rows: readonly ManifestRow[],
    manifest: Pick<Manifest, "path" | "digest" | "problems"> | undefined,
    options: RunBatchOptions,
  ) {
    this.#o = options;
    const store = options.store ?? options.journal;
    if (!store) throw new TypeError("runBatch needs a job store (options.store)");
    this.#store = store;
    this.#manifest = manifest;
    this.#outDir = resolve(options.outDir);
    this.#budget = new Budget(options.budgetUsd);
    this.#downloads = new Semaphore(options.downloadConcurrency ?? Math.max(1, options.concurrency ?? 4));
    this.#rows = rows.map((row) => ({
      row,
      ref: { line: row.line, key: row.key, name: row.name },
      validation: undefined,
      problems: undefined,
      phase: "pending",
      action: undefined,
      estimateUsd: 0,
      requestId: undefined,
      localId: undefined,
      costUsd: undefined,
      file: undefined,
      bytes: undefined,
      sha256: undefined,
      error: undefined,
      errorPhase: undefined,
      abortAfterSubmit: false,
      controller: undefined,
      outputUrl: undefined,
      submittedAt: undefined,
      downloadedAt: undefined,
      unknownLocalIds: [],
      notRunReason: undefined,
      lastStatusKey: undefined,
      runStartLo: undefined,
      runStartHi: undefined,
      lastPollAt: undefined,
      settledNow: false,
    }));
  }

  #defer(write: JobStoreWrite): void {
    this.#deferred.push(write);
    this.#flushTimer ??= setTimeout(() => {
      this.#flush().catch((error: unknown) => {
        this.#flushError ??= error;
      });
    }, GROUP_COMMIT_MS);
  }

  /** Commits the deferred writes in one transaction (after any commit already in progress). */
  #flush(): Promise<void> {
    if (this.#flushTimer) clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    if (this.#deferred.length === 0) return this.#flushing;
    const writes = this.#deferred;
    this.#deferred = [];
    const run = this.#flushing.then(() => this.#commit(writes));
    this.#flushing = run.catch(() => {});
    return run;
  }

  async #commit(writes: JobStoreWrite[]): Promise<void> {
    try {
      await this.#store.writeBatch(writes);
    } catch (error) {
      // The store's disk is full (this often runs from a timer: throwing would end the
      // process). Nothing was committed: kept for the next group. If they never fit, the next
      // run learns the same again (results are polled by request id, files found by content).
      if (!isDiskFull(error)) throw error;
      this.#deferred.unshift(...writes);
      this.#noteDiskFull(this.#store.location);
    }
  }

  counts(): BatchCounts {
    const c: BatchCounts = {
      total: 0,
      invalid: this.#invalidLines,
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
      startedAtMs: this.#startedAt,
      finishedThisRun: 0,
    };
    for (const r of this.#rows) {
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
    const budget = this.#budget.snapshot();
    c.spentUsd = budget.spentUsd;
    c.committedUsd = budget.committedUsd;
    return c;
  }

  async run(emit: (event: BatchEvent) => void): Promise<BatchSummary> {
    this.#emit = emit;
    const signal = this.#o.signal;
    const onAbort = () => this.#interrupt();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const valid = await this.#validate();
      // A dry run goes on to plan the valid rows, so that it reports every problem at once
      // (a file in the way is only found by the plan).
      if (!valid && (this.#interrupted || !this.#o.dryRun)) return this.#finish();
      await this.#loadPrice();
      if (this.#o.dryRun) {
        await this.#plan(true);
        return this.#finish();
      }
      if (this.#stopping) return this.#finish();
      try {
        await this.#plan(false);
      } catch (error) {
        // No room even for the batch's marker file: nothing may be submitted.
        if (!isDiskFull(error)) throw error;
        const sqlite = (error as { code?: unknown }).code === "SQLITE_FULL";
        this.#noteDiskFull(sqlite ? this.#store.location : resolve(this.#outDir, MARKER_FILE));
        for (const r of this.#rows) if (r.phase === "pending") this.#waitForSpace(r);
        return await this.#finish();
      }
      if (this.#refused()) return await this.#finish();
      if (!this.#stopping) await this.#execute();
      await Promise.all(this.#downloadsInFlight);
      return await this.#finish();
    } finally {
      signal?.removeEventListener("abort", onAbort);
      this.#images.clear();
      try {
        await this.#flush();
      } finally {
        await this.#state?.release();
      }
    }
  }

  // ---- 1. validation ------------------------------------------------------------------------

  async #validate(): Promise<boolean> {
    const started = Date.now();
    const problems = this.#manifest?.problems ?? [];
    this.#emit({ type: "validation-start", total: this.#rows.length + problems.length });
    for (const p of problems) this.#reportProblem(p);
    this.#invalidLines = new Set(problems.map((p) => p.line)).size;
    const byKey = new Map(this.#rows.map((r) => [r.row.key, r]));
    let invalid = 0;
    try {
      await validateRows(
        this.#rows.map((r) => r.row),
        {
          concurrency: this.#o.validateConcurrency,
          signal: this.#o.signal,
          images: this.#images,
          onRow: (result) => {
            const r = byKey.get(result.row.key)!;
            r.validation = result;
            const warnings = result.warnings.map((w) => ({
              field: w.path,
              rule: w.rule,
              message: w.message,
            }));
            if (result.valid) {
              this.#emit({ type: "row-validated", row: r.ref, warnings });
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
              this.#emit({ type: "row-invalid", line: r.row.line, row: r.ref, problems: r.problems });
            }
          },
        },
      );
    } catch (error) {
      if (error instanceof AbortError || this.#o.signal?.aborted) {
        this.#interrupted = true;
        this.#stopping = true;
        return false;
      }
      throw error;
    }
    this.#invalidLines += invalid;
    const valid = this.#rows.length - invalid;
    this.#emit({ type: "validated", valid, invalid: this.#invalidLines, durationMs: Date.now() - started });
    if (this.#invalidLines > 0 && !this.#o.skipInvalid) return false;
    return valid > 0 || this.#invalidLines === 0;
  }

  #reportProblem(p: ManifestProblem): void {
    this.#emit({
      type: "row-invalid",
      line: p.line,
      row: undefined,
      problems: [{ field: p.field, message: p.message }],
    });
  }

  // ---- 2. price and plan --------------------------------------------------------------------

  async #loadPrice(): Promise<void> {
    if (this.#o.price) {
      this.#price = { ...this.#o.price, source: "given" };
    } else {
      try {
        const model = await this.#o.client.models.get(MODEL_ID, {
          signal: this.#o.signal,
          timeoutMs: 15_000,
        });
        if (model.basePriceUsd === undefined) throw new Error("the model detail has no base_price_usd");
        this.#price = {
          basePriceUsd: model.basePriceUsd,
          priceUnit: model.priceUnit ?? "request",
          source: "service",
        };
      } catch (error) {
        if (this.#o.signal?.aborted) {
          this.#interrupted = true;
          this.#stopping = true;
        }
        this.#price = {
          ...FALLBACK_PRICE,
          source: "default",
          note:
            `the price could not be read from the service (${error instanceof Error ? error.message : String(error)}); ` +
            `estimates use the default US$${FALLBACK_PRICE.basePriceUsd} per ${FALLBACK_PRICE.priceUnit}`,
        };
      }
    }
    this.#emit({ type: "price", price: this.#price });
    for (const r of this.#rows) {
      r.estimateUsd = estimateCostUsd({
        frames: r.row.frames,
        basePriceUsd: this.#price.basePriceUsd,
        priceUnit: this.#price.priceUnit,
      });
    }
  }

  async #plan(dryRun: boolean): Promise<void> {
    this.#state = await BatchState.open(this.#store, {
      outDir: this.#outDir,
      manifestPath: this.#manifest?.path,
      manifestDigest: this.#manifest?.digest,
      readOnly: dryRun,
    });
    // Every path is checked against the real folder, however --out was spelled.
    this.#outDir = this.#state.info.outDir;
    const batchId = this.#state.batchId;
    const outcomes = dryRun && !this.#state.info.resumed ? new Map() : await this.#state.rows();
    const records = this.#state.info.resumed
      ? await this.#journalRecords(batchId)
      : new Map<string, JobRecord[]>();
    await this.#loadPriors();

    this.#files = new OutputFiles({
      outDir: this.#outDir,
      recorded: outcomes.values(),
      rowFiles: this.#rows.map((r) => `${r.row.name}${VIDEO_EXT}`),
      force: Boolean(this.#o.force),
    });

    const counts = { toSubmit: 0, toReattach: 0, toDownload: 0, alreadyDone: 0, unknown: 0, failedBefore: 0 };
    let estimatedUsd = 0;
    const planned: { row: RowRef; action: PlanAction; estimateUsd: number }[] = [];
    for (const r of this.#rows) {
      if (r.phase === "invalid") continue;
      const recs = records.get(r.row.key) ?? [];
      const outcome = outcomes.get(r.row.key);
      const succeeded = recs.find((x) => x.state === "succeeded");
      const active = recs.find((x) => ACTIVE_STATES.has(x.state) && x.requestId);
      const unknown = recs.filter((x) => x.state === "submission_unknown" || x.state === "submitting");
      const latest = recs[0];
      let action: PlanAction;
      if (succeeded?.requestId) {
        r.requestId = succeeded.requestId;
        r.costUsd = succeeded.cost;
        r.outputUrl = succeeded.outputUrls[0];
        r.submittedAt = succeeded.submittedAt ? Date.parse(succeeded.submittedAt) : undefined;
        if (
          outcome?.state === "done" &&
          outcome.file &&
          (dryRun || (await this.#fileIntact(outcome.file, outcome.sha256)))
        ) {
          action = "done";
          r.file = outcome.file;
          r.sha256 = outcome.sha256;
          r.bytes = outcome.bytes;
        } else {
          action = "download";
        }
      } else if (active?.requestId) {
        action = "reattach";
        r.requestId = active.requestId;
        r.localId = active.localId;
        r.submittedAt = active.submittedAt ? Date.parse(active.submittedAt) : undefined;
      } else if (unknown.length > 0) {
        r.unknownLocalIds = unknown.map((x) => x.localId);
        action = this.#o.resubmitUnknown ? "resubmit" : "unknown";
        this.#emit({
          type: "row-unknown",
          row: r.ref,
          localIds: r.unknownLocalIds,
          since: unknown[unknown.length - 1]!.createdAt,
          resubmitting: action === "resubmit",
        });
      } else if (latest && latest.state === "failed" && !this.#o.retryFailed) {
        action = "failed";
        r.requestId = latest.requestId;
        r.costUsd = latest.cost;
        r.error = {
          name: "JobFailedError",
          message: `the job failed in an earlier run${latest.jobError !== undefined ? `: ${describe(latest.jobError)}` : ""} (run with --retry-failed to submit it again)`,
          jobError: latest.jobError,
        };
        r.errorPhase = "wait";
      } else {
        // Never submitted, definitely rejected, cancelled while queued (not billed), or a
        // failure to retry: submit.
        action = "submit";
      }
      if (action === "submit" || action === "resubmit") {
        // Checked before anything is sent: a video paid for must have somewhere to go.
        const refusal = await this.#files.refusal(`${r.row.name}${VIDEO_EXT}`, r.row.key);
        if (refusal) {
          this.#refuseRow(r, refusal);
          continue;
        }
      }
      r.action = action;
      planned.push({ row: r.ref, action, estimateUsd: r.estimateUsd });
      switch (action) {
        case "done":
          counts.alreadyDone++;
          r.phase = "done";
          this.#budget.addSpent(r.costUsd ?? r.estimateUsd, r.costUsd !== undefined);
          this.#emit({ type: "row-skipped", row: r.ref, reason: "done" });
          break;
        case "download":
          counts.toDownload++;
          this.#budget.addSpent(r.costUsd ?? r.estimateUsd, r.costUsd !== undefined);
          break;
        case "reattach":
          counts.toReattach++;
          this.#budget.track(r.row.key, r.estimateUsd);
          break;
        case "unknown":
          counts.unknown++;
          r.phase = "unknown";
          // May have been billed: counted in what is committed.
          this.#budget.addSpent(r.estimateUsd, false);
          break;
        case "failed":
          counts.failedBefore++;
          r.phase = "failed";
          this.#budget.addSpent(r.costUsd ?? r.estimateUsd, r.costUsd !== undefined);
          break;
        default:
          counts.toSubmit++;
          estimatedUsd += r.estimateUsd;
          break;
      }
    }
    // Refused: no plan to show (a dry run still shows what would run).
    if (this.#refused() && !dryRun) return;
    this.#emit({
      type: "plan",
      batchId,
      resumed: this.#state.info.resumed,
      manifestChanged: this.#state.info.previousDigest !== undefined,
      ...counts,
      estimatedUsd: round(estimatedUsd),
      rows: planned,
    });
  }

  #refuseRow(r: RowRun, problem: Problem): void {
    r.phase = "invalid";
    r.problems = [problem];
    this.#invalidLines++;
    this.#refusedRows++;
    this.#emit({ type: "row-invalid", line: r.row.line, row: r.ref, problems: r.problems });
  }

  /** Whether rows were refused (a file in the way) and the batch must not start. */
  #refused(): boolean {
    return this.#refusedRows > 0 && !this.#o.skipInvalid;
  }

  /** Job records of this batch by row key, newest first. */
  async #journalRecords(batchId: string): Promise<Map<string, JobRecord[]>> {
    const records = await this.#store.batchJobs(batchId);
    const out = new Map<string, JobRecord[]>();
    for (const rec of records) {
      if (!rec.rowKey) continue;
      const list = out.get(rec.rowKey) ?? [];
      list.push(rec);
      out.set(rec.rowKey, list);
    }
    return out;
  }

  async #fileIntact(file: string, sha256: string | undefined): Promise<boolean> {
    if (!sha256) return false;
    try {
      // A file name recorded by an older version may point anywhere: only a file inside --out counts.
      const path = outputPath(this.#outDir, file);
      await access(path);
      return (await sha256File(path)) === sha256;
    } catch {
      return false;
    }
  }

  // ---- 3. execution -------------------------------------------------------------------------

  async #execute(): Promise<void> {
    for (const r of this.#rows) {
      if (r.action === "download") this.#startDownload(r);
    }
    const queue = [
      ...this.#rows.filter((r) => r.action === "reattach"),
      ...this.#rows.filter((r) => r.action === "submit" || r.action === "resubmit"),
    ];
    let next = 0;
    const concurrency = Math.max(1, Math.floor(this.#o.concurrency ?? 4));
    const slot = async () => {
      while (!this.#stopping && next < queue.length) {
        const r = queue[next]!;
        if (this.#diskFull) {
          // A video paid for now would have nowhere to go.
          for (const rest of queue.slice(next)) if (rest.phase === "pending") this.#waitForSpace(rest);
          return;
        }
        if (r.action !== "reattach" && !this.#budget.reserve(r.row.key, r.estimateUsd)) {
          this.#budgetStop(queue.slice(next), r.estimateUsd);
          return;
        }
        next++;
        if (r.action === "reattach") await this.#reattach(r);
        else await this.#submitAndWait(r);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, Math.max(1, queue.length)) }, slot));
    for (const r of queue.slice(next)) {
      if (r.phase === "pending" && r.notRunReason === undefined) {
        r.notRunReason = this.#budget.stopped ? "budget" : "interrupted";
      }
    }
  }

  #budgetStopped = false;

  #budgetStop(rest: RowRun[], nextEstimate: number): void {
    if (this.#budgetStopped) return;
    this.#budgetStopped = true;
    const snapshot = this.#budget.snapshot();
    const notSubmitted = rest.filter((r) => r.action !== "reattach").length;
    for (const r of rest) if (r.action !== "reattach") r.notRunReason = "budget";
    this.#emit({
      type: "budget-stop",
      limitUsd: this.#budget.limitUsd ?? 0,
      committedUsd: snapshot.committedUsd,
      nextEstimateUsd: nextEstimate,
      notSubmitted,
    });
  }

  async #submitAndWait(r: RowRun): Promise<void> {
    const store = this.#store;
    const batchId = this.#state!.batchId;
    r.controller = new AbortController();
    r.phase = "submitting";
    r.error = undefined;
    let input: unknown;
    try {
      input = await prepareRowInput(r.row, { signal: this.#o.signal, cache: this.#images });
    } catch (error) {
      if (this.#stopping) {
        r.phase = "pending";
        r.notRunReason = "interrupted";
        this.#budget.release(r.row.key);
        return;
      }
      this.#budget.release(r.row.key);
      this.#fail(r, "submit", error);
      return;
    }
    let localId: number | undefined;
    let accepted = false;
    try {
      const result = await runJob(this.#o.client, input, {
        ...this.#waitOptions(r),
        skipValidation: true, // validated with the probe's facts already
        beforeSubmit: async (_input, { modelId }) => {
          if (this.#stopping) throw new AbortError("interrupted before submit");
          if (this.#diskFull) throw new AbortError("the disk is full: not submitted");
          // The unknown earlier submits are given up in the same transaction that writes the new
          // intent row: if anything stops the run before this point, they stay "unknown" and the
          // next run lists them again instead of submitting silently.
          // Assigned only once committed: a commit that fails (a full disk) leaves no intent row.
          localId = await store.beginSubmit({
            modelId,
            input,
            baseUrl: this.#o.client.baseUrl,
            batchId,
            rowKey: r.row.key,
            supersedes: r.action === "resubmit" ? r.unknownLocalIds : undefined,
          });
          if (r.action === "resubmit") this.#resubmitted.push(r.row.key);
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
          this.#submitted++;
          this.#emit({ type: "submitted", row: r.ref, requestId: submit.requestId });
          // Interrupted while the POST was on the wire: now that the id is safe, stop.
          if (r.abortAfterSubmit) r.controller?.abort(new Error("interrupted"));
        },
        onSubmitError: async (error) => {
          if (localId === undefined) return;
          if (isDefiniteRefusal(error)) await store.submitRejected(localId, error);
          else await store.submitUnknown(localId, error);
        },
        onUpdate: (update) => this.#onUpdate(r, update),
        onResult: (result) => this.#onResult(r, result),
      });
      this.#onJobSucceeded(r, result.result);
    } catch (error) {
      if (!accepted) {
        if (error instanceof AbortError && localId === undefined) {
          // Stopped before anything was sent.
          r.phase = "pending";
          r.notRunReason = "interrupted";
          if (this.#diskFull && !this.#stopping) this.#waitForSpace(r);
          this.#budget.release(r.row.key);
          return;
        }
        if (localId !== undefined && !isDefiniteRefusal(error)) {
          r.phase = "unknown";
          r.unknownLocalIds = localId === undefined ? [] : [localId];
          r.error = errorInfo(error);
          r.errorPhase = "submit";
          this.#budget.settle(r.row.key, undefined);
          this.#emit({
            type: "row-unknown",
            row: r.ref,
            localIds: r.unknownLocalIds,
            since: new Date().toISOString(),
            resubmitting: false,
          });
          return;
        }
        this.#budget.release(r.row.key);
        if (localId === undefined && isDiskFull(error)) {
          // The journal could not take the intent row: nothing was sent, and nothing more may be.
          this.#noteDiskFull(this.#store.location);
          this.#waitForSpace(r);
          return;
        }
        this.#fail(r, "submit", error);
        return;
      }
      this.#onWaitError(r, error);
    } finally {
      r.controller = undefined;
    }
  }

  async #reattach(r: RowRun): Promise<void> {
    r.controller = new AbortController();
    r.phase = "running";
    this.#reattached++;
    this.#emit({ type: "reattached", row: r.ref, requestId: r.requestId! });
    try {
      const result = await wait(this.#o.client, r.requestId!, {
        ...this.#waitOptions(r),
        submittedAt: r.submittedAt,
        onUpdate: (update) => this.#onUpdate(r, update),
        onResult: (result) => this.#onResult(r, result),
      });
      this.#onJobSucceeded(r, result);
    } catch (error) {
      this.#onWaitError(r, error);
    } finally {
      r.controller = undefined;
    }
  }

  #onUpdate(r: RowRun, update: JobUpdate): void {
    this.#observeRunTime(r, update);
    if (update.result) return; // the result is journaled by onResult
    const key = `${update.status}/${update.queuePosition ?? ""}`;
    if (key === r.lastStatusKey) return;
    r.lastStatusKey = key;
    if (update.status === "in_queue") r.phase = "queued";
    else if (update.status === "in_progress") r.phase = "running";
    this.#defer({
      kind: "status",
      requestId: update.requestId,
      observation: {
        status: update.status,
        rawStatus: update.rawStatus,
        queuePosition: update.queuePosition,
        at: update.at,
      },
    });
    this.#emit({
      type: "status",
      row: r.ref,
      requestId: update.requestId,
      status: update.status === "unknown" ? update.rawStatus : update.status,
      queuePosition: update.queuePosition,
    });
  }

  /** How every row waits, whether it was just submitted or re-attached after a restart. */
  #waitOptions(r: RowRun): WaitOptions {
    return {
      signal: r.controller?.signal,
      includeCost: true,
      cancelOnAbort: Boolean(this.#o.cancelQueuedOnExit),
      timeScale: this.#o.timeScale,
      pollSchedule: this.#o.pollSchedule ?? BATCH_POLL_SCHEDULE,
      prior: () => this.#prior(r.row.frames),
      pollResultWhileRunning: true,
      timeoutMs: this.#o.waitTimeoutMs,
    };
  }

  #onResult(r: RowRun, result: JobResult): void {
    const at = Date.now();
    // A JobResult carries every field the store keeps; `at` is when it was seen, not written.
    this.#defer({ kind: "result", requestId: result.requestId, result: { ...result, at } });
    r.costUsd = result.cost;
  }

  #onJobSucceeded(r: RowRun, result: JobResult): void {
    this.#budget.settle(r.row.key, result.cost);
    r.costUsd = result.cost;
    r.outputUrl = result.video ?? result.outputUrls[0];
    this.#startDownload(r);
  }

  #onWaitError(r: RowRun, error: unknown): void {
    if (error instanceof WaitAbortedError || (error instanceof AbortError && this.#stopping)) {
      // Interrupted: the job stays in the journal as it is and is re-attached next time.
      const cancelled = error instanceof WaitAbortedError && error.cancel.outcome === "cancelled";
      if (cancelled && r.requestId) {
        const requestId = r.requestId;
        this.#defer({
          kind: "status",
          requestId,
          observation: { status: "cancelled", rawStatus: "cancelled" },
        });
        this.#budget.release(r.row.key);
        this.#cancelledOnExit++;
      }
      r.phase = "pending";
      r.notRunReason = "interrupted";
      return;
    }
    // The job ran (or may have): its estimate stays spent unless the service said otherwise.
    this.#budget.settle(r.row.key, r.costUsd);
    if (r.requestId) {
      const requestId = r.requestId;
      this.#defer({ kind: "error", requestId, error });
    }
    this.#fail(r, "wait", error);
  }

  #cancelledOnExit = 0;

  #startDownload(r: RowRun): void {
    r.phase = "downloading";
    const task = (async () => {
      const release = await this.#downloads.acquire();
      try {
        await this.#download(r);
      } finally {
        release();
      }
    })();
    this.#downloadsInFlight.add(task);
    void task.finally(() => this.#downloadsInFlight.delete(task));
  }

  #downloadController = (() => {
    const controller = new AbortController();
    // Every concurrent download listens on it.
    setMaxListeners(0, controller.signal);
    return controller;
  })();

  async #download(r: RowRun): Promise<void> {
    if (this.#stopping) {
      r.phase = "pending";
      r.notRunReason = "interrupted";
      return;
    }
    const url = r.outputUrl;
    if (!url) {
      this.#fail(r, "download", new Error("the job succeeded but its result names no output URL"));
      return;
    }
    if (this.#diskFull) {
      this.#waitForSpace(r);
      return;
    }
    let lastError: unknown;
    for (let attempt = 1; attempt <= 3; attempt++) {
      try {
        const got = await fetchRowVideo(this.#files!, {
          url,
          name: r.row.name,
          rowKey: r.row.key,
          signal: this.#downloadController.signal,
          onDiskFull: (path) => this.#noteDiskFull(path),
        });
        const { file, note } = got;
        this.#files!.record(file, r.row.key);
        r.file = file;
        r.bytes = got.bytes;
        r.sha256 = got.sha256;
        r.downloadedAt = Date.now();
        const requestId = r.requestId!;
        const done = {
          state: "done" as const,
          line: r.row.line,
          name: r.row.name,
          requestId,
          estimateUsd: r.estimateUsd,
          costUsd: r.costUsd,
          file,
          bytes: got.bytes,
          sha256: got.sha256,
        };
        this.#defer({
          kind: "file",
          requestId,
          file: { path: got.path, url, bytes: got.bytes, sha256: got.sha256 },
        });
        this.#defer({ kind: "batch_row", batchId: this.#state!.batchId, rowKey: r.row.key, outcome: done });
        r.phase = "done";
        r.settledNow = true;
        this.#emit({
          type: "downloaded",
          row: r.ref,
          requestId: r.requestId!,
          path: got.path,
          bytes: got.bytes,
          sha256: got.sha256,
          resumed: got.resumed,
        });
        this.#emit({
          type: "row-done",
          row: r.ref,
          requestId: r.requestId!,
          costUsd: r.costUsd,
          file,
          sha256: got.sha256,
          note,
        });
        return;
      } catch (error) {
        lastError = error;
        if (error instanceof OutputPathError) break;
        if (isDiskFull(error)) {
          this.#waitForSpace(r);
          return;
        }
        if (this.#stopping || error instanceof AbortError) {
          r.phase = "pending";
          r.notRunReason = "interrupted";
          return;
        }
        const code = (error as { code?: string }).code;
        if (
          code === "download_http_status" &&
          [403, 404, 410].includes((error as { status?: number }).status ?? 0)
        )
          break;
        await new Promise((res) => setTimeout(res, 200 * attempt));
      }
    }
    this.#fail(r, "download", lastError);
  }

  #noteDiskFull(path: string): void {
    if (this.#diskFull) return;
    this.#diskFull = { path };
    const inFlight = this.#rows.filter((r) => ["submitting", "queued", "running"].includes(r.phase)).length;
    this.#emit({ type: "disk-full", path, inFlight });
  }

  /** A row left for the next run because the disk is full (its job may have run: then paid). */
  #waitForSpace(r: RowRun): void {
    r.phase = "pending";
    r.notRunReason = "disk-full";
    r.error = diskFullRowError({ submitted: r.requestId !== undefined, finished: r.outputUrl !== undefined });
  }

  #fail(r: RowRun, phase: "submit" | "wait" | "download", error: unknown): void {
    r.phase = "failed";
    r.error = errorInfo(error);
    r.errorPhase = phase;
    r.settledNow = true;
    // A download failure is not recorded as the row's outcome: the next run fetches again.
    if (phase !== "download" && this.#state) {
      const batchId = this.#state.batchId;
      const failed = {
        state: "failed" as const,
        line: r.row.line,
        name: r.row.name,
        requestId: r.requestId,
        estimateUsd: r.estimateUsd,
        costUsd: r.costUsd,
        error: r.error,
      };
      this.#defer({ kind: "batch_row", batchId, rowKey: r.row.key, outcome: failed });
    }
    this.#emit({ type: "row-failed", row: r.ref, requestId: r.requestId, phase, error: r.error });
  }

  /**
   * The journal's run-time prior, asked by every wait before each poll. A solid prior is kept
   * for PRIOR_TTL_MS; a missing or thin one only until the next group commit may have added
   * results: at the start of a batch, a prior cached as "none" for seconds made every job of
   * those seconds poll on the no-prior back-off (≈15 polls per job instead of ≈5).
   */
  #prior(frames: number | undefined): RunTimePrior | undefined {
    const key = frames ?? 121;
    const own = this.#runTimes.get(key)?.prior;
    if (own && (own.samples ?? 0) >= OWN_PRIOR_MIN_SAMPLES) return own;
    const cached = this.#priors.get(key);
    const solid = cached?.prior !== undefined && (cached.prior.samples ?? 1) >= PRIOR_SOLID_SAMPLES;
    // The store answers asynchronously: a stale prior serves this poll, a fresh one the next.
    if (!cached || Date.now() - cached.at >= (solid ? PRIOR_TTL_MS : GROUP_COMMIT_MS)) {
      void this.#refreshPrior(key);
    }
    return cached?.prior;
  }

  /** The priors of every frame count in the batch, read once before the first submit. */
  async #loadPriors(): Promise<void> {
    const keys = new Set(this.#rows.map((r) => r.row.frames ?? 121));
    await Promise.all([...keys].map((key) => this.#refreshPrior(key)));
  }

  #priorReads = new Map<number, Promise<void>>();

  #refreshPrior(key: number): Promise<void> {
    let read = this.#priorReads.get(key);
    if (read) return read;
    read = (async () => {
      let prior: RunTimePrior | undefined;
      try {
        const p = await this.#store.runTimePrior(MODEL_ID, key);
        if (p) prior = { meanMs: p.meanMs, stdMs: p.stdMs, samples: p.samples ?? 1 };
      } catch {
        prior = undefined;
      }
      this.#priors.set(key, { prior, at: Date.now() });
    })().finally(() => this.#priorReads.delete(key));
    this.#priorReads.set(key, read);
    return read;
  }

  /**
   * The batch's own run-time samples. The journal's prior measures from the first in_progress
   * seen to the result seen, so it carries the poll latency: the schedule then aims late, polls
   * later, detects later, and the next prior is later still. Here both ends are the middle of
   * the bracket in which they happened (start: submit or last in_queue → first in_progress;
   * end: last unfinished poll → the result), the same convention the schedule uses for the
   * start, so the estimate is unbiased.
   */
  #observeRunTime(r: RowRun, update: JobUpdate): void {
    if (r.submittedAt === undefined || r.action === "reattach") return; // started before this run
    if (update.result) {
      const { runStartHi: hi, lastPollAt } = r;
      if (update.result.status !== "succeeded" || hi === undefined || lastPollAt === undefined) return;
      const lo = r.runStartLo ?? r.submittedAt;
      const ms = (lastPollAt + update.at) / 2 - (lo + hi) / 2;
      if (!(ms >= 0)) return;
      const key = r.row.frames ?? 121;
      const entry = this.#runTimes.get(key) ?? { samples: [], prior: undefined };
      entry.samples.push(ms);
      if (entry.samples.length > RUN_TIME_WINDOW) entry.samples.shift();
      entry.prior = trimmedStats(entry.samples);
      this.#runTimes.set(key, entry);
      return;
    }
    if (r.runStartHi === undefined) {
      if (update.status === "in_queue") r.runStartLo = update.at;
      else if (update.status === "in_progress") r.runStartHi = update.at;
    }
    r.lastPollAt = update.at;
  }

  #interrupt(): void {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#interrupted = true;
    let inFlight = 0;
    for (const r of this.#rows) {
      if (r.phase === "submitting") {
        // The POST may be on the wire: let it finish so its request id is journaled.
        r.abortAfterSubmit = true;
        inFlight++;
      } else if (r.controller) {
        r.controller.abort(new Error("interrupted"));
        inFlight++;
      }
    }
    this.#downloadController.abort(new Error("interrupted"));
    this.#inFlightAtInterrupt = inFlight;
  }

  #inFlightAtInterrupt = 0;

  // ---- 4. reports and summary ---------------------------------------------------------------

  async #finish(): Promise<BatchSummary> {
    await this.#flush();
    // A group commit that failed on a timer (not for want of space): the store is broken.
    if (this.#flushError !== undefined) throw this.#flushError;
    if (this.#interrupted) {
      this.#emit({
        type: "interrupted",
        inFlight: this.#inFlightAtInterrupt,
        cancelled: this.#cancelledOnExit,
      });
    }
    let report: { json: string; html: string | undefined } | undefined;
    let reportError: string | undefined;
    const wantReport = this.#o.report !== false && !this.#o.dryRun && this.#state !== undefined;
    if (wantReport) {
      try {
        report = await this.#writeReports();
        this.#emit({ type: "report", ...report });
      } catch (error) {
        // The summary still comes out, and says why there is no report.
        if (isDiskFull(error)) this.#noteDiskFull(resolve(this.#outDir, "report.json"));
        reportError = `report.json could not be written: ${error instanceof Error ? error.message : String(error)}`;
      }
    }
    const summary = this.#summary(report, reportError);
    this.#emit({ type: "summary", summary });
    return summary;
  }

  #statusOf(r: RowRun): ReportRowStatus {
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
        return r.notRunReason ?? (this.#interrupted ? "interrupted" : "pending");
    }
  }

  async #writeReports(): Promise<{ json: string; html: string | undefined }> {
    const records = new Map<string, JobRecord>();
    for (const list of (await this.#journalRecords(this.#state!.batchId)).values()) {
      for (const rec of list) if (rec.requestId) records.set(rec.requestId, rec);
    }
    const rows: ReportRow[] = this.#rows.map((r) => {
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
        status: this.#statusOf(r),
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
    rows.push(...problemReportRows(this.#manifest?.problems ?? []));
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
      estimatedUsd: round(rows.reduce((s, x) => s + (x.estimateUsd ?? 0), 0)),
      costUsd: round(rows.reduce((s, x) => s + (x.costUsd ?? 0), 0)),
    };
    const report: BatchReport & { manifestProblems: ManifestProblem[] } = {
      batchId: this.#state!.batchId,
      manifest: this.#manifest?.path,
      manifestDigest: this.#manifest?.digest,
      outDir: this.#outDir,
      generatedAt: new Date().toISOString(),
      interrupted: this.#interrupted,
      budget: { limitUsd: this.#budget.limitUsd, stopped: this.#budget.stopped },
      price: {
        basePriceUsd: this.#price?.basePriceUsd ?? FALLBACK_PRICE.basePriceUsd,
        priceUnit: this.#price?.priceUnit ?? FALLBACK_PRICE.priceUnit,
        source: this.#price?.source ?? "default",
      },
      totals,
      rows,
      manifestProblems: this.#manifest?.problems ?? [],
    };
    const json = await writeJsonReport(this.#outDir, report);
    let html: string | undefined;
    try {
      const images = new Map<string, string>();
      for (const r of this.#rows) if (!r.row.imageIsUrl) images.set(r.row.key, r.row.imageSource);
      html = await writeHtmlReport(this.#outDir, report, images, {
        thumbnails: this.#o.thumbnails !== false,
      });
    } catch {
      html = undefined;
    }
    return { json, html };
  }

  #summary(
    report: { json: string; html: string | undefined } | undefined,
    reportError: string | undefined,
  ): BatchSummary {
    const valid = this.#rows.filter((r) => r.phase !== "invalid");
    const done = valid.filter((r) => r.phase === "done");
    const failed = valid.filter((r) => r.phase === "failed");
    const unknown = valid.filter((r) => r.phase === "unknown");
    const budget = this.#budget.snapshot();
    const invalidManifest = this.#invalidLines > 0 && !this.#o.skipInvalid;
    const waiting = valid.filter((r) => r.notRunReason === "disk-full");
    const diskFull = this.#diskFull && {
      path: this.#diskFull.path,
      message: diskFullMessage({
        path: this.#diskFull.path,
        done: done.length,
        valid: valid.length,
        waiting: waiting.filter((r) => r.requestId !== undefined).length,
        notSubmitted: waiting.filter((r) => r.requestId === undefined).length,
      }),
    };
    let exitCode: number;
    if (this.#interrupted) exitCode = 130;
    else if (invalidManifest) exitCode = 65;
    else if (diskFull) exitCode = 75;
    else if (reportError !== undefined) exitCode = 1;
    else if (this.#o.dryRun) exitCode = 0;
    else exitCode = this.#invalidLines === 0 && done.length === valid.length ? 0 : 1;
    return {
      batchId: this.#state?.batchId,
      outDir: this.#outDir,
      dryRun: Boolean(this.#o.dryRun),
      rows: this.#rows.length + new Set((this.#manifest?.problems ?? []).map((p) => p.line)).size,
      valid: valid.length,
      invalid: this.#invalidLines,
      done: done.length,
      failed: failed.length,
      unknown: unknown.length,
      notRun: valid.length - done.length - failed.length - unknown.length,
      alreadyDone: valid.filter((r) => r.action === "done").length,
      submitted: this.#submitted,
      reattached: this.#reattached,
      resubmitted: this.#resubmitted,
      estimatedUsd: round(
        valid
          .filter((r) => (this.#o.dryRun ? r.action === "submit" || r.action === "resubmit" : true))
          .reduce((s, r) => s + r.estimateUsd, 0),
      ),
      costUsd: round(valid.reduce((s, r) => s + (r.costUsd ?? 0), 0)),
      spentUsd: budget.spentUsd,
      budget: { limitUsd: budget.limitUsd, stopped: budget.stopped, committedUsd: budget.committedUsd },
      price: this.#price,
      interrupted: this.#interrupted,
      durationMs: Date.now() - this.#startedAt,
      rateLimiter: this.#o.rateLimiter?.stats(),
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

function errorInfo(error: unknown): ErrorInfo {
  if (error instanceof Error) {
    const e = error as Error & { jobError?: unknown; code?: unknown; status?: unknown };
    return {
      name: e.name,
      message: e.message,
      ...(e.jobError !== undefined ? { jobError: e.jobError } : {}),
      ...(typeof e.code === "string" ? { code: e.code } : {}),
      ...(typeof e.status === "number" ? { status: e.status } : {}),
    };
  }
  return { name: "Error", message: String(error) };
}

function describe(value: unknown): string {
  if (typeof value === "string") return value;
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}

function round(usd: number): number {
  return Math.round(usd * 1e6) / 1e6;
}

export { sha256File };
