// Image facts (format, stored size, file size) from as few bytes as possible: a local file
// is read only up to its header, a URL is asked for its first 64 KiB with a Range request
// (and abandoned early when the server ignores Range), a data URI is decoded locally.
// Image hosts never get an Authorization header: nothing here ever holds a token.

import { open } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { VERSION } from "../api/version.js";
import { formatName, type ImageHeader, MAX_HEADER_BYTES, sniffImage } from "../model/image-header.js";
import { parseDataUri } from "../model/input.js";
import type { ImageFacts } from "../model/validate.js";

export type ImageProbeErrorCode =
  | "not_found"
  | "not_a_file"
  | "unreadable"
  | "bad_source"
  | "http_error"
  | "html"
  | "unsupported_format"
  | "truncated"
  | "corrupt"
  | "timeout"
  | "too_many_redirects"
  | "network"
  | "aborted";

/** Why no facts could be had about an image. `code` is stable; the message is for people. */
export class ImageProbeError extends Error {
  readonly code: ImageProbeErrorCode;
  /** The path or URL that was probed (a data URI is abbreviated). */
  readonly source: string;
  /** HTTP status, for `http_error` and `not_found` on a URL. */
  readonly status: number | undefined;
  constructor(
    code: ImageProbeErrorCode,
    message: string,
    options: { source: string; status?: number | undefined; cause?: unknown },
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ImageProbeError";
    this.code = code;
    this.source = options.source;
    this.status = options.status;
  }

  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      code: this.code,
      message: this.message,
      source: this.source,
      status: this.status,
    };
  }
}

export interface ProbeOptions {
  /** An injectable fetch (a proxy agent, another runtime's). */
  fetch?: typeof fetch;
  signal?: AbortSignal;
  /** For the whole URL probe, redirects included. Default 20 s. */
  timeoutMs?: number;
  /** Default 5. */
  maxRedirects?: number;
  /** Bytes asked for per Range request (and per local read). Default 64 KiB. */
  chunkBytes?: number;
}

export type ProbeKind = "file" | "url" | "data" | "bytes";

export interface ProbeResult extends ImageFacts {
  kind: ProbeKind;
  source: string;
  /** Bytes actually read from the file, the network or memory. */
  bytesRead: number;
  /** Things worth knowing that do not break a rule (server ignores Range, redirects, trailing data...). */
  warnings: string[];
  /** Everything the header parser learnt (bit depth, progressive, alpha...). */
  header: ImageHeader;
  /** URL probes: where the redirects ended, how many there were, and the declared Content-Type. */
  finalUrl?: string;
  redirects?: number;
  contentType?: string | undefined;
  /**
   * The bytes that were read, from offset 0 (the whole image when `bytesRead` covers `sizeBytes`).
   * Not enumerable, so a result serialises as facts only.
   */
  readonly bytes: Uint8Array;
}

const DEFAULT_CHUNK = 64 * 1024;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

export async function probeImage(
  source: string | Uint8Array | Blob,
  options: ProbeOptions = {},
): Promise<ProbeResult> {
  if (source instanceof Uint8Array) return probeBytes(source, "bytes", "bytes", source.length);
  if (typeof Blob !== "undefined" && source instanceof Blob) return probeBlob(source, options);
  if (typeof source !== "string") {
    throw new ImageProbeError("bad_source", "an image must be a path, a URL, a data URI, bytes or a Blob", {
      source: String(source),
    });
  }
  const text = source.trim();
  if (/^data:/i.test(text)) return probeDataUri(text);
  if (/^https?:\/\//i.test(text)) return probeUrl(text, options);
  if (/^file:/i.test(text)) return probeFile(fileURLToPath(text), options);
  // Any other scheme (ftp:, s3:, gs:...) but not a Windows drive letter (C:\).
  if (/^[a-z][a-z0-9+.-]+:\/\//i.test(text)) {
    throw new ImageProbeError(
      "bad_source",
      `${text.split(":")[0]}: URLs cannot be fetched by the service; use an https URL (pre-signed for private storage) or a local file`,
      { source: text },
    );
  }
  if (text === "") throw new ImageProbeError("bad_source", "the image path is empty", { source });
  return probeFile(source, options);
}

/** Abbreviates a data URI so it can appear in messages and logs. */
export function describeSource(source: string): string {
  if (!/^data:/i.test(source)) return source;
  const comma = source.indexOf(",");
  return `${source.slice(0, comma < 0 ? 30 : comma + 1)}… (${source.length} characters)`;
}

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1 && chunks[0]!.length === total) return chunks[0]!;
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Facts, or the error that explains why a header gives none. */
function finish(
  header: ImageHeader,
  base: Omit<ProbeResult, keyof ImageFacts | "header" | "bytes" | "source"> & {
    source: string;
    sizeBytes: number | undefined;
    bytes: Uint8Array;
  },
): ProbeResult {
  const { source } = base;
  if (header.format === "html") {
    throw new ImageProbeError(
      "html",
      `${describeSource(source)} is an HTML page, not an image${base.kind === "url" ? " (a share or preview link? use the direct image URL)" : ""}`,
      { source },
    );
  }
  if (base.sizeBytes === 0 || (base.sizeBytes === undefined && base.bytes.length === 0)) {
    throw new ImageProbeError("truncated", `${describeSource(source)} is empty (0 bytes)`, { source });
  }
  if (header.status === "truncated" || header.status === "corrupt") {
    throw new ImageProbeError(
      header.status,
      `${describeSource(source)}: ${formatName(header.format)} ${header.status === "truncated" ? "is truncated" : "is damaged"}: ${header.problem}`,
      { source },
    );
  }
  if (header.format === "text" || header.format === "unknown") {
    const what = header.format === "text" ? "text" : "not an image format this tool recognises";
    throw new ImageProbeError(
      "unsupported_format",
      `${describeSource(source)} is ${what}; JPEG or PNG is required`,
      {
        source,
      },
    );
  }
  if (header.status === "need_more") {
    throw new ImageProbeError(
      "corrupt",
      `${describeSource(source)}: no ${formatName(header.format)} frame header in the first ${MAX_HEADER_BYTES} bytes`,
      { source },
    );
  }
  const { bytes, ...rest } = base;
  const result = {
    ...rest,
    format: header.format,
    width: header.width,
    height: header.height,
    orientation: header.orientation,
    header,
  } as Omit<ProbeResult, "bytes">;
  Object.defineProperty(result, "bytes", { value: bytes, enumerable: false });
  return result as ProbeResult;
}

function probeBytes(bytes: Uint8Array, kind: ProbeKind, source: string, sizeBytes: number): ProbeResult {
  const header = sniffImage(bytes, { final: true });
  const warnings = tailWarnings(header, bytes.subarray(Math.max(0, bytes.length - 12)));
  return finish(header, { kind, source, sizeBytes, bytesRead: bytes.length, warnings, bytes });
}

function probeDataUri(uri: string): ProbeResult {
  const data = parseDataUri(uri);
  const source = describeSource(uri);
  if (!data) {
    throw new ImageProbeError("bad_source", `${source} is not a well-formed data URI`, { source });
  }
  return probeBytes(data.bytes, "data", source, data.bytes.length);
}

/** A file whose last bytes are not the format's end marker was cut short (or carries extra data). */
function tailWarnings(header: ImageHeader, tail: Uint8Array): string[] {
  const n = tail.length;
  if (header.format === "jpeg" && n >= 2 && !(tail[n - 2] === 0xff && tail[n - 1] === 0xd9)) {
    return [
      "the JPEG does not end with its end-of-image marker: it is truncated, or has data appended after the image",
    ];
  }
  const iend = [0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82];
  if (header.format === "png" && n >= 8 && !iend.every((b, i) => tail[n - 8 + i] === b)) {
    return [
      "the PNG does not end with its IEND chunk: it is truncated, or has data appended after the image",
    ];
  }
  return [];
}

async function probeFile(path: string, options: ProbeOptions): Promise<ProbeResult> {
  const chunk = options.chunkBytes ?? DEFAULT_CHUNK;
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, "r");
  } catch (error) {
    throw fileError(error, path);
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile())
      throw new ImageProbeError("not_a_file", `${path} is not a regular file`, { source: path });
    const size = stat.size;
    let buffer = new Uint8Array(0);
    let header: ImageHeader;
    let want = Math.min(size, chunk);
    for (;;) {
      if (want > buffer.length) {
        const next = new Uint8Array(want);
        next.set(buffer);
        const { bytesRead } = await handle.read(next, buffer.length, want - buffer.length, buffer.length);
        buffer = next.subarray(0, buffer.length + bytesRead);
      }
      const atEnd = buffer.length >= size || want > buffer.length;
      header = sniffImage(buffer, { final: atEnd });
      if (header.status !== "need_more" || buffer.length >= MAX_HEADER_BYTES) break;
      want = Math.min(size, MAX_HEADER_BYTES, Math.max(header.needBytes ?? 0, buffer.length + chunk));
    }
    let bytesRead = buffer.length;
    let tail = buffer.subarray(Math.max(0, buffer.length - 12));
    if (buffer.length < size && (header.format === "jpeg" || header.format === "png")) {
      // 12 bytes more tell a truncated file (no end marker) from a whole one.
      tail = new Uint8Array(Math.min(12, size));
      const { bytesRead: n } = await handle.read(tail, 0, tail.length, size - tail.length);
      tail = tail.subarray(0, n);
      bytesRead += n;
    }
    const warnings = header.status === "complete" ? tailWarnings(header, tail) : [];
    return finish(header, {
      kind: "file",
      source: path,
      sizeBytes: size,
      bytesRead,
      warnings,
      bytes: buffer,
    });
  } finally {
    await handle.close();
  }
}

function fileError(error: unknown, path: string): ImageProbeError {
  const code = (error as NodeJS.ErrnoException)?.code;
  if (code === "ENOENT" || code === "ENOTDIR") {
    return new ImageProbeError("not_found", `${path}: no such file`, { source: path, cause: error });
  }
  if (code === "EISDIR")
    return new ImageProbeError("not_a_file", `${path} is a directory`, { source: path, cause: error });
  const message = error instanceof Error ? error.message : String(error);
  return new ImageProbeError("unreadable", `${path} cannot be read: ${message}`, {
    source: path,
    cause: error,
  });
}

async function probeBlob(blob: Blob, options: ProbeOptions): Promise<ProbeResult> {
  const chunk = options.chunkBytes ?? DEFAULT_CHUNK;
  let buffer = new Uint8Array(0);
  let header: ImageHeader;
  let want = Math.min(blob.size, chunk);
  for (;;) {
    if (want > buffer.length) {
      const more = new Uint8Array(await blob.slice(buffer.length, want).arrayBuffer());
      const next = new Uint8Array(buffer.length + more.length);
      next.set(buffer);
      next.set(more, buffer.length);
      buffer = next;
    }
    header = sniffImage(buffer, { final: buffer.length >= blob.size });
    if (header.status !== "need_more" || buffer.length >= MAX_HEADER_BYTES) break;
    want = Math.min(blob.size, MAX_HEADER_BYTES, Math.max(header.needBytes ?? 0, buffer.length + chunk));
  }
  let bytesRead = buffer.length;
  let tail = buffer.subarray(Math.max(0, buffer.length - 12));
  if (buffer.length < blob.size) {
    tail = new Uint8Array(await blob.slice(Math.max(0, blob.size - 12)).arrayBuffer());
    bytesRead += tail.length;
  }
  const warnings = header.status === "complete" ? tailWarnings(header, tail) : [];
  const source = blob.type ? `blob (${blob.type})` : "blob";
  return finish(header, { kind: "bytes", source, sizeBytes: blob.size, bytesRead, warnings, bytes: buffer });
}

interface RangeInfo {
  start: number;
  end: number;
  total: number | undefined;
}

function parseContentRange(value: string | null): RangeInfo | undefined {
  const match = /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(value ?? "");
  if (!match) return undefined;
  return {
    start: Number(match[1]),
    end: Number(match[2]),
    total: match[3] === "*" ? undefined : Number(match[3]),
  };
}

async function probeUrl(url: string, options: ProbeOptions): Promise<ProbeResult> {
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const chunk = options.chunkBytes ?? DEFAULT_CHUNK;
  const maxRedirects = options.maxRedirects ?? 5;
  const timeout = AbortSignal.timeout(options.timeoutMs ?? 20_000);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  const warnings: string[] = [];

  const request = async (target: URL, from: number, to: number): Promise<Response> => {
    try {
      // Deliberately no Authorization (nor cookies): the service fetches this URL anonymously,
      // so a probe that needed credentials would report facts the service cannot see.
      return await fetchImpl(target, {
        method: "GET",
        redirect: "manual",
        signal,
        headers: {
          range: `bytes=${from}-${to}`,
          accept: "image/jpeg,image/png,image/*;q=0.8,*/*;q=0.5",
          "accept-encoding": "identity",
          "user-agent": `dreamina-i2v/${VERSION} (image probe)`,
        },
      });
    } catch (error) {
      throw networkError(error, url, timeout, options);
    }
  };

  // Redirects are followed by hand: bounded, and each hop's URL is checked before it is fetched.
  let current: URL;
  try {
    current = new URL(url);
  } catch (error) {
    throw new ImageProbeError("bad_source", `${url} is not a valid URL`, { source: url, cause: error });
  }
  let response: Response;
  let redirects = 0;
  for (;;) {
    response = await request(current, 0, chunk - 1);
    if (!REDIRECT_STATUSES.has(response.status)) break;
    await response.body?.cancel().catch(() => {});
    const location = response.headers.get("location");
    if (!location) {
      throw new ImageProbeError("http_error", `${current} answered ${response.status} without a Location`, {
        source: url,
        status: response.status,
      });
    }
    if (++redirects > maxRedirects) {
      throw new ImageProbeError("too_many_redirects", `${url} redirects more than ${maxRedirects} times`, {
        source: url,
        status: response.status,
      });
    }
    const next = new URL(location, current);
    if (next.protocol !== "https:" && next.protocol !== "http:") {
      throw new ImageProbeError("bad_source", `${current} redirects to a ${next.protocol} URL`, {
        source: url,
      });
    }
    current = next;
  }
  if (redirects > 0) {
    warnings.push(
      `the URL redirects (${redirects} hop${redirects > 1 ? "s" : ""}) to ${current}; the service has to follow the redirect too`,
    );
  }
  checkStatus(response, url);

  const contentType = response.headers.get("content-type") ?? undefined;
  let sizeBytes: number | undefined;
  let rangeHonoured = false;
  if (response.status === 206) {
    const range = parseContentRange(response.headers.get("content-range"));
    if (range && range.start !== 0) {
      await response.body?.cancel().catch(() => {});
      throw new ImageProbeError("http_error", `${url} answered a range starting at ${range.start}, not 0`, {
        source: url,
        status: 206,
      });
    }
    rangeHonoured = true;
    sizeBytes = range?.total;
  } else {
    warnings.push("the server ignores Range requests: the download was abandoned once the header was read");
    const encoding = response.headers.get("content-encoding");
    const length = response.headers.get("content-length");
    if (length !== null && /^\d+$/.test(length.trim()) && (!encoding || encoding === "identity")) {
      sizeBytes = Number(length);
    }
  }

  const chunks: Uint8Array[] = [];
  let have = 0;
  let header: ImageHeader = sniffImage(new Uint8Array(0));
  let ended = false;
  for (;;) {
    const done = (bytes: Uint8Array, final: boolean) => {
      header = sniffImage(bytes, { final });
      return header.status !== "need_more" || bytes.length >= MAX_HEADER_BYTES;
    };
    const read = await readBody(response, chunks, have, done, sizeBytes, url, timeout, options);
    have = read.have;
    ended = read.ended;
    if (header.status !== "need_more" || have >= MAX_HEADER_BYTES) break;
    if (!rangeHonoured || (sizeBytes !== undefined && have >= sizeBytes)) break;
    if (ended && read.rangeEndedEarly) break;
    // The header goes on past the first range (huge EXIF/ICC segments): ask for the next part.
    const to = Math.min(MAX_HEADER_BYTES, Math.max(header.needBytes ?? 0, have + chunk)) - 1;
    response = await request(current, have, to);
    checkStatus(response, url);
    const range = parseContentRange(response.headers.get("content-range"));
    if (response.status !== 206 || !range || range.start !== have) {
      // A server that honours a first range but not a second: start over from a full answer.
      chunks.length = 0;
      have = 0;
      rangeHonoured = false;
    }
  }
  if (sizeBytes === undefined && ended && !rangeHonoured) sizeBytes = have;
  if (sizeBytes === undefined) {
    warnings.push("the server did not say how large the file is: the file-size rule could not be checked");
  }
  const bytes = concat(chunks, have);
  if (header.status === "need_more") {
    header = sniffImage(bytes, { final: sizeBytes !== undefined ? have >= sizeBytes : ended });
  }
  if (contentType && header.status === "complete") {
    const declared = contentType.split(";")[0]!.trim().toLowerCase();
    const expected =
      header.format === "jpeg" ? "image/jpeg" : header.format === "png" ? "image/png" : undefined;
    if (expected && declared !== expected && !(expected === "image/jpeg" && declared === "image/jpg")) {
      warnings.push(`the server labels this ${formatName(header.format)} image as ${declared}`);
    }
  }
  return finish(header, {
    kind: "url",
    source: url,
    sizeBytes,
    bytesRead: have,
    warnings,
    bytes,
    finalUrl: current.toString(),
    redirects,
    contentType,
  });
}

function checkStatus(response: Response, url: string): void {
  const { status } = response;
  if (status === 200 || status === 206) return;
  void response.body?.cancel().catch(() => {});
  if (status === 404 || status === 410) {
    throw new ImageProbeError("not_found", `${url}: not found (HTTP ${status})`, { source: url, status });
  }
  if (status === 416) {
    throw new ImageProbeError(
      "truncated",
      `${url}: the server has no bytes to give (HTTP 416): an empty file?`,
      {
        source: url,
        status,
      },
    );
  }
  const hint =
    status === 401 || status === 403
      ? ": the service fetches images without login or cookies, so the URL must be public or pre-signed"
      : "";
  throw new ImageProbeError("http_error", `${url}: HTTP ${status}${hint}`, { source: url, status });
}

/**
 * Reads the body into `chunks` until `done` says the header is complete, then abandons the
 * rest (cancelling the stream closes the connection, so a full-file answer costs nothing more).
 */
async function readBody(
  response: Response,
  chunks: Uint8Array[],
  have: number,
  done: (bytes: Uint8Array, final: boolean) => boolean,
  sizeBytes: number | undefined,
  url: string,
  timeout: AbortSignal,
  options: ProbeOptions,
): Promise<{ have: number; ended: boolean; rangeEndedEarly: boolean }> {
  if (!response.body) return { have, ended: true, rangeEndedEarly: false };
  const reader = response.body.getReader();
  const start = have;
  const declared = Number(response.headers.get("content-length") ?? Number.NaN);
  try {
    for (;;) {
      let next: ReadableStreamReadResult<Uint8Array>;
      try {
        next = await reader.read();
      } catch (error) {
        const bytes = concat(chunks, have);
        if (done(bytes, false)) return { have, ended: true, rangeEndedEarly: false };
        if (timeout.aborted || options.signal?.aborted) throw networkError(error, url, timeout, options);
        throw new ImageProbeError(
          "truncated",
          `${url}: the connection closed after ${have} bytes, before the image header was complete`,
          { source: url, cause: error },
        );
      }
      if (next.done) {
        const bytes = concat(chunks, have);
        done(bytes, sizeBytes !== undefined ? have >= sizeBytes : true);
        const short = Number.isFinite(declared) && have - start < declared;
        return { have, ended: true, rangeEndedEarly: short };
      }
      chunks.push(next.value);
      have += next.value.length;
      const bytes = concat(chunks, have);
      if (done(bytes, sizeBytes !== undefined && have >= sizeBytes)) {
        await reader.cancel().catch(() => {});
        return { have, ended: sizeBytes !== undefined && have >= sizeBytes, rangeEndedEarly: false };
      }
    }
  } finally {
    reader.releaseLock();
  }
}

function networkError(
  error: unknown,
  url: string,
  timeout: AbortSignal,
  options: ProbeOptions,
): ImageProbeError {
  if (timeout.aborted) {
    return new ImageProbeError("timeout", `${url}: no answer within ${options.timeoutMs ?? 20_000} ms`, {
      source: url,
      cause: error,
    });
  }
  if (options.signal?.aborted) {
    return new ImageProbeError("aborted", `${url}: the probe was aborted`, { source: url, cause: error });
  }
  const cause = (error as { cause?: { code?: string; message?: string } })?.cause;
  const detail = cause?.code ?? cause?.message ?? (error instanceof Error ? error.message : String(error));
  return new ImageProbeError("network", `${url}: cannot connect (${detail})`, { source: url, cause: error });
}
