// The studio's HTTP surface. Reads are GET; everything that changes something (an upload, a
// fit, a submit, a cancel) is POST only, and any other method on a known path is refused with
// 405. Errors answer in words, with secrets redacted; the token is never part of any answer.

import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { streamSSE } from "hono/streaming";
import { DreaminaError } from "../api/dreamina-error.js";
import { redactSecrets } from "../api/redact.js";
import { ImageFitError } from "../image/fit.js";
import { ImageProbeError } from "../image/probe.js";
import { PreflightError } from "../run/errors.js";
import type { JobStore as Journal, JournalState } from "../store/index.js";
import { JOURNAL_STATES } from "../store/states.js";
import type { BatchFile, StudioBatches } from "./batches.js";
import { type Assets, sendFile } from "./files.js";
import { type ImageStore, isImageId, UploadTooLargeError } from "./images.js";
import { type StudioJobs, StudioRequestError, type SubmitRequest } from "./jobs.js";
import type { LiveJobs } from "./live.js";
import type { ApiErrorBody, StudioConfigView } from "./shapes.js";
import { jobDetailView, jobView, type ViewContext, videoFile } from "./views.js";

export interface RouteDeps {
  assets: Assets;
  batches: StudioBatches;
  images: ImageStore;
  jobs: StudioJobs;
  live: LiveJobs;
  journal: Journal;
  views: ViewContext;
  config: () => Promise<StudioConfigView>;
  /** Called when the studio closes, to end the open event streams. */
  onClose: (listener: () => void) => () => void;
}

const JSON_LIMIT = 64 * 1024;
export const POST_PATHS = [
  "/api/images",
  "/api/images/:id/fit",
  "/api/preflight-url",
  "/api/fit-url",
  "/api/jobs",
  "/api/jobs/:localId/cancel",
  "/api/jobs/:localId/abandon",
  "/api/jobs/:localId/follow",
  "/api/batches",
  "/api/batches/:id/start",
];
export const GET_PATHS = [
  "/",
  "/assets/:name",
  "/api/config",
  "/api/events",
  "/api/history",
  "/api/images/:id",
  "/api/jobs/:localId",
  "/media/images/:id",
  "/media/jobs/:localId/video",
  "/api/batches/:id",
  "/media/batches/:id/report.html",
  "/media/batches/:id/:name",
];

function fail(c: Context, status: number, code: string, message: string, extra: object = {}): Response {
  const body: ApiErrorBody = { error: { code, message: redactSecrets(message), ...extra } };
  return c.json(body, status as 400);
}

/** Whatever a handler throws, as an answer the page can show. */
export function errorResponse(c: Context, error: unknown): Response {
  if (error instanceof StudioRequestError) return fail(c, error.status, error.code, error.message);
  if (error instanceof UploadTooLargeError) return fail(c, 413, error.code, error.message);
  if (error instanceof PreflightError) {
    const violations = error.violations.map((v) => ({ rule: v.rule, message: v.message }));
    return fail(c, 422, error.code, error.message, { violations });
  }
  if (error instanceof ImageProbeError) return fail(c, 422, `image_${error.code}`, error.message);
  if (error instanceof ImageFitError) return fail(c, 422, `fit_${error.code}`, error.message);
  if (error instanceof DreaminaError) return fail(c, 502, error.code, error.message);
  return fail(c, 500, "internal", error instanceof Error ? error.message : String(error));
}

function localIdParam(c: Context): number {
  const text = c.req.param("localId") ?? "";
  if (!/^\d{1,12}$/.test(text)) throw new StudioRequestError(404, "no such job");
  return Number(text);
}

function readSubmit(body: unknown): SubmitRequest {
  const b = (body ?? {}) as Record<string, unknown>;
  const image = b.image as Record<string, unknown> | undefined;
  let source: SubmitRequest["image"];
  if (typeof image?.upload === "string" && isImageId(image.upload)) source = { upload: image.upload };
  else if (typeof image?.url === "string" && /^https?:\/\//i.test(image.url.trim())) {
    source = { url: image.url.trim() };
  } else throw new StudioRequestError(400, "choose an image (a file, or an http(s) URL)");
  if (typeof b.prompt !== "string") throw new StudioRequestError(400, "the prompt is missing");
  if (b.frames !== 121 && b.frames !== 241) throw new StudioRequestError(400, "frames must be 121 or 241");
  const seed = b.seed;
  if (seed !== null && seed !== undefined && !Number.isSafeInteger(seed)) {
    throw new StudioRequestError(400, "the seed must be a whole number");
  }
  return { image: source, prompt: b.prompt, frames: b.frames, seed: (seed as number | undefined) ?? null };
}

async function jsonBody(c: Context): Promise<Record<string, unknown>> {
  try {
    const body = await c.req.json();
    return body && typeof body === "object" ? (body as Record<string, unknown>) : {};
  } catch {
    throw new StudioRequestError(400, "the request body must be JSON");
  }
}

function ratioOf(body: Record<string, unknown>): "pad" | "crop" {
  return body.ratio === "crop" ? "crop" : "pad";
}

export function studioRoutes(deps: RouteDeps): Hono {
  const app = new Hono();
  const { images, jobs, live, journal } = deps;
  const json = bodyLimit({
    maxSize: JSON_LIMIT,
    onError: (c) => fail(c, 413, "body_too_large", `a request body is at most ${JSON_LIMIT} bytes`),
  });

  app.onError((error, c) => errorResponse(c, error));

  app.get("/", async (c) => {
    const page = await deps.assets.get("index.html");
    return page ? c.html(page.body) : c.text("the studio's page is missing from this build", 500);
  });
  app.get("/assets/:name", async (c) => {
    const asset = await deps.assets.get(c.req.param("name"));
    if (!asset) return c.text("not found", 404);
    return c.body(asset.body, 200, { "content-type": asset.type });
  });
  app.get("/api/config", async (c) => c.json(await deps.config()));

  app.get("/api/events", (c) =>
    streamSSE(c, async (stream) => {
      let wake: () => void = () => {};
      let closed = false;
      const stop = () => {
        closed = true;
        wake();
      };
      const snapshot = live.snapshot();
      const off = live.subscribe((event) => {
        void stream.writeSSE({ event: event.type, data: JSON.stringify(event) }).catch(stop);
      });
      const offClose = deps.onClose(stop);
      stream.onAbort(stop);
      try {
        await stream.writeSSE({ event: "snapshot", data: JSON.stringify(snapshot) });
        while (!closed && !stream.aborted) {
          await new Promise<void>((resolve) => {
            wake = resolve;
            setTimeout(resolve, 15_000).unref();
          });
          if (!closed && !stream.aborted) await stream.write(": keep-alive\n\n");
        }
      } finally {
        off();
        offClose();
      }
    }),
  );

  app.get("/api/history", async (c) => {
    const state = c.req.query("state");
    const query = (c.req.query("q") ?? "").trim().toLowerCase();
    const states =
      state && JOURNAL_STATES.includes(state as JournalState) ? (state as JournalState) : undefined;
    const records = await journal.list({ limit: 10_000, state: states });
    const matching = query ? records.filter((r) => (r.prompt ?? "").toLowerCase().includes(query)) : records;
    const out = [];
    for (const record of matching.slice(0, 500)) {
      const detail = await journal.get(record.localId);
      if (detail) out.push(jobView(detail, deps.views));
    }
    const costUsd = Math.round(matching.reduce((sum, r) => sum + (r.cost ?? 0), 0) * 1e6) / 1e6;
    return c.json({ jobs: out, totals: { jobs: matching.length, costUsd } });
  });
  app.get("/api/jobs/:localId", async (c) => {
    const detail = await journal.get(localIdParam(c));
    if (!detail) return fail(c, 404, "not_found", "no such job in the journal");
    return c.json(jobDetailView(detail, deps.views));
  });
  app.get("/api/images/:id", async (c) => {
    const view = await images.preflight(c.req.param("id"));
    return view ? c.json(view) : fail(c, 404, "not_found", "no such image in the studio");
  });
  app.get("/media/images/:id", async (c) => {
    const id = c.req.param("id");
    const type = await images.webType(id);
    const path = images.pathOf(id);
    if (!type || !path) return c.text("not found", 404);
    return sendFile(c.req.raw, path, { contentType: type });
  });
  app.get("/media/jobs/:localId/video", async (c) => {
    const detail = await journal.get(localIdParam(c));
    const path = detail && videoFile(detail);
    if (!detail || !path) return c.text("not found", 404);
    const download = c.req.query("download") !== undefined;
    return sendFile(c.req.raw, path, {
      contentType: "video/mp4",
      downloadName: download ? `dreamina-${detail.requestId ?? detail.localId}.mp4` : undefined,
    });
  });

  app.post("/api/images", async (c) => {
    const declared = Number(c.req.header("content-length") ?? Number.NaN);
    if (declared > images.maxBytes) {
      return fail(c, 413, "upload_too_large", `images are limited to ${images.maxBytes} bytes here`);
    }
    const body = c.req.raw.body;
    if (!body) return fail(c, 400, "empty", "the upload is empty");
    const id = await images.save(body);
    return c.json(await images.preflight(id));
  });
  app.post("/api/images/:id/fit", json, async (c) => {
    const body = await jsonBody(c);
    const view = await images.fit(c.req.param("id"), { ratio: ratioOf(body) });
    return view ? c.json(view) : fail(c, 404, "not_found", "no such image in the studio");
  });
  app.post("/api/preflight-url", json, async (c) => {
    const body = await jsonBody(c);
    if (typeof body.url !== "string" || !/^https?:\/\//i.test(body.url.trim())) {
      return fail(c, 400, "bad_url", "paste an http(s) URL of a JPEG or PNG image");
    }
    return c.json(await images.preflightUrl(body.url.trim()));
  });
  app.post("/api/fit-url", json, async (c) => {
    const body = await jsonBody(c);
    if (typeof body.url !== "string" || !/^https?:\/\//i.test(body.url.trim())) {
      return fail(c, 400, "bad_url", "paste an http(s) URL of a JPEG or PNG image");
    }
    const id = await images.importUrl(body.url.trim());
    const view = await images.fit(id, { ratio: ratioOf(body) });
    return view ? c.json(view) : fail(c, 404, "not_found", "the image could not be kept");
  });
  app.post("/api/jobs", json, async (c) => c.json(await jobs.submit(readSubmit(await jsonBody(c))), 202));
  app.post("/api/jobs/:localId/cancel", async (c) => c.json(await jobs.cancel(localIdParam(c))));
  app.post("/api/jobs/:localId/follow", async (c) => {
    await jobs.follow(localIdParam(c));
    return c.json({ ok: true }, 202);
  });
  app.post("/api/jobs/:localId/abandon", async (c) => {
    await jobs.abandon(localIdParam(c));
    return c.json({ ok: true });
  });

  const batchLimit = 512 * 1024 * 1024;
  app.post(
    "/api/batches",
    bodyLimit({
      maxSize: batchLimit,
      onError: (c) => fail(c, 413, "body_too_large", `a batch upload is at most ${batchLimit} bytes`),
    }),
    async (c) => {
      const form = await c.req.parseBody({ all: true });
      const manifest = form.manifest;
      if (!(manifest instanceof File))
        return fail(c, 400, "no_manifest", "choose a manifest (.jsonl or .csv)");
      if (manifest.size > 8 * 1024 * 1024)
        return fail(c, 413, "manifest_too_large", "a manifest is at most 8 MiB");
      const given = form.images === undefined ? [] : ([] as unknown[]).concat(form.images);
      const files: BatchFile[] = [];
      for (const image of given) {
        if (!(image instanceof File)) continue;
        if (image.size > images.maxBytes) {
          return fail(
            c,
            413,
            "upload_too_large",
            `${image.name}: images are limited to ${images.maxBytes} bytes here`,
          );
        }
        files.push({ name: image.name, bytes: new Uint8Array(await image.arrayBuffer()) });
      }
      const bytes = new Uint8Array(await manifest.arrayBuffer());
      return c.json(await deps.batches.create({ name: manifest.name, bytes }, files));
    },
  );
  app.get("/api/batches/:id", (c) => {
    const view = deps.batches.get(c.req.param("id"));
    return view ? c.json(view) : fail(c, 404, "not_found", "no such batch");
  });
  app.post("/api/batches/:id/start", json, async (c) => {
    const body = await jsonBody(c);
    const budget = body.budgetUsd;
    if (budget !== null && budget !== undefined && !(typeof budget === "number" && budget >= 0)) {
      return fail(c, 400, "bad_budget", "the budget is a number of US dollars");
    }
    return c.json(deps.batches.start(c.req.param("id"), (budget as number | undefined) ?? null), 202);
  });
  app.get("/media/batches/:id/report.html", async (c) => {
    const path = deps.batches.reportPath(c.req.param("id"));
    if (!path) return c.text("not found", 404);
    const response = await sendFile(c.req.raw, path, { contentType: "text/html; charset=utf-8" });
    // The report is one self-contained file: its own styles, thumbnails as data URIs, no script.
    response.headers.set(
      "content-security-policy",
      "default-src 'none'; img-src data:; media-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
    );
    return response;
  });
  // The videos the report plays, by their plain file name in the batch's output folder.
  app.get("/media/batches/:id/:name", async (c) => {
    const path = deps.batches.videoPath(c.req.param("id"), c.req.param("name"));
    if (!path) return c.text("not found", 404);
    return sendFile(c.req.raw, path, { contentType: "video/mp4" });
  });

  const refuse = (allow: string) => (c: Context) => {
    c.header("allow", allow);
    return fail(c, 405, "method_not_allowed", `this address takes ${allow} only`);
  };
  app.on(["GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"], POST_PATHS, refuse("POST"));
  app.on(["POST", "PUT", "PATCH", "DELETE", "OPTIONS"], GET_PATHS, refuse("GET, HEAD"));
  app.notFound((c) => fail(c, 404, "not_found", "nothing here"));
  return app;
}
