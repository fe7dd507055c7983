// The one place HTTP happens for the service: URL building, the token (sent to the API
// origin only), per-attempt timeouts, body parsing, error mapping and retries.

import {
  AbortError,
  AuthenticationError,
  ConnectionError,
  type FieldProblem,
  InsufficientBalanceError,
  InvalidInputError,
  NotFoundError,
  PermissionDeniedError,
  RateLimitError,
  RunComfyError,
  ServerError,
  SubmissionUnknownError,
  TimeoutError,
  UnexpectedResponseError,
} from "./errors.js";
import { asRecord } from "./parse.js";
import { redactSecrets, registerSecret } from "./redact.js";
import { backoffDelay, isRetryableStatus, parseRetryAfter, type RetryPolicy } from "./retry.js";
import { abortErrorFrom, sleep } from "./sleep.js";

export const DEFAULT_BASE_URL = "https://model-api.runcomfy.net";

/** Reads may be repeated freely; a cancel is idempotent; a submit is not. */
export type CallKind = "read" | "cancel" | "submit";

export interface RequestInfo {
  kind: CallKind;
  method: string;
  url: string;
  attempt: number;
}

export interface ResponseInfo extends RequestInfo {
  status: number;
  retryAfterMs: number | undefined;
}

export interface TransportHooks {
  /** Awaited before every attempt (a shared rate limiter plugs in here). */
  beforeRequest?: (info: RequestInfo) => void | Promise<void>;
  /** Called after every response that had an HTTP status. */
  afterResponse?: (info: ResponseInfo) => void;
  /** Called before sleeping for a retry. */
  onRetry?: (info: RequestInfo & { delayMs: number; error: RunComfyError }) => void;
}

export type TokenSource = string | (() => string | Promise<string>);

/** The response headers, as the client reads them. */
export interface HeadersLike {
  get(name: string): string | null;
}

/** The part of a fetch `Response` the client uses. */
export interface ResponseLike {
  status: number;
  headers: HeadersLike;
  text(): Promise<string>;
}

/** What the client sends: redirects are never followed (the token must not travel with one). */
export interface FetchInit {
  method: string;
  headers: Record<string, string>;
  body?: string | undefined;
  signal: AbortSignal;
  redirect: "manual";
}

/**
 * How the client makes an HTTP call. The global `fetch` is one (the default, in every runtime);
 * in Node, `nodeFetch` from `dreamina-i2v/node` does the same on undici (honouring HTTPS_PROXY/HTTP_PROXY/NO_PROXY) with less CPU per call.
 */
export type FetchLike = (url: string, init: FetchInit) => Promise<ResponseLike>;

export interface TransportConfig {
  baseUrl: string;
  token: () => Promise<string>;
  fetch: FetchLike;
  timeoutMs: number;
  retry: RetryPolicy;
  userAgent: string;
  hooks: TransportHooks;
  random: () => number;
}

export interface CallOptions {
  signal?: AbortSignal | undefined;
  /** Overrides the client's per-request timeout. */
  timeoutMs?: number | undefined;
}

export interface RequestSpec extends CallOptions {
  kind: CallKind;
  method: "GET" | "POST";
  /** Path below `/v1`, already encoded, starting with `/`. */
  path: string;
  query?: Record<string, string | number | boolean | undefined> | undefined;
  body?: unknown;
  requestId?: string | undefined;
  /** For submits: what a SubmissionUnknownError should carry. */
  submit?: { modelId: string; input: unknown } | undefined;
}

export interface HttpReply {
  status: number;
  headers: HeadersLike;
  body: Record<string, unknown>;
}

/** `https://host` or `https://host/v1` (as RUNCOMFY_MODEL_API_BASE has it) → the `/v1` root. */
export function apiRoot(baseUrl: string): string {
  const url = new URL(baseUrl);
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new TypeError(`baseUrl must be an http(s) URL, got ${url.protocol}`);
  }
  url.search = "";
  url.hash = "";
  const path = url.pathname.replace(/\/+$/, "").replace(/\/v1$/, "");
  return `${url.origin}${path}/v1`;
}

export class Transport {
  readonly root: string;
  readonly origin: string;
  readonly #config: TransportConfig;

  constructor(config: TransportConfig) {
    this.#config = config;
    this.root = apiRoot(config.baseUrl);
    this.origin = new URL(this.root).origin;
  }

  url(path: string, query?: RequestSpec["query"]): string {
    return this.#build(path, query).href;
  }

  #build(path: string, query?: RequestSpec["query"]): URL {
    const url = new URL(this.root + path);
    if (query)
      for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, String(v));
    return url;
  }

  async request(spec: RequestSpec): Promise<HttpReply> {
    const { retry, hooks, random } = this.#config;
    const started = Date.now();
    // Parsed once per call (not per attempt): the href to fetch and whether it is the API origin.
    const built = this.#build(spec.path, spec.query);
    const url = built.href;
    const toApi = built.origin === this.origin;
    for (let attempt = 1; ; attempt++) {
      const info: RequestInfo = { kind: spec.kind, method: spec.method, url, attempt };
      let error: RunComfyError;
      try {
        await hooks.beforeRequest?.(info);
        return await this.#attempt(spec, url, toApi, info);
      } catch (err) {
        if (!(err instanceof RunComfyError)) throw err;
        error = err;
      }
      if (!this.#mayRetry(spec.kind, error)) throw error;
      const delayMs = backoffDelay(attempt, retry, error.retryAfterMs, random);
      const outOfTime = Date.now() + delayMs - started > retry.maxElapsedMs;
      if (attempt >= retry.maxAttempts || outOfTime) throw error;
      hooks.onRetry?.({ ...info, delayMs, error });
      await sleep(delayMs, spec.signal, spec.requestId);
    }
  }

  #mayRetry(kind: CallKind, error: RunComfyError): boolean {
    if (error instanceof AbortError || error instanceof SubmissionUnknownError) return false;
    if (kind === "submit") {
      // Only when the service certainly did not take the job.
      return error instanceof RateLimitError || (error instanceof ConnectionError && error.beforeSend);
    }
    return error.retryable;
  }

  async #attempt(spec: RequestSpec, url: string, toApi: boolean, info: RequestInfo): Promise<HttpReply> {
    const timeoutMs = spec.timeoutMs ?? this.#config.timeoutMs;
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    const onAbort = () => controller.abort();
    if (spec.signal?.aborted) {
      clearTimeout(timer);
      throw abortErrorFrom(spec.signal, spec.requestId);
    }
    spec.signal?.addEventListener("abort", onAbort, { once: true });

    // Once the request may have left, an abort on a submit is as ambiguous as a cut connection.
    const fail = (err: unknown): RunComfyError => {
      const base = spec.signal?.aborted
        ? abortErrorFrom(spec.signal, spec.requestId)
        : timedOut
          ? new TimeoutError(`${spec.method} ${url} timed out after ${timeoutMs} ms`, {
              requestId: spec.requestId,
              retryable: true,
            })
          : connectionError(err, spec, url);
      return this.#submitUnknownIfAmbiguous(spec, base);
    };

    try {
      const headers: Record<string, string> = { Accept: "application/json" };
      // Belt and braces: URLs are always built from our own root, but the token goes nowhere else.
      if (toApi) {
        const token = await this.#config.token();
        registerSecret(token);
        headers.Authorization = `Bearer ${token}`;
      }
      if (this.#config.userAgent) headers["User-Agent"] = this.#config.userAgent;
      let payload: string | undefined;
      if (spec.body !== undefined) {
        headers["Content-Type"] = "application/json";
        payload = JSON.stringify(spec.body);
      }
      // Aborted while the token was fetched: nothing has been sent.
      if (spec.signal?.aborted) throw abortErrorFrom(spec.signal, spec.requestId);
      let response: ResponseLike;
      try {
        response = await this.#config.fetch(url, {
          method: spec.method,
          headers,
          body: payload,
          signal: controller.signal,
          // A redirect could carry the Authorization header to another host: never follow one.
          redirect: "manual",
        });
      } catch (err) {
        throw fail(err);
      }
      let text: string;
      try {
        text = await response.text();
      } catch (err) {
        throw fail(err);
      }
      const retryAfterMs = parseRetryAfter(response.headers.get("retry-after"));
      this.#config.hooks.afterResponse?.({ ...info, status: response.status, retryAfterMs });
      // Parsed once: the same object decides the error and is the reply's body.
      const json = parseJsonObject(text);
      const error = interpretParsed(response.status, text, json, spec, retryAfterMs);
      if (error) throw this.#submitUnknownIfAmbiguous(spec, error);
      return { status: response.status, headers: response.headers, body: json ?? {} };
    } finally {
      clearTimeout(timer);
      spec.signal?.removeEventListener("abort", onAbort);
    }
  }

  /** On a submit, anything that is not a definite refusal means "may have been accepted". */
  #submitUnknownIfAmbiguous(spec: RequestSpec, error: RunComfyError): RunComfyError {
    if (spec.kind !== "submit" || !spec.submit) return error;
    const definite =
      error instanceof RateLimitError ||
      (error instanceof ConnectionError && error.beforeSend) ||
      error instanceof AuthenticationError ||
      error instanceof PermissionDeniedError ||
      error instanceof NotFoundError ||
      error instanceof InsufficientBalanceError ||
      error instanceof InvalidInputError;
    if (definite) return error;
    return new SubmissionUnknownError(
      `The submit's outcome is unknown (${error.message}). The job may have been accepted and billed; ` +
        "it was not sent again.",
      {
        status: error.status,
        errorCode: error.errorCode,
        body: error.body,
        cause: error,
        modelId: spec.submit.modelId,
        input: spec.submit.input,
      },
    );
  }
}

// Error codes that show the request never got past the first hop.
const NOT_SENT_CODES = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EADDRNOTAVAIL", "ENETUNREACH"]);

function connectionError(err: unknown, spec: RequestSpec, url: string): ConnectionError {
  const code = errorCode(err);
  const beforeSend = code !== undefined && NOT_SENT_CODES.has(code);
  const detail = code ?? (err instanceof Error ? err.message : String(err));
  return new ConnectionError(`${spec.method} ${url} failed: ${detail}`, {
    requestId: spec.requestId,
    beforeSend,
    cause: err,
  });
}

function errorCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

function parseJsonObject(text: string): Record<string, unknown> | undefined {
  try {
    return asRecord(JSON.parse(text));
  } catch {
    return undefined;
  }
}

function describeBody(text: string): string {
  const t = text.trim();
  if (t === "") return "an empty body";
  if (/^<(!doctype|html|head|body)/i.test(t)) return "an HTML page";
  return "a body that is not a JSON object";
}

/** Maps one response to the error it means, or undefined when it is a success. */
export function interpretResponse(
  status: number,
  headers: HeadersLike,
  text: string,
  spec: Pick<RequestSpec, "kind" | "method" | "requestId">,
  retryAfterMs: number | undefined = parseRetryAfter(headers.get("retry-after")),
): RunComfyError | undefined {
  return interpretParsed(status, text, parseJsonObject(text), spec, retryAfterMs);
}

/** {@link interpretResponse} with the body already parsed (`json`: undefined when not an object). */
function interpretParsed(
  status: number,
  text: string,
  json: Record<string, unknown> | undefined,
  spec: Pick<RequestSpec, "kind" | "method" | "requestId">,
  retryAfterMs: number | undefined,
): RunComfyError | undefined {
  const options = {
    status,
    requestId: spec.requestId,
    body: json ?? redactSecrets(text).slice(0, 2000),
    retryAfterMs,
  };
  const errorCodeValue = json ? Number(json.error_code) : Number.NaN;
  const hasErrorCode = json !== undefined && json.error_code !== undefined && json.error_code !== null;
  if (status >= 200 && status < 300 && !hasErrorCode) {
    if (json) return undefined;
    return new UnexpectedResponseError(
      `Expected JSON from the service but got ${describeBody(text)} (HTTP ${status})`,
      {
        ...options,
        retryable: spec.kind !== "submit",
      },
    );
  }
  if (status === 0 || (status >= 300 && status < 400)) {
    return new UnexpectedResponseError(
      `The service answered with a redirect (HTTP ${status}); not followed`,
      options,
    );
  }
  const code = Number.isFinite(errorCodeValue) ? errorCodeValue : undefined;
  const message = json ? serviceMessage(json) : undefined;
  const what = `${message ?? (json ? "error" : describeBody(text))} (HTTP ${status}${code ? `, error_code ${code}` : ""})`;
  const withCode = { ...options, errorCode: code };

  if (code === 400004 || status === 401)
    return new AuthenticationError(`Authentication failed: ${what}`, withCode);
  if (code === 403001 || status === 403)
    return new PermissionDeniedError(`Permission denied: ${what}`, withCode);
  if (code === 404001 || status === 404) return new NotFoundError(`Not found: ${what}`, withCode);
  if (code === 400002 || status === 402)
    return new InsufficientBalanceError(`Insufficient balance: ${what}`, withCode);
  if (status === 429) return new RateLimitError(`Rate limited: ${what}`, withCode);
  if (code === 400001 || status === 400 || status === 422) {
    return new InvalidInputError(`Invalid input: ${what}`, {
      ...withCode,
      detail: fieldProblems(json?.detail),
    });
  }
  if (status === 408) return new TimeoutError(`Request timeout: ${what}`, { ...withCode, retryable: true });
  if (status >= 500) return new ServerError(`Server error: ${what}`, { ...withCode, retryable: true });
  return new UnexpectedResponseError(`Unexpected response: ${what}`, {
    ...withCode,
    retryable: isRetryableStatus(status),
  });
}

function serviceMessage(json: Record<string, unknown>): string | undefined {
  for (const key of ["error_message", "message", "error"]) {
    const value = json[key];
    if (typeof value === "string" && value.trim()) return value;
  }
  return undefined;
}

/** `detail` arrives in several shapes (FastAPI-style `{loc,msg}`, `{field,message}`, strings). */
export function fieldProblems(detail: unknown): FieldProblem[] {
  if (detail === undefined || detail === null) return [];
  const items = Array.isArray(detail) ? detail : [detail];
  return items.map((item) => {
    if (typeof item === "string") return { field: undefined, message: item, raw: item };
    const record = asRecord(item) ?? {};
    const loc = Array.isArray(record.loc)
      ? record.loc.filter((p) => p !== "body").join(".")
      : typeof record.field === "string"
        ? record.field
        : typeof record.path === "string"
          ? record.path
          : undefined;
    const message = [record.msg, record.message, record.error].find((m) => typeof m === "string") as
      | string
      | undefined;
    return { field: loc || undefined, message: message ?? JSON.stringify(item), raw: item };
  });
}
