// The sandbox's HTTP side: routing (routes.ts), auth, where faults hook in, the CDN and the
// admin paths. The job endpoints are in job-endpoints.ts; the JSON shapes themselves (and the
// modes that pick among the contract's variants) are in replies.ts; they follow
// /work/shared/runcomfy-api.md.

import type { IncomingMessage, ServerResponse } from "node:http";
import { serveFile } from "./cdn.js";
import { describeFault, type FaultEndpoint } from "./faults.js";
import { JobEndpoints } from "./job-endpoints.js";
import { jobSummary, outputPath } from "./job-summary.js";
import { findModel, listModels, modelJson } from "./models.js";
import { ERROR_CODES, errorBody, faultReply, isRecord, type Reply, withErrorKey } from "./replies.js";
import { apiRoute, listQuery } from "./routes.js";
import { type Exchange, liveJob, type ServerState } from "./state.js";

export class SandboxHandler {
  readonly #state: ServerState;
  readonly #jobs: JobEndpoints;
  readonly #timers = new Set<NodeJS.Timeout>();

  constructor(state: ServerState) {
    this.#state = state;
    this.#jobs = new JobEndpoints(state);
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
          reply = await this.#jobs.submit(req, auth.token, route.modelId, base, ex);
          break;
        case "status":
          reply = this.#jobs.status(route.requestId, auth.token, base);
          break;
        case "result":
          reply = this.#jobs.result(route.requestId, auth.token, base, url.searchParams.get("include_cost"));
          break;
        case "cancel":
          await drain(req);
          reply = this.#jobs.cancel(route.requestId, auth.token);
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

  async #cdn(req: IncomingMessage, res: ServerResponse, ex: Exchange, path: string): Promise<void> {
    const m = /^\/cdn\/([A-Za-z0-9_-]{1,128})\/([A-Za-z0-9._-]+)$/.exec(path);
    const job = m ? liveJob(this.#state, m[1]!) : undefined;
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

async function drain(req: IncomingMessage): Promise<void> {
  if (req.readableEnded) return;
  for await (const _ of req) {
    // discard
  }
}
