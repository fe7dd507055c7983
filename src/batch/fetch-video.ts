// A row's video from the CDN into --out, where OutputFiles says: never onto a file this batch
// did not write (without --force). When such a file turns out to hold this very video (written
// before a crash let its outcome be recorded), it is kept as the row's file and the new copy
// removed; otherwise the new copy stays beside it and the caller is told. A download that
// fails for want of space leaves nothing partial behind.

import { rm } from "node:fs/promises";
import { basename } from "node:path";
import { type DownloadResult, download, lockOutputFile } from "../download/download.js";
import { isDiskFull, removePartial } from "./disk-full.js";
import { type OutputFiles, sha256File, VIDEO_EXT } from "./output-files.js";

export interface FetchedVideo extends DownloadResult {
  /** The file's name inside --out. */
  file: string;
  /** Set when the video could not go under the row's own name (a file was in the way). */
  note: string | undefined;
}

export async function fetchRowVideo(
  files: OutputFiles,
  params: {
    url: string;
    /** The row's name (file stem) and key. */
    name: string;
    rowKey: string;
    signal: AbortSignal;
    /** Called with the path whose write found the disk full (before the error is thrown on). */
    onDiskFull: (path: string) => void;
  },
): Promise<FetchedVideo> {
  // Asked on every attempt: a file may have appeared under the name meanwhile.
  const target = await files.destination(`${params.name}${VIDEO_EXT}`, params.rowKey);
  let got: DownloadResult;
  // The folder was made and resolved when the batch started (realOutDir): only the file is
  // claimed here, not the whole output checked again as for a single download (a folder gone
  // or made read-only meanwhile fails the lock's own write, with the same error).
  const lock = await lockOutputFile(target.path);
  try {
    const output = { file: target.path, dir: files.outDir, force: target.overwrite, release: lock.release };
    got = await download(params.url, { output, signal: params.signal });
  } catch (error) {
    if (isDiskFull(error)) {
      await removePartial(target.path);
      params.onDiskFull(target.path);
    }
    throw error;
  } finally {
    await lock.release();
  }
  if (!target.occupied) return { ...got, file: target.file, note: undefined };
  if ((await sha256File(target.occupied).catch(() => undefined)) === got.sha256) {
    await rm(got.path, { force: true });
    return { ...got, path: target.occupied, file: basename(target.occupied), note: undefined };
  }
  const note = `${target.occupied} already exists and was not written by this batch: the video was saved as ${target.file}`;
  return { ...got, file: target.file, note };
}
