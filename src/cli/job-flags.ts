// The flags that run, submit and wait share (the input: image, prompt, frames, seed, fit; the
// output: -o, --no-download, --force, --timeout, --give-up-after), declared and read the same
// way in each, and the checks on the output made before anything is sent or waited for.

import { type Command, Option } from "commander";
import type { OutputClaim } from "../download/output.js";
import type { FitOptions } from "../image/fit.js";
import type { VideoRequest } from "../node/dreamina.js";
import { readPrompt } from "./arguments.js";
import { CliError } from "./cli-error.js";
import type { Io } from "./io.js";

export interface InputFlags {
  image?: string;
  prompt?: string;
  promptFile?: string;
  frames?: string;
  seed?: string;
  fit?: boolean | string;
}

export interface OutputFlags {
  output?: string;
  download: boolean;
  force?: boolean;
  timeout?: string;
  giveUpAfter: string;
}

/** How long a wait goes on when every status call fails before it gives up (exit 69), seconds. */
const DEFAULT_GIVE_UP_AFTER_S = 300;

export function addInputFlags(command: Command): Command {
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

export function addOutputFlags(command: Command): Command {
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

export async function readRequest(
  flags: InputFlags,
): Promise<{ request: VideoRequest; fit: FitOptions | undefined }> {
  const prompt = await readPrompt(flags);
  if (prompt === undefined) throw new CliError("usage", "a prompt is required: --prompt or --prompt-file");
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
    throw new CliError("usage", `--${name} must be a positive number of seconds (got ${value})`);
  }
  return seconds * 1000;
}

export function timeoutMs(flags: OutputFlags): number | undefined {
  return flags.timeout === undefined ? undefined : secondsFlag("timeout", flags.timeout);
}

export function giveUpAfterMs(flags: OutputFlags): number {
  return secondsFlag("give-up-after", flags.giveUpAfter);
}

/**
 * Checks and claims the output before anything is sent (or waited for): finding out after the
 * job ran would mean a paid video with nowhere to go. The folder must exist or be creatable and
 * take writes, the name be free (without --force) and a regular file if anything, no dangling
 * link, room for a video, and no other run writing the same file. Undefined with --no-download.
 */
export async function claimOutputFor(
  flags: OutputFlags,
  beforeSubmit: boolean,
): Promise<OutputClaim | undefined> {
  if (flags.download === false) return undefined;
  const { claimOutput, OutputError } = await import("../download/output.js");
  try {
    return await claimOutput(flags.output ?? ".", { force: flags.force });
  } catch (error) {
    if (!(error instanceof OutputError)) throw error;
    // Worth retrying as it is once space is freed or the other run ends; anything else is a bad -o.
    const code = error.code === "busy" || error.code === "no_space" ? "output_unavailable" : "output_refused";
    throw new CliError(code, `${error.message}${beforeSubmit ? " (nothing was sent)" : ""}`, {
      details: error.toJSON(),
    });
  }
}

/** Preflight warnings (they do not stop the job), the same for run and submit. */
export function warnAbout(io: Io, warnings: readonly { path: string; message: string }[]): void {
  for (const w of warnings) io.warn(`${w.path}: ${w.message}`);
}

/** The -o part of a suggested command (quoted when needed). */
export function outputArg(flags: OutputFlags): string {
  if (flags.output === undefined || flags.output === ".") return "";
  return ` -o ${shellQuote(flags.output)}`;
}

export function shellQuote(text: string): string {
  return /^[\w./-]+$/.test(text) ? text : `'${text.replace(/'/g, "'\\''")}'`;
}
