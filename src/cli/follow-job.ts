// Following one job to its end for `run` and `wait`: the live progress, Ctrl-C (once: stop
// waiting, twice: leave), the summary, and when it stops early, an error that says what became
// of the job and the exact command that picks it up again without a new charge.

import { stat } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import type { Dreamina, VideoResult } from "../node/dreamina.js";
import { CliError, familyCode } from "./cli-error.js";
import { EXIT } from "./exit-codes.js";
import type { Factory } from "./factory.js";
import type { Io } from "./io.js";
import { type OutputFlags, outputArg, shellQuote } from "./job-flags.js";
import type { JobProgress } from "./progress.js";

/** What the work learnt on the way: the request id, once there is one. */
export interface JobIds {
  requestId?: string;
}

export type JobWork = (
  dreamina: Dreamina,
  progress: JobProgress,
  signal: AbortSignal,
  ids: JobIds,
) => Promise<VideoResult>;

/** Codes of a wait that stopped while the job may go on. */
const STOPPED_WAITING = new Set(["wait_aborted", "wait_timeout", "wait_gave_up"]);

/**
 * Ctrl-C once: stop waiting (the wait cancels the job if it is still queued, and says so
 * if it is not). Twice: leave at once.
 */
function interruptible(
  io: Io,
  progress: JobProgress,
  hint: () => string | undefined,
): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  let count = 0;
  const onSigint = () => {
    count += 1;
    if (count === 1) {
      // Through the progress display, so the live line is closed first and does not eat it.
      progress.note("interrupted: stopping (Ctrl-C again to quit at once)");
      controller.abort(new Error("interrupted"));
    } else {
      const resume = hint();
      if (resume) io.info(resume);
      process.exit(EXIT.interrupted);
    }
  };
  process.on("SIGINT", onSigint);
  return { signal: controller.signal, dispose: () => process.off("SIGINT", onSigint) };
}

function summary(video: VideoResult, started: number) {
  const file = video.files[0];
  return {
    requestId: video.requestId,
    status: video.result.status,
    video: video.video ?? null,
    outputUrls: video.result.outputUrls,
    files: video.files.map((f) => ({ path: f.path, bytes: f.bytes, sha256: f.sha256 })),
    file: file?.path ?? null,
    cost: video.cost ?? null,
    createdAt: video.result.createdAt ?? null,
    finishedAt: video.result.finishedAt ?? null,
    elapsedMs: Date.now() - started,
  };
}

function printDone(io: Io, video: VideoResult, started: number): void {
  if (io.json) {
    io.result({ ok: true, ...summary(video, started) });
    return;
  }
  const cost = video.cost !== undefined ? `, $${video.cost.toFixed(2)}` : "";
  io.info(`${video.requestId}  succeeded in ${((Date.now() - started) / 1000).toFixed(1)}s${cost}`);
  if (video.files.length > 0) for (const f of video.files) io.out(f.path);
  else for (const url of video.result.outputUrls) io.out(url);
}

function detailsOf(error: Error): Record<string, unknown> {
  return typeof (error as { toJSON?: unknown }).toJSON === "function"
    ? (error as unknown as { toJSON(): Record<string, unknown> }).toJSON()
    : { message: error.message };
}

/**
 * After Ctrl-C or a deadline: the error already says what became of the job (cancelled, or
 * running and billed); when it goes on, add the exact command that picks it up again.
 */
function explainStop(error: Error, requestId: string | undefined, flags: OutputFlags): Error {
  const cancel = (error as { cancel?: { outcome: string; jobMayContinue?: boolean } }).cancel;
  const keepsRunning = cancel?.outcome !== "cancelled" && cancel?.jobMayContinue !== false;
  if (!requestId || !keepsRunning) return error;
  const resume = `dreamina wait ${requestId}${outputArg(flags)}`;
  const details = typeof (error as { toJSON?: unknown }).toJSON === "function" ? detailsOf(error) : {};
  return CliError.wrap(
    error,
    `${error.message}\nTo pick it up again (no new job, no new charge): ${resume}`,
    {
      ...details,
      requestId,
      resume,
    },
  );
}

/**
 * The job is done and paid for, only saving the video failed: say so, with the command that
 * fetches it again. A network failure leaves a `.part` to resume at the same place; when the
 * place itself failed (read-only, full, the name taken meanwhile) the command names another
 * one that passes the output checks now.
 */
async function explainSaveFailure(
  error: Error,
  placeFailed: boolean,
  requestId: string,
  flags: OutputFlags,
): Promise<Error> {
  let output = outputArg(flags);
  if (placeFailed) {
    const { recoveryOutputPath } = await import("../download/output.js");
    const target = resolve(flags.output ?? ".");
    const isDir = await stat(target).then(
      (s) => s.isDirectory(),
      () => false,
    );
    const fresh = await recoveryOutputPath(requestId, { avoidDir: isDir ? target : dirname(target) });
    output = fresh ? ` -o ${shellQuote(fresh)}` : " -o <a writable folder>";
  }
  const resume = `dreamina wait ${requestId}${output}`;
  return CliError.wrap(
    error,
    `${error.message}\nThe job ${requestId} is done (and billed); only saving the video failed. ` +
      `Fetch it again, without a new job, with: ${resume}`,
    { ...detailsOf(error), requestId, resume },
  );
}

/** Runs `work` (a run or a wait) with progress and Ctrl-C handling, and prints its outcome. */
export async function followJob(ctx: Factory, flags: OutputFlags, work: JobWork): Promise<number> {
  const { io } = ctx;
  const dreamina = await ctx.dreamina();
  const { JobProgress } = await import("./progress.js");
  const progress = await JobProgress.create(io);
  const ids: JobIds = {};
  const started = Date.now();
  const interrupt = interruptible(io, progress, () =>
    ids.requestId ? `resume with: dreamina wait ${ids.requestId}${outputArg(flags)}` : undefined,
  );
  try {
    const video = await work(dreamina, progress, interrupt.signal, ids);
    progress.stop();
    printDone(io, video, started);
    return EXIT.ok;
  } catch (error) {
    progress.stop();
    const code = familyCode(error);
    if (code !== undefined && STOPPED_WAITING.has(code)) {
      throw explainStop(error as Error, ids.requestId, flags);
    }
    if (code === "aborted" && ids.requestId) {
      // Ctrl-C after the job was done (while downloading): the video is still there to fetch.
      throw explainStop(error as Error, ids.requestId, flags);
    }
    if (ids.requestId) {
      const { OutputError } = await import("../download/output.js");
      const placeFailed = error instanceof OutputError;
      // Every DownloadError code starts with download_ (download/download-error.ts).
      if (placeFailed || code?.startsWith("download_")) {
        throw await explainSaveFailure(error as Error, placeFailed, ids.requestId, flags);
      }
    }
    if (code === "submission_unknown") {
      io.info(
        "the submit's outcome is unknown: the job may exist and be billed. It is recorded in the journal " +
          "(dreamina jobs --state submission_unknown) and was not sent again.",
      );
    }
    throw error;
  } finally {
    interrupt.dispose();
  }
}
