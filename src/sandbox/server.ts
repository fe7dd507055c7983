// The sandbox's HTTP side: routing, auth, submit's checks, and where faults hook in. The JSON
// shapes themselves (and the modes that pick among the contract's variants) are in replies.ts;
// they follow /work/shared/runcomfy-api.md.

import { createHash, randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { type ImageHeader, sniffImage } from "../model/image-header.js";
import { withDefaults } from "../model/input.js";
import { type ImageFacts, type Violation, validate } from "../model/validate.js";
import { serveFile } from "./cdn.js";
import { type AppliedFault, describeFault, type FaultEndpoint, type FaultPlan } from "./faults.js";
import { fetchImage, type ImageFetchLimits } from "./fetch-image.js";
import { jobSummary, outputPath } from "./job-summary.js";
import type { RequestLog } from "./log.js";
import { findModel, listModels, modelJson } from "./models.js";
import type { Job, Scheduler } from "./queue.js";
import { drawUint32 } from "./random.js";
import {
  cancelReply,
  ERROR_CODES,
  errorBody,
  faultReply,
  isRecord,
  type Reply,
  resultReply,
  statusReply,
  withErrorKey,
} from "./replies.js";

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

/** What the log learns about one exchange while it is handled. */
interface Exchange {
  route: string;
  tokenPresent: boolean;
  tokenValid: boolean | undefined;
  fault: AppliedFault | undefined;
  requestId: string | undefined;
  status: number | undefined;
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
          const reply = { status: 500, body: errorBody(ERROR_CODES.internal, `sandbox error: ${message}`) };
          res.end(JSON.stringify(withErrorKey(reply, this.#state.plan.modes["error-key"]).body));
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
      return this.#send(res, ex, {
        status: 404,
        body: errorBody(ERROR_CODES.noRoute, `No route for ${method} ${path}`),
      });
    }
    if (route.kind === "method") {
      await drain(req);
      return this.#send(res, ex, {
        status: 405,
        headers: { Allow: route.allow },
        body: errorBody(
          ERROR_CODES.methodNotAllowed,
          `${method} is not allowed on ${path}; use ${route.allow}`,
        ),
      });
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
    reply = withErrorKey(reply, this.#state.plan.modes["error-key"]);
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
    return statusReply(job, base, this.#state.scheduler.queuePosition(job), this.#state.plan.modes);
  }

  #resultReply(job: Job, base: string, includeCost: string | null): Reply {
    const video = job.state === "succeeded" && job.video ? `${base}${outputPath(job)}` : undefined;
    return resultReply(job, video, includeCost === "true", this.#state.plan.modes);
  }

  #cancelReply(job: Job): Reply {
    const cancelled = job.state === "cancelled" || this.#state.scheduler.cancel(job);
    return cancelReply(job, cancelled, this.#state.plan.modes);
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
    return { status: 404, body: errorBody(ERROR_CODES.noRoute, `No sandbox route for ${method} ${path}`) };
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
  | { kind: "method"; allow: string; requestId?: undefined };

function apiRoute(method: string, path: string): ApiRoute | undefined {
  if (path === "/v1/models" || path === "/v1/models/") {
    return method === "GET" ? { kind: "list" } : { kind: "method", allow: "GET" };
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
    return { kind: "method", allow: "GET, POST" };
  }
  const m = /^\/v1\/requests\/([^/]+)\/(status|result|cancel)$/.exec(path);
  if (!m) return undefined;
  const kind = m[2] as "status" | "result" | "cancel";
  const wanted = kind === "cancel" ? "POST" : "GET";
  if (method !== wanted) return { kind: "method", allow: wanted };
  try {
    return { kind, requestId: decodeURIComponent(m[1]!) };
  } catch {
    return undefined; // a broken %-escape: no request can have that id
  }
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

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
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
