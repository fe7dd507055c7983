// RunComfyClient: the typed protocol client. One method per endpoint of the service,
// every one abortable, each returning camelCase fields plus the raw body.

import { MissingTokenError, SubmissionUnknownError } from "./errors.js";
import {
  asRecord,
  parseCancel,
  parseModel,
  parseModelList,
  parseResult,
  parseStatus,
  parseSubmit,
} from "./parse.js";
import { registerSecret } from "./redact.js";
import { isRequestId, REQUEST_ID_RULE } from "./request-id.js";
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from "./retry.js";
import { TOKEN_ENV_VARS, TOKEN_FILE_HINT, tokenFromEnv } from "./token.js";
import {
  type CallOptions,
  DEFAULT_BASE_URL,
  type FetchLike,
  type TokenSource,
  Transport,
  type TransportHooks,
} from "./transport.js";
import type {
  CancelResult,
  JobResult,
  ListModelsParams,
  ModelList,
  ModelSummary,
  StatusResult,
  SubmitResult,
} from "./types.js";
import { VERSION } from "./version.js";

export interface RunComfyClientOptions {
  /** A token, or a function that returns one (called before each request, so it may rotate). */
  token?: TokenSource;
  /** `https://model-api.runcomfy.net` by default; a value ending in `/v1` is accepted too. */
  baseUrl?: string;
  /**
   * An injectable fetch (a proxy agent, a test server's, another runtime's). Default: the global
   * `fetch`; in Node, `nodeFetch` from `dreamina-i2v/node` costs less CPU per call.
   */
  fetch?: FetchLike;
  /** Per-request timeout, each attempt. Default 30 s. */
  timeoutMs?: number;
  /** Retry policy for reads and cancel; a submit is retried only when certainly not taken. */
  retry?: Partial<RetryPolicy>;
  userAgent?: string;
  hooks?: TransportHooks;
  /** Random source for backoff jitter (tests make it deterministic). */
  random?: () => number;
}

function checkRequestId(requestId: string): string {
  if (!isRequestId(requestId)) {
    throw new TypeError(`request_id must match ${REQUEST_ID_RULE} (got ${JSON.stringify(requestId)})`);
  }
  return requestId;
}

/** Model ids contain slashes, which stay as path separators; each segment is encoded. */
function modelPath(modelId: string): string {
  if (typeof modelId !== "string" || modelId.trim() === "")
    throw new TypeError("modelId must be a non-empty string");
  return modelId
    .split("/")
    .filter((s) => s !== "")
    .map((s) => encodeURIComponent(s))
    .join("/");
}

export class RunComfyClient {
  readonly #transport: Transport;
  readonly baseUrl: string;
  readonly models: {
    list: (params?: ListModelsParams, options?: CallOptions) => Promise<ModelList>;
    get: (modelId: string, options?: CallOptions) => Promise<ModelSummary>;
  };

  constructor(options: RunComfyClientOptions = {}) {
    const source = options.token;
    if (typeof source === "string") registerSecret(source);
    const baseUrl = options.baseUrl ?? DEFAULT_BASE_URL;
    this.#transport = new Transport({
      baseUrl,
      token: async () => {
        const token = typeof source === "function" ? await source() : source;
        if (token?.trim()) return token.trim();
        if (source !== undefined) throw new MissingTokenError(["the token option (it was empty)"]);
        const fromEnv = tokenFromEnv();
        if (fromEnv) return fromEnv.token;
        throw new MissingTokenError(
          ["the token option", ...TOKEN_ENV_VARS.map((v) => `$${v}`)],
          TOKEN_FILE_HINT,
        );
      },
      fetch: options.fetch ?? ((input, init) => globalThis.fetch(input, init)),
      timeoutMs: options.timeoutMs ?? 30_000,
      retry: { ...DEFAULT_RETRY_POLICY, ...options.retry },
      userAgent: options.userAgent ?? `dreamina-i2v/${VERSION}`,
      hooks: options.hooks ?? {},
      random: options.random ?? Math.random,
    });
    this.baseUrl = this.#transport.root;
    this.models = {
      list: async (params = {}, callOptions = {}) => {
        const reply = await this.#transport.request({
          ...callOptions,
          kind: "read",
          method: "GET",
          path: "/models",
          query: {
            limit: params.limit,
            offset: params.offset,
            search: params.search,
            category: params.category,
            include_schema: params.includeSchema,
          },
        });
        return parseModelList(reply.body);
      },
      get: async (modelId, callOptions = {}) => {
        const reply = await this.#transport.request({
          ...callOptions,
          kind: "read",
          method: "GET",
          path: `/models/${modelPath(modelId)}`,
        });
        return parseModel(reply.body);
      },
    };
  }

  /** The URL of an endpoint, as this client would call it. */
  url(path: string): string {
    return this.#transport.url(path);
  }

  /**
   * Submit a job. Retried only when the service certainly did not take it (429, connection
   * refused before sending). Any other doubt throws SubmissionUnknownError: never resubmitted.
   */
  async submit(modelId: string, input: unknown, options: CallOptions = {}): Promise<SubmitResult> {
    const reply = await this.#transport.request({
      ...options,
      kind: "submit",
      method: "POST",
      path: `/models/${modelPath(modelId)}`,
      body: input,
      submit: { modelId, input },
    });
    const parsed = parseSubmit(reply.body);
    if (!parsed || !isRequestId(parsed.requestId)) {
      throw new SubmissionUnknownError(
        `The service accepted the submit (HTTP ${reply.status}) but sent no usable request_id; ` +
          "the job may exist and be billed. It was not sent again.",
        { status: reply.status, body: reply.body, modelId, input },
      );
    }
    return parsed;
  }

  async status(requestId: string, options: CallOptions = {}): Promise<StatusResult> {
    const id = checkRequestId(requestId);
    const reply = await this.#transport.request({
      ...options,
      kind: "read",
      method: "GET",
      path: `/requests/${id}/status`,
      requestId: id,
    });
    return parseStatus(reply.body, id);
  }

  async result(requestId: string, options: CallOptions & { includeCost?: boolean } = {}): Promise<JobResult> {
    const id = checkRequestId(requestId);
    const reply = await this.#transport.request({
      ...options,
      kind: "read",
      method: "GET",
      path: `/requests/${id}/result`,
      query: { include_cost: options.includeCost ? "true" : undefined },
      requestId: id,
    });
    return parseResult(reply.body, id);
  }

  /** Cancel a queued job. `outcome` says whether it worked; a running job is not stopped. */
  async cancel(requestId: string, options: CallOptions = {}): Promise<CancelResult> {
    const id = checkRequestId(requestId);
    const reply = await this.#transport.request({
      ...options,
      kind: "cancel",
      method: "POST",
      path: `/requests/${id}/cancel`,
      requestId: id,
    });
    return parseCancel(asRecord(reply.body) ?? {}, id);
  }

  toJSON(): Record<string, unknown> {
    return { baseUrl: this.baseUrl };
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return `RunComfyClient { baseUrl: '${this.baseUrl}' }`;
  }
}
