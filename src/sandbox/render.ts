// Renders a job's video: the input image, a slow camera move chosen by the seed, encoded as
// a real H.264 MP4 by ffmpeg in a child process (the event loop only moves bytes).
// Byte-identical output for the same image, seed and frame count: fixed decoder output
// (sharp), fixed filter expressions, fixed encoder threads and params, bitexact muxing.

import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { generator } from "./random.js";

export const FPS = 24;
/** The source is upscaled by this factor before zoompan, whose crop positions are whole pixels. */
const OVERSAMPLE = 3;

export interface RenderRequest {
  image: Uint8Array;
  seed: number;
  frames: number;
  /** Output short side in pixels (rounded down to even). */
  shortSide: number;
}

export interface RenderedVideo {
  path: string;
  sha256: string;
  size: number;
  width: number;
  height: number;
  frames: number;
  /** Whether this file came from the cache. */
  cached: boolean;
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
}

/** A camera move: zoom from z0 to z1 while the view centre goes from (x0,y0) to (x1,y1). */
export interface Motion {
  z0: number;
  z1: number;
  x0: number;
  x1: number;
  y0: number;
  y1: number;
}

/** The seed decides the move: push in or pull out, drifting across a part of the frame. */
export function motionForSeed(seed: number): Motion {
  const next = generator(seed, "motion");
  const zoomIn = next() < 0.5;
  const depth = 0.1 + next() * 0.12; // 10..22 % zoom over the clip
  const [z0, z1] = zoomIn ? [1, 1 + depth] : [1 + depth, 1];
  const round = (v: number) => Math.round(v * 1000) / 1000;
  return {
    z0: round(z0),
    z1: round(z1),
    x0: round(0.2 + next() * 0.6),
    x1: round(0.2 + next() * 0.6),
    y0: round(0.3 + next() * 0.4),
    y1: round(0.3 + next() * 0.4),
  };
}

/** Output size for an input: aspect kept, short side `shortSide`, both even. */
export function outputSize(
  width: number,
  height: number,
  shortSide: number,
): { width: number; height: number } {
  const even = (v: number) => Math.max(2, Math.round(v / 2) * 2);
  const short = Math.max(2, Math.floor(shortSide / 2) * 2);
  return width <= height
    ? { width: short, height: even((short * height) / width) }
    : { width: even((short * width) / height), height: short };
}

/** The zoompan filter for a motion: eased (smoothstep) so the move starts and ends gently. */
export function motionFilter(motion: Motion, frames: number, width: number, height: number): string {
  const last = Math.max(1, frames - 1);
  const p = `(on/${last})`;
  const ease = `(${p}*${p}*(3-2*${p}))`;
  const lerp = (a: number, b: number) => `(${a}+(${b - a})*${ease})`;
  // x/y place the crop so its centre follows the path, clamped inside the image.
  const x = `(iw-iw/zoom)*${lerp(motion.x0, motion.x1)}`;
  const y = `(ih-ih/zoom)*${lerp(motion.y0, motion.y1)}`;
  return [
    `zoompan=z='${lerp(motion.z0, motion.z1)}':x='${x}':y='${y}':d=${frames}:s=${width}x${height}:fps=${FPS}`,
    "format=yuv420p",
  ].join(",");
}

export interface RendererOptions {
  cacheDir: string;
  ffmpegPath?: string | undefined;
}

/**
 * Renders videos into a cache directory keyed by (image digest, seed, frames, short side);
 * concurrent requests for the same key share one ffmpeg run.
 */
export class Renderer {
  readonly #cacheDir: string;
  readonly #ffmpegPath: string | undefined;
  readonly #inflight = new Map<string, Promise<RenderedVideo>>();
  readonly #children = new Set<ReturnType<typeof spawn>>();
  #closed = false;

  constructor(options: RendererOptions) {
    this.#cacheDir = options.cacheDir;
    this.#ffmpegPath = options.ffmpegPath;
  }

  async render(request: RenderRequest): Promise<RenderedVideo> {
    const digest = createHash("sha256").update(request.image).digest("hex");
    const key = `${digest.slice(0, 32)}-${request.seed}-${request.frames}-${request.shortSide}`;
    const existing = this.#inflight.get(key);
    if (existing) return existing.then((v) => ({ ...v, cached: true }));
    const promise = this.#renderOnce(key, request);
    this.#inflight.set(key, promise);
    // Failed renders are forgotten so a later job may try again; successes stay memoised.
    promise.catch(() => this.#inflight.delete(key));
    return promise;
  }

  async #renderOnce(key: string, request: RenderRequest): Promise<RenderedVideo> {
    const sharp = (await import("sharp")).default;
    await mkdir(this.#cacheDir, { recursive: true });
    const path = join(this.#cacheDir, `${key}.mp4`);
    // Auto-orient like a photo viewer would (EXIF orientations 5..8 swap the sides).
    const meta = await sharp(request.image).metadata();
    if (!meta.width || !meta.height) throw new Error("the input image has no dimensions");
    const swapped = (meta.orientation ?? 1) >= 5;
    const size = swapped
      ? outputSize(meta.height, meta.width, request.shortSide)
      : outputSize(meta.width, meta.height, request.shortSide);
    if (await isFile(path)) return this.#describe(path, size, request.frames, true);
    const big = { width: size.width * OVERSAMPLE, height: size.height * OVERSAMPLE };
    // Alpha is flattened on black; the resize covers the oversampled frame exactly.
    const raw = await sharp(request.image, { failOn: "error" })
      .rotate()
      .flatten({ background: "#000000" })
      .resize(big.width, big.height, { fit: "cover", kernel: "lanczos3" })
      .removeAlpha()
      .raw()
      .toBuffer();

    const filter = motionFilter(motionForSeed(request.seed), request.frames, size.width, size.height);
    const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    const args = [
      ["-hide_banner", "-loglevel", "error", "-nostdin", "-y"],
      ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", `${big.width}x${big.height}`, "-i", "pipe:0"],
      ["-filter_threads", "1", "-vf", filter, "-frames:v", String(request.frames)],
      ["-c:v", "libx264", "-preset", "veryfast", "-tune", "stillimage", "-crf", "20", "-profile:v", "high"],
      ["-pix_fmt", "yuv420p", "-threads", "2", "-x264-params", "keyint=48:min-keyint=48:scenecut=0"],
      ["-fflags", "+bitexact", "-flags:v", "+bitexact", "-map_metadata", "-1", "-map_chapters", "-1"],
      ["-movflags", "+faststart", "-f", "mp4", tmp],
    ].flat();
    try {
      await this.#ffmpeg(args, raw);
      await rename(tmp, path);
    } catch (error) {
      await rm(tmp, { force: true });
      throw error;
    }
    return this.#describe(path, size, request.frames, false);
  }

  async #describe(
    path: string,
    size: { width: number; height: number },
    frames: number,
    cached: boolean,
  ): Promise<RenderedVideo> {
    const bytes = await readFile(path);
    const sha256 = createHash("sha256").update(bytes).digest("hex");
    return { path, sha256, size: bytes.length, ...size, frames, cached };
  }

  async #ffmpeg(args: string[], stdin: Buffer): Promise<void> {
    if (this.#closed) throw new Error("the sandbox is closing");
    const ffmpegPath = this.#ffmpegPath ?? (await import("@ffmpeg-installer/ffmpeg")).default.path;
    await new Promise<void>((resolve, reject) => {
      const child = spawn(ffmpegPath, args, { stdio: ["pipe", "ignore", "pipe"] });
      this.#children.add(child);
      let stderr = "";
      child.stderr?.setEncoding("utf8");
      child.stderr?.on("data", (chunk: string) => {
        if (stderr.length < 4000) stderr += chunk;
      });
      // EPIPE when ffmpeg dies early: the exit code below carries the real story.
      child.stdin?.on("error", () => {});
      child.stdin?.end(stdin);
      child.on("error", (error) => {
        this.#children.delete(child);
        reject(error);
      });
      child.on("close", (code, signal) => {
        this.#children.delete(child);
        if (code === 0) resolve();
        else reject(new Error(`ffmpeg failed (${signal ?? `exit ${code}`}): ${stderr.trim().slice(0, 500)}`));
      });
    });
  }

  /** Kills running ffmpeg processes (only the ones this renderer started). */
  close(): void {
    this.#closed = true;
    for (const child of this.#children) child.kill("SIGKILL");
    this.#children.clear();
  }
}
