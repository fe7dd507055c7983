// What every image probe shares: the error type, the result, the walk that reads a header
// from any source (a file, a Blob, a URL) a bounded window at a time, and `finish`, which
// turns a parsed header into facts or into the error that explains why there are none.

import { DreaminaError } from "../api/dreamina-error.js";
import type { ImageFacts } from "../model/image-facts.js";
import {
  formatName,
  type ImageHeader,
  MAX_HEADER_BYTES,
  sniffImage,
  sniffJpegFrom,
} from "../model/image-header.js";
import { imageLimits } from "../model/image-rules.js";

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

/**
 * Why no facts could be had about an image. `code` is stable; the message is for people. Three
 * codes (`not_found`, `timeout`, `aborted`) are spelt like the service's: the `source` this
 * error always names is what tells an input problem apart (see cli/exit-codes.ts).
 */
export class ImageProbeError extends DreaminaError {
  static override readonly code: ImageProbeErrorCode = "unreadable";
  declare readonly code: ImageProbeErrorCode;
  /** The path or URL that was probed (a data URI is abbreviated). */
  readonly source: string;
  /** HTTP status, for `http_error` and `not_found` on a URL. */
  readonly status: number | undefined;
  constructor(
    code: ImageProbeErrorCode,
    message: string,
    options: { source: string; status?: number | undefined; cause?: unknown },
  ) {
    super(message, { code, cause: options.cause });
    this.source = options.source;
    this.status = options.status;
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), source: this.source, status: this.status };
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
  /** Bytes actually read from the file, the network or memory (skipped ones included). */
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
   * Bytes read in one piece from offset 0 (the whole image when it is small). Not enumerable,
   * so a result serialises as facts only.
   */
  readonly bytes: Uint8Array;
  /**
   * A local file's identity as opened (device, inode, size, mtime, ctime in nanoseconds), so a
   * cache can tell the file read from the one it stat'ed. Not enumerable, like `bytes`.
   */
  readonly fileIdentity?: string | undefined;
}

/** A file's identity from a bigint stat: what changes when its content may have changed. */
export function identityFromStat(s: {
  dev: bigint;
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}): string {
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
}

export const DEFAULT_CHUNK = 64 * 1024;

/**
 * How far into a file a JPEG's segment chain is walked looking for the frame header: the
 * model's size limit. A frame header further in belongs to a file the size rule refuses anyway.
 */
export const JPEG_WALK_LIMIT = imageLimits().maxBytes + 1;

/**
 * The least a JPEG walk reads past its first window at each hop: enough for several small
 * segments at once, little enough that skipping a 64 KiB segment does not mean reading it.
 */
const JPEG_HOP = 4096;

/** Abbreviates a data URI so it can appear in messages and logs. */
export function describeSource(source: string): string {
  if (!/^data:/i.test(source)) return source;
  const comma = source.indexOf(",");
  return `${source.slice(0, comma < 0 ? 30 : comma + 1)}… (${source.length} characters)`;
}

export function concat(chunks: readonly Uint8Array[], total?: number): Uint8Array {
  const length = total ?? chunks.reduce((n, c) => n + c.length, 0);
  if (chunks.length === 1 && chunks[0]!.length === length) return chunks[0]!;
  const out = new Uint8Array(length);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Random access to an image's bytes, forward only (so a plain HTTP body can serve it too). */
export interface HeaderReader {
  /** Bytes [at, at + length), fewer only at the end of the image; `at` never goes backwards. */
  read(at: number, length: number): Promise<Uint8Array>;
}

export interface HeaderRead {
  header: ImageHeader;
  /** The bytes read in one piece from offset 0. */
  prefix: Uint8Array;
  /** Bytes the reader handed over. */
  bytesRead: number;
}

/**
 * Reads just enough of an image to parse its header. Every format but JPEG has it at the
 * start: the prefix grows (up to MAX_HEADER_BYTES). A JPEG is walked segment by segment, each
 * window bounded (a segment is at most 64 KiB), skipping EXIF, ICC, XMP and comments, up to
 * JPEG_WALK_LIMIT: memory stays bounded however much metadata precedes the frame header.
 */
export async function readHeader(
  reader: HeaderReader,
  size: number | undefined,
  chunk: number,
): Promise<HeaderRead> {
  const first = size === undefined ? chunk : Math.min(size, chunk);
  let window = await reader.read(0, first);
  let windowStart = 0;
  let bytesRead = window.length;
  // The end: the known size is reached, or a read gave less than asked (the data ended early).
  let ended = window.length < first || (size !== undefined && window.length >= size);
  let header = sniffImage(window, { final: ended });
  let prefix = window;
  while (header.status === "need_more" && !ended) {
    const resume = header.resume;
    const from = resume?.at ?? 0;
    const windowEnd = windowStart + window.length;
    let to = Math.max(header.needBytes ?? 0, resume ? from + Math.min(chunk, JPEG_HOP) : windowEnd + chunk);
    if (resume ? from >= JPEG_WALK_LIMIT : windowEnd >= MAX_HEADER_BYTES) break;
    if (!resume) to = Math.min(to, MAX_HEADER_BYTES);
    if (size !== undefined) to = Math.min(to, size);
    const readAt = Math.max(from, windowEnd);
    // Nothing to ask for when the walk points at or past the known end: the data ends there.
    const more = readAt < to ? await reader.read(readAt, to - readAt) : new Uint8Array(0);
    bytesRead += more.length;
    ended = more.length < to - readAt || readAt >= to || (size !== undefined && readAt + more.length >= size);
    // The window now starts at `from`: the bytes before it (skipped segments) are let go.
    const kept = from < windowEnd ? window.subarray(from - windowStart) : new Uint8Array(0);
    window = concat([kept, more]);
    windowStart = from;
    if (windowStart === 0) prefix = window;
    header = resume
      ? sniffJpegFrom(window, windowStart, resume, { final: ended })
      : sniffImage(window, { final: ended });
  }
  return { header, prefix, bytesRead };
}

/** Facts, or the error that explains why a header gives none. */
export function finish(
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
  const warnings = [...base.warnings];
  if (header.status === "need_more") {
    const limit = header.format === "jpeg" ? JPEG_WALK_LIMIT : MAX_HEADER_BYTES;
    if (header.format !== "jpeg" || base.sizeBytes === undefined || base.sizeBytes <= limit) {
      throw new ImageProbeError(
        "corrupt",
        `${describeSource(source)}: no ${formatName(header.format)} frame header in the first ${limit.toLocaleString("en-US")} bytes` +
          (header.format === "jpeg"
            ? " (the size limit): the image is over the limit, or damaged"
            : ": the image is damaged"),
        { source },
      );
    }
    // A JPEG over the size limit with its frame header even further in: the size rule
    // refuses it; its dimensions are simply not known.
    warnings.push(
      `the JPEG frame header is not in the first ${limit.toLocaleString("en-US")} bytes (the size limit), so the dimensions were not read`,
    );
  }
  const { bytes, ...rest } = base;
  const result = {
    ...rest,
    warnings,
    format: header.format,
    width: header.width,
    height: header.height,
    orientation: header.orientation,
    header,
  } as Omit<ProbeResult, "bytes">;
  Object.defineProperty(result, "bytes", { value: bytes, enumerable: false });
  return result as ProbeResult;
}

/** A file whose last bytes are not the format's end marker was cut short (or carries extra data). */
export function tailWarnings(header: ImageHeader, tail: Uint8Array): string[] {
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
