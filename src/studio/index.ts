// `dreamina studio`: a local web page to make, watch, compare and keep videos, on the same
// SDK, journal and sandbox as the CLI (a job started here is in `dreamina jobs`, and the other
// way round). A Hono app on @hono/node-server; live updates over server-sent events.

import { statSync } from "node:fs";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import type { RunComfyClient } from "../api/client.js";
import { FALLBACK_PRICE } from "../batch/index.js";
import { dreaminaHome } from "../config/paths.js";
import { FRAMES_VALUES, MODEL_ID, PROMPT_MAX_LENGTH, videoSeconds } from "../model/input.js";
import { Dreamina } from "../node/dreamina.js";
import { openJobStore } from "../store/index.js";
import { StudioBatches } from "./batches.js";
import { Assets } from "./files.js";
import { DEFAULT_MAX_UPLOAD_BYTES, ImageStore } from "./images.js";
import { StudioJobs } from "./jobs.js";
import { LiveJobs } from "./live.js";
import { studioRoutes } from "./routes.js";
import { allowedHosts, guard, newSessionKey, securityHeaders } from "./security.js";
import type { PriceView, StudioConfigView } from "./shapes.js";
import { usualRunMs, type ViewContext } from "./views.js";

export type { JobView, LiveEvent, PreflightView } from "./shapes.js";

export interface StudioOptions {
  /** The client jobs go through (the in-process sandbox's, or the service's). */
  client: RunComfyClient;
  /** The journal file (shared with the CLI). */
  journalPath: string;
  /** Whether `client` is a sandbox (shown on the page). */
  sandbox?: boolean;
  /** The studio's own folder (uploads, videos). Default `$DREAMINA_HOME/studio` (`studio-sandbox` with a sandbox). */
  dir?: string;
  /** Default 127.0.0.1. */
  host?: string;
  /** 0 (default) picks a free port. */
  port?: number;
  /** The sandbox's time scale, so that polling and expected times match it. */
  timeScale?: number;
  /** How often the journal is read for jobs of other processes. Default 1000 ms. */
  pollIntervalMs?: number;
  maxUploadBytes?: number;
  /** The session key (default: a fresh random one). */
  key?: string;
  /** Where unexpected background errors go. Default: stderr. */
  onError?: (error: unknown) => void;
}

export interface Studio {
  /** The address to open, with the session key. */
  url: string;
  /** The address without the key. */
  origin: string;
  key: string;
  port: number;
  /** The studio's folder. */
  dir: string;
  close(): Promise<void>;
}

export async function startStudio(options: StudioOptions): Promise<Studio> {
  const host = options.host ?? "127.0.0.1";
  const dir = options.dir ?? join(dreaminaHome(), options.sandbox ? "studio-sandbox" : "studio");
  const key = options.key ?? newSessionKey();
  const timeScale = options.timeScale ?? 1;
  const onError =
    options.onError ??
    ((error: unknown) => process.stderr.write(`studio: ${error instanceof Error ? error.message : error}\n`));

  const journal = await openJobStore(options.journalPath);
  const sdk = new Dreamina({ client: options.client, journal });
  const images = new ImageStore(join(dir, "uploads"), options.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES);
  let jobs: StudioJobs | undefined;
  const views: ViewContext = {
    hasUpload: (sha256) => images.pathOf(sha256) !== undefined && existsSyncSafe(images.pathOf(sha256)!),
    expectedMs: (frames) => usualRunMs(frames, timeScale),
    ownedHere: (requestId) => jobs?.ownedHere(requestId) ?? false,
  };
  const live = new LiveJobs(journal, views, options.pollIntervalMs ?? 1000, onError);
  jobs = new StudioJobs({
    sdk,
    journal,
    images,
    live,
    videosDir: join(dir, "videos"),
    timeScale: options.timeScale,
    onError,
  });

  const batches = new StudioBatches({
    dir: join(dir, "batches"),
    client: options.client,
    journal,
    timeScale: options.timeScale,
    onChange: () => void live.refresh(),
  });

  let price: Promise<PriceView> | undefined;
  const config = async (): Promise<StudioConfigView> => {
    price ??= options.client.models.get(MODEL_ID).then(
      (model): PriceView =>
        model.basePriceUsd === undefined
          ? { ...FALLBACK_PRICE, source: "default" }
          : { basePriceUsd: model.basePriceUsd, priceUnit: model.priceUnit ?? "request", source: "service" },
      (): PriceView => ({ ...FALLBACK_PRICE, source: "default" }),
    );
    return {
      sandbox: Boolean(options.sandbox),
      promptMaxLength: PROMPT_MAX_LENGTH,
      frames: FRAMES_VALUES.map((value) => ({ value, seconds: videoSeconds(value) })),
      price: await price,
      maxUploadBytes: images.maxBytes,
    };
  };

  const assets = new Assets();
  void assets.warm();
  const closeListeners = new Set<() => void>();
  let port = 0;
  let hosts = new Set<string>();
  const app = new Hono();
  app.use("*", securityHeaders());
  app.use("*", guard({ key, port: () => port, hosts: () => hosts }));
  app.route(
    "/",
    studioRoutes({
      assets,
      batches,
      images,
      jobs,
      live,
      journal,
      views,
      config,
      onClose: (listener) => {
        closeListeners.add(listener);
        return () => closeListeners.delete(listener);
      },
    }),
  );

  await live.start();
  let server: Server;
  try {
    server = await new Promise<Server>((resolve, reject) => {
      const s = serve({ fetch: app.fetch, port: options.port ?? 0, hostname: host }, () =>
        resolve(s as Server),
      );
      s.once("error", reject);
    });
  } catch (error) {
    live.stop();
    await journal.close();
    throw error;
  }
  // Event streams are long-lived by design.
  server.requestTimeout = 0;
  // A page reuses its connections; a long idle timeout makes a request racing the close rare.
  server.keepAliveTimeout = 60_000;
  server.headersTimeout = 65_000;
  port = (server.address() as AddressInfo).port;
  hosts = allowedHosts(host, port);
  const shown = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
  const origin = `http://${shown}:${port}`;

  let closing: Promise<void> | undefined;
  return {
    url: `${origin}/?key=${key}`,
    origin,
    key,
    port,
    dir,
    close: () => {
      closing ??= (async () => {
        for (const listener of closeListeners) listener();
        live.stop();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        await batches.close();
        await jobs.close();
        await journal.close();
      })();
      return closing;
    },
  };
}

function existsSyncSafe(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}
