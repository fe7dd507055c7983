// Downloading an output video from the CDN: streamed to `<file>.part`, resumed with Range
// after a cut (in this process or from a `.part` an earlier process left), verified (length,
// MP4 structure, sha256) and only then renamed into place, so a file with the final name is
// always complete.
//
// Output URLs are on a public CDN: no token, no cookies, ever. The headers are built here from
// nothing, so there is no way for an Authorization header to reach another origin.

import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import {
  type FileHandle,
  link,
  lstat,
  open,
  readFile,
  rename,
  rm,
  stat,
  unlink,
  writeFile,
} from "node:fs/promises";
import { basename, dirname, extname, join } from "node:path";
import { abortErrorFrom, sleep } from "../api/sleep.js";
import { type BodySink, HttpGetError, type HttpGetResponse, httpGet } from "../http/http-get.js";
import { checkMp4File, describeNonMp4, Mp4StreamCheck, Mp4StructureError } from "./mp4.js";
import {
  checkFileTarget,
  claimOutput,
  fsError,
  isLocalFsError,
  lockOutputFile,
  type OutputClaim,
  OutputError,
} from "./output.js";

export * from "./output.js";

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

/** Problems with where the file goes (taken, not writable, full...) are {@link OutputError}s. */
export type DownloadErrorCode =
  | "bad_url"
  | "http_status"
  | "not_mp4"
  | "size_mismatch"
  /** The server's answer cannot be used and asking again will not help (malformed, a redirect loop). */
  | "bad_response"
  | "cut"
  | "timeout";

export class DownloadError extends Error {
  readonly code: DownloadErrorCode;
  readonly url: string;
  /** The HTTP status, when the error came from one. */
  readonly status: number | undefined;
  constructor(
    code: DownloadErrorCode,
    message: string,
    url: string,
    options: { status?: number; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "DownloadError";
    this.code = code;
    this.url = url;
    this.status = options.status;
  }
}

/** What we remember next to a `.part` so that another process can resume it safely. */
interface PartMeta {
  url: string;
  etag: string | undefined;
  lastModified: string | undefined;
  total: number | undefined;
}

/** Read size when hashing a `.part` left by an earlier process. */
const HASH_READ_BYTES = 1 << 20;
/** With an injected fetch: body bytes waiting for the disk before reading pauses. */
const FETCH_QUEUE_LIMIT = 1 << 20;
/**
 * Every this many bytes a datasync is started in the background, so the disk writes back while
 * the network keeps delivering and the final fsync (before the rename) has little left to do:
 * the total is then about max(network, disk), not their sum.
 */
const SYNC_EVERY = 16 << 20;
/**
 * From this size on (or when the size is unknown) a `.part.json` beside the `.part` lets another
 * process resume it; below it, an interrupted download starts over, which costs less than the
 * extra files cost every download.
 */
const RESUMABLE_BYTES = 8 << 20;
/** Redirects followed by the built-in transport (fetch's own limit applies to an injected fetch). */
const MAX_REDIRECTS = 10;

export async function download(url: string, options: DownloadOptions = {}): Promise<DownloadResult> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new DownloadError("bad_url", `not a URL: ${JSON.stringify(url)}`, url);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new DownloadError("bad_url", `only http(s) URLs can be downloaded (got ${parsed.protocol})`, url);
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

/** Fetches `url` into `path` (through `<path>.part`), resuming and verifying. */
async function fetchInto(
  url: string,
  path: string,
  force: boolean,
  expectMp4: boolean,
  options: DownloadOptions,
): Promise<DownloadResult> {
  const part = `${path}.part`;
  const metaPath = `${path}.part.json`;
  const fetchImpl = options.fetch;
  const get = async (target: string, headers: Record<string, string>, signal: AbortSignal): Promise<Got> => {
    if (fetchImpl) {
      return fromFetch(await fetchImpl(target, { headers, signal, redirect: "follow", credentials: "omit" }));
    }
    return fromHttpGet(await httpGet(target, { headers, signal, maxRedirects: MAX_REDIRECTS }));
  };
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
    await rm(metaPath, { force: true });
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
        if (error instanceof DownloadError && (error.code === "not_mp4" || error.code === "size_mismatch")) {
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
          timedOut ? "timeout" : "cut",
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
        throw new DownloadError("not_mp4", `downloaded file is not a valid MP4: ${error.message}`, url, {
          cause: error,
        });
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
        if (error instanceof HttpGetError && !error.retryable) {
          throw new DownloadError("bad_response", `${error.message} (from ${url})`, url, { cause: error });
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
          "http_status",
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
          "not_mp4",
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
            "size_mismatch",
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
            "http_status",
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
            "size_mismatch",
            `the server sent more than the ${expectedEnd} bytes it announced`,
            url,
          );
        }
        if (expectMp4 && received === 0 && chunk.byteLength >= 8 && !looksLikeMp4Start(chunk)) {
          throw new DownloadError(
            "not_mp4",
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

/**
 * A response as download() needs it, whichever transport produced it: the built-in one
 * (src/http/http-get.ts) or an injected fetch.
 */
interface Got {
  status: number;
  statusText: string;
  header(name: string): string | undefined;
  /** The body, piece by piece (each piece may be kept); a promise back means "wait". */
  pipe(sink: BodySink): Promise<void>;
  cancel(): Promise<void>;
}

function fromHttpGet(response: HttpGetResponse): Got {
  return {
    status: response.status,
    statusText: response.statusText,
    header: (name) => response.header(name),
    pipe: (sink) => response.pipe(sink),
    cancel: async () => response.cancel(),
  };
}

function fromFetch(response: Response): Got {
  return {
    status: response.status,
    statusText: response.statusText,
    header: (name) => response.headers.get(name) ?? undefined,
    async pipe(sink) {
      const body = response.body;
      if (!body) throw new Error("response without a body");
      // fetch hands out a fresh buffer per read, so pieces may wait for the disk while reading
      // goes on, up to FETCH_QUEUE_LIMIT bytes.
      const waiting: { done: Promise<void>; bytes: number }[] = [];
      let waitingBytes = 0;
      for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
        const done = sink(chunk);
        if (!done) continue;
        // Awaited below, perhaps only later: a failure must not count as unhandled meanwhile.
        done.catch(() => {});
        waiting.push({ done, bytes: chunk.byteLength });
        waitingBytes += chunk.byteLength;
        while (waitingBytes >= FETCH_QUEUE_LIMIT) {
          const oldest = waiting.shift()!;
          await oldest.done;
          waitingBytes -= oldest.bytes;
        }
      }
      await Promise.all(waiting.map((w) => w.done));
    },
    async cancel() {
      try {
        if (response.body && !response.body.locked) await response.body.cancel();
      } catch {}
    },
  };
}

/**
 * Appends received chunks to a file without copying them: chunks that arrive while a write is in
 * flight wait in a queue, then go out together in one writev, so a slow disk means fewer, larger
 * writes. add() returns the promise of the write that carries the chunk: the chunk's memory is
 * not needed after it (the transport reads into it again). Every SYNC_EVERY bytes a datasync is
 * started in the background, so that the final fsync has little left to do.
 */
class Appender {
  readonly #file: FileHandle;
  #queue: Uint8Array[] = [];
  #queued = 0;
  /** Settles when the queued chunks have been written. */
  #queueWritten: Deferred | undefined;
  /** The write loop, while it runs (it never rejects: a failure is kept in #error). */
  #writing: Promise<void> | undefined;
  #syncing: Promise<void> | undefined;
  #unsynced = 0;
  #error: unknown;
  #failed = false;

  constructor(file: FileHandle) {
    this.#file = file;
  }

  get failed(): boolean {
    return this.#failed;
  }

  /** Queues `chunk` (kept, not copied); the promise settles once it is written. */
  add(chunk: Uint8Array): Promise<void> {
    if (this.#failed) return Promise.reject(this.#error);
    this.#queue.push(chunk);
    this.#queued += chunk.byteLength;
    this.#queueWritten ??= deferred();
    const written = this.#queueWritten.promise;
    this.#writing ??= this.#writeLoop();
    return written;
  }

  /** Waits for the queue to be written, then fsyncs the file. */
  async finish(): Promise<void> {
    await this.#writing;
    if (this.#failed) throw this.#error;
    // The fsync runs alongside a background datasync still in flight rather than after it: both
    // wait for the same writeback, so the tail is one flush, not two.
    await Promise.all([this.#syncing, this.#file.sync()]);
    if (this.#failed) throw this.#error;
  }

  async close(): Promise<void> {
    this.#queue = [];
    this.#queueWritten?.reject(new Error("the file was closed"));
    this.#queueWritten = undefined;
    await this.#writing;
    await this.#syncing;
    await this.#file.close();
  }

  async #writeLoop(): Promise<void> {
    const file = this.#file;
    let written: Deferred | undefined;
    try {
      while (this.#queue.length > 0 && !this.#failed) {
        let batch = this.#queue;
        const total = this.#queued;
        let bytes = total;
        written = this.#queueWritten;
        this.#queue = [];
        this.#queued = 0;
        this.#queueWritten = undefined;
        for (;;) {
          const { bytesWritten } = await file.writev(batch);
          if (bytesWritten >= bytes) break;
          // A short write (rare on a file): the rest, from where it stopped.
          if (bytesWritten === 0) throw new Error("the disk accepted no bytes");
          bytes -= bytesWritten;
          batch = dropBytes(batch, bytesWritten);
        }
        written?.resolve();
        written = undefined;
        this.#unsynced += total;
        if (this.#unsynced >= SYNC_EVERY && !this.#syncing) {
          this.#unsynced = 0;
          this.#syncing = file
            .datasync()
            .catch((error: unknown) => this.#fail(error))
            .finally(() => {
              this.#syncing = undefined;
            });
        }
      }
    } catch (error) {
      this.#fail(error);
      written?.reject(error);
    } finally {
      // After a failure (here or in a background datasync), what is still queued never will be.
      if (this.#failed) {
        this.#queueWritten?.reject(this.#error);
        this.#queueWritten = undefined;
        this.#queue = [];
        this.#queued = 0;
      }
      this.#writing = undefined;
    }
  }

  #fail(error: unknown): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#error = error;
  }
}

interface Deferred {
  promise: Promise<void>;
  resolve(): void;
  reject(error: unknown): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A rejection nobody waits for (the download already failed) is not an unhandled one.
  promise.catch(() => {});
  return { promise, resolve, reject };
}

/** `chunks` without their first `n` bytes. */
function dropBytes(chunks: Uint8Array[], n: number): Uint8Array[] {
  let skip = n;
  let i = 0;
  while (skip >= chunks[i]!.byteLength) skip -= chunks[i++]!.byteLength;
  return [chunks[i]!.subarray(skip), ...chunks.slice(i + 1)];
}

function parseLength(value: string | null | undefined): number | undefined {
  if (value === null || value === undefined || !/^\s*\d+\s*$/.test(value)) return undefined;
  return Number(value);
}

function parseContentRange(
  value: string | null | undefined,
): { start: number; end: number; total: number | undefined } | undefined {
  const match = /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(value ?? "");
  if (!match) return undefined;
  const start = Number(match[1]);
  const end = Number(match[2]);
  if (end < start) return undefined;
  return { start, end, total: match[3] === "*" ? undefined : Number(match[3]) };
}

/** From a 416's `Content-Range: bytes * /<total>`. */
function parseContentRangeTotal(value: string | null | undefined): number | undefined {
  const match = /^\s*bytes\s+\*\/(\d+)\s*$/i.exec(value ?? "");
  return match ? Number(match[1]) : undefined;
}

/** Whether a `.part` is there, and whether it can be resumed (its metadata says it is ours). */
async function readLeftover(
  part: string,
  metaPath: string,
  url: string,
): Promise<{ partExists: boolean; resumable?: { meta: PartMeta; size: number } }> {
  let size: number;
  try {
    size = (await stat(part)).size;
  } catch {
    return { partExists: false };
  }
  try {
    const meta = JSON.parse(await readFile(metaPath, "utf8")) as PartMeta;
    // Same file only: the same URL, and a validator to confirm the server still has that version.
    if (meta.url !== url || (!meta.etag && !meta.lastModified) || size === 0) return { partExists: true };
    if (meta.total !== undefined && size > meta.total) return { partExists: true };
    return { partExists: true, resumable: { meta, size } };
  } catch {
    return { partExists: true };
  }
}

async function hashFile(path: string, signal: AbortSignal | undefined): Promise<Hash> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: HASH_READ_BYTES, signal })) {
    hash.update(chunk as Buffer);
  }
  return hash;
}

async function moveIntoPlace(part: string, path: string, force: boolean): Promise<void> {
  if (force) {
    // Replaces a regular file only: whatever took the name while downloading (a FIFO, a device,
    // a dangling link) is refused rather than renamed over.
    await checkFileTarget(path, true);
    await rename(part, path);
  } else {
    // link() fails if the name was taken meanwhile (another process): never clobber silently.
    try {
      await link(part, path);
      await unlink(part);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "EEXIST") {
        throw new OutputError(
          "exists",
          `${path} appeared while downloading; the download is kept in ${part}`,
          path,
        );
      }
      // Filesystems without hard links: check, then rename.
      if (code === "EPERM" || code === "ENOTSUP" || code === "EOPNOTSUPP" || code === "EXDEV") {
        if (await exists(path)) {
          throw new OutputError(
            "exists",
            `${path} appeared while downloading; the download is kept in ${part}`,
            path,
          );
        }
        await rename(part, path);
      } else {
        throw error;
      }
    }
  }
  await syncDir(dirname(path));
}

async function syncDir(dir: string): Promise<void> {
  // Makes the rename itself durable; not supported everywhere (Windows), which is fine.
  try {
    const handle = await open(dir, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {}
}

/** Whether anything is at `path`, a dangling link included (it would take the name too). */
async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

// ---- naming ----------------------------------------------------------------------------------

const WINDOWS_RESERVED = /^(con|prn|aux|nul|com\d|lpt\d)(\..*)?$/i;
const MAX_NAME_BYTES = 200;

/**
 * A safe file name from untrusted text: no path separators or traversal, no control or bidi
 * characters, not hidden, not empty, not a Windows device name, at most 200 bytes, and (unless
 * `ensureExt` is empty) ending in `.mp4`.
 */
export function sanitizeFileName(raw: string, ensureExt = ".mp4", fallback = "video"): string {
  let name = raw
    .normalize("NFC")
    .replace(/[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/g, "")
    .replace(/[/\\<>:"|?*]/g, "_")
    .trim();
  // No leading dots (hidden files, "..") and no trailing dots or spaces (Windows drops them).
  name = name.replace(/^[.\s]+/, "").replace(/[.\s]+$/, "");
  if (WINDOWS_RESERVED.test(name)) name = `_${name}`;
  if (name === "" || name === "_") name = fallback;
  if (ensureExt && !name.toLowerCase().endsWith(ensureExt.toLowerCase())) name += ensureExt;
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) {
    const ext = extname(name);
    let stem = name.slice(0, name.length - ext.length);
    while (Buffer.byteLength(stem + ext) > MAX_NAME_BYTES) stem = Array.from(stem).slice(0, -1).join("");
    name = stem + ext;
  }
  return name;
}

/** The sanitized last path segment of `url`. */
export function fileNameFromUrl(url: string | URL, ensureExt = ".mp4"): string {
  let segment = "";
  try {
    const parsed = typeof url === "string" ? new URL(url) : url;
    segment =
      parsed.pathname
        .split("/")
        .filter((s) => s !== "")
        .pop() ?? "";
  } catch {}
  let decoded = segment;
  try {
    decoded = decodeURIComponent(segment);
  } catch {}
  // A decoded segment may contain "/" or "\" (from %2F): keep only its last part.
  decoded = decoded.split(/[/\\]/).pop() ?? "";
  return sanitizeFileName(decoded, ensureExt);
}

/**
 * A name in `dir` for the video at `url` (from the URL), claimed for this process. Without
 * `force` a name that is taken (a file, a link, another download's `.part` or claim) is skipped
 * for "name (1).mp4" and so on; with it the URL's name is used, and must be a regular file if
 * anything is there.
 */
async function chooseNameIn(
  dir: string,
  url: URL,
  force: boolean,
  expectMp4: boolean,
): Promise<{ path: string; lock: { release(): Promise<void> } }> {
  const name = fileNameFromUrl(url, expectMp4 ? ".mp4" : "");
  const first = join(dir, name);
  if (force) {
    await checkFileTarget(first, true);
    return { path: first, lock: await lockOutputFile(first) };
  }
  const ext = extname(name);
  const stem = basename(name, ext);
  for (let n = 0; n < 10_000; n++) {
    const candidate = n === 0 ? first : join(dir, `${stem} (${n})${ext}`);
    if ((await exists(candidate)) || (await partOfAnotherUrl(candidate, url.href))) continue;
    try {
      return { path: candidate, lock: await lockOutputFile(candidate) };
    } catch (error) {
      if (error instanceof OutputError && error.code === "busy") continue;
      throw error;
    }
  }
  throw new OutputError("exists", `no free name for ${name} in ${dir}`, dir);
}

/** Whether `<path>.part` is another URL's download in progress (or left over): not ours to take. */
async function partOfAnotherUrl(path: string, url: string): Promise<boolean> {
  try {
    const meta = JSON.parse(await readFile(`${path}.part.json`, "utf8")) as PartMeta;
    return meta.url !== url;
  } catch {
    // No metadata: a small download in progress (or left over) whose URL we cannot know.
    return exists(`${path}.part`);
  }
}
