// A URL's image facts from as few bytes as possible: Range requests for the first 64 KiB and,
// when a JPEG's metadata pushes the frame header further in, for one bounded window per
// segment. A server that ignores Range is read as one stream, the bytes before each window
// skipped rather than kept, and abandoned once the header is read. Redirects are followed by
// hand and bounded; no Authorization header or cookie is ever sent (the service fetches the
// URL anonymously, so a probe that needed credentials would report facts it cannot see).

import { VERSION } from "../api/version.js";
import { sharedFetch } from "../http/fetch.js";
import { formatName } from "../model/image-header.js";
import {
  concat,
  DEFAULT_CHUNK,
  finish,
  type HeaderReader,
  ImageProbeError,
  type ProbeOptions,
  type ProbeResult,
  readHeader,
} from "./probe-core.js";

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const IGNORES_RANGE =
  "the server ignores Range requests: the download was abandoned once the header was read";

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

interface ProbeContext {
  url: string;
  options: ProbeOptions;
  timeout: AbortSignal;
  signal: AbortSignal;
}

export async function probeUrl(url: string, options: ProbeOptions): Promise<ProbeResult> {
  const fetchImpl = options.fetch ?? sharedFetch;
  const chunk = options.chunkBytes ?? DEFAULT_CHUNK;
  const maxRedirects = options.maxRedirects ?? 5;
  const timeout = AbortSignal.timeout(options.timeoutMs ?? 20_000);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  const context: ProbeContext = { url, options, timeout, signal };
  const warnings: string[] = [];

  const request = async (target: URL, from: number, to: number): Promise<Response> => {
    try {
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
      throw networkError(error, context);
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
  const target = current;
  const reader = new UrlReader(response, (from, to) => request(target, from, to), context);
  if (reader.ignoresRange) warnings.push(IGNORES_RANGE);
  let read: Awaited<ReturnType<typeof readHeader>>;
  try {
    read = await readHeader(reader, reader.sizeBytes, chunk);
  } finally {
    reader.close();
  }
  const { header } = read;
  if (reader.cut !== undefined && header.status !== "complete") {
    throw new ImageProbeError(
      "truncated",
      `${url}: the connection closed after ${reader.received} bytes, before the image header was complete`,
      { source: url, cause: reader.cut },
    );
  }
  if (reader.ignoresRange && !warnings.includes(IGNORES_RANGE)) warnings.push(IGNORES_RANGE);
  const sizeBytes = reader.sizeBytes;
  if (sizeBytes === undefined) {
    warnings.push("the server did not say how large the file is: the file-size rule could not be checked");
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
    bytesRead: reader.received,
    warnings,
    bytes: read.prefix,
    finalUrl: current.toString(),
    redirects,
    contentType,
  });
}

/**
 * The image behind a URL as a HeaderReader. While the server honours Range, each read is a
 * request for exactly that window; once it does not (a 200 answer), the full body is read
 * forward, the bytes before each window skipped, never kept.
 */
class UrlReader implements HeaderReader {
  /** Bytes received from the network, skipped ones included. */
  received = 0;
  /** Total size, from Content-Range, Content-Length, or the end of a full answer. */
  sizeBytes: number | undefined;
  ignoresRange = false;
  /** What broke the connection, when it broke before a read was complete. */
  cut: unknown;
  /** The first answer while it is a range from 0 not yet read. */
  #first: Response | undefined;
  /** Once Range is ignored: the full answer, read forward. */
  #stream: BodyCursor | undefined;
  readonly #request: (from: number, to: number) => Promise<Response>;
  readonly #context: ProbeContext;

  constructor(
    first: Response,
    request: (from: number, to: number) => Promise<Response>,
    context: ProbeContext,
  ) {
    this.#request = request;
    this.#context = context;
    if (first.status !== 206) {
      this.#startStream(first);
      return;
    }
    const range = parseContentRange(first.headers.get("content-range"));
    if (range && range.start !== 0) {
      void first.body?.cancel().catch(() => {});
      throw new ImageProbeError(
        "http_error",
        `${context.url} answered a range starting at ${range.start}, not 0`,
        { source: context.url, status: 206 },
      );
    }
    this.sizeBytes = range?.total;
    this.#first = first;
  }

  async read(at: number, length: number): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let got = 0;
    while (got < length && this.cut === undefined) {
      const from = at + got;
      if (this.sizeBytes !== undefined && from >= this.sizeBytes) break;
      let body = this.#stream;
      if (!body) {
        const response = this.#first ?? (await this.#requestRange(from, at + length - 1));
        this.#first = undefined;
        body = this.#stream ?? (response && this.#cursor(response, rangeStart(response) ?? from));
        if (!body) break; // past the end of the image
      }
      const piece = await body.take(from, length - got);
      parts.push(piece);
      got += piece.length;
      if (body.cut !== undefined) this.cut = body.cut;
      if (body === this.#stream) {
        if (body.done) this.sizeBytes ??= body.pos;
        break; // a full answer gave all it has
      }
      body.cancel();
      // A range answer shorter than the window (a server that caps ranges): ask for the rest.
      if (piece.length === 0) break;
    }
    return concat(parts, got);
  }

  close(): void {
    void this.#first?.body?.cancel().catch(() => {});
    this.#stream?.cancel();
  }

  #cursor(response: Response, start: number): BodyCursor {
    return new BodyCursor(response, start, this.#context, (n) => {
      this.received += n;
    });
  }

  #startStream(response: Response): void {
    this.ignoresRange = true;
    const encoding = response.headers.get("content-encoding");
    const length = response.headers.get("content-length");
    if (length !== null && /^\d+$/.test(length.trim()) && (!encoding || encoding === "identity")) {
      this.sizeBytes ??= Number(length);
    }
    this.#stream = this.#cursor(response, 0);
  }

  /**
   * A Range request for [from, to]: the answer, or undefined past the end of the image (HTTP
   * 416) or when the server answered in full instead (then read as the stream from now on).
   */
  async #requestRange(from: number, to: number): Promise<Response | undefined> {
    const last = this.sizeBytes === undefined ? to : Math.min(to, this.sizeBytes - 1);
    const response = await this.#request(from, last);
    const { url } = this.#context;
    if (response.status === 416) {
      void response.body?.cancel().catch(() => {});
      return undefined;
    }
    checkStatus(response, url);
    const range = parseContentRange(response.headers.get("content-range"));
    if (response.status !== 206 || !range) {
      // Honoured the first range but not this one: its full answer is read forward.
      this.#startStream(response);
      return undefined;
    }
    if (range.start > from) {
      void response.body?.cancel().catch(() => {});
      throw new ImageProbeError(
        "http_error",
        `${url} answered a range starting at ${range.start}, not ${from}`,
        {
          source: url,
          status: 206,
        },
      );
    }
    this.sizeBytes ??= range.total;
    return response;
  }
}

function rangeStart(response: Response): number | undefined {
  return parseContentRange(response.headers.get("content-range"))?.start;
}

/** A response body read forward from the offset it starts at; bytes before a take are skipped. */
class BodyCursor {
  /** Absolute offset of the next byte not yet handed out or skipped. */
  pos: number;
  done = false;
  cut: unknown;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  readonly #context: ProbeContext;
  readonly #onReceived: (bytes: number) => void;
  #pending: Uint8Array | undefined;

  constructor(response: Response, start: number, context: ProbeContext, onReceived: (bytes: number) => void) {
    this.pos = start;
    this.#context = context;
    this.#onReceived = onReceived;
    this.#reader = response.body?.getReader();
    if (!this.#reader) this.done = true;
  }

  /** Up to `length` bytes from absolute offset `at` (at or after `pos`). */
  async take(at: number, length: number): Promise<Uint8Array> {
    if (at < this.pos) throw new RangeError(`cannot read back to ${at} from ${this.pos}`);
    const parts: Uint8Array[] = [];
    let got = 0;
    while (got < length && !this.done && this.cut === undefined) {
      let chunk = this.#pending;
      this.#pending = undefined;
      if (!chunk) {
        let next: ReadableStreamReadResult<Uint8Array>;
        try {
          next = await this.#reader!.read();
        } catch (error) {
          const { timeout, options } = this.#context;
          if (timeout.aborted || options.signal?.aborted) throw networkError(error, this.#context);
          this.cut = error;
          break;
        }
        if (next.done) {
          this.done = true;
          break;
        }
        chunk = next.value;
        this.#onReceived(chunk.length);
      }
      const want = at + got;
      if (this.pos + chunk.length <= want) {
        this.pos += chunk.length; // wholly before the window: skipped
        continue;
      }
      const from = Math.max(0, want - this.pos);
      const n = Math.min(chunk.length - from, length - got);
      parts.push(chunk.subarray(from, from + n));
      got += n;
      if (from + n < chunk.length) this.#pending = chunk.subarray(from + n);
      this.pos += from + n;
    }
    return concat(parts, got);
  }

  cancel(): void {
    if (this.done) return;
    this.done = true;
    void this.#reader?.cancel().catch(() => {});
  }
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

function networkError(error: unknown, context: ProbeContext): ImageProbeError {
  const { url, options, timeout } = context;
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
