// The sandbox's HTTP side: routing, auth, the JSON shapes of the contract, and where faults
// hook in. Shapes follow /work/shared/runcomfy-api.md; where the contract leaves room the
// sandbox picks one plausible answer and keeps to it (noted inline).

import { createHash, randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { type ImageHeader, sniffImage } from "../model/image-header.js";
import { estimateCostUsd, withDefaults } from "../model/input.js";
import { type ImageFacts, type Violation, validate } from "../model/validate.js";
import { serveFile } from "./cdn.js";
import { type AppliedFault, describeFault, type FaultEndpoint, type FaultPlan } from "./faults.js";
import { fetchImage, type ImageFetchLimits } from "./fetch-image.js";
import type { RequestLog } from "./log.js";
import { findModel, listModels, modelJson } from "./models.js";
import type { Job, JobState, Scheduler } from "./queue.js";
import { drawUint32 } from "./random.js";

export const ERROR_CODES = {
  invalidResource: 400001,
  /** Not in the contract's table: the sandbox's code for a 422 schema violation. */
  invalidInput: 400003,
  auth: 400004,
  forbidden: 403001,
  notFound: 404001,
  /** Not in the contract's table: the sandbox's code for internal errors and error200 faults. */
  internal: 500001,
} as const;

/** A request body larger than this is refused (the contract's 64 MiB per request). */
const MAX_BODY_BYTES = 64 * 1024 * 1024;

export interface ServerState {
  plan: FaultPlan;
  log: RequestLog;
  scheduler: Scheduler;
  jobs: Map<string, Job>;
  /** The only token accepted, when set; otherwise any non-empty token (jobs are per token). */
  token: string | undefined;
  seed: number;
  imageLimits: ImageFetchLimits;
  /** Finished jobs (and their outputs) are forgotten this long after finishing. */
  retentionMs: number;
  /** Base URL used when a request carries no Host header. */
  fallbackBase: () => string;
}

interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** Sent verbatim instead of JSON (gateway HTML pages, malformed JSON). */
  raw?: { contentType: string; text: string };
}

/** What the log learns about one exchange while it is handled. */
interface Exchange {
  route: string;
  tokenPresent: boolean;
  tokenValid: boolean | undefined;
  fault: AppliedFault | undefined;
  requestId: string | undefined;
  status: number | undefined;
}

const STATUS_OF: Record<JobState, string> = {
  in_queue: "in_queue",
  in_progress: "in_progress",
  // The quirk: status says "completed" for failures too; only result says "failed".
  succeeded: "completed",
  failed: "completed",
  cancelled: "cancelled",
};

function errorBody(code: number, message: string, detail?: unknown): Record<string, unknown> {
  return detail === undefined
    ? { error_code: code, error_message: message }
    : { error_code: code, error_message: message, detail };
}

function gatewayPage(status: number, reason: string): Reply {
  const text = `<html>\r\n<head><title>${status} ${reason}</title></head>\r\n<body>\r\n<center><h1>${status} ${reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n`;
  return { status, raw: { contentType: "text/html", text } };
}

/** The reply a pre-empting fault sends instead of the real one; undefined for the others. */
function faultReply(fault: AppliedFault): Reply | undefined {
  switch (fault.kind) {
    case "429":
      return {
        status: 429,
        headers: { "Retry-After": String(fault.param ?? 1) },
        body: errorBody(429001, "Too many requests, slow down."),
      };
    case "429-date":
      return {
        status: 429,
        headers: { "Retry-After": new Date(Date.now() + (fault.param ?? 1) * 1000).toUTCString() },
        body: errorBody(429001, "Too many requests, slow down."),
      };
    case "429-bare":
      return { status: 429, body: errorBody(429001, "Too many requests.") };
    case "500":
      return { status: 500, body: errorBody(ERROR_CODES.internal, "Internal server error.") };
    case "502":
      return gatewayPage(502, "Bad Gateway");
    case "503": {
      const page = gatewayPage(503, "Service Temporarily Unavailable");
      if (fault.param !== undefined) page.headers = { "Retry-After": String(fault.param) };
      return page;
    }
    case "error200":
      return {
        status: 200,
        body: errorBody(fault.param ?? ERROR_CODES.internal, "The request could not be processed."),
      };
    default:
      return undefined;
  }
}

export class SandboxHandler {
  readonly #state: ServerState;
  readonly #timers = new Set<NodeJS.Timeout>();
  #jobCount = 0;

  constructor(state: ServerState) {
    this.#state = state;
  }

  /** Entry point for node:http. Never throws; every request ends up in the log. */
  handle = (req: IncomingMessage, res: ServerResponse): void => {
    const started = Date.now();
    const seq = this.#state.log.nextSeq();
    const exchange: Exchange = {
      route: "unknown",
      tokenPresent: false,
      tokenValid: undefined,
      fault: undefined,
      requestId: undefined,
      status: undefined,
    };
    this.#dispatch(req, res, exchange)
      .catch((error: unknown) => {
        // A bug in the sandbox: still answer like a service would, and say what broke.
        if (!res.headersSent && !res.destroyed) {
          const message = error instanceof Error ? error.message : String(error);
          exchange.status = 500;
          res.writeHead(500, { "Content-Type": "application/json" });
          res.end(JSON.stringify(errorBody(ERROR_CODES.internal, `sandbox error: ${message}`)));
        }
      })
      .finally(() => {
        this.#state.log.add({
          seq,
          time: new Date(started).toISOString(),
          method: req.method ?? "GET",
          path: req.url ?? "/",
          route: exchange.route,
          tokenPresent: exchange.tokenPresent,
          tokenValid: exchange.tokenValid,
          status: exchange.status,
          fault: describeFault(exchange.fault),
          requestId: exchange.requestId,
          durationMs: Date.now() - started,
        });
      });
  };

  async #dispatch(req: IncomingMessage, res: ServerResponse, ex: Exchange): Promise<void> {
    const url = new URL(req.url ?? "/", "http://sandbox.invalid");
    const method = req.method ?? "GET";
    const path = url.pathname;

    if (path.startsWith("/cdn/")) {
      ex.route = "cdn";
      if (method !== "GET" && method !== "HEAD") return this.#send(res, ex, { status: 405, body: "" });
      return this.#cdn(req, res, ex, path);
    }
    if (path.startsWith("/__sandbox/")) {
      ex.route = "admin";
      return this.#send(res, ex, await this.#admin(req, method, path));
    }

    const route = apiRoute(method, path);
    if (!route) {
      await drain(req);
      return this.#send(res, ex, { status: 404, body: { error_message: `No route for ${method} ${path}` } });
    }
    if (route.kind === "method") {
      await drain(req);
      return this.#send(res, ex, { status: 405, body: { error_message: `${method} is not allowed here` } });
    }
    ex.route = route.kind;
    ex.requestId = route.requestId;
    const endpoint: FaultEndpoint = route.kind === "list" || route.kind === "detail" ? "models" : route.kind;
    // Logged for every API request, also those a fault answers before authentication.
    ex.tokenPresent = Boolean(req.headers.authorization);
    ex.fault = this.#state.plan.next(endpoint);
    if (ex.fault) {
      if (ex.fault.kind === "reset") {
        req.resume();
        res.socket?.destroy();
        return;
      }
      const replaced = faultReply(ex.fault);
      if (replaced) {
        await drain(req);
        return this.#send(res, ex, replaced);
      }
    }

    const auth = this.#authenticate(req, ex);
    let reply: Reply;
    if (!auth.ok) {
      await drain(req);
      reply = auth.reply;
    } else {
      const base = this.#base(req);
      switch (route.kind) {
        case "submit":
          reply = await this.#submit(req, auth.token, route.modelId, base, ex);
          break;
        case "status":
          reply = this.#withJob(route.requestId, auth.token, (job) => this.#statusReply(job, base));
          break;
        case "result":
          reply = this.#withJob(route.requestId, auth.token, (job) =>
            this.#resultReply(job, base, url.searchParams.get("include_cost")),
          );
          break;
        case "cancel":
          await drain(req);
          reply = this.#withJob(route.requestId, auth.token, (job) => this.#cancelReply(job));
          break;
        case "list":
          reply = { status: 200, body: listModels(listQuery(url.searchParams)) };
          break;
        case "detail": {
          const model = findModel(route.modelId);
          reply = model
            ? { status: 200, body: modelJson(model, true) }
            : {
                status: 400,
                body: errorBody(ERROR_CODES.invalidResource, `Unknown model_id: ${route.modelId}`),
              };
          break;
        }
      }
    }
    await this.#afterFaults(res, ex, reply);
  }

  /** Faults that let the handler run first: lost, stall, malformed, unknown. */
  async #afterFaults(res: ServerResponse, ex: Exchange, reply: Reply): Promise<void> {
    const fault = ex.fault;
    if (!fault) return this.#send(res, ex, reply);
    if (fault.kind === "lost") {
      res.socket?.destroy();
      return;
    }
    if (fault.kind === "stall") {
      await this.#sleep((fault.param ?? 5) * 1000);
      if (res.destroyed) return;
    }
    if (fault.kind === "unknown" && reply.status === 200 && isRecord(reply.body) && "status" in reply.body) {
      reply = { ...reply, body: { ...reply.body, status: "PAUSED" } };
    }
    if (fault.kind === "malformed" && reply.body !== undefined) {
      const text = JSON.stringify(reply.body);
      reply = {
        status: 200,
        raw: { contentType: "application/json", text: text.slice(0, Math.floor(text.length / 2)) },
      };
    }
    return this.#send(res, ex, reply);
  }

  #send(res: ServerResponse, ex: Exchange, reply: Reply): void {
    if (res.destroyed) return;
    const payload = reply.raw?.text ?? (reply.body === undefined ? "" : JSON.stringify(reply.body));
    const contentType = reply.raw?.contentType ?? "application/json";
    res.writeHead(reply.status, {
      "Content-Type": contentType,
      "Content-Length": String(Buffer.byteLength(payload)),
      ...reply.headers,
    });
    res.end(payload);
    ex.status = reply.status;
  }

  #authenticate(
    req: IncomingMessage,
    ex: Exchange,
  ): { ok: true; token: string } | { ok: false; reply: Reply } {
    const header = req.headers.authorization;
    const match = typeof header === "string" ? /^Bearer\s+(\S.*)$/i.exec(header.trim()) : null;
    const token = match?.[1]?.trim();
    ex.tokenPresent = Boolean(header);
    if (!token) {
      ex.tokenValid = false;
      return {
        ok: false,
        reply: {
          status: 401,
          body: errorBody(ERROR_CODES.auth, "Missing or malformed Authorization header."),
        },
      };
    }
    if (this.#state.token !== undefined && token !== this.#state.token) {
      ex.tokenValid = false;
      return {
        ok: false,
        reply: { status: 401, body: errorBody(ERROR_CODES.auth, "Invalid or expired token.") },
      };
    }
    ex.tokenValid = true;
    return { ok: true, token };
  }

  /** Absolute URLs point at the address the client used (Host), like a real deployment's domain. */
  #base(req: IncomingMessage): string {
    const host = req.headers.host;
    return host ? `http://${host}` : this.#state.fallbackBase();
  }

  #withJob(requestId: string, token: string, answer: (job: Job) => Reply): Reply {
    const job = this.#liveJob(requestId);
    if (!job) {
      return {
        status: 404,
        body: errorBody(
          ERROR_CODES.notFound,
          `Request ${requestId} not found (unknown, deleted or expired).`,
        ),
      };
    }
    if (job.token !== token) {
      return {
        status: 403,
        body: errorBody(ERROR_CODES.forbidden, `Request ${requestId} belongs to another user.`),
      };
    }
    return answer(job);
  }

  /** A job, unless unknown or past retention (then it is dropped for good). */
  #liveJob(requestId: string): Job | undefined {
    const job = this.#state.jobs.get(requestId);
    if (!job) return undefined;
    if (job.finishedAt && Date.now() - job.finishedAt.getTime() > this.#state.retentionMs) {
      this.#state.jobs.delete(requestId);
      return undefined;
    }
    return job;
  }

  async #submit(
    req: IncomingMessage,
    token: string,
    modelId: string,
    base: string,
    ex: Exchange,
  ): Promise<Reply> {
    const model = findModel(modelId);
    const body = await readBody(req, MAX_BODY_BYTES);
    if (!model?.runnable) {
      return {
        status: 400,
        body: errorBody(
          ERROR_CODES.invalidResource,
          model ? `Model ${modelId} is not available.` : `Unknown model_id: ${modelId}`,
        ),
      };
    }
    if (body === "too-large") {
      return { status: 413, body: errorBody(ERROR_CODES.invalidInput, "Request body too large.") };
    }
    let input: unknown;
    try {
      input = JSON.parse(body.toString("utf8"));
    } catch {
      return invalid([{ loc: ["body"], msg: "The request body is not valid JSON.", type: "json_invalid" }]);
    }

    const shape = validate(input);
    if (!shape.valid) return invalid(shape.violations.map(violationDetail));
    const accepted = withDefaults(input as Parameters<typeof withDefaults>[0]);
    const imageUrl = accepted.image_urls[0];
    const fetched = await fetchImage(imageUrl, this.#state.imageLimits);
    if (!fetched.ok) {
      return invalid([{ loc: ["body", "image_urls", 0], msg: fetched.reason, type: "image_fetch" }]);
    }
    const header = sniffImage(fetched.bytes, { final: true });
    const checked = validate(input, { image: imageFacts(header, fetched.bytes.byteLength, imageUrl) });
    if (!checked.valid) return invalid(checked.violations.map(violationDetail));
    if (header.status !== "complete" || !header.width || !header.height) {
      // A JPEG/PNG signature over a broken header: the service could not decode it either.
      const why = header.problem ?? "its header is incomplete";
      return invalid([
        {
          loc: ["body", "image_urls", 0],
          msg: `The image could not be decoded: ${why}`,
          type: "image_decode",
        },
      ]);
    }

    const index = this.#jobCount++;
    const id = randomUUID();
    const imageSha256 = sha256(fetched.bytes);
    const canonical = JSON.stringify({ ...accepted, image_urls: [imageSha256] });
    const inputSha256 = sha256(Buffer.from(canonical));
    let submitCount = 1;
    for (const other of this.#state.jobs.values()) {
      if (other.token === token && other.inputSha256 === inputSha256) submitCount++;
    }
    const requestedSeed = accepted.seed;
    const seed =
      requestedSeed === -1 ? drawUint32(this.#state.seed, "job-seed", index) % 2_147_483_647 : requestedSeed;
    const job: Job = {
      id,
      token,
      modelId,
      input: accepted as unknown as Record<string, unknown>,
      frames: accepted.frames,
      requestedSeed,
      seed,
      image: fetched.bytes,
      imageSha256,
      inputSha256,
      submitCount,
      index,
      state: "in_queue",
      createdAt: new Date(),
      runMs: this.#state.scheduler.plannedRunMs(accepted.frames, index),
      failByFault: this.#state.plan.next("job")?.kind === "fail",
    };
    this.#state.jobs.set(id, job);
    this.#state.scheduler.enqueue(job);
    ex.requestId = id;
    return {
      status: 200,
      body: {
        request_id: id,
        status_url: `${base}/v1/requests/${id}/status`,
        result_url: `${base}/v1/requests/${id}/result`,
        cancel_url: `${base}/v1/requests/${id}/cancel`,
      },
    };
  }

  #statusReply(job: Job, base: string): Reply {
    const body: Record<string, unknown> = { request_id: job.id, status: STATUS_OF[job.state] };
    const position = this.#state.scheduler.queuePosition(job);
    if (job.state === "in_queue" && position !== undefined) body.queue_position = position;
    body.status_url = `${base}/v1/requests/${job.id}/status`;
    body.result_url = `${base}/v1/requests/${job.id}/result`;
    return { status: 200, body };
  }

  #resultReply(job: Job, base: string, includeCost: string | null): Reply {
    const body: Record<string, unknown> = { request_id: job.id, status: job.state };
    if (job.state === "succeeded" && job.video) body.output = { video: `${base}${outputPath(job)}` };
    if (job.state === "failed") body.error = job.error ?? "Generation failed.";
    body.created_at = job.createdAt.toISOString();
    if (job.finishedAt) body.finished_at = job.finishedAt.toISOString();
    if (includeCost === "true" && job.finishedAt) {
      // Billed only for a delivered video; failed and cancelled jobs cost nothing here.
      const model = findModel(job.modelId);
      body.cost =
        job.state === "succeeded" && model
          ? estimateCostUsd({
              frames: job.frames,
              basePriceUsd: model.base_price_usd,
              priceUnit: model.price_unit,
            })
          : 0;
    }
    return { status: 200, body };
  }

  #cancelReply(job: Job): Reply {
    const cancelled = job.state === "cancelled" || this.#state.scheduler.cancel(job);
    return {
      status: 202,
      body: {
        request_id: job.id,
        status: STATUS_OF[job.state],
        outcome: cancelled ? "cancelled" : "not_cancellable",
      },
    };
  }

  async #cdn(req: IncomingMessage, res: ServerResponse, ex: Exchange, path: string): Promise<void> {
    const m = /^\/cdn\/([A-Za-z0-9_-]{1,128})\/([A-Za-z0-9._-]+)$/.exec(path);
    const job = m ? this.#liveJob(m[1]!) : undefined;
    ex.requestId = job?.id;
    ex.fault = this.#state.plan.next("cdn");
    if (ex.fault?.kind === "reset") {
      res.socket?.destroy();
      return;
    }
    const replaced = ex.fault ? faultReply(ex.fault) : undefined;
    if (replaced) return this.#send(res, ex, replaced);
    if (ex.fault?.kind === "stall") {
      await this.#sleep((ex.fault.param ?? 5) * 1000);
      if (res.destroyed) return;
    }
    if (!job?.video || job.state !== "succeeded" || path !== outputPath(job)) {
      const text = "<?xml version='1.0' encoding='UTF-8'?><Error><Code>NoSuchKey</Code></Error>";
      return this.#send(res, ex, { status: 404, raw: { contentType: "application/xml", text } });
    }
    ex.status = await serveFile(
      req,
      res,
      {
        path: job.video.path,
        size: job.video.size,
        sha256: job.video.sha256,
        contentType: "video/mp4",
        modified: job.finishedAt ?? job.createdAt,
      },
      ex.fault,
    );
  }

  async #admin(req: IncomingMessage, method: string, path: string): Promise<Reply> {
    if (method === "GET" && path === "/__sandbox/requests") {
      return { status: 200, body: this.#state.log.entries() };
    }
    if (method === "GET" && path === "/__sandbox/jobs") {
      return { status: 200, body: [...this.#state.jobs.values()].map(jobSummary) };
    }
    await drain(req);
    return { status: 404, body: { error_message: `No sandbox route for ${method} ${path}` } };
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        resolve();
      }, ms);
      this.#timers.add(timer);
    });
  }

  close(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
  }
}

type ApiRoute =
  | { kind: "submit"; modelId: string; requestId?: undefined }
  | { kind: "detail"; modelId: string; requestId?: undefined }
  | { kind: "list"; requestId?: undefined }
  | { kind: "status" | "result" | "cancel"; requestId: string }
  | { kind: "method"; requestId?: undefined };

function apiRoute(method: string, path: string): ApiRoute | undefined {
  if (path === "/v1/models" || path === "/v1/models/") {
    return method === "GET" ? { kind: "list" } : { kind: "method" };
  }
  if (path.startsWith("/v1/models/")) {
    let modelId: string;
    try {
      modelId = path
        .slice("/v1/models/".length)
        .split("/")
        .filter((s) => s !== "")
        .map((s) => decodeURIComponent(s))
        .join("/");
    } catch {
      return undefined;
    }
    if (method === "POST") return { kind: "submit", modelId };
    if (method === "GET") return { kind: "detail", modelId };
    return { kind: "method" };
  }
  const m = /^\/v1\/requests\/([^/]+)\/(status|result|cancel)$/.exec(path);
  if (!m) return undefined;
  const kind = m[2] as "status" | "result" | "cancel";
  const wanted = kind === "cancel" ? "POST" : "GET";
  return method === wanted ? { kind, requestId: decodeURIComponent(m[1]!) } : { kind: "method" };
}

function listQuery(params: URLSearchParams) {
  const int = (name: string) => {
    const v = params.get(name);
    return v === null || !/^\d+$/.test(v) ? undefined : Number(v);
  };
  return {
    limit: int("limit"),
    offset: int("offset"),
    search: params.get("search") ?? undefined,
    category: params.get("category") ?? undefined,
    includeSchema: params.get("include_schema") === "true",
  };
}

/** 422 with one FastAPI-style entry per violation. */
function invalid(detail: unknown[]): Reply {
  return {
    status: 422,
    body: errorBody(ERROR_CODES.invalidInput, "The input does not match the model's schema.", detail),
  };
}

function violationDetail(v: Violation): Record<string, unknown> {
  // "image_urls[0]" (src/model's notation) becomes ["image_urls", 0].
  const parts = v.path
    .split(/[.[\]]+/)
    .filter((p) => p !== "" && p !== "input")
    .map((p) => (/^\d+$/.test(p) ? Number(p) : p));
  const entry: Record<string, unknown> = { loc: ["body", ...parts], msg: v.message, type: v.rule };
  if (v.limit !== undefined || v.actual !== undefined) entry.ctx = { limit: v.limit, actual: v.actual };
  return entry;
}

function imageFacts(header: ImageHeader, sizeBytes: number, url: string): ImageFacts {
  return {
    format: header.format,
    width: header.width,
    height: header.height,
    sizeBytes,
    orientation: header.orientation,
    source: url.startsWith("data:") ? "data: URI" : url,
  };
}

export function outputPath(job: Job): string {
  return `/cdn/${job.id}/dreamina-${job.frames}f-${job.seed}.mp4`;
}

export interface JobSummary {
  id: string;
  state: JobState;
  modelId: string;
  frames: number;
  seed: number;
  requestedSeed: number;
  submitCount: number;
  inputSha256: string;
  imageSha256: string;
  createdAt: string;
  startedAt: string | undefined;
  finishedAt: string | undefined;
  runMs: number;
  fault: "fail" | undefined;
  error: string | undefined;
  output:
    | {
        path: string;
        file: string;
        sha256: string;
        size: number;
        width: number;
        height: number;
        cached: boolean;
      }
    | undefined;
}

export function jobSummary(job: Job): JobSummary {
  return {
    id: job.id,
    state: job.state,
    modelId: job.modelId,
    frames: job.frames,
    seed: job.seed,
    requestedSeed: job.requestedSeed,
    submitCount: job.submitCount,
    inputSha256: job.inputSha256,
    imageSha256: job.imageSha256,
    createdAt: job.createdAt.toISOString(),
    startedAt: job.startedAt?.toISOString(),
    finishedAt: job.finishedAt?.toISOString(),
    runMs: Math.round(job.runMs),
    fault: job.failByFault ? "fail" : undefined,
    error: job.error,
    output: job.video
      ? {
          path: outputPath(job),
          file: job.video.path,
          sha256: job.video.sha256,
          size: job.video.size,
          width: job.video.width,
          height: job.video.height,
          cached: job.video.cached,
        }
      : undefined,
  };
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer | "too-large"> {
  const chunks: Buffer[] = [];
  let total = 0;
  let tooLarge = false;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.length;
    // Keep reading (and dropping) so the client gets the answer instead of a reset.
    if (total > limit) tooLarge = true;
    else chunks.push(chunk);
  }
  return tooLarge ? "too-large" : Buffer.concat(chunks);
}

async function drain(req: IncomingMessage): Promise<void> {
  if (req.readableEnded) return;
  for await (const _ of req) {
    // discard
  }
}
