// `run`, `submit` and `wait`: the main job (image + prompt in, MP4 out) and its two halves.
// All three journal every step, so an interrupted job can always be picked up again.

import { stat } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { type Command, Option } from "commander";
import type { JobResult } from "../../api/types.js";
import type { OutputClaim } from "../../download/output.js";
import type { FitOptions } from "../../image/fit.js";
import type { Dreamina, VideoResult } from "../../node/dreamina.js";
import { readPrompt, requestIdArgument } from "../arguments.js";
import { type Context, openContext } from "../context.js";
import { CliError, EXIT, exitCodeFor, exitCodesHelp } from "../exit-codes.js";
import type { Io } from "../io.js";
import type { ActionRunner } from "../main.js";
import type { JobProgress } from "../progress.js";

interface InputFlags {
  image?: string;
  prompt?: string;
  promptFile?: string;
  frames?: string;
  seed?: string;
  fit?: boolean | string;
}

interface OutputFlags {
  output?: string;
  download: boolean;
  force?: boolean;
  timeout?: string;
  giveUpAfter: string;
}

/** How long a wait goes on when every status call fails before it gives up (exit 69), seconds. */
const DEFAULT_GIVE_UP_AFTER_S = 300;

function addInputFlags(command: Command): Command {
  return command
    .requiredOption("-i, --image <path|url>", "input image: a local JPEG/PNG file or an http(s) URL")
    .option("-p, --prompt <text>", "what should happen in the video (at most 800 characters)")
    .option("--prompt-file <path>", "read the prompt from a file")
    .option("--frames <n>", "121 (about 5 s) or 241 (about 10 s)", "121")
    .option("--seed <n>", "integer seed; -1 picks one at random", "-1")
    .addOption(
      new Option(
        "--fit [mode]",
        "fix an image that breaks the model's rules (pad or crop the ratio)",
      ).choices(["pad", "crop"]),
    );
}

function addOutputFlags(command: Command): Command {
  return command
    .option("-o, --output <path>", "where to save the video: a file or a directory", ".")
    .option("--no-download", "do not download the video (print its URL)")
    .option("--force", "overwrite an existing output file")
    .option("--timeout <seconds>", "give up waiting after this long (the job is left running)")
    .option(
      "--give-up-after <seconds>",
      "stop when every status call has failed for this long (exit 69; the job is left running)",
      String(DEFAULT_GIVE_UP_AFTER_S),
    );
}

/** A number when the text is one; the text otherwise, so that the model rules name it. */
function numberOrText(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  return value.trim() !== "" && Number.isFinite(n) ? n : (value as unknown as number);
}

async function readRequest(flags: InputFlags) {
  const prompt = await readPrompt(flags);
  if (prompt === undefined) throw new CliError("a prompt is required: --prompt or --prompt-file", EXIT.usage);
  const fit: FitOptions | undefined =
    flags.fit === undefined || flags.fit === false
      ? undefined
      : { ratio: flags.fit === "crop" ? "crop" : "pad" };
  return {
    request: {
      prompt,
      image: flags.image as string,
      frames: numberOrText(flags.frames) as 121 | 241,
      seed: numberOrText(flags.seed),
    },
    fit,
  };
}

function secondsFlag(name: string, value: string): number {
  const seconds = Number(value);
  if (value.trim() === "" || !Number.isFinite(seconds) || seconds <= 0) {
    throw new CliError(`--${name} must be a positive number of seconds (got ${value})`, EXIT.usage);
  }
  return seconds * 1000;
}

function timeoutMs(flags: OutputFlags): number | undefined {
  return flags.timeout === undefined ? undefined : secondsFlag("timeout", flags.timeout);
}

function giveUpAfterMs(flags: OutputFlags): number {
  return secondsFlag("give-up-after", flags.giveUpAfter);
}

/**
 * Checks and claims the output before anything is sent (or waited for): finding out after the
 * job ran would mean a paid video with nowhere to go. The folder must exist or be creatable and
 * take writes, the name be free (without --force) and a regular file if anything, no dangling
 * link, room for a video, and no other run writing the same file. Undefined with --no-download.
 */
async function claimOutputFor(flags: OutputFlags, beforeSubmit: boolean): Promise<OutputClaim | undefined> {
  if (flags.download === false) return undefined;
  const { claimOutput, OutputError } = await import("../../download/output.js");
  try {
    return await claimOutput(flags.output ?? ".", { force: flags.force });
  } catch (error) {
    if (!(error instanceof OutputError)) throw error;
    // Worth retrying as it is once space is freed or the other run ends; anything else is a bad -o.
    const code = error.code === "busy" || error.code === "no_space" ? EXIT.tempFail : EXIT.dataError;
    throw new CliError(`${error.message}${beforeSubmit ? " (nothing was sent)" : ""}`, code, error.toJSON());
  }
}

async function openDreamina(ctx: Context): Promise<Dreamina> {
  const { Dreamina } = await import("../../node/dreamina.js");
  return new Dreamina({ client: ctx.client, journal: ctx.journalPath });
}

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

/**
 * After Ctrl-C or a deadline: the error already says what became of the job (cancelled, or
 * running and billed); when it goes on, add the exact command that picks it up again.
 */
function explainStop(error: Error, requestId: string | undefined, flags: OutputFlags): Error {
  const cancel = (error as { cancel?: { outcome: string; jobMayContinue?: boolean } }).cancel;
  const keepsRunning = cancel?.outcome !== "cancelled" && cancel?.jobMayContinue !== false;
  if (!requestId || !keepsRunning) return error;
  const resume = `dreamina wait ${requestId}${outputArg(flags)}`;
  const details =
    typeof (error as { toJSON?: unknown }).toJSON === "function"
      ? (error as unknown as { toJSON(): Record<string, unknown> }).toJSON()
      : {};
  const wrapped = new CliError(
    `${error.message}\nTo pick it up again (no new job, no new charge): ${resume}`,
    exitCodeFor(error),
    { ...details, requestId, resume },
  );
  wrapped.name = error.name;
  return wrapped;
}

/**
 * The job is done and paid for, only saving the video failed: say so, with the command that
 * fetches it again. A network failure leaves a `.part` to resume at the same place; when the
 * place itself failed (read-only, full, the name taken meanwhile) the command names another
 * one that passes the output checks now.
 */
async function explainSaveFailure(error: Error, requestId: string, flags: OutputFlags): Promise<Error> {
  let output = outputArg(flags);
  if (error.name === "OutputError") {
    const { recoveryOutputPath } = await import("../../download/output.js");
    const target = resolve(flags.output ?? ".");
    const isDir = await stat(target).then(
      (s) => s.isDirectory(),
      () => false,
    );
    const fresh = await recoveryOutputPath(requestId, { avoidDir: isDir ? target : dirname(target) });
    output = fresh ? ` -o ${shellQuote(fresh)}` : " -o <a writable folder>";
  }
  const resume = `dreamina wait ${requestId}${output}`;
  const details =
    typeof (error as { toJSON?: unknown }).toJSON === "function"
      ? (error as unknown as { toJSON(): Record<string, unknown> }).toJSON()
      : { message: error.message };
  const wrapped = new CliError(
    `${error.message}\nThe job ${requestId} is done (and billed); only saving the video failed. ` +
      `Fetch it again, without a new job, with: ${resume}`,
    exitCodeFor(error),
    { ...details, requestId, resume },
  );
  wrapped.name = error.name;
  return wrapped;
}

async function waitOrRun(
  io: Io,
  globals: Parameters<Parameters<ActionRunner>[1]>[1],
  flags: OutputFlags,
  work: (
    ctx: Context,
    dreamina: Dreamina,
    progress: JobProgress,
    signal: AbortSignal,
    ids: { requestId?: string },
  ) => Promise<VideoResult>,
): Promise<number> {
  const ctx = await openContext(globals, io);
  const dreamina = await openDreamina(ctx);
  const { JobProgress } = await import("../progress.js");
  const progress = await JobProgress.create(io);
  const ids: { requestId?: string } = {};
  const started = Date.now();
  const interrupt = interruptible(io, progress, () =>
    ids.requestId ? `resume with: dreamina wait ${ids.requestId}${outputArg(flags)}` : undefined,
  );
  try {
    const video = await work(ctx, dreamina, progress, interrupt.signal, ids);
    progress.stop();
    printDone(io, video, started);
    return EXIT.ok;
  } catch (error) {
    progress.stop();
    const name = (error as Error)?.name;
    if (name === "WaitAbortedError" || name === "WaitTimeoutError" || name === "WaitGaveUpError") {
      throw explainStop(error as Error, ids.requestId, flags);
    }
    if (name === "AbortError" && ids.requestId) {
      // Ctrl-C after the job was done (while downloading): the video is still there to fetch.
      throw explainStop(error as Error, ids.requestId, flags);
    }
    if ((name === "DownloadError" || name === "OutputError") && ids.requestId) {
      throw await explainSaveFailure(error as Error, ids.requestId, flags);
    }
    if (name === "SubmissionUnknownError") {
      io.info(
        "the submit's outcome is unknown: the job may exist and be billed. It is recorded in the journal " +
          "(dreamina jobs --state submission_unknown) and was not sent again.",
      );
    }
    throw error;
  } finally {
    interrupt.dispose();
    await dreamina.close();
    await ctx.close();
  }
}

export function registerRunCommands(program: Command, run: ActionRunner): void {
  const runCommand = program
    .command("run")
    .description("generate a video: check the input, submit, wait, download the MP4");
  addOutputFlags(addInputFlags(runCommand))
    .addHelpText(
      "after",
      "\nExamples:\n" +
        '  dreamina run --image photo.jpg --prompt "slow dolly-in, golden hour" -o out.mp4\n' +
        '  dreamina run --sandbox --image examples/golden-hour-street.jpg --prompt "a car drives by" -o out.mp4\n' +
        "  dreamina run --image https://example.com/cat.png --prompt-file prompt.txt --frames 241 --json\n" +
        exitCodesHelp("run"),
    )
    .action((flags: InputFlags & OutputFlags, command: Command) =>
      run(command, async (io, globals) => {
        const { request, fit } = await readRequest(flags);
        const deadline = timeoutMs(flags);
        const giveUp = giveUpAfterMs(flags);
        const claim = await claimOutputFor(flags, true);
        return waitOrRun(io, globals, flags, async (ctx, dreamina, progress, signal, ids) =>
          dreamina.run(request, {
            fit,
            output: claim ?? flags.output,
            download: flags.download,
            force: flags.force,
            signal,
            timeoutMs: deadline,
            giveUpAfterMs: giveUp,
            timeScale: ctx.timeScale,
            onPrepared: (prepared) => warnAbout(io, prepared.report.warnings),
            onPollError: (error, count, info) => progress.pollError(error, count, info),
            onSubmitted: (submit) => {
              ids.requestId = submit.requestId;
              progress.note(`submitted ${submit.requestId}`);
            },
            onUpdate: (update) => progress.update(update),
            onDownloadProgress: (p) => progress.download(p),
          }),
        ).finally(() => claim?.release());
      }),
    );

  addInputFlags(program.command("submit").description("check the input and submit it; print the request id"))
    .addHelpText(
      "after",
      "\nExample:\n" +
        '  id=$(dreamina submit --image photo.jpg --prompt "waves roll in")\n' +
        "  dreamina wait $id -o out.mp4\n" +
        exitCodesHelp("submit"),
    )
    .action((flags: InputFlags, command: Command) =>
      run(command, async (io, globals) => {
        const { request, fit } = await readRequest(flags);
        const ctx = await openContext(globals, io);
        const dreamina = await openDreamina(ctx);
        try {
          const submitted = await dreamina.submit(request, {
            fit,
            onPrepared: (prepared) => warnAbout(io, prepared.report.warnings),
          });
          if (io.json) io.result({ ok: true, requestId: submitted.requestId, ...urls(submitted.submit.raw) });
          else io.out(submitted.requestId);
          return EXIT.ok;
        } finally {
          await dreamina.close();
          await ctx.close();
        }
      }),
    );

  const waitCommand = program
    .command("wait")
    .description("wait for any request (from any process, at any time) and download its video")
    .argument("<request_id>", "the request to wait for", requestIdArgument);
  addOutputFlags(waitCommand)
    .addHelpText("after", `\nExample:\n  dreamina wait 3f9c2a7e-... -o out.mp4\n${exitCodesHelp("wait")}`)
    .action((requestId: string, flags: OutputFlags, command: Command) =>
      run(command, async (io, globals) => {
        const deadline = timeoutMs(flags);
        const giveUp = giveUpAfterMs(flags);
        const claim = await claimOutputFor(flags, false);
        return waitOrRun(io, globals, flags, async (ctx, dreamina, progress, signal, ids) => {
          ids.requestId = requestId;
          return dreamina.wait(requestId, {
            output: claim ?? flags.output,
            download: flags.download,
            force: flags.force,
            signal,
            timeoutMs: deadline,
            giveUpAfterMs: giveUp,
            timeScale: ctx.timeScale,
            onPollError: (error, count, info) => progress.pollError(error, count, info),
            onUpdate: (update) => progress.update(update),
            onDownloadProgress: (p) => progress.download(p),
          });
        }).finally(() => claim?.release());
      }),
    );
}

/** Preflight warnings (they do not stop the job), the same for run and submit. */
function warnAbout(io: Io, warnings: readonly { path: string; message: string }[]): void {
  for (const w of warnings) io.warn(`${w.path}: ${w.message}`);
}

/** The -o part of a suggested command (quoted when needed). */
function outputArg(flags: OutputFlags): string {
  if (flags.output === undefined || flags.output === ".") return "";
  return ` -o ${shellQuote(flags.output)}`;
}

function shellQuote(text: string): string {
  return /^[\w./-]+$/.test(text) ? text : `'${text.replace(/'/g, "'\\''")}'`;
}

function urls(raw: JobResult["raw"]): Record<string, unknown> {
  return {
    statusUrl: raw.status_url ?? null,
    resultUrl: raw.result_url ?? null,
    cancelUrl: raw.cancel_url ?? null,
  };
}
