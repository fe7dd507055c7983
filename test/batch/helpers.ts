import { rmSync } from "node:fs";
// Shared by the batch tests: a temp directory with a few test images, manifests written
// from row objects, a time-scaled in-process sandbox, and a client with the shared limiter.

import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { RunComfyClient } from "../../src/api/client.js";
import type { RunBatchOptions } from "../../src/batch/batch-types.js";
import { type BatchEvent, type BatchSummary, readManifest, runBatch } from "../../src/batch/index.js";
import { RateLimiter } from "../../src/batch/rate-limiter.js";
import { type Sandbox, type SandboxOptions, startSandbox } from "../../src/sandbox/index.js";
import { SqliteJobStore } from "../../src/store/index.js";

/** A gradient JPEG, distinct per `tint`. */
export async function gradient(width: number, height: number, tint: number): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      raw[i] = (x * 255) / width;
      raw[i + 1] = (y * 255) / height;
      raw[i + 2] = (tint * 53) % 256;
    }
  }
  return sharp(raw, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 80 })
    .toBuffer();
}

export interface Workspace {
  dir: string;
  /** Relative names of the valid images: img0.jpg ... */
  images: string[];
  /** A 300×300 JPEG (too small: the model wants > 320). */
  tooSmall: string;
  cleanup(): Promise<void>;
}

export async function workspace(count = 3): Promise<Workspace> {
  const dir = await mkdtemp(join(tmpdir(), "dreamina-batch-"));
  await mkdir(join(dir, "images"), { recursive: true });
  const images: string[] = [];
  for (let i = 0; i < count; i++) {
    const name = `images/img${i}.jpg`;
    await writeFile(join(dir, name), await gradient(480, 360, i));
    images.push(name);
  }
  const tooSmall = "images/small.jpg";
  await writeFile(join(dir, tooSmall), await gradient(300, 300, 9));
  return { dir, images, tooSmall, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export async function writeJsonl(path: string, rows: Record<string, unknown>[]): Promise<string> {
  await writeFile(path, `${rows.map((r) => JSON.stringify(r)).join("\n")}\n`);
  return path;
}

/** Rows over the workspace's images, with fixed seeds (the sandbox caches renders per seed). */
export function rows(ws: Workspace, n: number, extra: (i: number) => Record<string, unknown> = () => ({})) {
  return Array.from({ length: n }, (_, i) => ({
    image: ws.images[i % ws.images.length],
    prompt: `row ${i}: a slow pan, <b>bold</b> & "quoted"`,
    seed: 1 + (i % 2),
    ...extra(i),
  }));
}

let cacheDir: string | undefined;

/** A sandbox whose jobs take about 100-300 ms, with a render cache shared by this test process. */
export async function sandbox(options: SandboxOptions = {}): Promise<Sandbox> {
  if (!cacheDir) {
    const dir = await mkdtemp(join(tmpdir(), "dreamina-batch-cache-"));
    cacheDir = dir;
    // Shared by every sandbox of this test process, so it goes when the process does.
    process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  }
  return startSandbox({
    quiet: true,
    workers: 8,
    timeScale: 300,
    renderShortSide: 160,
    cacheDir,
    ...options,
  });
}

export function client(url: string, rps = 500, limiter = new RateLimiter({ rps, burst: 50 })) {
  return {
    limiter,
    client: new RunComfyClient({
      baseUrl: url,
      token: "test-token",
      hooks: limiter.hooks(),
      retry: { baseDelayMs: 20, maxDelayMs: 200, maxAttempts: 8 },
    }),
  };
}

export function journal(dir: string): SqliteJobStore {
  return SqliteJobStore.open(join(dir, "journal.db"));
}

/** Submits in the sandbox's log (POST to the model), by request id when one was answered. */
export function submitCount(sb: Sandbox): number {
  return sb.requests().filter((r) => r.route === "submit" && r.method === "POST").length;
}

/**
 * Runs a manifest through runBatch on a fresh client (thumbnails off) and collects its events.
 * `onEvent` may call `abort()` to interrupt the run at a chosen moment, as Ctrl-C would.
 */
export async function drive(
  manifestPath: string,
  options: Omit<RunBatchOptions, "client" | "journal" | "signal"> & {
    sb: Sandbox;
    journal: SqliteJobStore;
    onEvent?: (event: BatchEvent, abort: () => void) => void;
  },
): Promise<{ events: BatchEvent[]; summary: BatchSummary }> {
  const { sb, onEvent, ...rest } = options;
  const manifest = await readManifest(manifestPath);
  const { client: batchClient, limiter } = client(sb.url);
  const controller = new AbortController();
  const run = runBatch(manifest, {
    ...rest,
    client: batchClient,
    rateLimiter: limiter,
    thumbnails: false,
    signal: controller.signal,
  });
  const events: BatchEvent[] = [];
  for await (const event of run) {
    events.push(event);
    onEvent?.(event, () => controller.abort());
  }
  return { events, summary: await run.summary };
}
