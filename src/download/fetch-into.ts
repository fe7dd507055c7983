// One download's loop: a request (with Range when part of the file is there), the body
// checked, hashed and appended to `<path>.part`, resumed after a cut with backoff, then the MP4
// structure verified and the file moved into place.

import { createHash } from "node:crypto";
import { type FileHandle, open, rm, unlink, writeFile } from "node:fs/promises";
import { abortErrorFrom, sleep } from "../api/sleep.js";
import { HttpError } from "../http/http-error.js";
import { Appender } from "./appender.js";
import { DownloadError } from "./download-error.js";
import type { DownloadOptions, DownloadResult } from "./download-types.js";
import { checkMp4File, describeNonMp4, Mp4StreamCheck, Mp4StructureError } from "./mp4.js";
import {
  hashFile,
  moveIntoPlace,
  type PartMeta,
  parseContentRange,
  parseContentRangeTotal,
  parseLength,
  readLeftover,
} from "./part-file.js";
import { type Got, request } from "./transport.js";

/**
 * From this size on (or when the size is unknown) a `.part.json` beside the `.part` lets another
 * process resume it; below it, an interrupted download starts over, which costs less than the
 * extra files cost every download.
 */
const RESUMABLE_BYTES = 8 << 20;

/** Fetches `url` into `path` (through `<path>.part`), resuming and verifying. */
export async function fetchInto(
  url: string,
  path: string,
  force: boolean,
  expectMp4: boolean,
  options: DownloadOptions,
): Promise<DownloadResult> {
  const part = `${path}.part`;
  const metaPath = `${path}.part.json`;
  const get = (target: string, headers: Record<string, string>, signal: AbortSignal): Promise<Got> =>
    request(target, headers, signal, options);
  const retries = Math.max(0, options.retries ?? 5);
  const idleMs = options.timeoutMs ?? 30_000;
  const baseDelay = options.retryDelayMs ?? 500;
  const signal = options.signal;

  let meta: PartMeta | undefined;
  let received = 0;
  let hash = createHash("sha256");
  // Checks the MP4 structure as the bytes go by, for a file fetched from byte 0 in this process
  // (a `.part` left by another is checked from the disk at the end instead).
  let structure: Mp4StreamCheck | undefined;
  // A `.part` from an earlier process is resumed only if we know what it is a part of.
  const leftover = await readLeftover(part, metaPath, url);
  // Whether `metaPath` exists (it is written only for downloads worth resuming in another process).
  let metaOnDisk = leftover.resumable !== undefined;
  if (leftover.resumable) {
    meta = leftover.resumable.meta;
    received = leftover.resumable.size;
    hash = await hashFile(part, signal);
  } else {
    if (leftover.partExists) await rm(part, { force: true });
    // One unlink (rm with force looks first, then unlinks: a system call more per download).
    await unlink(metaPath).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== "ENOENT") throw error;
    });
  }

  let resumed = false;
  let failures = 0;
  let lastError: unknown;
  for (;;) {
    if (signal?.aborted) throw abortErrorFrom(signal);
    const before = received;
    try {
      const outcome = await attempt();
      if (outcome === "done") break;
    } catch (error) {
      if (signal?.aborted) throw abortErrorFrom(signal);
      if (!(error instanceof RetryableCut)) {
        // What we have is not a prefix of a good file: do not resume onto it next time.
        if (
          error instanceof DownloadError &&
          (error.code === "download_not_mp4" || error.code === "download_size_mismatch")
        ) {
          await rm(part, { force: true });
          await rm(metaPath, { force: true });
        }
        throw error;
      }
      lastError = error.cause ?? error;
      if (received > before) failures = 0;
      failures++;
      if (failures > retries) {
        const timedOut = error.timedOut;
        throw new DownloadError(
          timedOut ? "download_timeout" : "download_cut",
          `${timedOut ? "download stalled" : "download cut"} at ${received}${meta?.total ? ` of ${meta.total}` : ""} bytes ` +
            `after ${retries} resumption${retries === 1 ? "" : "s"} (the .part file is kept; run again to resume): ${describeError(lastError)}`,
          url,
          { cause: lastError },
        );
      }
      await sleep(Math.min(10_000, baseDelay * 2 ** (failures - 1)), signal);
    }
  }

  const total = received;
  if (expectMp4) {
    try {
      if (structure) structure.finish();
      else await checkMp4File(part);
    } catch (error) {
      // A damaged file must not be resumed onto next time.
      await rm(part, { force: true });
      await rm(metaPath, { force: true });
      if (error instanceof Mp4StructureError) {
        throw new DownloadError(
          "download_not_mp4",
          `downloaded file is not a valid MP4: ${error.message}`,
          url,
          {
            cause: error,
          },
        );
      }
      throw error;
    }
  }
  await moveIntoPlace(part, path, force);
  if (metaOnDisk) await rm(metaPath, { force: true });
  return { path, bytes: total, sha256: hash.digest("hex"), resumed, url };

  /** One request; "done" when the part holds the whole file. Throws RetryableCut for a cut. */
  async function attempt(): Promise<"done" | "again"> {
    const headers: Record<string, string> = {
      // Byte offsets only mean something on the identity encoding.
      "accept-encoding": "identity",
      accept: expectMp4 ? "video/mp4, */*;q=0.5" : "*/*",
    };
    const validator = meta?.etag && !meta.etag.startsWith("W/") ? meta.etag : meta?.lastModified;
    const ranged = received > 0;
    if (ranged) {
      headers.range = `bytes=${received}-`;
      if (validator) headers["if-range"] = validator;
    }
    const controller = new AbortController();
    const onAbort = () => controller.abort(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    // One coarse timer watches the byte count, rather than a timer re-armed (or a clock read)
    // for every chunk: thousands per second on a fast link.
    let seen = received;
    let quietSince = Date.now();
    let timedOut = false;
    const idleTimer = setInterval(
      () => {
        if (received !== seen) {
          seen = received;
          quietSince = Date.now();
        } else if (Date.now() - quietSince >= idleMs) {
          timedOut = true;
          controller.abort(new Error(`no data for ${idleMs} ms`));
        }
      },
      Math.max(10, Math.min(1000, Math.floor(idleMs / 4))),
    );
    let writer: Appender | undefined;
    let response: Got | undefined;
    try {
      try {
        response = await get(url, headers, controller.signal);
      } catch (error) {
        if (error instanceof HttpError && !error.retryable) {
          throw new DownloadError("download_bad_response", `${error.message} (from ${url})`, url, {
            cause: error,
          });
        }
        throw new RetryableCut(error, timedOut);
      }
      const status = response.status;
      if (status === 416 && ranged) {
        // Nothing left to send: the part may already be complete (a crash just before rename).
        const total = parseContentRangeTotal(response.header("content-range"));
        await response.cancel();
        if (
          total !== undefined &&
          total === received &&
          (meta?.total === undefined || meta.total === total)
        ) {
          return "done";
        }
        await restart();
        return "again";
      }
      if (status >= 500 || status === 408 || status === 429) {
        await response.cancel();
        throw new RetryableCut(new Error(`HTTP ${status}`), false);
      }
      if (status !== 200 && status !== 206) {
        await response.cancel();
        throw new DownloadError(
          "download_http_status",
          `HTTP ${status} ${response.statusText} for ${url}`.trim(),
          url,
          {
            status,
          },
        );
      }
      const type = response.header("content-type") ?? "";
      if (expectMp4 && /^\s*(text\/html|application\/xhtml)/i.test(type)) {
        const head = await readHead(response);
        throw new DownloadError(
          "download_not_mp4",
          `the server answered with ${describeNonMp4(head)} (Content-Type ${type}) instead of a video; ` +
            `the URL may have expired or be wrong`,
          url,
          { status },
        );
      }
      const etag = response.header("etag");
      const lastModified = response.header("last-modified");
      const length = parseLength(response.header("content-length"));

      let expectedEnd: number | undefined;
      let handle: FileHandle;
      if (status === 206 && ranged) {
        const range = parseContentRange(response.header("content-range"));
        const changed =
          (meta?.etag !== undefined && etag !== undefined && etag !== meta.etag) ||
          (meta?.total !== undefined && range?.total !== undefined && range.total !== meta.total);
        if (!range || range.start !== received || changed) {
          // Not the continuation of what we have: start again from zero.
          await response.cancel();
          await restart();
          return "again";
        }
        expectedEnd = range.total ?? range.end + 1;
        if (length !== undefined && length !== range.end - range.start + 1) {
          await response.cancel();
          throw new DownloadError(
            "download_size_mismatch",
            `Content-Length ${length} does not match Content-Range ${range.start}-${range.end}`,
            url,
          );
        }
        resumed = true;
        handle = await open(part, "a");
      } else {
        // 200 (or a 206 we did not ask for): the whole file from byte 0. If we asked for a range,
        // the server ignored it or the file changed (If-Range did not match): start again.
        let start = 0;
        let total = length;
        if (status === 206) {
          const range = parseContentRange(response.header("content-range"));
          start = range?.start ?? -1;
          total = range?.total;
        }
        if (start !== 0) {
          await response.cancel();
          throw new DownloadError(
            "download_http_status",
            `unexpected partial response (${response.header("content-range")})`,
            url,
            { status },
          );
        }
        received = 0;
        resumed = false;
        hash = createHash("sha256");
        structure = expectMp4 ? new Mp4StreamCheck() : undefined;
        meta = { url, etag, lastModified, total };
        // Another process can resume only with a validator; a small file is simply fetched again.
        if ((etag || lastModified) && (total === undefined || total >= RESUMABLE_BYTES)) {
          await writeFile(metaPath, JSON.stringify(meta));
          metaOnDisk = true;
        }
        handle = await open(part, "w");
        expectedEnd = total;
      }
      writer = new Appender(handle);
      if (meta && expectedEnd !== undefined && meta.total === undefined) meta.total = expectedEnd;

      options.onProgress?.({ received, total: expectedEnd });
      const file = writer;
      const onProgress = options.onProgress;
      // Called for every piece of the body: check, hash, queue for the disk (no copy). A promise
      // back means "wait" (the queue is full): the transport stops reading meanwhile, so nothing
      // piles up in memory.
      const sink = (chunk: Uint8Array): void | Promise<void> => {
        if (expectedEnd !== undefined && received + chunk.byteLength > expectedEnd) {
          throw new DownloadError(
            "download_size_mismatch",
            `the server sent more than the ${expectedEnd} bytes it announced`,
            url,
          );
        }
        if (expectMp4 && received === 0 && chunk.byteLength >= 8 && !looksLikeMp4Start(chunk)) {
          throw new DownloadError(
            "download_not_mp4",
            `the server sent ${describeNonMp4(chunk)} instead of an MP4 (Content-Type ${type || "none"})`,
            url,
            { status },
          );
        }
        hash.update(chunk);
        structure?.feed(chunk);
        received += chunk.byteLength;
        if (onProgress) onProgress({ received, total: expectedEnd });
        return file.add(chunk);
      };
      let cut: unknown;
      try {
        await response.pipe(sink);
      } catch (error) {
        if (error instanceof DownloadError || file.failed) throw error;
        cut = error;
      }
      // Whatever arrived before a cut is kept: it is where the resume starts. The file is
      // fsynced before anything relies on it (a resume, the rename into place).
      await file.finish();
      if (cut !== undefined) throw new RetryableCut(cut, timedOut);
      if (expectedEnd !== undefined && received < expectedEnd) {
        throw new RetryableCut(new Error(`body ended at ${received} of ${expectedEnd} bytes`), false);
      }
      return "done";
    } finally {
      clearInterval(idleTimer);
      signal?.removeEventListener("abort", onAbort);
      await response?.cancel();
      await writer?.close();
    }
  }

  async function restart(): Promise<void> {
    received = 0;
    hash = createHash("sha256");
    structure = undefined;
    meta = undefined;
    resumed = false;
    await rm(part, { force: true });
    await rm(metaPath, { force: true });
  }
}

/** A failure after which asking again (with Range) may work. */
class RetryableCut extends Error {
  override readonly cause: unknown;
  readonly timedOut: boolean;
  constructor(cause: unknown, timedOut: boolean) {
    super(describeError(cause));
    this.cause = cause;
    this.timedOut = timedOut;
  }
}

function describeError(error: unknown): string {
  if (error instanceof Error) {
    const cause = error.cause instanceof Error ? ` (${error.cause.message})` : "";
    return `${error.message}${cause}`;
  }
  return String(error);
}

/** Boxes an MP4 (or a fragmented one) can start with. */
const FIRST_BOXES = new Set([
  "ftyp",
  "styp",
  "free",
  "skip",
  "wide",
  "pdin",
  "moov",
  "mdat",
  "moof",
  "sidx",
  "uuid",
]);

/** A plausible first box header: a known type and a size that is 0, 1 or at least a header. */
function looksLikeMp4Start(head: Uint8Array): boolean {
  const view = Buffer.from(head.buffer, head.byteOffset, head.byteLength);
  const size = view.readUInt32BE(0);
  return FIRST_BOXES.has(view.toString("latin1", 4, 8)) && (size === 0 || size === 1 || size >= 8);
}

/** The first bytes of a body we do not want (for an error message); the rest is dropped. */
async function readHead(response: Got): Promise<Uint8Array> {
  let head = new Uint8Array();
  const enough = new Error("enough");
  try {
    await response.pipe((chunk) => {
      head = Uint8Array.from(chunk.subarray(0, 512));
      throw enough;
    });
  } catch {}
  await response.cancel();
  return head;
}
