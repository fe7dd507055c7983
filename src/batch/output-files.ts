// Where a batch writes: the one sanitizer for every output file name derived from manifest
// data, the real output directory (symlinks resolved, so two spellings of one folder are one
// batch), and the check that every path the batch writes lies inside it.

import { lstat, mkdir, realpath, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { sanitizeFileName } from "../node/download.js";

/** The output video's extension: a row's file is `<name>.mp4`. */
export const VIDEO_EXT = ".mp4";

/**
 * The sanitized form of a file stem taken from manifest data ("" when nothing is left): no path
 * separators or traversal, no control, bidi or markup characters, not hidden, not a Windows
 * device name, at most 200 bytes (room for `.mp4.part.json` within 255). A given `name` must
 * already be in this form; a default name is built from pieces that go through it.
 */
export function sanitizeStem(raw: string): string {
  return sanitizeFileName(raw.normalize("NFC"), "", "");
}

/** Text reduced to the characters every file system takes as they are (runs of others → `_`). */
export function portableText(raw: string): string {
  return raw.replace(/[^A-Za-z0-9._-]+/g, "_");
}

/** A path that names no file inside the output directory (it would write elsewhere). */
export class OutputPathError extends Error {
  readonly code = "outside_out";
  constructor(
    readonly file: string,
    readonly outDir: string,
  ) {
    super(`refusing to write ${JSON.stringify(file)}: it is not a plain file name inside ${outDir}`);
    this.name = "OutputPathError";
  }
}

/**
 * The absolute path of `file` inside `outDir` (a real directory, see `realOutDir`), checked:
 * `file` must be one plain name, and the path it resolves to must lie directly in `outDir`.
 */
export function outputPath(outDir: string, file: string): string {
  const path = resolve(outDir, file);
  if (
    file === "" ||
    file !== basename(file) ||
    file === "." ||
    file === ".." ||
    /[/\\\0]/.test(file) ||
    dirname(path) !== outDir
  ) {
    throw new OutputPathError(file, outDir);
  }
  return path;
}

/**
 * The output directory as the file system knows it: every symlink resolved. With `create`, the
 * directory is made first; without, the real path of its nearest existing ancestor is used (a
 * dry run creates nothing). Also returns the directory's device and inode when it exists.
 */
export async function realOutDir(
  dir: string,
  options: { create: boolean },
): Promise<{ path: string; devIno: string | undefined }> {
  const spelled = resolve(dir);
  if (options.create) await mkdir(spelled, { recursive: true });
  let existing = spelled;
  const missing: string[] = [];
  let real: string;
  for (;;) {
    try {
      real = await realpath(existing);
      break;
    } catch (error) {
      const parent = dirname(existing);
      if ((error as NodeJS.ErrnoException).code !== "ENOENT" || options.create || parent === existing) {
        throw error;
      }
      missing.unshift(basename(existing));
      existing = parent;
    }
  }
  const info = await stat(real, { bigint: true });
  if (!info.isDirectory()) {
    throw Object.assign(new Error(`the output directory ${spelled} is not a directory`), { code: "ENOTDIR" });
  }
  if (missing.length > 0) return { path: join(real, ...missing), devIno: undefined };
  return { path: real, devIno: `${info.dev}:${info.ino}` };
}

/** What is at `path` now, without following a symlink there. */
export async function entryAt(path: string): Promise<"none" | "file" | "other"> {
  try {
    const info = await lstat(path);
    return info.isFile() ? "file" : "other";
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return "none";
    throw error;
  }
}
