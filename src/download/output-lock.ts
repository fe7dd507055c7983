// Claims on an output file between processes: `<file>.lock`, created complete and exclusively
// (a private file hard-linked into place) with the owner's pid, host and a random token. A lock
// whose process is gone (a crash, a kill -9) is taken over; takeovers are serialized so that of
// several processes racing for a dead lock exactly one gets it. Locks held are removed on exit.

import { randomBytes } from "node:crypto";
import { constants, readFileSync, unlinkSync } from "node:fs";
import { link, lstat, open, readFile, unlink } from "node:fs/promises";
import { hostname } from "node:os";
import { dirname } from "node:path";
import { fsError, OutputError } from "./output-error.js";

interface LockOwner {
  pid: number;
  host: string;
  at: string;
  token: string;
}

/** This machine's name, asked once (a system call per lock otherwise). */
const HOST = hostname();

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

/**
 * Which file a lock we created is: a lock taken over and created again is another file (its
 * inode number may be the old one's, reused, but not its birth time, where the system keeps one).
 */
interface LockIdentity {
  dev: bigint;
  ino: bigint;
  birthtimeNs: bigint;
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
    host: HOST,
    at: new Date().toISOString(),
    token: randomBytes(8).toString("hex"),
  };
  const text = `${JSON.stringify(owner)}\n`;
  for (let attempt = 0; attempt < 100; attempt++) {
    const created = await createLock(lockPath, text, dirname(file));
    if (created) {
      installExitHook();
      heldLocks.set(lockPath, owner.token);
      let released = false;
      return {
        release: async () => {
          if (released) return;
          released = true;
          heldLocks.delete(lockPath);
          // Only our own lock: a claim taken over meanwhile is another file, another inode (one
          // lstat, where reading the content back would take four system calls).
          const current = await lstat(lockPath, { bigint: true }).catch(() => undefined);
          if (
            current &&
            current.ino === created.ino &&
            current.dev === created.dev &&
            current.birthtimeNs === created.birthtimeNs
          ) {
            await unlink(lockPath).catch(() => {});
          }
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
 * Creates `lockPath` holding `text` and returns its identity, or undefined if it exists. The
 * content is written to a private file first and hard-linked into place, so a lock is never
 * seen empty: an empty or unreadable lock is a leftover, not one being written.
 */
async function createLock(lockPath: string, text: string, dir: string): Promise<LockIdentity | undefined> {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0);
  const temp = `${lockPath}.${randomBytes(6).toString("hex")}.tmp`;
  let identity: LockIdentity;
  try {
    const handle = await open(temp, flags, 0o600);
    try {
      await handle.writeFile(text);
      identity = await handle.stat({ bigint: true });
    } finally {
      await handle.close();
    }
  } catch (error) {
    // A full disk fails the write after the create: leave no empty temporary file behind.
    await unlink(temp).catch(() => {});
    throw fsError(error, dir, "cannot write in the folder");
  }
  try {
    await link(temp, lockPath);
    return identity;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EEXIST") return undefined;
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
      return await handle.stat({ bigint: true });
    } finally {
      await handle.close();
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return undefined;
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
  if (owner.host !== HOST) return { live: true, text, describe }; // cannot check another machine
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
