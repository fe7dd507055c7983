// Downloading an output video from the CDN: streamed to `<file>.part`, resumed with Range
// after a cut (in this process or from a `.part` an earlier process left), verified (length,
// MP4 structure, sha256) and only then renamed into place, so a file with the final name is
// always complete.
//
// Output URLs are on a public CDN: no token, no cookies, ever. The headers are built here from
// nothing, so there is no way for an Authorization header to reach another origin.

import { rm } from "node:fs/promises";
import { DownloadError } from "./download-error.js";
import { fetchInto } from "./fetch-into.js";
import { chooseNameIn } from "./file-name.js";
import { checkFileTarget, claimOutput, fsError, isLocalFsError, type OutputClaim } from "./output.js";
import type { DownloadTransport } from "./transport.js";

export { DownloadError, type DownloadErrorCode } from "./download-error.js";
export { fileNameFromUrl, sanitizeFileName } from "./file-name.js";
export * from "./output.js";
export type { DownloadTransport } from "./transport.js";

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
   * The output, checked and claimed beforehand with {@link claimOutput} (before the job was paid
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

export async function download(url: string, options: DownloadOptions = {}): Promise<DownloadResult> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new DownloadError("download_bad_url", `not a URL: ${JSON.stringify(url)}`, url);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new DownloadError(
      "download_bad_url",
      `only http(s) URLs can be downloaded (got ${parsed.protocol})`,
      url,
    );
  }
  const expectMp4 = options.expectMp4 ?? true;
  // Output problems are refused here as before a submit (without the free-space guess: the job
  // is paid for already, and the download itself will say if the video does not fit).
  const claim =
    options.output ?? (await claimOutput(options.dest, { force: options.force, minFreeBytes: 0 }));
  let nameLock: { release(): Promise<void> } | undefined;
  let path: string | undefined;
  try {
    if (claim.file !== undefined) {
      await checkFileTarget(claim.file, claim.force);
      path = claim.file;
    } else {
      const chosen = await chooseNameIn(claim.dir, parsed, claim.force, expectMp4);
      path = chosen.path;
      nameLock = chosen.lock;
    }
    return await fetchInto(url, path, claim.force, expectMp4, options);
  } catch (error) {
    if (!isLocalFsError(error)) throw error;
    const failure = fsError(error, path ?? claim.dir, "cannot save the video to");
    // A full disk: the `.part` holds space that is needed elsewhere, and the video is fetched
    // again into another place anyway (the URL still serves it).
    if (failure.code === "no_space" && path !== undefined) {
      await rm(`${path}.part`, { force: true }).catch(() => {});
      await rm(`${path}.part.json`, { force: true }).catch(() => {});
    }
    throw failure;
  } finally {
    await nameLock?.release();
    if (options.output === undefined) await claim.release();
  }
}
