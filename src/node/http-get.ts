// GET for large downloads on node:http / node:https: the platform's own client, used directly
// rather than through fetch because it streams a large body with less CPU per byte and lets
// us pause the socket while the disk catches up (backpressure), so memory stays flat.
// No cookies, no credentials (nothing is ever added to the headers given), redirects bounded.

import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";

/**
 * Receives the body, a piece at a time (the piece is the receiver's to keep: node:http hands
 * out a fresh buffer for every read). Returning a promise pauses the socket until it settles;
 * throwing (or rejecting) stops the download with that error.
 */
export type BodySink = (chunk: Uint8Array) => void | Promise<void>;

export interface HttpGetResponse {
  /** The URL that answered (after redirects). */
  url: string;
  status: number;
  statusText: string;
  /** A response header (lower-case name), several values joined with ", ". */
  header(name: string): string | undefined;
  /** Streams the body into `sink`; rejects when the connection fails or the body is cut short. */
  pipe(sink: BodySink): Promise<void>;
  /** Drops the connection (the body is not wanted). */
  cancel(): void;
}

export interface HttpGetOptions {
  headers?: Record<string, string> | undefined;
  signal?: AbortSignal | undefined;
  /** Redirects followed before giving up. Default 10. */
  maxRedirects?: number | undefined;
}

export class HttpGetError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "HttpGetError";
  }
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** GET `url`, following redirects; resolves once the response head has arrived. */
export async function httpGet(url: string | URL, options: HttpGetOptions = {}): Promise<HttpGetResponse> {
  let current = new URL(url);
  const maxRedirects = options.maxRedirects ?? 10;
  for (let hop = 0; ; hop++) {
    const message = await requestOnce(current, options);
    const location = message.headers.location;
    if (!REDIRECTS.has(message.statusCode ?? 0) || location === undefined) return wrap(current, message);
    message.destroy();
    if (hop >= maxRedirects) throw new HttpGetError(`more than ${maxRedirects} redirects from ${url}`);
    const next = new URL(location, current);
    if (next.protocol !== "http:" && next.protocol !== "https:") {
      throw new HttpGetError(`redirect to a non-http(s) URL: ${next.protocol}`);
    }
    current = next;
  }
}

function requestOnce(url: URL, options: HttpGetOptions): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const request = url.protocol === "https:" ? httpsRequest : httpRequest;
    const req = request(url, {
      method: "GET",
      // One connection per download: no agent pool to keep alive or to leak between hosts.
      agent: false,
      headers: { "accept-encoding": "identity", ...options.headers },
      signal: options.signal,
    });
    req.once("response", resolve);
    req.once("error", reject);
    req.end();
  });
}

function wrap(url: URL, message: IncomingMessage): HttpGetResponse {
  return {
    url: url.toString(),
    status: message.statusCode ?? 0,
    statusText: message.statusMessage ?? "",
    header(name) {
      const value = message.headers[name.toLowerCase()];
      return Array.isArray(value) ? value.join(", ") : value;
    },
    pipe(sink) {
      // 'data' events rather than an async iterator: no promise per chunk on a link that
      // delivers thousands of chunks a second. A promise from the sink pauses the socket
      // (backpressure) until it settles.
      return new Promise<void>((resolve, reject) => {
        let settled = false;
        const finish = (error?: unknown) => {
          if (settled) return;
          settled = true;
          message.off("data", onData);
          if (error === undefined) {
            resolve();
          } else {
            message.destroy();
            reject(error);
          }
        };
        const resume = () => {
          if (!settled) message.resume();
        };
        const onData = (chunk: Buffer) => {
          let wait: void | Promise<void>;
          try {
            wait = sink(chunk);
          } catch (error) {
            finish(error);
            return;
          }
          if (wait) {
            message.pause();
            wait.then(resume, finish);
          }
        };
        // node:http ends the stream quietly when a Content-Length body is cut short.
        const ended = () =>
          finish(
            message.complete
              ? undefined
              : new HttpGetError("the connection closed before the whole body arrived"),
          );
        message.on("data", onData);
        message.once("end", ended);
        message.once("close", ended);
        message.once("error", finish);
      });
    },
    cancel() {
      message.destroy();
    },
  };
}
