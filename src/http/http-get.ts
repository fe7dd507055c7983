// GET for large downloads, with memory that stays flat whatever the size of the file.
//
// Why not node:http: it hands out two fresh 64 KiB buffers for every read of the socket (the
// read itself, then a copy of the body bytes), and V8 frees them only when its external-memory
// pressure triggers a collection, about every 32 MB. A 200 MB download then holds ~35 MB of
// garbage at its peak, and pays for the allocations and copies besides.
//
// Here the socket reads straight into a small set of reusable 256 KiB slots (net's `onread`),
// a mature parser (http-parser-js) finds the body in them without copying, and the receiver gets
// views of the slots. A slot is read into again only once every piece of it has been consumed:
// when the sink's promise settles. With all slots busy the socket stops reading (backpressure).
//
// One connection per request (`Connection: close`), no cookies, no credentials (only Host,
// Connection and Accept-Encoding are added to the headers given), redirects bounded.

import { isIP, connect as netConnect, type Socket } from "node:net";
import { type ConnectionOptions, rootCertificates, connect as tlsConnect } from "node:tls";
import { HTTPParser, type ParsedHead } from "http-parser-js";
import { HttpError } from "./http-error.js";
import { connectForAbsoluteForm, connectThroughTunnel, proxyAuthorization } from "./proxy-connect.js";
import { proxyFor } from "./proxy-env.js";

/**
 * Receives the body, a piece at a time. The piece is a view of a reused buffer: it stays valid
 * until the sink returns or, if the sink returns a promise, until that promise settles (reading
 * goes on into other buffers meanwhile, up to `bufferBytes`). Throwing or rejecting stops the
 * download with that error.
 */
export type BodySink = (chunk: Uint8Array) => void | Promise<void>;

export interface HttpGetResponse {
  /** The URL that answered (after redirects). */
  url: string;
  status: number;
  statusText: string;
  /** A response header (lower-case name), several values joined with ", ". */
  header(name: string): string | undefined;
  /**
   * Streams the body into `sink`; resolves once the whole body has arrived and every promise
   * the sink returned has settled. Rejects when the connection fails or the body is cut short.
   */
  pipe(sink: BodySink): Promise<void>;
  /** Drops the connection (the body is not wanted). */
  cancel(): void;
}

export interface HttpGetOptions {
  headers?: Record<string, string> | undefined;
  signal?: AbortSignal | undefined;
  /** Redirects followed before giving up. Default 10. */
  maxRedirects?: number | undefined;
  /** Most body bytes held for the sink at once, in 256 KiB slots. Default 2 MiB. */
  bufferBytes?: number | undefined;
  /** Extra trusted CA certificates for https (PEM), on top of Node's own store. */
  ca?: string | Buffer | undefined;
}

/** The socket client's errors are the shared {@link HttpError}s (the old name stays). */
export { HttpError as HttpGetError };

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** A read's size at most: loopback and fast links deliver well over 64 KiB per read. */
const SLOT_BYTES = 256 << 10;
const DEFAULT_BUFFER_BYTES = 2 << 20;
/** Free slots kept between requests, so a batch of downloads does not allocate for each. */
const POOL_LIMIT = 16;
const pool: Buffer[] = [];

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Visible Latin-1 and tabs only: no line breaks, no control characters. */
const SAFE_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
/** The current slot is left for a fresh one when less room than this is left in it. */
const MIN_READ_BYTES = 64 << 10;
/** Handed to a socket that is being destroyed, in place of a slot. */
const SCRATCH = Buffer.alloc(64);

/** GET `url`, following redirects; resolves once the response head has arrived. */
export async function httpGet(url: string | URL, options: HttpGetOptions = {}): Promise<HttpGetResponse> {
  let current = new URL(url);
  const maxRedirects = options.maxRedirects ?? 10;
  for (let hop = 0; ; hop++) {
    const exchange = new Exchange(current, options);
    const response = await exchange.head;
    const location = response.header("location");
    if (!REDIRECTS.has(response.status) || location === undefined) return response;
    response.cancel();
    if (hop >= maxRedirects)
      throw new HttpError(`more than ${maxRedirects} redirects from ${url}`, { retryable: false });
    const next = new URL(location, current);
    if (next.protocol !== "http:" && next.protocol !== "https:") {
      throw new HttpError(`redirect to a non-http(s) URL: ${next.protocol}`, { retryable: false });
    }
    current = next;
  }
}

/**
 * The request line and headers, refusing anything that could split the request. Through a
 * proxy (plain http only: https goes through a tunnel) the target is in absolute form.
 */
function requestText(url: URL, headers: Record<string, string> | undefined, proxy?: URL): string {
  const all = new Map<string, string>([["accept-encoding", "identity"]]);
  for (const [name, value] of Object.entries(headers ?? {})) all.set(name.toLowerCase(), value);
  // One request per connection: the body's end is the response's end, never a pooled socket.
  all.set("connection", "close");
  all.delete("host");
  all.delete("proxy-authorization");
  const target = proxy ? `${url.origin}${url.pathname}${url.search}` : `${url.pathname}${url.search}`;
  const lines = [`GET ${target} HTTP/1.1`, `Host: ${url.host}`];
  const auth = proxy && proxyAuthorization(proxy);
  if (auth) lines.push(`Proxy-Authorization: ${auth}`);
  for (const [name, value] of all) {
    if (!TOKEN.test(name) || !SAFE_VALUE.test(value)) {
      throw new HttpError(`invalid request header ${JSON.stringify(name)}`, { retryable: false });
    }
    lines.push(`${name}: ${value}`);
  }
  return `${lines.join("\r\n")}\r\n\r\n`;
}

/**
 * One request on its own connection, and its response.
 *
 * Reading: the socket reads into `#slots[#current]` from `#offset` on (several reads may share
 * a slot: TLS delivers 16 KiB records). The bytes from `#offset` to the slot's end are never
 * anyone's, so wherever the socket writes next is free. A slot holds pieces handed to the sink
 * until their promises settle (`#holds`); the socket moves on to a free slot when the current one
 * is nearly full, and stops reading when no slot would be left to move on to.
 */
class Exchange {
  readonly head: Promise<HttpGetResponse>;
  readonly #url: URL;
  /** Undefined while a proxy tunnel is being opened. */
  #socket: Socket | undefined;
  readonly #parser = new HTTPParser(HTTPParser.RESPONSE);
  readonly #signal: AbortSignal | undefined;
  readonly #maxSlots: number;

  readonly #slots: Buffer[] = [];
  /** Pieces of each slot not yet given back by the sink. */
  readonly #holds: number[] = [];
  /** Slots other than the current one that hold nothing. */
  readonly #free: number[] = [];
  #current: number;
  #offset = 0;
  /** The slot being parsed (its pieces are counted against it). */
  #readSlot = -1;

  #resolveHead!: (response: HttpGetResponse) => void;
  #rejectHead!: (error: unknown) => void;
  #headDone = false;
  #headError: HttpError | undefined;
  readonly #headers = new Map<string, string>();

  #sink: BodySink | undefined;
  /** Body pieces that arrived with the head, before pipe() was called. */
  #early: { piece: Buffer; slot: number }[] = [];
  /** Promises from the sink not settled yet, and the slots waiting on the latest one. */
  #outstanding = 0;
  #lastWait: Promise<void> | undefined;
  #lastGroup: number[] = [];
  #complete = false;
  #error: unknown;
  #finished = false;
  #resolvePipe: (() => void) | undefined;
  #rejectPipe: ((error: unknown) => void) | undefined;

  /** Reading is stopped: until pipe() (after the head), or until a slot frees up. */
  #waitingForPipe = false;
  #waitingForSlot = false;

  constructor(url: URL, options: HttpGetOptions) {
    this.#url = url;
    this.#signal = options.signal;
    this.#maxSlots = Math.max(2, Math.floor((options.bufferBytes ?? DEFAULT_BUFFER_BYTES) / SLOT_BYTES));
    const proxy = proxyFor(url);
    const request = requestText(url, options.headers, url.protocol === "http:" ? proxy : undefined);
    this.#current = this.#newSlot();
    this.head = new Promise((resolve, reject) => {
      this.#resolveHead = resolve;
      this.#rejectHead = reject;
    });

    const parser = this.#parser;
    parser[HTTPParser.kOnHeadersComplete] = (head) => this.#onHead(head);
    parser[HTTPParser.kOnBody] = (chunk, start, length) =>
      this.#onBody(start === 0 && length === chunk.length ? chunk : chunk.subarray(start, start + length));
    parser[HTTPParser.kOnMessageComplete] = () => this.#onComplete();

    const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
    const onread = {
      // After the exchange finished (the socket is destroyed, nothing more is read) the slots are gone.
      buffer: () => this.#slots[this.#current]?.subarray(this.#offset) ?? SCRATCH,
      callback: (bytes: number) => this.#onRead(bytes),
    };
    const tlsOptions: ConnectionOptions = {
      host,
      port: Number(url.port || 443),
      servername: isIP(host) === 0 ? host : undefined,
      ALPNProtocols: ["http/1.1"],
      ca: options.ca === undefined ? undefined : [...rootCertificates, options.ca],
    };
    if (proxy !== undefined && url.protocol === "https:") {
      connectThroughTunnel(url, proxy, tlsOptions, options.signal).then(
        (socket) => {
          if (this.#finished) socket.destroy();
          else this.#attach(socket, request, true);
        },
        (error: unknown) => this.#fail(error),
      );
    } else if (proxy !== undefined) {
      this.#attach(connectForAbsoluteForm(proxy, onread), request, false);
    } else if (url.protocol === "https:") {
      // `onread` is a documented option of tls.connect that @types/node does not list.
      this.#attach(tlsConnect({ ...tlsOptions, onread } as ConnectionOptions), request, false);
    } else {
      this.#attach(netConnect({ host, port: Number(url.port || 80), onread }), request, false);
    }

    if (this.#signal) {
      if (this.#signal.aborted) this.#fail(this.#abortReason());
      else this.#signal.addEventListener("abort", this.#onAbort, { once: true });
    }
  }

  /**
   * Starts the exchange on a connected socket. `viaData`: the socket delivers through 'data'
   * events (TLS inside a proxy tunnel), whose pieces are copied into the slots.
   */
  #attach(socket: Socket, request: string, viaData: boolean): void {
    this.#socket = socket;
    socket.on("error", (error) => this.#fail(error));
    socket.on("end", () => this.#onEnd());
    socket.on("close", () => this.#onEnd());
    if (viaData) socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    // With `onread` nothing is pushed into the stream; flowing mode lets 'end' be emitted.
    else socket.resume();
    socket.write(request);
  }

  /** A piece from a socket read through 'data': copied into the slots, then parsed as a read. */
  #onData(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length && !this.#finished && !this.#complete) {
      const slot = this.#slots[this.#current];
      if (slot === undefined) return;
      const n = Math.min(chunk.length - at, slot.length - this.#offset);
      chunk.copy(slot, this.#offset, at, at + n);
      at += n;
      // #advance (inside) always leaves room in the current slot, even when asked to stop.
      if (!this.#onRead(n) && at >= chunk.length) break;
    }
    if (this.#waitingForSlot || this.#waitingForPipe) this.#socket?.pause();
  }

  #onAbort = () => this.#fail(this.#abortReason());

  #abortReason(): unknown {
    return this.#signal?.reason ?? new DOMException("This operation was aborted", "AbortError");
  }

  #newSlot(): number {
    this.#slots.push(pool.pop() ?? Buffer.allocUnsafeSlow(SLOT_BYTES));
    this.#holds.push(0);
    return this.#slots.length - 1;
  }

  /** `bytes` were read into the current slot at #offset. Returns false to stop reading for now. */
  #onRead(bytes: number): boolean {
    if (this.#finished || this.#complete) return false;
    const slot = this.#current;
    const start = this.#offset;
    this.#offset += bytes;
    this.#readSlot = slot;
    let result: number | Error;
    try {
      result = this.#parser.execute(this.#slots[slot]!, start, bytes);
    } catch (error) {
      result = error instanceof Error ? error : new Error(String(error));
    }
    this.#readSlot = -1;
    if (this.#finished) return false;
    if (this.#headError) {
      this.#fail(this.#headError);
      return false;
    }
    if (this.#complete) {
      // The whole response is in: nothing more is read on this connection.
      this.#socket?.destroy();
      this.#settle();
      return false;
    }
    if (result instanceof Error) {
      this.#fail(
        new HttpError(`malformed HTTP response: ${result.message}`, { cause: result, retryable: false }),
      );
      return false;
    }
    this.#advance();
    return !this.#waitingForSlot && !this.#waitingForPipe;
  }

  /** Keeps free room under the socket's next read: a fresh slot when the current one fills up. */
  #advance(): void {
    const slot = this.#current;
    if (this.#holds[slot] === 0) {
      // Nothing in it is anyone's any more: read into it again from the start.
      this.#offset = 0;
    } else if (SLOT_BYTES - this.#offset < MIN_READ_BYTES) {
      // Beyond the limit only if reading went on after it was asked to stop (TLS hands over
      // records it already decrypted): a little more memory rather than overwritten data.
      this.#current = this.#free.pop() ?? this.#newSlot();
      this.#offset = 0;
    }
    if (this.#free.length === 0 && this.#slots.length >= this.#maxSlots) this.#waitingForSlot = true;
  }

  #onHead(head: ParsedHead): boolean {
    // Interim responses (100 Continue, 103 Early Hints): the real one follows.
    if (head.statusCode >= 100 && head.statusCode < 200) return true;
    for (let i = 0; i + 1 < head.headers.length; i += 2) {
      const name = head.headers[i]!.toLowerCase();
      const value = head.headers[i + 1]!;
      const seen = this.#headers.get(name);
      this.#headers.set(name, seen === undefined ? value : `${seen}, ${value}`);
    }
    const length = this.#headers.get("content-length");
    if (length !== undefined && !/^\s*\d+\s*$/.test(length)) {
      // Thrown from here, the parser would rethrow it out of the socket's read callback.
      this.#headError = new HttpError(`invalid Content-Length: ${JSON.stringify(length)}`, {
        retryable: false,
      });
      return true;
    }
    this.#headDone = true;
    this.#waitingForPipe = true;
    this.#resolveHead(this.#response(head));
    // No body for these, whatever the headers say.
    return head.statusCode === 204 || head.statusCode === 304;
  }

  #onBody(piece: Buffer): void {
    if (piece.byteLength === 0 || this.#finished || this.#complete || this.#headError) return;
    const slot = this.#readSlot;
    if (this.#sink === undefined) {
      this.#early.push({ piece, slot });
      this.#holds[slot]!++;
      return;
    }
    this.#deliver(piece, slot);
  }

  #deliver(piece: Buffer, slot: number): void {
    let wait: void | Promise<void>;
    try {
      wait = this.#sink!(piece);
    } catch (error) {
      this.#fail(error);
      return;
    }
    if (!wait) return;
    this.#holds[slot]!++;
    // Consecutive pieces usually get the same promise back (one disk write carries them all):
    // one reaction for the group rather than one per piece.
    if (wait === this.#lastWait) {
      this.#lastGroup.push(slot);
      return;
    }
    const group = [slot];
    this.#lastWait = wait;
    this.#lastGroup = group;
    this.#outstanding++;
    wait.then(
      () => {
        if (this.#lastWait === wait) this.#lastWait = undefined;
        this.#outstanding--;
        for (const held of group) this.#release(held);
        this.#settle();
      },
      (error: unknown) => {
        if (this.#lastWait === wait) this.#lastWait = undefined;
        this.#outstanding--;
        this.#fail(error);
      },
    );
  }

  /** One piece of `slot` is given back; a slot holding nothing (not the current) is free again. */
  #release(slot: number): void {
    if (--this.#holds[slot]! > 0 || slot === this.#current || this.#finished) return;
    this.#free.push(slot);
    if (this.#waitingForSlot) {
      this.#waitingForSlot = false;
      this.#resume();
    }
  }

  #resume(): void {
    if (this.#waitingForSlot || this.#waitingForPipe || this.#finished || this.#complete) return;
    // Restarts reading if it was stopped; a no-op on a socket that is reading.
    this.#socket?.resume();
  }

  #onComplete(): void {
    // The completion of an interim (1xx) response: the parser goes on to the real one.
    if (!this.#headDone || this.#complete) return;
    this.#complete = true;
  }

  #onEnd(): void {
    if (this.#finished) return;
    // A close-delimited body ends here; anything else is a cut.
    if (!this.#complete && this.#headDone) this.#parser.finish();
    if (this.#complete) {
      this.#settle();
      return;
    }
    this.#fail(
      new HttpError(
        this.#headDone
          ? "the connection closed before the whole body arrived"
          : "the connection closed before a response arrived",
      ),
    );
  }

  /** Finishes the exchange once the body is complete and the sink is done with every piece. */
  #settle(): void {
    if (!this.#complete || this.#finished || this.#sink === undefined || this.#outstanding > 0) return;
    this.#finish();
    this.#resolvePipe?.();
  }

  #fail(error: unknown): void {
    if (this.#finished) return;
    this.#error = error;
    this.#finish();
    if (!this.#headDone) this.#rejectHead(error);
    this.#rejectPipe?.(error);
  }

  #finish(): void {
    this.#finished = true;
    this.#signal?.removeEventListener("abort", this.#onAbort);
    this.#socket?.destroy();
    this.#early = [];
    // Slots nobody holds go back to the pool; a held one is left to the garbage collector.
    for (let i = 0; i < this.#slots.length; i++) {
      if (this.#holds[i] === 0 && pool.length < POOL_LIMIT) pool.push(this.#slots[i]!);
    }
    this.#slots.length = 0;
    this.#free.length = 0;
  }

  #response(head: ParsedHead): HttpGetResponse {
    return {
      url: this.#url.toString(),
      status: head.statusCode,
      statusText: head.statusMessage,
      header: (name) => this.#headers.get(name.toLowerCase()),
      pipe: (sink) => this.#pipe(sink),
      cancel: () => {
        if (!this.#finished) this.#fail(new HttpError("cancelled"));
      },
    };
  }

  #pipe(sink: BodySink): Promise<void> {
    if (this.#sink !== undefined) return Promise.reject(new HttpError("the body can be read only once"));
    // Before a sink is given, the exchange can only have finished by failing (or being cancelled).
    if (this.#finished) return Promise.reject(this.#error);
    this.#sink = sink;
    const done = new Promise<void>((resolve, reject) => {
      this.#resolvePipe = resolve;
      this.#rejectPipe = reject;
    });
    const early = this.#early;
    this.#early = [];
    for (const { piece, slot } of early) {
      this.#holds[slot]!--;
      if (this.#finished) break;
      this.#deliver(piece, slot);
    }
    if (!this.#finished) {
      for (const slot of new Set(early.map((e) => e.slot))) {
        if (this.#holds[slot] === 0 && slot !== this.#current) this.#free.push(slot);
      }
      if (this.#free.length > 0) this.#waitingForSlot = false;
      this.#waitingForPipe = false;
      this.#resume();
      this.#settle();
    }
    return done;
  }
}
