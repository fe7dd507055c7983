// The HTTP side of a download, whichever client does it: the socket client (the default:
// src/http/http-get.ts, flat memory by reusing its read buffers), undici through the process's
// shared pool, or a fetch the caller injected. Both built-in clients honour HTTPS_PROXY,
// HTTP_PROXY and NO_PROXY. Each answer is a {@link Got}; its body goes to a sink piece by piece.
//
// Why the socket client stays the default: on the download bench (200 MB, both in one run)
// undici's request stream reached 181 MB/s (33 % of `curl -o`) with up to 49 MB of RSS growth
// (a fresh 64 KiB buffer per socket read, collected late), against 368 MB/s (68 %) and 4.8 MB
// for the socket client.

import type { Dispatcher } from "undici";
import { HttpError } from "../http/http-error.js";
import { type BodySink, type HttpGetResponse, httpGet } from "../http/http-get.js";

export type DownloadTransport = "undici" | "socket";

/** Body bytes waiting for the disk before reading pauses (undici and fetch hand out fresh buffers). */
const QUEUE_LIMIT = 1 << 20;
/** Redirects followed by the built-in clients (fetch's own limit applies to an injected fetch). */
const MAX_REDIRECTS = 10;

/** A response as download() needs it, whichever client produced it. */
export interface Got {
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
      await pipeQueued(body as unknown as AsyncIterable<Uint8Array>, sink);
    },
    async cancel() {
      try {
        if (response.body && !response.body.locked) await response.body.cancel();
      } catch {}
    },
  };
}

/** GET `url` with `headers` (built by the caller from nothing: no credentials). */
export async function request(
  url: string,
  headers: Record<string, string>,
  signal: AbortSignal,
  options: { fetch?: typeof fetch | undefined; transport?: DownloadTransport | undefined },
): Promise<Got> {
  if (options.fetch) {
    return fromFetch(await options.fetch(url, { headers, signal, redirect: "follow", credentials: "omit" }));
  }
  if (options.transport === "undici") return fromUndici(url, headers, signal);
  return fromHttpGet(await httpGet(url, { headers, signal, maxRedirects: MAX_REDIRECTS }));
}

let undici: Promise<typeof import("../http/dispatcher.js")> | undefined;

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** undici's errors that asking again cannot help with (a malformed answer, a bad header). */
function undiciError(error: unknown): unknown {
  const { code = "", name } = (error ?? {}) as { code?: string; name?: string };
  if (code === "UND_ERR_INVALID_ARG" || code.startsWith("HPE_") || name === "HTTPParserError") {
    const message = error instanceof Error ? error.message : String(error);
    return new HttpError(`malformed HTTP response: ${message}`, { cause: error, retryable: false });
  }
  return error;
}

/**
 * GET through the shared pool. Redirects are followed here, as the socket client does (bounded,
 * http(s) only), rather than by undici's interceptor, which calls a loop malformed at once.
 */
async function fromUndici(url: string, headers: Record<string, string>, signal: AbortSignal): Promise<Got> {
  undici ??= import("../http/dispatcher.js");
  const { httpDispatcher } = await undici;
  let target = new URL(url);
  for (let hop = 0; ; hop++) {
    let response: Dispatcher.ResponseData;
    try {
      response = await httpDispatcher().request({
        origin: target.origin,
        path: `${target.pathname}${target.search}`,
        method: "GET",
        headers,
        signal,
        // Memory stays flat: the stream stops reading the socket once this much waits for us.
        highWaterMark: 256 << 10,
      });
    } catch (error) {
      throw undiciError(error);
    }
    const got = gotFromUndici(response);
    const length = got.header("content-length");
    if (length !== undefined && !/^\s*\d+\s*$/.test(length)) {
      await got.cancel();
      throw new HttpError(`invalid Content-Length: ${JSON.stringify(length)}`, { retryable: false });
    }
    const location = got.header("location");
    if (!REDIRECTS.has(got.status) || location === undefined) return got;
    await got.cancel();
    if (hop >= MAX_REDIRECTS) {
      throw new HttpError(`more than ${MAX_REDIRECTS} redirects from ${url}`, { retryable: false });
    }
    const next = new URL(location, target);
    if (next.protocol !== "http:" && next.protocol !== "https:") {
      throw new HttpError(`redirect to a non-http(s) URL: ${next.protocol}`, { retryable: false });
    }
    target = next;
  }
}

function gotFromUndici(response: Dispatcher.ResponseData): Got {
  const body = response.body;
  const all = response.headers;
  return {
    status: response.statusCode,
    statusText: response.statusText ?? "",
    header(name) {
      const value = all[name.toLowerCase()];
      if (value === undefined) return undefined;
      return Array.isArray(value) ? value.join(", ") : value;
    },
    async pipe(sink) {
      try {
        await pipeQueued(body as AsyncIterable<Uint8Array>, sink);
      } catch (error) {
        throw undiciError(error);
      }
    },
    async cancel() {
      if (body.destroyed) return;
      // The body is not wanted: the connection goes (a big one would cost more to drain).
      body.on("error", () => {});
      body.destroy();
    },
  };
}

/**
 * Each piece to the sink; pieces may wait for the disk while reading goes on, up to QUEUE_LIMIT
 * bytes (the client hands out a fresh buffer per read, so a piece may be kept).
 */
async function pipeQueued(body: AsyncIterable<Uint8Array>, sink: BodySink): Promise<void> {
  const waiting: { done: Promise<void>; bytes: number }[] = [];
  let waitingBytes = 0;
  for await (const chunk of body) {
    const done = sink(chunk);
    if (!done) continue;
    // Awaited below, perhaps only later: a failure must not count as unhandled meanwhile.
    done.catch(() => {});
    waiting.push({ done, bytes: chunk.byteLength });
    waitingBytes += chunk.byteLength;
    while (waitingBytes >= QUEUE_LIMIT) {
      const oldest = waiting.shift()!;
      await oldest.done;
      waitingBytes -= oldest.bytes;
    }
  }
  await Promise.all(waiting.map((w) => w.done));
}
