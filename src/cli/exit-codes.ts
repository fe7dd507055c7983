// Exit codes: the official RunComfy tool's (sysexits-style), plus 1 for a job that failed
// or was cancelled and 130 for an interrupt. This module is the one place that decides which
// condition gives which code, and which codes each command can return (its --help and the
// README's table are checked against COMMAND_EXIT_CODES by the tests).

import {
  AbortError,
  AuthenticationError,
  ConnectionError,
  InvalidInputError,
  JobCancelledError,
  JobFailedError,
  MissingTokenError,
  PermissionDeniedError,
  RateLimitError,
  RunComfyError,
  ServerError,
  SubmissionUnknownError,
  TimeoutError,
} from "../api/errors.js";
import { WaitGaveUpError } from "../run/errors.js";

export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 64,
  dataError: 65,
  noInput: 66,
  unavailable: 69,
  tempFail: 75,
  noPermission: 77,
  interrupted: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** What each code means, in the words of the README's table and every command's --help. */
export const EXIT_MEANINGS: Record<ExitCode, string> = {
  0: "success",
  1: "the job failed or was cancelled, or any other error",
  64: "usage: unknown command or option, missing or malformed argument (a request id must match [A-Za-z0-9_-]{1,128})",
  65: "bad data: the input breaks a model rule, the image is not a usable JPEG/PNG, the service refused the request (4xx), or the output cannot be written (exists, not a regular file, read-only folder)",
  66: "an input cannot be read: a file (image, prompt file, manifest) is missing, not a file or unreadable, or an image URL is unreachable or answers an HTTP error",
  69: "the RunComfy service is unavailable: 5xx, connection refused or reset, or every status call failed for --give-up-after",
  75: "temporary: timeout, 408, 429, a batch or another run writing the same output, a full disk (try again later)",
  77: "authentication or permission: no token, 401, 403",
  130: "interrupted (Ctrl-C)",
};

/**
 * Every code each command can return. 1 is in every list: an unexpected error (a full disk, a
 * broken journal) ends any command with it; so is 130, except for `sandbox`, whose Ctrl-C is
 * its normal way to stop.
 */
export const COMMAND_EXIT_CODES = {
  run: [0, 1, 64, 65, 66, 69, 75, 77, 130],
  submit: [0, 1, 64, 65, 66, 69, 75, 77, 130],
  wait: [0, 1, 64, 65, 69, 75, 77, 130],
  status: [0, 1, 64, 65, 69, 75, 77, 130],
  result: [0, 1, 64, 65, 69, 75, 77, 130],
  cancel: [0, 1, 64, 65, 69, 75, 77, 130],
  validate: [0, 1, 64, 65, 66, 130],
  jobs: [0, 1, 64, 65, 130],
  batch: [0, 1, 64, 65, 66, 75, 130],
  sandbox: [0, 1, 64],
  studio: [0, 1, 64, 77],
} as const satisfies Record<string, readonly ExitCode[]>;

export type CommandName = keyof typeof COMMAND_EXIT_CODES;

/** The "Exit codes:" paragraph of a command's --help. */
export function exitCodesHelp(command: CommandName): string {
  const lines = COMMAND_EXIT_CODES[command].map(
    (code) => `  ${String(code).padStart(3)}  ${EXIT_MEANINGS[code]}`,
  );
  return `\nExit codes:\n${lines.join("\n")}`;
}

/** A CLI-level error with a chosen exit code (bad flags, a missing file, invalid input...). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = "CliError";
  }
}

/** Reading an input file failed: the same code whatever the file (image, prompt, manifest). */
export function inputFileError(what: string, path: string, error: unknown): CliError {
  const errno = (error as NodeJS.ErrnoException)?.code;
  const why =
    errno === "ENOENT" || errno === "ENOTDIR"
      ? "no such file"
      : errno === "EISDIR"
        ? "it is a directory"
        : errno === "ELOOP"
          ? "too many levels of symbolic links"
          : (error as Error)?.message || String(error);
  return new CliError(`cannot read ${what} ${path}: ${why}`, EXIT.noInput, { code: errno ?? null, path });
}

/** Image probe codes whose image could not be read at all (no bytes to judge). */
const IMAGE_NOT_READ = new Set([
  "not_found",
  "not_a_file",
  "unreadable",
  "network",
  "timeout",
  "too_many_redirects",
  "http_error",
]);

export function exitCodeFor(error: unknown): number {
  if (error instanceof CliError) return error.exitCode;
  if (error instanceof SubmissionUnknownError) return exitCodeFor(error.cause);
  if (error instanceof AbortError) return EXIT.interrupted;
  if (error instanceof JobFailedError || error instanceof JobCancelledError) return EXIT.failure;
  if (error instanceof WaitGaveUpError) return EXIT.unavailable;
  if (error instanceof MissingTokenError) return EXIT.noPermission;
  if (error instanceof AuthenticationError || error instanceof PermissionDeniedError)
    return EXIT.noPermission;
  if (error instanceof TimeoutError || error instanceof RateLimitError) return EXIT.tempFail;
  if (error instanceof ServerError || error instanceof ConnectionError) return EXIT.unavailable;
  if (error instanceof InvalidInputError) return EXIT.dataError;
  if (error instanceof RunComfyError) {
    const status = error.status ?? 0;
    if (status === 408 || status === 429) return EXIT.tempFail;
    if (status >= 500) return EXIT.unavailable;
    if (status >= 400) return EXIT.dataError;
  }
  // Node-layer errors, recognised by name so this module stays light to import.
  const named = error as { name?: string; code?: string; status?: number } | undefined;
  if (named?.name === "ImageProbeError") {
    // An image that could not be fetched or read is an input problem (66) wherever it is met,
    // never "service unavailable": 69 is for the RunComfy API. Bytes that are not a usable
    // image (HTML, another format, cut short, malformed) are bad data (65).
    if (named.code === "aborted") return EXIT.interrupted;
    return IMAGE_NOT_READ.has(named.code ?? "") ? EXIT.noInput : EXIT.dataError;
  }
  if (named?.name === "ImageFitError") return named.code === "bad_option" ? EXIT.usage : EXIT.dataError;
  if (named?.name === "DownloadError") {
    if (named.code === "download_timeout" || named.code === "download_cut") return EXIT.tempFail;
    if (named.code === "exists") return EXIT.dataError;
    return (named.status ?? 0) >= 500 ? EXIT.unavailable : EXIT.failure;
  }
  if (named?.code === "ENOENT") return EXIT.noInput;
  return EXIT.failure;
}
