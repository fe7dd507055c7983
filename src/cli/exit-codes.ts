// Exit codes: the official RunComfy tool's (sysexits-style), plus 1 for a job that failed
// or was cancelled and 130 for an interrupt. The README has the table.

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

export function exitCodeFor(error: unknown): number {
  if (error instanceof CliError) return error.exitCode;
  if (error instanceof SubmissionUnknownError) return exitCodeFor(error.cause);
  if (error instanceof AbortError) return EXIT.interrupted;
  if (error instanceof JobFailedError || error instanceof JobCancelledError) return EXIT.failure;
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
    if (named.code === "not_found" && named.status === undefined) return EXIT.noInput;
    if (named.code === "timeout") return EXIT.tempFail;
    if (named.code === "network") return EXIT.unavailable;
    return EXIT.dataError;
  }
  if (named?.name === "ImageFitError") return EXIT.dataError;
  if (named?.name === "DownloadError") {
    if (named.code === "timeout" || named.code === "cut") return EXIT.tempFail;
    if (named.code === "exists") return EXIT.dataError;
    return (named.status ?? 0) >= 500 ? EXIT.unavailable : EXIT.failure;
  }
  if (named?.code === "ENOENT") return EXIT.noInput;
  return EXIT.failure;
}
