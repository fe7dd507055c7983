// `dreamina batch <manifest> --out DIR`: a whole manifest (JSONL or CSV) of image + prompt
// rows, validated first, run exactly once (resumable: run the same command again), paced by
// one shared rate limiter, bounded by a budget, with report.json and report.html in --out.

import { type Command, Option } from "commander";
import type { ActionRunner } from "../action.js";
import { CliError, inputFileError } from "../cli-error.js";
import { EXIT, exitCodesHelp } from "../exit-codes.js";
import type { Factory } from "../factory.js";
import { printable } from "../io.js";

export interface BatchOptions {
  /** The manifest's path (the command's argument). */
  manifest: string;
  out?: string;
  /** The batch's id on a shared store (every worker given the same one joins it). */
  batch?: string;
  /** Show the batch's progress (every worker's, on a shared store) instead of running it. */
  status?: boolean;
  concurrency: string;
  rps: string;
  budget?: string;
  dryRun?: boolean;
  skipInvalid?: boolean;
  resubmitUnknown?: boolean;
  retryFailed?: boolean;
  cancelQueuedOnExit?: boolean;
  force?: boolean;
  timeScale?: string;
  report: boolean;
  json?: boolean;
}

function number(name: string, text: string, check: (n: number) => boolean): number {
  const value = Number(text);
  if (text.trim() === "" || !Number.isFinite(value) || !check(value)) {
    throw new CliError("usage", `--${name}: invalid value ${JSON.stringify(text)}`);
  }
  return value;
}

export function registerBatch(program: Command, run: ActionRunner): void {
  program
    .command("batch")
    .description("run every row of a manifest (JSONL or CSV) exactly once; resumable")
    .argument("<manifest>", "a .jsonl (one JSON object a line) or .csv (with a header) file")
    .option("--out <dir>", "directory for the videos, report.json and report.html (required to run)")
    .option(
      "--batch <id>",
      "the batch's id on a shared store: every worker given it joins the same batch (default: from --out's marker, else from the manifest's rows)",
    )
    .option("--status", "show the batch's progress (on a shared store: every worker's) and exit")
    .option("--concurrency <n>", "jobs in flight at most", "4")
    .option("--rps <r>", "API requests per second at most, shared by every call (adapts on 429)", "10")
    .option("--budget <usd>", "stop submitting before the estimated total would exceed this (US$)")
    .option("--dry-run", "validate and price the manifest; submit nothing")
    .option("--skip-invalid", "run the valid rows even if some rows are invalid")
    .option(
      "--resubmit-unknown",
      "submit again rows whose earlier submit outcome is unknown (they may then be billed twice)",
    )
    .option("--retry-failed", "submit again rows whose job failed on the service in an earlier run")
    .option("--cancel-queued-on-exit", "on Ctrl-C, cancel the jobs still queued (running ones cannot be)")
    .option("--force", "overwrite files in --out that this batch did not write")
    .option("--no-report", "do not write report.json and report.html")
    .option("--json", "print one JSON summary on stdout")
    .addOption(
      new Option("--time-scale <x>", "the service runs x times faster (a time-scaled sandbox)").hideHelp(),
    )
    .addHelpText(
      "after",
      [
        "",
        "Rows: image (path relative to the manifest, or URL), prompt, and optionally frames (121|241),",
        "seed, name (output file stem) and id (row key; default: a hash of image, prompt, frames, seed).",
        "",
        "Running the same command again resumes: finished rows are skipped (files checked by sha256),",
        "jobs in flight are picked up by request id, and rows whose submit outcome is unknown are",
        "listed and left alone unless --resubmit-unknown. Ctrl-C stops submitting and exits 130.",
        "",
        "A row whose file already exists in --out and was not written by this batch is refused",
        "before anything is submitted, like an invalid row (--dry-run lists it); --force overwrites.",
        "",
        "With --store postgres://… the batch is shared: start the same command on several machines",
        "(or several times on one) and the workers claim rows from one queue, each row exactly once,",
        "within one --budget and one rate limit; each worker downloads what it finished into its",
        "own --out. A killed worker's rows are taken over when its lease runs out",
        "(DREAMINA_STORE_LEASE_MS, default 30 s). --status shows every worker's progress.",
        "",
        "Exit 0 only when every row is done; 1 when some row is not; 65 for an invalid manifest (or a",
        "file in the way); 75 when the disk under --out is full.",
        "",
        "Examples:",
        "  dreamina batch shots.jsonl --out renders --dry-run",
        "  dreamina batch shots.csv --out renders --concurrency 8 --budget 20",
        "  dreamina batch shots.jsonl --out renders --store postgres://me@db.example/dreamina",
        "  dreamina batch shots.jsonl --status --store postgres://me@db.example/dreamina",
        exitCodesHelp("batch"),
      ].join("\n"),
    )
    .action((manifest: string, flags: Omit<BatchOptions, "manifest">, self: Command) =>
      run(self, (ctx) => runBatch({ ...flags, manifest }, ctx)),
    );
}

export async function runBatch(flags: BatchOptions, ctx: Factory): Promise<number> {
  const { io } = ctx;
  const manifestPath = flags.manifest;
  if (flags.batch !== undefined && !/^[\w.:-]{1,128}$/.test(flags.batch)) {
    throw new CliError(
      "usage",
      `--batch: invalid id ${JSON.stringify(flags.batch)} (letters, digits, . _ : - up to 128 characters)`,
    );
  }
  if (flags.status) {
    const { runBatchStatus } = await import("../batch-status.js");
    return await runBatchStatus(
      { manifest: manifestPath, out: flags.out, batch: flags.batch, json: flags.json },
      ctx,
    );
  }
  const outDir = flags.out;
  if (outDir === undefined)
    throw new CliError("usage", "--out is required to run a batch (or give --status)");
  const concurrency = number("concurrency", flags.concurrency, (n) => Number.isInteger(n) && n >= 1);
  const rps = number("rps", flags.rps, (n) => n > 0);
  const budgetUsd = flags.budget === undefined ? undefined : number("budget", flags.budget, (n) => n >= 0);
  const timeScale =
    flags.timeScale === undefined ? undefined : number("time-scale", flags.timeScale, (n) => n > 0);
  const json = Boolean(io.json || flags.json);
  const { readManifest } = await import("../../batch/manifest.js");
  let manifest: Awaited<ReturnType<typeof readManifest>>;
  try {
    manifest = await readManifest(manifestPath);
  } catch (error) {
    // Any file-system refusal (missing, a directory, a symlink loop, no permission): unreadable input.
    if (
      typeof (error as NodeJS.ErrnoException).code === "string" &&
      (error as NodeJS.ErrnoException).syscall
    ) {
      throw inputFileError("the manifest", manifestPath, error);
    }
    throw error;
  }

  const {
    runBatch: startBatch,
    RateLimiter,
    BatchProgress,
    BatchLockedError,
    formatUsd,
  } = await import("../../batch/index.js");

  const interrupt = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    if (interrupts === 1) {
      io.warn(
        "interrupted: no new submits; waiting for submits on the wire, then stopping (Ctrl-C again to quit at once)",
      );
      interrupt.abort(new Error("interrupted (SIGINT)"));
    } else {
      process.exit(EXIT.interrupted);
    }
  };
  const limiter = new RateLimiter({ rps, signal: interrupt.signal });
  // The one client of every command, made here with the limiter's hooks: every call is paced.
  const client = await ctx.client({ hooks: limiter.hooks() });
  const journal = await ctx.store();
  process.on("SIGINT", onSigint);
  process.on("SIGTERM", onSigint);
  const progress = new BatchProgress({ live: io.live && !json, silent: io.quiet || flags.dryRun });

  let progressStarted = false;
  // The live display writes its own lines: they are made printable here, like everything io prints.
  const w = (line: string) => (progressStarted ? progress.log(printable(line)) : io.info(line));
  const invalidLines: string[] = [];
  try {
    const batch = startBatch(manifest, {
      client,
      journal,
      outDir,
      batchId: flags.batch,
      concurrency,
      budgetUsd,
      dryRun: flags.dryRun,
      skipInvalid: flags.skipInvalid,
      resubmitUnknown: flags.resubmitUnknown,
      retryFailed: flags.retryFailed,
      cancelQueuedOnExit: flags.cancelQueuedOnExit,
      force: flags.force,
      signal: interrupt.signal,
      rateLimiter: limiter,
      timeScale,
      report: flags.report,
    });
    let planShown = false;
    for await (const event of batch) {
      switch (event.type) {
        case "row-invalid":
          for (const p of event.problems) {
            // The schema's messages repeat (width and height share one): the rule and values tell them apart.
            const values =
              p.limit !== undefined && p.actual !== undefined
                ? ` (${p.rule ?? "limit"} ${JSON.stringify(p.limit)}, actual ${JSON.stringify(p.actual)})`
                : "";
            const line = `line ${event.line}: ${p.field ? `${p.field}: ` : ""}${p.message}${values}`;
            invalidLines.push(line);
            io.error(line);
          }
          break;
        case "row-validated":
          if (io.verbose)
            for (const warning of event.warnings) io.warn(`line ${event.row.line}: ${warning.message}`);
          break;
        case "validated":
          if (event.invalid > 0) {
            io.info(
              `${event.invalid} invalid row(s), ${event.valid} valid` +
                (flags.skipInvalid ? ": running the valid ones (--skip-invalid)" : ": nothing was submitted"),
            );
          } else io.debug(`all ${event.valid} rows valid (${event.durationMs} ms)`);
          break;
        case "price":
          if (event.price.note) io.warn(event.price.note);
          else io.debug(`price: US$${event.price.basePriceUsd} per ${event.price.priceUnit}`);
          break;
        case "plan": {
          planShown = true;
          if (flags.dryRun) {
            if (!json) {
              for (const r of event.rows) {
                io.out(
                  `line ${String(r.row.line).padStart(4)}  ${r.action.padEnd(9)} ${formatUsd(r.estimateUsd).padStart(8)}  ${r.row.name}`,
                );
              }
              io.out(
                `${event.toSubmit} row(s) would be submitted, estimated ${formatUsd(event.estimatedUsd)}` +
                  (event.alreadyDone ? `; ${event.alreadyDone} already done` : "") +
                  (event.toReattach ? `; ${event.toReattach} in flight` : "") +
                  (event.unknown ? `; ${event.unknown} with an unknown submit outcome` : ""),
              );
            }
          } else {
            io.info(
              `batch ${event.batchId}${event.resumed ? " (resumed)" : ""}: ${event.toSubmit} to submit ` +
                `(est. ${formatUsd(event.estimatedUsd)}), ${event.toReattach} in flight, ${event.toDownload} to download, ` +
                `${event.alreadyDone} already done` +
                (event.unknown ? `, ${event.unknown} unknown` : "") +
                (event.failedBefore ? `, ${event.failedBefore} failed before` : ""),
            );
            if (event.manifestChanged)
              io.info("note: the manifest changed since the last run; rows are matched by key");
            await progress.start(() => batch.counts());
            progressStarted = true;
          }
          break;
        }
        case "row-unknown":
          w(
            `line ${event.row.line} (${event.row.name}): an earlier submit's outcome is unknown (journal id ` +
              `${event.localIds.join(", ")}); it may exist and be billed. ` +
              (event.resubmitting
                ? "Submitting again (--resubmit-unknown)."
                : "Left alone; see --resubmit-unknown."),
          );
          break;
        case "row-done":
          if (event.note) w(`line ${event.row.line} (${event.row.name}): ${event.note}`);
          break;
        case "row-failed":
          w(
            `line ${event.row.line} (${event.row.name}) failed during ${event.phase}: ${event.error.message}`,
          );
          break;
        case "budget-stop":
          w(
            `budget: ${formatUsd(event.committedUsd)} committed of ${formatUsd(event.limitUsd)}; the next row ` +
              `(est. ${formatUsd(event.nextEstimateUsd)}) would exceed it. ${event.notSubmitted} row(s) not submitted.`,
          );
          break;
        case "disk-full":
          w(
            `the disk is full (writing ${event.path}): nothing more is submitted` +
              (event.inFlight ? `; the ${event.inFlight} job(s) in flight are followed to the end` : ""),
          );
          break;
        case "interrupted":
          w(
            `interrupted: ${event.inFlight} job(s) were in flight` +
              (event.cancelled ? `, ${event.cancelled} cancelled while queued` : "") +
              "; run the same command again to resume.",
          );
          break;
        default:
          break;
      }
    }
    const summary = await batch.summary;
    progress.stop(planShown && !flags.dryRun ? batch.counts() : undefined);
    if (json) {
      io.result({ ok: summary.exitCode === 0, ...summary, invalidLines });
    } else if (!flags.dryRun || summary.exitCode !== 0) {
      const parts = [
        `${summary.done}/${summary.valid} done`,
        summary.failed ? `${summary.failed} failed` : "",
        summary.unknown ? `${summary.unknown} unknown` : "",
        summary.invalid ? `${summary.invalid} invalid` : "",
        summary.notRun ? `${summary.notRun} not run` : "",
        `cost ${formatUsd(summary.costUsd)}`,
      ].filter(Boolean);
      if (!flags.dryRun) io.out(parts.join(", "));
      if (summary.report) io.out(`report: ${summary.report.html ?? summary.report.json}`);
      for (const f of summary.failures.slice(0, 20))
        io.out(`  failed: line ${f.line} ${f.name}: ${f.error.message}`);
      if (summary.failures.length > 20)
        io.out(`  ... and ${summary.failures.length - 20} more (see report.json)`);
    }
    if (!json && summary.reportError) io.error(summary.reportError);
    if (!json && summary.diskFull) io.error(summary.diskFull.message);
    return summary.exitCode;
  } catch (error) {
    if (error instanceof BatchLockedError) throw new CliError("batch_locked", error.message);
    throw error;
  } finally {
    progress.stop();
    process.off("SIGINT", onSigint);
    process.off("SIGTERM", onSigint);
  }
}
