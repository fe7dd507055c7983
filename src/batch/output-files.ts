// Where a batch writes: the one sanitizer for every output file name derived from manifest
// data, the real output directory (symlinks resolved, so two spellings of one folder are one
// batch), and the check that every path the batch writes lies inside it.

import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { lstat, mkdir, realpath, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { DreaminaError } from "../api/dreamina-error.js";
import { sanitizeFileName } from "../download/download.js";

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
export class OutputPathError extends DreaminaError {
  static override readonly code: string = "outside_out";
  constructor(
    readonly file: string,
    readonly outDir: string,
  ) {
    super(`refusing to write ${JSON.stringify(file)}: it is not a plain file name inside ${outDir}`);
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), file: this.file, outDir: this.outDir };
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

/** Why a row's video may not be written where its name says. */
export interface OutputRefusal {
  field: "name";
  rule: "exists" | "path";
  actual: string;
  message: string;
}

/** Where a row's video goes when its job has already run (and been paid for). */
export interface PaidDestination {
  file: string;
  path: string;
  /** Replace what is there (this row's own earlier file, or --force). */
  overwrite: boolean;
  /** Set when the row's own name holds a file this batch did not write: it is kept. */
  occupied?: string | undefined;
}

/**
 * The files of --out this batch may replace: a file recorded in the batch state as a row's
 * output is that row's to replace (a damaged or stale copy is fetched again); any other file is
 * the user's, and is only replaced with --force.
 */
export class OutputFiles {
  readonly outDir: string;
  readonly #force: boolean;
  /** File name → the row key it was recorded for. */
  readonly #recorded = new Map<string, string>();
  /** Every row's own file name (lower case): never taken as a free name for another row. */
  readonly #reserved: ReadonlySet<string>;

  constructor(options: {
    outDir: string;
    recorded: Iterable<{ file?: string | undefined; rowKey: string }>;
    rowFiles: Iterable<string>;
    force: boolean;
  }) {
    this.outDir = options.outDir;
    this.#force = options.force;
    for (const r of options.recorded) if (r.file) this.#recorded.set(r.file, r.rowKey);
    this.#reserved = new Set([...options.rowFiles].map((f) => f.toLowerCase()));
  }

  /** Remembers a file this run wrote for a row. */
  record(file: string, rowKey: string): void {
    this.#recorded.set(file, rowKey);
  }

  /**
   * Why a row that is still to be submitted may not write `file`: checked before anything is
   * sent, so no video is paid for that would have nowhere to go.
   */
  async refusal(file: string, rowKey: string): Promise<OutputRefusal | undefined> {
    let path: string;
    try {
      path = outputPath(this.outDir, file);
    } catch (error) {
      return { field: "name", rule: "path", actual: file, message: (error as Error).message };
    }
    const entry = await entryAt(path);
    if (entry === "none") return undefined;
    if (entry === "file" && (this.#force || this.#recorded.get(file) === rowKey)) return undefined;
    const other = this.#recorded.get(file);
    const what =
      entry === "other"
        ? "exists and is not a regular file"
        : other !== undefined
          ? `holds the video of another row of this batch (key ${JSON.stringify(other)})`
          : "already exists and was not written by this batch";
    const fix =
      entry === "other"
        ? "move it away"
        : "move it away, give the row another name, or use --force to overwrite it";
    return {
      field: "name",
      rule: "exists",
      actual: path,
      message: `${path} ${what}: ${fix} (nothing was submitted for this row)`,
    };
  }

  /**
   * Where the video of a row whose job already ran goes. Never onto a file this batch did not
   * write (without --force): then to the first free `<stem> (n).mp4` beside it, so the paid
   * video is kept either way (and the caller may find that the two are the same video).
   */
  async destination(file: string, rowKey: string): Promise<PaidDestination> {
    const path = outputPath(this.outDir, file);
    const entry = await entryAt(path);
    if (entry === "none") return { file, path, overwrite: false };
    if (entry === "file" && (this.#force || this.#recorded.get(file) === rowKey)) {
      return { file, path, overwrite: true };
    }
    const stem = file.endsWith(VIDEO_EXT) ? file.slice(0, -VIDEO_EXT.length) : file;
    for (let n = 1; n < 10_000; n++) {
      const candidate = `${stem} (${n})${VIDEO_EXT}`;
      const candidatePath = outputPath(this.outDir, candidate);
      const taken =
        this.#reserved.has(candidate.toLowerCase()) ||
        (this.#recorded.has(candidate) && this.#recorded.get(candidate) !== rowKey);
      // A `.part` there is this row's own earlier attempt (download resumes or replaces it).
      if (!taken && (await entryAt(candidatePath)) === "none") {
        return { file: candidate, path: candidatePath, overwrite: false, occupied: path };
      }
    }
    throw new Error(`no free name beside ${path}`);
  }
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}
