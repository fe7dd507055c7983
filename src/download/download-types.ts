// What a download is asked and what it answers, apart from download.ts so that the loop in
// fetch-into.ts can use them without importing its caller.

import type { OutputClaim } from "./output.js";
import type { DownloadTransport } from "./transport.js";

export interface DownloadProgress {
  received: number;
  /** Undefined when the server did not say. */
  total: number | undefined;
}

export interface DownloadOptions {
  /**
   * A file path, or an existing directory (or a path ending in "/") in which the name is taken
   * from the URL. Default: the current directory.
   */
  dest?: string | undefined;
  /** Overwrite an existing file. Without it an explicit file that exists is an error, and in a directory a free name is chosen. */
  force?: boolean | undefined;
  /**
   * The output, checked and claimed beforehand with `claimOutput` (before the job was paid
   * for); `dest` and `force` are then taken from it, and releasing it stays the caller's.
   */
  output?: OutputClaim | undefined;
  signal?: AbortSignal | undefined;
  onProgress?: ((progress: DownloadProgress) => void) | undefined;
  /** Give up on a response that sends nothing for this long (then resume). Default 30 s. */
  timeoutMs?: number | undefined;
  /** Resumptions after a cut without progress in between. Default 5. */
  retries?: number | undefined;
  /** First wait before resuming, doubled each time (max 10 s). Default 500 ms. */
  retryDelayMs?: number | undefined;
  fetch?: typeof fetch | undefined;
  /**
   * The built-in HTTP client when no `fetch` is given: "socket" (the default,
   * src/http/http-get.ts: the fastest and leanest, see the download bench) or "undici" (the
   * shared pool). Both honour HTTPS_PROXY, HTTP_PROXY and NO_PROXY.
   */
  transport?: DownloadTransport | undefined;
  /** Check the MP4 structure and ensure a `.mp4` name. Default true. */
  expectMp4?: boolean | undefined;
}

export interface DownloadResult {
  path: string;
  bytes: number;
  sha256: string;
  /** True when the file was assembled from more than one response (a Range resume). */
  resumed: boolean;
  /** The URL asked for. */
  url: string;
}
