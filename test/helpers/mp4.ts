// A small, real H.264 MP4 made by the bundled ffmpeg (a test pattern), for download tests and
// the download bench: independent of the sandbox's renderer, so those checks don't depend on it.

import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Writes `frames` frames at 24 fps, 320x240, to `path` (moov first) and returns the bytes. */
export async function makeTestMp4(path: string, frames: number): Promise<Buffer> {
  const ffmpeg = ((await import("@ffmpeg-installer/ffmpeg")) as { default: { path: string } }).default.path;
  await run(ffmpeg, [
    ...["-hide_banner", "-loglevel", "error", "-y"],
    ...["-f", "lavfi", "-i", "testsrc=size=320x240:rate=24", "-frames:v", String(frames)],
    ...["-c:v", "libx264", "-pix_fmt", "yuv420p", "-movflags", "+faststart", path],
  ]);
  return readFile(path);
}
