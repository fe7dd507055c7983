// A faithful local stand-in for the RunComfy Model API: the same endpoints and shapes, a
// real queue with workers, real H.264 MP4 outputs on a CDN-like path, and deterministic
// fault injection. It shares only the model rules (src/model) with the client.

import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type FaultConfig, FaultPlan, formatFaultSpec } from "./faults.js";
import { DEFAULT_IMAGE_FETCH_LIMITS, type ImageFetchLimits } from "./fetch-image.js";
import { type JobSummary, jobSummary } from "./job-summary.js";
import { type LogSink, RequestLog, type RequestLogEntry } from "./log.js";
import { DEFAULT_RUN_TIME, type Job, type RunTime, Scheduler } from "./queue.js";
import { Renderer } from "./render.js";
import { SandboxHandler } from "./server.js";

export {
  DEFAULT_MODES,
  type FaultConfig,
  type FaultRule,
  FaultSpecError,
  formatFaultSpec,
  MODE_VALUES,
  type ModeName,
  parseFaultSpec,
  type SandboxModes,
} from "./faults.js";
export type { JobSummary } from "./job-summary.js";
export type { RequestLogEntry } from "./log.js";
export { BASE_PRICE_USD, PRICE_UNIT } from "./models.js";
export { DEFAULT_RUN_TIME, type RunTime } from "./queue.js";
export { FPS, motionForSeed, outputSize } from "./render.js";
export { ERROR_CODES } from "./replies.js";

export interface SandboxOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** 0 (default) picks a free port. */
  port?: number;
  /** Jobs run at the same time (default 2). */
  workers?: number;
  /** Simulated run times are divided by this (default 1: real-service durations). */
  timeScale?: number;
  /** Run time per frame count (mean ± uniform jitter, in ms before timeScale). */
  runTime?: Record<number, RunTime>;
  /** When set, the only token accepted; otherwise any non-empty token, jobs kept per token. */
  token?: string;
  /** A fault spec with modes (see faults.ts) or its parsed form. Default: $DREAMINA_SANDBOX_FAULTS, else none. */
  faults?: string | FaultConfig;
  /** Seed for run-time jitter, picked seeds (-1) and faults without their own seed (default 0). */
  seed?: number;
  /** Output short side in pixels (default 480). */
  renderShortSide?: number;
  /** No request lines on stderr. */
  quiet?: boolean;
  /** Where request lines go (default stderr unless quiet). */
  log?: LogSink;
  /** Finished jobs answer 404001 this long after finishing (default 24 h). */
  retentionMs?: number;
  imageFetch?: Partial<ImageFetchLimits>;
  /** Rendered videos go here (default a fresh temp dir, removed on close). Share it to reuse renders. */
  cacheDir?: string;
  /** ffmpeg binary (default @ffmpeg-installer/ffmpeg's). */
  ffmpegPath?: string;
}

export interface Sandbox {
  /** Base URL without /v1, e.g. http://127.0.0.1:54321. */
  url: string;
  close(): Promise<void>;
  /** Every request so far (never a token). */
  requests(): RequestLogEntry[];
  /** Every job so far, with its seed, state and output sha256. */
  jobs(): JobSummary[];
  /** Replaces the fault plan and the modes (counters restart; modes not given return to their defaults). */
  setFaults(faults: string | FaultConfig | undefined): void;
  /** The fault plan in its canonical string form. */
  faults(): string;
}

export async function startSandbox(options: SandboxOptions = {}): Promise<Sandbox> {
  const host = options.host ?? "127.0.0.1";
  const seed = options.seed ?? 0;
  const ownCache = options.cacheDir === undefined;
  const cacheDir = options.cacheDir ?? (await mkdtemp(join(tmpdir(), "dreamina-sandbox-")));
  const sink: LogSink | undefined =
    options.log ?? (options.quiet ? undefined : (line) => process.stderr.write(`[sandbox] ${line}\n`));
  const faults = options.faults ?? process.env.DREAMINA_SANDBOX_FAULTS ?? undefined;

  const renderer = new Renderer({ cacheDir, ffmpegPath: options.ffmpegPath });
  const jobs = new Map<string, Job>();
  const scheduler = new Scheduler({
    workers: options.workers ?? 2,
    timeScale: options.timeScale ?? 1,
    runTime: { ...DEFAULT_RUN_TIME, ...options.runTime },
    seed,
    renderer,
    shortSide: options.renderShortSide ?? 480,
  });
  const log = new RequestLog(sink);
  let url = "";
  const state = {
    plan: new FaultPlan(faults, seed),
    log,
    scheduler,
    jobs,
    token: options.token,
    seed,
    imageLimits: { ...DEFAULT_IMAGE_FETCH_LIMITS, ...options.imageFetch },
    retentionMs: options.retentionMs ?? 24 * 3600 * 1000,
    fallbackBase: () => url,
  };
  const handler = new SandboxHandler(state);
  const server: Server = createServer(handler.handle);
  // Long stalls and slow downloads are the point here; do not let node cut them short.
  server.requestTimeout = 0;

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === "IPv6" ? `[${address.address}]` : address.address;
  url = `http://${shownHost === "0.0.0.0" ? "127.0.0.1" : shownHost === "[::]" ? "[::1]" : shownHost}:${address.port}`;
  const { rules, modes } = state.plan.config;
  if (rules.length > 0 || modes) sink?.(`faults: ${formatFaultSpec(state.plan.config)}`);

  let closing: Promise<void> | undefined;
  return {
    url,
    requests: () => log.entries(),
    jobs: () => [...jobs.values()].sort((a, b) => a.index - b.index).map(jobSummary),
    setFaults: (next) => {
      state.plan = new FaultPlan(next, seed);
    },
    faults: () => formatFaultSpec(state.plan.config),
    close: () => {
      closing ??= (async () => {
        scheduler.close();
        handler.close();
        renderer.close();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        if (ownCache) await rm(cacheDir, { recursive: true, force: true });
      })();
      return closing;
    },
  };
}
