// Exit codes: the official RunComfy tool's (sysexits-style), plus 1 for a job that failed
// or was cancelled and 130 for an interrupt. This module is the one place that decides which
// condition gives which code, and which codes each command can return (its --help and the
// README's table are checked against COMMAND_EXIT_CODES by the tests). Errors are told apart by
// their stable `code` only (never by class or name), in one table, so a new error class needs no
// change here unless it brings a new code.

import { DreaminaError } from "../api/dreamina-error.js";
import { CliError } from "./cli-error.js";

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
  jobs: [0, 1, 64, 65, 75, 77, 130],
  batch: [0, 1, 64, 65, 66, 75, 77, 130],
  sandbox: [0, 1, 64],
  studio: [0, 1, 64, 77],
  store: [0, 1, 64, 65, 66, 75, 77, 130],
} as const satisfies Record<string, readonly ExitCode[]>;

export type CommandName = keyof typeof COMMAND_EXIT_CODES;

/** The "Exit codes:" paragraph of a command's --help. */
export function exitCodesHelp(command: CommandName): string {
  const lines = COMMAND_EXIT_CODES[command].map(
    (code) => `  ${String(code).padStart(3)}  ${EXIT_MEANINGS[code]}`,
  );
  return `\nExit codes:\n${lines.join("\n")}`;
}

/** An exit code, or how to choose one from the error that has the code. */
type Rule = ExitCode | ((error: ErrorFacts) => number);

interface ErrorFacts {
  readonly code?: unknown;
  readonly status?: unknown;
  readonly cause?: unknown;
  readonly source?: unknown;
}

function status(error: ErrorFacts): number {
  return typeof error.status === "number" ? error.status : 0;
}

/** An answer of the service that no subclass names: what its HTTP status says. */
function byStatus(error: ErrorFacts): ExitCode {
  const s = status(error);
  if (s === 408 || s === 429) return EXIT.tempFail;
  if (s >= 500) return EXIT.unavailable;
  if (s >= 400) return EXIT.dataError;
  return EXIT.failure;
}

/**
 * The image probe spells two of its codes like the service ("not_found", "timeout") and always
 * names the `source` it read: an image that could not be fetched or read is an input problem
 * (66) wherever it is met, never "service unavailable" (69 is for the RunComfy API).
 */
function imageOr(rule: Rule): Rule {
  return (error) =>
    typeof error.source === "string" ? EXIT.noInput : typeof rule === "function" ? rule(error) : rule;
}

/** A video download that failed: the CDN being down is "unavailable", anything else a failure. */
function downloadByStatus(error: ErrorFacts): ExitCode {
  return status(error) >= 500 ? EXIT.unavailable : EXIT.failure;
}

/**
 * The codes of the DreaminaError family, and the one errno code read from errors outside it.
 * Unlisted codes exit 1.
 */
const CODES = new Map<string, Rule>([
  // The CLI's own (cli-error.ts).
  ["usage", EXIT.usage],
  ["bad_data", EXIT.dataError],
  ["input_unreadable", EXIT.noInput],
  ["output_refused", EXIT.dataError],
  ["output_unavailable", EXIT.tempFail],
  ["batch_locked", EXIT.tempFail],
  // The job store (store/errors.ts, store/postgres/): a server that is down is worth another try.
  ["store_unavailable", EXIT.tempFail],
  ["store_auth", EXIT.noPermission],
  ["store_permission", EXIT.noPermission],
  ["store_unsupported", EXIT.usage],
  ["store_too_new", EXIT.dataError],
  ["store_import", EXIT.dataError],
  ["store_import_missing", EXIT.noInput],
  ["store_import_pending", EXIT.dataError],
  // The service and the way to it (api/errors.ts, run/errors.ts).
  // Whether it was accepted is unknown: the code is that of what went wrong on the way.
  ["submission_unknown", (error) => exitCodeFor(error.cause)],
  ["aborted", EXIT.interrupted],
  ["wait_aborted", EXIT.interrupted],
  ["job_failed", EXIT.failure],
  ["job_cancelled", EXIT.failure],
  ["wait_gave_up", EXIT.unavailable],
  ["missing_token", EXIT.noPermission],
  ["authentication", EXIT.noPermission],
  ["permission_denied", EXIT.noPermission],
  ["timeout", imageOr(EXIT.tempFail)],
  ["wait_timeout", EXIT.tempFail],
  ["rate_limited", EXIT.tempFail],
  ["server_error", EXIT.unavailable],
  ["connection_failed", EXIT.unavailable],
  ["invalid_input", EXIT.dataError],
  ["preflight", EXIT.dataError],
  ["service_error", byStatus],
  ["not_found", imageOr(byStatus)],
  ["insufficient_balance", byStatus],
  ["unexpected_response", byStatus],
  ["unknown_status", byStatus],
  // Fetching the video (download/download-error.ts): a cut or a stall is worth another try.
  ["download_timeout", EXIT.tempFail],
  ["download_cut", EXIT.tempFail],
  ["download_bad_url", downloadByStatus],
  ["download_http_status", downloadByStatus],
  ["download_not_mp4", downloadByStatus],
  ["download_size_mismatch", downloadByStatus],
  ["download_bad_response", downloadByStatus],
  // Where the video goes (download/output-error.ts) is unlisted: the CLI turns an output refused
  // before anything is sent into output_refused/output_unavailable; after the job ran it exits 1.
  // Probing an image (image/probe-core.ts): it could not be fetched or read (66), or its bytes
  // are not a usable image: HTML, another format, cut short, malformed (65).
  ["not_a_file", EXIT.noInput],
  ["unreadable", EXIT.noInput],
  ["network", EXIT.noInput],
  ["too_many_redirects", EXIT.noInput],
  ["http_error", EXIT.noInput],
  ["bad_source", EXIT.dataError],
  ["html", EXIT.dataError],
  ["unsupported_format", EXIT.dataError],
  ["truncated", EXIT.dataError],
  ["corrupt", EXIT.dataError],
  // Fitting an image (image/fit.ts): a bad --ratio/--background is a usage error.
  ["bad_option", EXIT.usage],
  ["decode_failed", EXIT.dataError],
  ["too_many_pixels", EXIT.dataError],
  ["cannot_fit", EXIT.dataError],
  // The sandbox's --faults (sandbox/faults.ts).
  ["fault_spec", EXIT.usage],
  // Node's errno, from errors outside the family.
  ["ENOENT", EXIT.noInput],
]);

/** Errno codes (ENOENT...): the only codes read from an error outside the DreaminaError family. */
const ERRNO = /^E[A-Z0-9]+$/;

/** The exit code for anything a command threw. */
export function exitCodeFor(error: unknown): number {
  if (error instanceof CliError && error.wraps !== undefined) return exitCodeFor(error.wraps);
  const facts = (typeof error === "object" && error !== null ? error : {}) as ErrorFacts;
  if (typeof facts.code !== "string") return EXIT.failure;
  // Outside the family a code may mean anything (another library's "timeout"): only errno counts.
  if (!(error instanceof DreaminaError) && !ERRNO.test(facts.code)) return EXIT.failure;
  const rule = CODES.get(facts.code);
  if (rule === undefined) return EXIT.failure;
  return typeof rule === "function" ? rule(facts) : rule;
}
