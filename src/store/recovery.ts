// Where a request id goes when the journal cannot take it: the service accepted (and bills) the
// job, but the journal is locked by another process past the busy timeout, or its disk is full.
// The id must not be lost, so it is written, fsynced, to a small file beside the journal, and
// the store takes it in the next time it can (see JobStore.replayRecovered).
//
// One file per id, in `<journal>.recovered/`, rather than lines appended to one shared file:
// replaying must remove what it has committed, and removing lines from a shared file while
// another process may be appending to it would lose that process's line. Each file is created
// once (O_EXCL), complete, and only ever removed whole, after its id is committed.

import { randomBytes } from "node:crypto";
import {
  closeSync,
  constants,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import type { RecoveredSubmit } from "./types.js";

export type { RecoveredSubmit };

export interface RecoveredFile {
  file: string;
  entry: RecoveredSubmit;
}

/** `<journal>.recovered`: the folder of ids waiting to be taken into the journal. */
export function recoveryDirFor(journalPath: string): string {
  return `${journalPath}.recovered`;
}

/**
 * Writes `entry` durably (file and folder fsynced) and returns the file's path. Throws when it
 * cannot (a read-only or full disk): the caller must then at least show the id.
 */
export function writeRecoveredSubmit(dir: string, entry: RecoveredSubmit): string {
  const created = !isDirectory(dir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const name = `${Date.now()}-${process.pid}-${entry.localId}-${randomBytes(4).toString("hex")}.json`;
  const file = join(dir, name);
  const fd = openSync(
    file,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0),
    0o600,
  );
  try {
    const bytes = Buffer.from(`${JSON.stringify(entry)}\n`);
    let written = 0;
    while (written < bytes.length) written += writeSync(fd, bytes, written);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  syncDir(dir);
  if (created) syncDir(join(dir, ".."));
  return file;
}

/**
 * Every readable entry, oldest first. A file that does not parse (being written right now, or
 * torn by a crash) is left alone and listed in `unreadable`: it is never removed.
 */
export function readRecoveredSubmits(dir: string): { entries: RecoveredFile[]; unreadable: string[] } {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith(".json"));
  } catch {
    return { entries: [], unreadable: [] };
  }
  const entries: RecoveredFile[] = [];
  const unreadable: string[] = [];
  for (const name of names.sort()) {
    const file = join(dir, name);
    try {
      const entry = JSON.parse(readFileSync(file, "utf8")) as RecoveredSubmit;
      if (
        entry?.kind !== "submit_accepted" ||
        typeof entry.requestId !== "string" ||
        entry.requestId === "" ||
        !Number.isInteger(entry.localId)
      ) {
        unreadable.push(file);
        continue;
      }
      entries.push({ file, entry });
    } catch {
      unreadable.push(file);
    }
  }
  return { entries, unreadable };
}

/** Removes committed entries (already gone is fine: another process replayed them too). */
export function removeRecoveredFiles(files: readonly string[]): void {
  for (const file of files) {
    try {
      unlinkSync(file);
    } catch {}
  }
}

export function hasRecoveredSubmits(dir: string): boolean {
  try {
    return readdirSync(dir).some((n) => n.endsWith(".json"));
  } catch {
    return false;
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, "r");
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {}
}
