// Real filesystems that refuse writes, for the output checks: tests run as root, where chmod
// stops nothing, so a read-only folder is a tmpfs mounted read-only, and a full disk is a tiny
// tmpfs. Mounting needs root (CAP_SYS_ADMIN); where it is not allowed, `mountTmpfs` returns
// false and the test says loudly that it was skipped.

import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";

/** Mounts a fresh tmpfs at `dir` (created if needed). False when mounting is not allowed here. */
export function mountTmpfs(dir: string, options: { readOnly?: boolean; sizeKiB?: number } = {}): boolean {
  mkdirSync(dir, { recursive: true });
  const flags = [`size=${options.sizeKiB ?? 1024}k`, "mode=0755"];
  if (options.readOnly) flags.push("ro");
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", flags.join(","), "tmpfs", dir], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Makes a mounted tmpfs read-only from now on. */
export function remountReadOnly(dir: string): void {
  execFileSync("mount", ["-o", "remount,ro", dir], { stdio: "ignore" });
}

export function unmount(dir: string): void {
  try {
    execFileSync("umount", [dir], { stdio: "ignore" });
  } catch {}
}

/** A FIFO (named pipe) at `path`. */
export function mkfifo(path: string): void {
  execFileSync("mkfifo", [path], { stdio: "ignore" });
}

/**
 * A character device node at `path`, the same device as /dev/null (1, 3): a safe stand-in for
 * it in a temp dir. False when creating device nodes is not allowed here.
 */
export function mknodNull(path: string): boolean {
  try {
    execFileSync("mknod", ["-m", "666", path, "c", "1", "3"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

export const SKIP_NO_MOUNT =
  "SKIPPED: cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN), so no folder that really refuses writes";
