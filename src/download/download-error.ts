// The errors of fetching a video; where it goes (taken, not writable, full...) is OutputError's.

import { DreaminaError } from "../api/dreamina-error.js";

/** The codes of a {@link DownloadError}. */
export type DownloadErrorCode =
  | "download_bad_url"
  | "download_http_status"
  | "download_not_mp4"
  | "download_size_mismatch"
  /** The server's answer cannot be used and asking again will not help (malformed, a redirect loop). */
  | "download_bad_response"
  | "download_cut"
  | "download_timeout";

export class DownloadError extends DreaminaError {
  static override readonly code: DownloadErrorCode = "download_cut";
  declare readonly code: DownloadErrorCode;
  readonly url: string;
  /** The HTTP status, when the error came from one. */
  readonly status: number | undefined;
  constructor(
    code: DownloadErrorCode,
    message: string,
    url: string,
    options: { status?: number; cause?: unknown } = {},
  ) {
    super(message, {
      code,
      cause: options.cause,
      retryable: code === "download_cut" || code === "download_timeout",
    });
    this.url = url;
    this.status = options.status;
  }
}
