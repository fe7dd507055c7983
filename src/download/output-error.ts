// What can be wrong with where a video goes, as one error type with a code, and the local
// filesystem errors (errno) translated into it.

import { DreaminaError } from "../api/dreamina-error.js";

export type OutputErrorCode =
  /** The file exists and `force` was not given. */
  | "exists"
  /** A FIFO, a device, a socket: only regular files are written. */
  | "not_regular"
  /** A symbolic link to nothing. */
  | "dangling_link"
  /** A directory was expected (or a parent of the file is not one). */
  | "not_directory"
  /** The folder cannot be created or written (read-only filesystem, permissions). */
  | "not_writable"
  /** Too little free space, or the disk filled up while writing. */
  | "no_space"
  /** Another process is writing the same file. */
  | "busy"
  /** Writing failed for another local reason (an I/O error, say). */
  | "write_failed";

/** The output cannot be written where asked. `path` is the file or folder concerned. */
export class OutputError extends DreaminaError {
  static override readonly code: OutputErrorCode = "write_failed";
  declare readonly code: OutputErrorCode;
  readonly path: string;
  constructor(code: OutputErrorCode, message: string, path: string, options: { cause?: unknown } = {}) {
    super(message, { code, cause: options.cause });
    this.path = path;
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), path: this.path };
  }
}

/** Local filesystem errno codes, as the output error they mean. */
const ERRNO_CODES: Record<string, OutputErrorCode> = {
  EROFS: "not_writable",
  EACCES: "not_writable",
  EPERM: "not_writable",
  ENOSPC: "no_space",
  EDQUOT: "no_space",
  EFBIG: "no_space",
  ENOTDIR: "not_directory",
  EISDIR: "not_directory",
  EIO: "write_failed",
  ENAMETOOLONG: "write_failed",
  EMLINK: "write_failed",
  EXDEV: "write_failed",
  EBUSY: "write_failed",
  ETXTBSY: "write_failed",
  EEXIST: "exists",
  // The folder went away while writing.
  ENOENT: "write_failed",
};

/** Whether `error` is a local filesystem failure (as opposed to the network's, or an abort). */
export function isLocalFsError(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === "string" && code in ERRNO_CODES && !(error instanceof OutputError);
}

/** A filesystem error as an {@link OutputError} that says what it means for the output. */
export function fsError(error: unknown, path: string, doing?: string): OutputError {
  if (error instanceof OutputError) return error;
  const errno = error as NodeJS.ErrnoException;
  const code = ERRNO_CODES[errno.code ?? ""] ?? "write_failed";
  const why =
    errno.code === "EROFS"
      ? "read-only filesystem"
      : errno.code === "EACCES" || errno.code === "EPERM"
        ? "permission denied"
        : errno.code === "ENOSPC" || errno.code === "EDQUOT"
          ? "no space left on the device"
          : (errno.message ?? String(error));
  return new OutputError(code, `${doing ? `${doing} ` : ""}${path}: ${why}`, path, { cause: error });
}
