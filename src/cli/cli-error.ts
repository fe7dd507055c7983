// The CLI's own errors (a bad flag, an unreadable input file, an output that cannot be used),
// in the same DreaminaError family as everything else, so exit-codes.ts decides their exit code
// from their `code` like any other error's.

import { DreaminaError } from "../api/dreamina-error.js";

/** The codes the CLI itself gives; exit-codes.ts maps each to an exit code. */
export type CliErrorCode =
  /** A flag or argument that cannot be used as given. */
  | "usage"
  /** Data that cannot be used: a prompt file too large, a job the store does not know. */
  | "bad_data"
  /** An input file (image, prompt file, manifest) cannot be read. */
  | "input_unreadable"
  /** The output (-o) cannot be used, found before anything was sent or waited for. */
  | "output_refused"
  /** The output is busy (another run) or its disk is full: worth trying again later. */
  | "output_unavailable"
  /** Another process runs the same batch. */
  | "batch_locked";

export interface CliErrorOptions {
  /** Shown as `error.details` with --json. */
  details?: unknown;
  cause?: unknown;
  /** The error this one explains further (see {@link CliError.wrap}). */
  wraps?: unknown;
}

export class CliError extends DreaminaError {
  static override readonly code: string = "usage";
  readonly details: unknown;
  /**
   * Set by {@link CliError.wrap}: the error this one explains further. Its exit code is the
   * wrapped error's, so that saying more never changes the code.
   */
  readonly wraps: unknown;

  constructor(code: CliErrorCode, message: string, options: CliErrorOptions = {}) {
    super(message, { code, cause: options.cause });
    this.details = options.details;
    this.wraps = options.wraps;
  }

  /**
   * The same error with more said about it (what became of the job, the command that picks it
   * up again): it keeps the original's name and code, and its exit code.
   */
  static wrap(original: Error, message: string, details?: unknown): CliError {
    const code = (original as { code?: unknown }).code;
    // The original's code is not one of the CLI's own: that is the point of keeping it.
    const wrapped = new CliError((typeof code === "string" ? code : "error") as CliErrorCode, message, {
      details,
      cause: original,
      wraps: original,
    });
    wrapped.name = original.name;
    return wrapped;
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
  return new CliError("input_unreadable", `cannot read ${what} ${path}: ${why}`, {
    details: { code: errno ?? null, path },
  });
}

/**
 * The stable code of an error of the DreaminaError family, else undefined: outside the family
 * the same spelling may mean something else (another library's "timeout" is not the service's).
 */
export function familyCode(error: unknown): string | undefined {
  return error instanceof DreaminaError ? error.code : undefined;
}
