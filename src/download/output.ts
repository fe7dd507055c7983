// Where a video goes, checked before anything is paid for: a job whose video has nowhere to go
// is money spent for nothing, so every problem the output can have that is visible beforehand
// is found before the submit (a folder that cannot be written, a name taken, a dangling link, a
// FIFO or a device, too little free space, another run writing the same file).
//
// Only regular files are ever written: a FIFO, a device or a socket is refused with or without
// `force` (renaming onto `/dev/null` as root would replace the device itself).
//
// Two processes writing the same file would interleave their bytes in one `.part` and race for
// the final name, so a file target is claimed with a lock file beside it (output-lock.ts).

import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { lstat, mkdir, open, readlink, stat, statfs, unlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { dreaminaHome } from "../config/paths.js";
import { fsError, OutputError } from "./output-error.js";
import { lockOutputFile } from "./output-lock.js";

export * from "./output-error.js";
export { lockOutputFile } from "./output-lock.js";

/**
 * Free space asked of the output's filesystem before a job is submitted. Dreamina 3.0 Pro
 * videos are a few MB (5 s) to some tens of MB (10 s at full quality): 64 MiB leaves room for the
 * largest with its `.part` beside the file it replaces.
 */
export const MIN_FREE_BYTES = 64 * 1024 * 1024;

export interface OutputOptions {
  /** Replace an existing regular file. Never replaces anything that is not a regular file. */
  force?: boolean | undefined;
  /** Free space the folder must have. Default {@link MIN_FREE_BYTES}; 0 skips the check. */
  minFreeBytes?: number | undefined;
}

export interface OutputTarget {
  /** The file to write, when the destination names one. */
  file: string | undefined;
  /** The folder the video goes into: it exists, it can be written, it has room. */
  dir: string;
  force: boolean;
}

/** A checked target, claimed for this process until `release()`. */
export interface OutputClaim extends OutputTarget {
  /** Drops the claim (idempotent). The holder calls it when done, whatever happened. */
  release(): Promise<void>;
}

export function isOutputClaim(value: unknown): value is OutputClaim {
  return (
    value !== null &&
    typeof value === "object" &&
    typeof (value as OutputClaim).release === "function" &&
    typeof (value as OutputClaim).dir === "string"
  );
}

type PathKind =
  | { kind: "missing" }
  | { kind: "directory" }
  | { kind: "file" }
  | { kind: "other"; what: string }
  | { kind: "dangling"; to: string };

/**
 * Checks that a video can be written at `dest` (a file, or a folder when it is one or ends in
 * "/"; default the current directory), creating missing folders. Writes nothing else: a probe
 * file is created and removed to be sure the folder takes writes (as root, permissions alone say
 * nothing). Throws {@link OutputError}.
 */
export async function checkOutput(
  dest: string | undefined,
  options: OutputOptions = {},
): Promise<OutputTarget> {
  const raw = dest ?? ".";
  const full = resolve(raw);
  const force = options.force ?? false;
  const wantsDir = raw.endsWith("/") || raw.endsWith("\\");
  // What is there decides everything else, and is looked at before anything is created: a
  // device must be refused before a single byte is written near it.
  const found = await pathKind(full);
  let target: OutputTarget;
  switch (found.kind) {
    case "directory":
      target = { file: undefined, dir: full, force };
      break;
    case "dangling":
      throw new OutputError(
        "dangling_link",
        `${full} is a symbolic link to ${found.to}, which does not exist: remove the link or choose another output`,
        full,
      );
    case "other":
      throw new OutputError(
        "not_regular",
        `${full} is ${found.what}, not a regular file: only regular files are written (with or without --force)`,
        full,
      );
    case "file":
      if (wantsDir) throw new OutputError("not_directory", `${full} is a file, not a directory`, full);
      if (!force) {
        throw new OutputError(
          "exists",
          `${full} already exists: use --force to overwrite it, or choose another file or a directory`,
          full,
        );
      }
      target = { file: full, dir: dirname(full), force };
      break;
    case "missing":
      target = wantsDir ? { file: undefined, dir: full, force } : { file: full, dir: dirname(full), force };
      break;
  }
  await ensureWritableDir(target.dir);
  await ensureFreeSpace(target.dir, options.minFreeBytes ?? MIN_FREE_BYTES);
  return target;
}

/**
 * {@link checkOutput}, then a claim on the file (a lock file beside it) so that no other process
 * writes it meanwhile. A folder target is not claimed: the name is chosen from the URL later,
 * and the download claims it then.
 */
export async function claimOutput(
  dest: string | undefined,
  options: OutputOptions = {},
): Promise<OutputClaim> {
  const target = await checkOutput(dest, options);
  if (target.file === undefined) return { ...target, release: async () => {} };
  const lock = await lockOutputFile(target.file);
  return { ...target, release: lock.release };
}

/**
 * What is at `path` now, for a download about to write there: throws {@link OutputError} for
 * anything but a missing path or (with `force`) a regular file.
 */
export async function checkFileTarget(path: string, force: boolean): Promise<"missing" | "file"> {
  const found = await pathKind(path);
  switch (found.kind) {
    case "missing":
      return "missing";
    case "file":
      if (!force)
        throw new OutputError("exists", `${path} already exists (use --force to overwrite it)`, path);
      return "file";
    case "directory":
      throw new OutputError("exists", `${path} is a directory`, path);
    case "dangling":
      throw new OutputError(
        "dangling_link",
        `${path} is a symbolic link to ${found.to}, which does not exist`,
        path,
      );
    case "other":
      throw new OutputError(
        "not_regular",
        `${path} is ${found.what}, not a regular file: only regular files are written`,
        path,
      );
  }
}

async function pathKind(path: string): Promise<PathKind> {
  let info: Awaited<ReturnType<typeof lstat>>;
  try {
    info = await lstat(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return { kind: "missing" };
    if (code === "ENOTDIR") {
      throw new OutputError("not_directory", `a parent of ${path} is a file, not a directory`, path, {
        cause: error,
      });
    }
    throw fsError(error, path);
  }
  if (info.isSymbolicLink()) {
    try {
      info = await stat(path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ELOOP" || code === "ENOTDIR") {
        const to = await readlink(path).catch(() => "?");
        return { kind: "dangling", to: code === "ELOOP" ? `${to} (a loop)` : to };
      }
      throw fsError(error, path);
    }
  }
  if (info.isDirectory()) return { kind: "directory" };
  if (info.isFile()) return { kind: "file" };
  const what = info.isFIFO()
    ? "a FIFO (named pipe)"
    : info.isCharacterDevice()
      ? "a character device"
      : info.isBlockDevice()
        ? "a block device"
        : info.isSocket()
          ? "a socket"
          : "not a regular file";
  return { kind: "other", what };
}

/** Creates `dir` if needed and proves it takes a new file (created, then removed). */
async function ensureWritableDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EEXIST" || code === "ENOTDIR") {
      throw new OutputError("not_directory", `${dir} (or a parent of it) is a file, not a directory`, dir, {
        cause: error,
      });
    }
    // A recursive mkdir reports some refusals (a read-only filesystem) as ENOENT: the nearest
    // folder that exists says why.
    await probeWrite(await nearestExisting(dir));
    throw fsError(error, dir, "cannot create the folder");
  }
  const info = await stat(dir).catch((error: unknown) => {
    throw fsError(error, dir);
  });
  if (!info.isDirectory()) throw new OutputError("not_directory", `${dir} is not a directory`, dir);
  await probeWrite(dir);
}

/** Creates and removes a file in `dir`: the only test of writability that holds for root too. */
async function probeWrite(dir: string): Promise<void> {
  const probe = join(dir, `.dreamina-probe-${process.pid}-${randomBytes(4).toString("hex")}`);
  try {
    const handle = await open(probe, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    await handle.close();
  } catch (error) {
    throw fsError(error, dir, "cannot write in the folder");
  }
  await unlink(probe).catch(() => {});
}

async function nearestExisting(path: string): Promise<string> {
  let current = path;
  for (;;) {
    try {
      await stat(current);
      return current;
    } catch {
      const parent = dirname(current);
      if (parent === current) return current;
      current = parent;
    }
  }
}

async function ensureFreeSpace(dir: string, minFree: number): Promise<void> {
  if (!(minFree > 0)) return;
  let free: number;
  try {
    const info = await statfs(dir);
    free = Number(info.bavail) * Number(info.bsize);
  } catch {
    return; // not supported here: the write itself will say
  }
  if (free < minFree) {
    throw new OutputError(
      "no_space",
      `only ${megabytes(free)} free in ${dir}; a video needs up to ${megabytes(minFree)}: free some space or choose another output`,
      dir,
    );
  }
}

function megabytes(bytes: number): string {
  return `${(bytes / 1_048_576).toFixed(1)} MiB`;
}

// ---- after a failed save ---------------------------------------------------------------------

/**
 * A file path where a paid video that could not be saved can be fetched again, for the
 * `dreamina wait <id> -o <path>` to print: a fresh name in the current directory, else in
 * `$DREAMINA_HOME/recovered`, else in the temp directory, skipping `avoidDir` (where saving just
 * failed) and any place that fails {@link checkOutput}. Undefined when none passes.
 */
export async function recoveryOutputPath(
  requestId: string,
  options: { avoidDir?: string | undefined; candidates?: string[] | undefined } = {},
): Promise<string | undefined> {
  const stem = `dreamina-${requestId.replace(/[^\w-]/g, "_").slice(0, 120) || "video"}`;
  const avoid = options.avoidDir === undefined ? undefined : resolve(options.avoidDir);
  const dirs = options.candidates ?? [process.cwd(), join(dreaminaHome(), "recovered"), tmpdir()];
  for (const candidate of dirs) {
    const dir = resolve(candidate);
    if (dir === avoid) continue;
    for (let n = 0; n < 100; n++) {
      const file = join(dir, n === 0 ? `${stem}.mp4` : `${stem}-${n}.mp4`);
      try {
        await checkOutput(file);
        // A `.part` or a lock of that name is someone's download: take another name.
        if ((await pathKind(`${file}.part`)).kind !== "missing") continue;
        if ((await pathKind(`${file}.lock`)).kind !== "missing") continue;
        return file;
      } catch (error) {
        if (error instanceof OutputError && error.code === "exists") continue;
        break; // this folder will not do
      }
    }
  }
  return undefined;
}
