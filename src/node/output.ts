// Where a video goes, checked before anything is paid for: a job whose video has nowhere to go
// is money spent for nothing, so every problem the output can have that is visible beforehand
// is found before the submit (a folder that cannot be written, a name taken, a dangling link, a
// FIFO or a device, too little free space, another run writing the same file).
//
// Only regular files are ever written: a FIFO, a device or a socket is refused with or without
// `force` (renaming onto `/dev/null` as root would replace the device itself).
//
// Two processes writing the same file would interleave their bytes in one `.part` and race for
// the final name, so a file target is claimed with a lock file beside it (`<file>.lock`, created
// with O_EXCL, holding the owner's pid and host). A lock left by a process that no longer exists
// (a crash, a kill -9) is recognised by its pid and taken over.

import { randomBytes } from "node:crypto";
import { constants, readFileSync, unlinkSync } from "node:fs";
import { link, lstat, mkdir, open, readFile, readlink, stat, statfs, unlink } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { dreaminaHome } from "./paths.js";

/**
 * Free space asked of the output's filesystem before a job is submitted. Dreamina 3.0 Pro
 * videos are a few MB (5 s) to some tens of MB (10 s at full quality): 64 MiB leaves room for the
 * largest with its `.part` beside the file it replaces.
 */
export const MIN_FREE_BYTES = 64 * 1024 * 1024;

export type OutputErrorCode =
  /** The file exists and `force` was not given. */
  | "exists"
  /** A FIFO, a device, a socket: only regular files are written. */
  | "not_regular"
  /** A symbolic link to nothing. */
  | "dangling_link"
  /** A directory was expected (or a parent of the file is not one). */
  | "not_directory"
  /** The folder cannot be created or written (read-only filesystem, permissions). */
  | "not_writable"
  /** Too little free space, or the disk filled up while writing. */
  | "no_space"
  /** Another process is writing the same file. */
  | "busy"
  /** Writing failed for another local reason (an I/O error, say). */
  | "write_failed";

/** The output cannot be written where asked. `path` is the file or folder concerned. */
export class OutputError extends Error {
  readonly code: OutputErrorCode;
  readonly path: string;
  constructor(code: OutputErrorCode, message: string, path: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "OutputError";
    this.code = code;
    this.path = path;
  }

  toJSON(): Record<string, unknown> {
    return { name: this.name, code: this.code, path: this.path, message: this.message };
  }
}

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

/** Local filesystem errno codes, as the output error they mean. */
const ERRNO_CODES: Record<string, OutputErrorCode> = {
  EROFS: "not_writable",
  EACCES: "not_writable",
  EPERM: "not_writable",
  ENOSPC: "no_space",
  EDQUOT: "no_space",
  EFBIG: "no_space",
  ENOTDIR: "not_directory",
  EISDIR: "not_directory",
  EIO: "write_failed",
  ENAMETOOLONG: "write_failed",
  EMLINK: "write_failed",
  EXDEV: "write_failed",
  EBUSY: "write_failed",
  ETXTBSY: "write_failed",
  EEXIST: "exists",
  // The folder went away while writing.
  ENOENT: "write_failed",
};

/** Whether `error` is a local filesystem failure (as opposed to the network's, or an abort). */
export function isLocalFsError(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === "string" && code in ERRNO_CODES && !(error instanceof OutputError);
}

/** A filesystem error as an {@link OutputError} that says what it means for the output. */
export function fsError(error: unknown, path: string, doing?: string): OutputError {
  if (error instanceof OutputError) return error;
  const errno = error as NodeJS.ErrnoException;
  const code = ERRNO_CODES[errno.code ?? ""] ?? "write_failed";
  const why =
    errno.code === "EROFS"
      ? "read-only filesystem"
      : errno.code === "EACCES" || errno.code === "EPERM"
        ? "permission denied"
        : errno.code === "ENOSPC" || errno.code === "EDQUOT"
          ? "no space left on the device"
          : (errno.message ?? String(error));
  return new OutputError(code, `${doing ? `${doing} ` : ""}${path}: ${why}`, path, { cause: error });
}

// ---- claims ----------------------------------------------------------------------------------

interface LockOwner {
  pid: number;
  host: string;
  at: string;
  token: string;
}

/** Lock files this process holds, removed on exit even after a process.exit() (a second Ctrl-C). */
const heldLocks = new Map<string, string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const [path, token] of heldLocks) {
      try {
        if (readOwner(readFileSync(path, "utf8"))?.token === token) unlinkSync(path);
      } catch {}
    }
  });
}

/** An unreadable lock older than this is a leftover (locks appear complete, see createLock). */
const FRESH_LOCK_MS = 10_000;
/** A takeover holds its mutex for milliseconds: one older than this is a crash's leftover. */
const STALE_TAKEOVER_MS = 30_000;

/**
 * Claims `file` for this process: `<file>.lock`, created exclusively with its owner (pid, host,
 * a random token) already in it. Throws {@link OutputError} `busy` when a live process holds
 * it; a lock whose process is gone is taken over.
 */
export async function lockOutputFile(file: string): Promise<{ release(): Promise<void> }> {
  const lockPath = `${file}.lock`;
  const owner: LockOwner = {
    pid: process.pid,
    host: hostname(),
    at: new Date().toISOString(),
    token: randomBytes(8).toString("hex"),
  };
  const text = `${JSON.stringify(owner)}\n`;
  for (let attempt = 0; attempt < 100; attempt++) {
    if (await createLock(lockPath, text, dirname(file))) {
      installExitHook();
      heldLocks.set(lockPath, owner.token);
      let released = false;
      return {
        release: async () => {
          if (released) return;
          released = true;
          heldLocks.delete(lockPath);
          // Only our own lock: a claim taken over meanwhile is someone else's now.
          const current = await readFile(lockPath, "utf8").catch(() => undefined);
          if (current === text) await unlink(lockPath).catch(() => {});
        },
      };
    }
    const holder = await lockHolder(lockPath);
    if (holder.live) {
      throw new OutputError(
        "busy",
        `${file} is being written by another dreamina process${holder.describe}; wait for it to finish or ` +
          `choose another output (if no such process runs, remove ${lockPath})`,
        file,
      );
    }
    await takeOverStaleLock(lockPath, holder.text);
  }
  throw new OutputError(
    "busy",
    `${file}: could not claim ${lockPath} (other processes keep taking it)`,
    file,
  );
}

/**
 * Creates `lockPath` holding `text`, or returns false if it exists. The content is written to a
 * private file first and hard-linked into place, so a lock is never seen empty: an empty or
 * unreadable lock is a leftover, not one being written.
 */
async function createLock(lockPath: string, text: string, dir: string): Promise<boolean> {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0);
  const temp = `${lockPath}.${randomBytes(6).toString("hex")}.tmp`;
  try {
    const handle = await open(temp, flags, 0o600);
    try {
      await handle.writeFile(text);
    } finally {
      await handle.close();
    }
  } catch (error) {
    throw fsError(error, dir, "cannot write in the folder");
  }
  try {
    await link(temp, lockPath);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EEXIST") return false;
    if (code !== "EPERM" && code !== "ENOTSUP" && code !== "EOPNOTSUPP") {
      throw fsError(error, dir, "cannot write in the folder");
    }
  } finally {
    await unlink(temp).catch(() => {});
  }
  // A filesystem without hard links: exclusive create, then write (an empty lock may be seen
  // for an instant there, and is respected while fresh).
  try {
    const handle = await open(lockPath, flags, 0o600);
    try {
      await handle.writeFile(text);
    } finally {
      await handle.close();
    }
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw fsError(error, dir, "cannot write in the folder");
  }
}

function readOwner(text: string): LockOwner | undefined {
  try {
    const value = JSON.parse(text) as LockOwner;
    return typeof value?.pid === "number" && typeof value.token === "string" ? value : undefined;
  } catch {
    return undefined;
  }
}

async function lockHolder(
  lockPath: string,
): Promise<{ live: boolean; text: string | undefined; describe: string }> {
  let text: string;
  let mtimeMs: number;
  try {
    const info = await lstat(lockPath);
    if (!info.isFile())
      return { live: true, text: undefined, describe: ` (${lockPath} is not a regular file)` };
    mtimeMs = info.mtimeMs;
    text = await readFile(lockPath, "utf8");
  } catch (error) {
    // Gone meanwhile: free to try again.
    if ((error as NodeJS.ErrnoException).code === "ENOENT")
      return { live: false, text: undefined, describe: "" };
    throw fsError(error, lockPath);
  }
  const owner = readOwner(text);
  if (!owner) {
    // Just created and not written yet, or torn by a crash: only a fresh one is respected.
    return { live: Date.now() - mtimeMs < FRESH_LOCK_MS, text, describe: "" };
  }
  const describe = ` (pid ${owner.pid} on ${owner.host}, since ${owner.at})`;
  if (owner.host !== hostname()) return { live: true, text, describe }; // cannot check another machine
  if (owner.pid === process.pid) return { live: heldLocks.get(lockPath) === owner.token, text, describe };
  return { live: processAlive(owner.pid), text, describe };
}

/**
 * Removes a dead process's lock so that the caller can try to create its own. Removing a path
 * only if it still holds what was read is not atomic, so takeovers are serialized by a mutex
 * (`<lock>.takeover`, created exclusively) and the content is read again inside it: while the
 * stale lock is there nobody else can create one, and no other takeover runs, so what is
 * unlinked is the stale lock itself, never a live one created meanwhile.
 */
async function takeOverStaleLock(lockPath: string, staleText: string | undefined): Promise<void> {
  if (staleText === undefined) return; // gone already
  const mutex = `${lockPath}.takeover`;
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(mutex, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw fsError(error, lockPath);
    // Another process is taking it over right now; a mutex left by a crash in that instant is old.
    const info = await lstat(mutex).catch(() => undefined);
    if (info && Date.now() - info.mtimeMs > STALE_TAKEOVER_MS) await unlink(mutex).catch(() => {});
    else await new Promise((r) => setTimeout(r, 5 + Math.random() * 20));
    return;
  }
  try {
    await handle.close();
    const current = await readFile(lockPath, "utf8").catch(() => undefined);
    if (current === staleText) await unlink(lockPath).catch(() => {});
  } finally {
    await unlink(mutex).catch(() => {});
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
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
