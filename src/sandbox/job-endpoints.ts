// The job endpoints behind authentication: submit (the model's rules, the image fetched and
// checked as the service would), then status, result and cancel of a job the token owns.

import { createHash, randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { ImageFacts } from "../model/image-facts.js";
import { type ImageHeader, sniffImage } from "../model/image-header.js";
import { withDefaults } from "../model/input.js";
import { validate } from "../model/validate.js";
import type { Violation } from "../model/violation.js";
import { fetchImage } from "./fetch-image.js";
import { outputPath } from "./job-summary.js";
import { findModel } from "./models.js";
import type { Job } from "./queue.js";
import { drawUint32 } from "./random.js";
import { cancelReply, ERROR_CODES, errorBody, type Reply, resultReply, statusReply } from "./replies.js";
import { type Exchange, liveJob, type ServerState } from "./state.js";

/** A request body larger than this is refused (the contract's 64 MiB per request). */
const MAX_BODY_BYTES = 64 * 1024 * 1024;

export class JobEndpoints {
  readonly #state: ServerState;
  /** Submits so far: a job's index (its place in the run-time and seed draws). */
  #jobCount = 0;

  constructor(state: ServerState) {
    this.#state = state;
  }

  async submit(
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

  status(requestId: string, token: string, base: string): Reply {
    return this.#withJob(requestId, token, (job) =>
      statusReply(job, base, this.#state.scheduler.queuePosition(job), this.#state.plan.modes),
    );
  }

  result(requestId: string, token: string, base: string, includeCost: string | null): Reply {
    return this.#withJob(requestId, token, (job) => {
      const video = job.state === "succeeded" && job.video ? `${base}${outputPath(job)}` : undefined;
      return resultReply(job, video, includeCost === "true", this.#state.plan.modes);
    });
  }

  cancel(requestId: string, token: string): Reply {
    return this.#withJob(requestId, token, (job) => {
      const cancelled = job.state === "cancelled" || this.#state.scheduler.cancel(job);
      return cancelReply(job, cancelled, this.#state.plan.modes);
    });
  }

  #withJob(requestId: string, token: string, answer: (job: Job) => Reply): Reply {
    const job = liveJob(this.#state, requestId);
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
