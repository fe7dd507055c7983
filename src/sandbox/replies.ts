// The JSON the sandbox answers with: error bodies, gateway pages, what each pre-empting fault
// sends, and the status, result and cancel bodies of a job in the shape the modes pick.
// Shapes follow /work/shared/runcomfy-api.md; where the contract allows several, the modes
// (faults.ts) choose, and the defaults are the contract's plainest reading.

import { estimateCostUsd } from "../model/input.js";
import type { AppliedFault, SandboxModes } from "./faults.js";
import { findModel } from "./models.js";
import type { Job, JobState } from "./queue.js";

export const ERROR_CODES = {
  invalidResource: 400001,
  insufficientBalance: 400002,
  /** Not in the contract's table: the sandbox's code for a 422 schema violation. */
  invalidInput: 400003,
  auth: 400004,
  forbidden: 403001,
  notFound: 404001,
  /** Not in the contract's table: the sandbox's code for a path no route serves. */
  noRoute: 404002,
  /** Not in the contract's table: the sandbox's code for a method a route does not take. */
  methodNotAllowed: 405001,
  /** Not in the contract's table: the sandbox's code for internal errors and error200 faults. */
  internal: 500001,
} as const;

export interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** Sent verbatim instead of JSON (gateway HTML pages, malformed JSON). */
  raw?: { contentType: string; text: string };
}

/** Every JSON error body is built here, with the message under `error_message`. */
export function errorBody(code: number, message: string, detail?: unknown): Record<string, unknown> {
  return detail === undefined
    ? { error_code: code, error_message: message }
    : { error_code: code, error_message: message, detail };
}

/**
 * The error-key mode, applied to a reply on its way out: an error body's message moves to
 * `message` or `error`, in the same place among the keys. Anything else passes untouched.
 */
export function withErrorKey(reply: Reply, key: SandboxModes["error-key"]): Reply {
  const body = reply.body;
  if (key === "error_message" || !isRecord(body) || !("error_code" in body) || !("error_message" in body)) {
    return reply;
  }
  const renamed: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(body)) renamed[name === "error_message" ? key : name] = value;
  return { ...reply, body: renamed };
}

export function gatewayPage(status: number, reason: string): Reply {
  const text = `<html>\r\n<head><title>${status} ${reason}</title></head>\r\n<body>\r\n<center><h1>${status} ${reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n`;
  return { status, raw: { contentType: "text/html", text } };
}

/** The reply a pre-empting fault sends instead of the real one; undefined for the others. */
export function faultReply(fault: AppliedFault): Reply | undefined {
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
    case "balance":
      return {
        status: fault.param ?? 402,
        body: errorBody(
          ERROR_CODES.insufficientBalance,
          "Insufficient balance: top up your account to run this model.",
        ),
      };
    default:
      return undefined;
  }
}

/** What status (and cancel) say of a job: the quirk, or with finished-status=outcome the outcome. */
export function statusText(state: JobState, modes: SandboxModes): string {
  if ((state === "succeeded" || state === "failed") && modes["finished-status"] === "completed") {
    // The quirk: status says "completed" for failures too; only result says "failed".
    return "completed";
  }
  return state;
}

export function statusReply(job: Job, base: string, queuePosition: number | undefined, modes: SandboxModes) {
  const body: Record<string, unknown> = { request_id: job.id, status: statusText(job.state, modes) };
  if (job.state === "in_queue" && queuePosition !== undefined) body.queue_position = queuePosition;
  body.status_url = `${base}/v1/requests/${job.id}/status`;
  body.result_url = `${base}/v1/requests/${job.id}/result`;
  return { status: 200, body } satisfies Reply;
}

export function resultReply(
  job: Job,
  videoUrl: string | undefined,
  includeCost: boolean,
  modes: SandboxModes,
): Reply {
  const body: Record<string, unknown> = { request_id: job.id };
  if (modes["result-model-id"] === "on") body.model_id = job.modelId;
  body.status = job.state;
  if (job.state === "succeeded" && videoUrl) {
    body.output = modes.output === "videos" ? { videos: [videoUrl] } : { video: videoUrl };
  }
  if (job.state === "failed") body.error = jobError(job, modes);
  body.created_at = job.createdAt.toISOString();
  if (job.finishedAt) body.finished_at = job.finishedAt.toISOString();
  if (includeCost && job.finishedAt) {
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

/** A failed job's error: a string, or (job-error=array) the shape another RunComfy API uses. */
function jobError(job: Job, modes: SandboxModes): unknown {
  const message = job.error ?? "Generation failed.";
  if (modes["job-error"] === "string") return message;
  return [
    {
      errorCode: ERROR_CODES.internal,
      error: message,
      debugInfo: {
        requestId: job.id,
        seed: job.seed,
        frames: job.frames,
        cause: job.failByFault ? "job:fail" : "render",
      },
    },
  ];
}

export function cancelReply(job: Job, cancelled: boolean, modes: SandboxModes): Reply {
  return {
    status: 202,
    body: {
      request_id: job.id,
      status: statusText(job.state, modes),
      outcome: cancelled ? "cancelled" : "not_cancellable",
    },
  };
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
