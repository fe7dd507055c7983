// Downloading an output video from the CDN: streamed to `<file>.part`, resumed with Range
// after a cut (in this process or from a `.part` an earlier process left), verified (length,
// MP4 structure, sha256) and only then renamed into place, so a file with the final name is
// always complete.
//
// Output URLs are on a public CDN: no token, no cookies, ever. The headers are built here from
// nothing, so there is no way for an Authorization header to reach another origin.

import { rm } from "node:fs/promises";
import { DownloadError } from "./download-error.js";
import type { DownloadOptions, DownloadResult } from "./download-types.js";
import { fetchInto } from "./fetch-into.js";
import { chooseNameIn } from "./file-name.js";
import { checkFileTarget, claimOutput, fsError, isLocalFsError } from "./output.js";

export { DownloadError, type DownloadErrorCode } from "./download-error.js";
export type { DownloadOptions, DownloadProgress, DownloadResult } from "./download-types.js";
export { fileNameFromUrl, sanitizeFileName } from "./file-name.js";
export * from "./output.js";
export type { DownloadTransport } from "./transport.js";

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
