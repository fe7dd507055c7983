// The job store's errors. A storage failure of the backend itself (a full disk, a lock held too
// long, a lost connection) keeps the backend's own error (its `code`, e.g. SQLITE_FULL), so that
// callers can tell "no room" from "a mistake".

import { DreaminaError } from "../api/dreamina-error.js";

export type StoreErrorCode =
  /** A call the store's state does not allow (no such row, a row not awaiting a submit outcome). */
  | "store_error"
  /** The store's schema is newer than this program: upgrade it. */
  | "store_too_new"
  /** The store cannot be opened as given (unknown kind, a backend not built in, a bad setting). */
  | "store_unsupported";

export class StoreError extends DreaminaError {
  static override readonly code: string = "store_error";
  constructor(
    message: string,
    options: { code?: StoreErrorCode | undefined; cause?: unknown; retryable?: boolean | undefined } = {},
  ) {
    super(message, options);
  }
}

/**
 * The service accepted a request but neither the store nor the recovery file could record it.
 * The id is in the message (and was printed on stderr as soon as it happened).
 */
export class UnrecordedSubmitError extends StoreError {
  static override readonly code: string = "unrecorded_submit";
  readonly requestId: string;
  constructor(message: string, requestId: string, options?: { cause?: unknown }) {
    super(message, { cause: options?.cause });
    this.requestId = requestId;
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), requestId: this.requestId };
  }
}

/** Another live process holds the lease of this batch (or of another batch writing the same folder). */
export class BatchLockedError extends StoreError {
  static override readonly code: string = "batch_locked";
  constructor(
    message: string,
    readonly pid: number,
    readonly host: string,
  ) {
    super(message, { retryable: true });
  }
}
