// The `.part` file beside a download and the `.part.json` that lets another process resume it;
// the Range headers that say which bytes came; the rename into place.

import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { link, lstat, open, readFile, rename, stat, unlink } from "node:fs/promises";
import { dirname } from "node:path";
import { checkFileTarget, OutputError } from "./output.js";

/** Read size when hashing a `.part` left by an earlier process. */
const HASH_READ_BYTES = 1 << 20;

/** What we remember next to a `.part` so that another process can resume it safely. */
export interface PartMeta {
  url: string;
  etag: string | undefined;
  lastModified: string | undefined;
  total: number | undefined;
}

export function parseLength(value: string | null | undefined): number | undefined {
  if (value === null || value === undefined || !/^\s*\d+\s*$/.test(value)) return undefined;
  return Number(value);
}

export function parseContentRange(
  value: string | null | undefined,
): { start: number; end: number; total: number | undefined } | undefined {
  const match = /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(value ?? "");
  if (!match) return undefined;
  const start = Number(match[1]);
  const end = Number(match[2]);
  if (end < start) return undefined;
  return { start, end, total: match[3] === "*" ? undefined : Number(match[3]) };
}

/** From a 416's `Content-Range: bytes * /<total>`. */
export function parseContentRangeTotal(value: string | null | undefined): number | undefined {
  const match = /^\s*bytes\s+\*\/(\d+)\s*$/i.exec(value ?? "");
  return match ? Number(match[1]) : undefined;
}

/** Whether a `.part` is there, and whether it can be resumed (its metadata says it is ours). */
export async function readLeftover(
  part: string,
  metaPath: string,
  url: string,
): Promise<{ partExists: boolean; resumable?: { meta: PartMeta; size: number } }> {
  let size: number;
  try {
    size = (await stat(part)).size;
  } catch {
    return { partExists: false };
  }
  try {
    const meta = JSON.parse(await readFile(metaPath, "utf8")) as PartMeta;
    // Same file only: the same URL, and a validator to confirm the server still has that version.
    if (meta.url !== url || (!meta.etag && !meta.lastModified) || size === 0) return { partExists: true };
    if (meta.total !== undefined && size > meta.total) return { partExists: true };
    return { partExists: true, resumable: { meta, size } };
  } catch {
    return { partExists: true };
  }
}

export async function hashFile(path: string, signal: AbortSignal | undefined): Promise<Hash> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: HASH_READ_BYTES, signal })) {
    hash.update(chunk as Buffer);
  }
  return hash;
}

export async function moveIntoPlace(part: string, path: string, force: boolean): Promise<void> {
  if (force) {
    // Replaces a regular file only: whatever took the name while downloading (a FIFO, a device,
    // a dangling link) is refused rather than renamed over.
    await checkFileTarget(path, true);
    await rename(part, path);
  } else {
    // link() fails if the name was taken meanwhile (another process): never clobber silently.
    try {
      await link(part, path);
      await unlink(part);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "EEXIST") {
        throw new OutputError(
          "exists",
          `${path} appeared while downloading; the download is kept in ${part}`,
          path,
        );
      }
      // Filesystems without hard links: check, then rename.
      if (code === "EPERM" || code === "ENOTSUP" || code === "EOPNOTSUPP" || code === "EXDEV") {
        if (await exists(path)) {
          throw new OutputError(
            "exists",
            `${path} appeared while downloading; the download is kept in ${part}`,
            path,
          );
        }
        await rename(part, path);
      } else {
        throw error;
      }
    }
  }
  await syncDir(dirname(path));
}

async function syncDir(dir: string): Promise<void> {
  // Makes the rename itself durable; not supported everywhere (Windows), which is fine.
  try {
    const handle = await open(dir, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {}
}

/** Whether anything is at `path`, a dangling link included (it would take the name too). */
export async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}
