// What the built-in HTTP clients throw for a response they cannot use or a connection that
// failed, so that callers branch on `retryable` whichever client they used.

import { DreaminaError } from "../api/dreamina-error.js";

export type HttpErrorCode =
  /** Malformed, a redirect loop, a header that would split the request: asking again cannot help. */
  | "http_bad_response"
  /** The connection failed or was cut: asking again may work. */
  | "http_connection"
  /** A proxy variable that is not a URL, or a proxy scheme we cannot speak. */
  | "http_bad_proxy";

export class HttpError extends DreaminaError {
  static override readonly code: HttpErrorCode = "http_connection";
  declare readonly code: HttpErrorCode;
  constructor(message: string, options?: { cause?: unknown; retryable?: boolean; code?: HttpErrorCode }) {
    const retryable = options?.retryable ?? true;
    super(message, {
      cause: options?.cause,
      retryable,
      code: options?.code ?? (retryable ? "http_connection" : "http_bad_response"),
    });
  }
}
