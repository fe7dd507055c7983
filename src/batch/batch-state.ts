// A batch's identity and lease, on the file-system side: the output folder's real path, the
// marker file inside it, the heartbeat that keeps the lease. The rows and the lease themselves
// are the job store's (JobStore.openBatch and friends).
//
// Identity: the batch id is stored in `<out>/.dreamina-batch.json`; when that file is gone,
// the batch whose output directory is the same real path (symlinks resolved) is taken up
// again, so deleting the marker (or the whole output directory) never leads to resubmitting
// finished rows. The lease is on the real folder too: no two live processes may run batches
// whose output directories share a real path or a device and inode, however the folder was
// spelled on their command lines.

import { createHash } from "node:crypto";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { BatchInfo, BatchRowRecord, JobStore, SharedBatchStore } from "../store/index.js";
import { realOutDir } from "./output-files.js";

export const MARKER_FILE = ".dreamina-batch.json";

/** How often the lease is renewed while a batch runs. */
const HEARTBEAT_MS = 15_000;

export interface OpenBatchOptions {
  outDir: string;
  manifestPath?: string | undefined;
  manifestDigest?: string | undefined;
  /** Use this batch id instead of the marker file's (or a new one). */
  batchId?: string | undefined;
  /** Refuse nothing: take the batch even if another live process holds it. Default false. */
  force?: boolean | undefined;
  /** Do not take the lease nor write the marker (a dry run only reads). */
  readOnly?: boolean | undefined;
}

/** How a worker names the shared batch it joins (see {@link BatchState.join}). */
export interface JoinBatchOptions {
  outDir: string;
  manifestPath?: string | undefined;
  manifestDigest?: string | undefined;
  batchId?: string | undefined;
  rowKeys: readonly string[];
}

export class BatchState {
  readonly store: JobStore;
  readonly info: BatchInfo;
  #owned = false;
  #heartbeat: NodeJS.Timeout | undefined;

  private constructor(store: JobStore, info: BatchInfo) {
    this.store = store;
    this.info = info;
  }

  get batchId(): string {
    return this.info.batchId;
  }

  /** Finds (or creates) the batch for this output directory and takes its lease. */
  static async open(store: JobStore, options: OpenBatchOptions): Promise<BatchState> {
    // The real folder, made first (a dry run only reads, and creates nothing).
    const { path: outDir, devIno } = await realOutDir(options.outDir, { create: !options.readOnly });
    const marker = await readMarker(outDir);
    const info = await store.openBatch({
      outDir,
      outDevIno: devIno,
      manifestPath: options.manifestPath,
      manifestDigest: options.manifestDigest,
      batchId: options.batchId ?? marker?.batchId,
      exactId: options.batchId !== undefined,
      force: options.force,
      readOnly: options.readOnly,
    });
    const state = new BatchState(store, info);
    if (!options.readOnly) {
      state.#owned = true;
      try {
        await writeMarker(outDir, info);
      } catch (error) {
        // E.g. the disk is full: the caller cannot run this batch, so nobody holds it.
        await state.release();
        throw error;
      }
      state.#heartbeat = setInterval(() => {
        store.renewBatchLease(info.batchId).catch(() => {}); // best effort: the next beat tries again
      }, HEARTBEAT_MS);
      state.#heartbeat.unref();
    }
    return state;
  }

  /**
   * Joins the batch that many workers run together on a shared store (no lease on the batch:
   * its rows are leased one by one). Every worker must name the same batch without talking to
   * the others: the id given (`--batch`), else the one in the output folder's marker (a folder
   * shared by the workers, or a rerun), else one derived from the manifest's rows, the same on
   * every machine that has the same rows.
   */
  static async join(store: SharedBatchStore, options: JoinBatchOptions): Promise<BatchState> {
    const { path: outDir } = await realOutDir(options.outDir, { create: true });
    const batchId = await sharedBatchIdFor({ ...options, outDir });
    const info = await store.joinBatch({
      batchId,
      outDir,
      manifestPath: options.manifestPath,
      manifestDigest: options.manifestDigest,
    });
    await writeMarker(outDir, info);
    return new BatchState(store, info);
  }

  /** Every row outcome recorded for this batch, by row key. */
  async rows(): Promise<Map<string, BatchRowRecord>> {
    return await this.store.batchRows(this.batchId);
  }

  /** Gives the batch up (other processes may take it). */
  async release(): Promise<void> {
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
    if (!this.#owned) return;
    this.#owned = false;
    try {
      await this.store.releaseBatch(this.batchId);
    } catch {
      // The store may already be closed; a dead holder is detected anyway.
    }
  }
}

async function readMarker(outDir: string): Promise<{ batchId: string } | undefined> {
  try {
    const value = JSON.parse(await readFile(join(outDir, MARKER_FILE), "utf8")) as { batchId?: unknown };
    return typeof value.batchId === "string" && value.batchId !== "" ? { batchId: value.batchId } : undefined;
  } catch {
    return undefined;
  }
}

async function writeMarker(outDir: string, info: BatchInfo): Promise<void> {
  await mkdir(outDir, { recursive: true });
  const path = join(outDir, MARKER_FILE);
  const tmp = `${path}.${process.pid}.tmp`;
  const body = {
    batchId: info.batchId,
    manifest: info.manifestPath ?? null,
    createdAt: info.createdAt,
    note: "dreamina batch: identifies this batch in the job journal; keep it to resume",
  };
  try {
    await writeFile(tmp, `${JSON.stringify(body, null, 2)}\n`);
    await rename(tmp, path);
  } catch (error) {
    await rm(tmp, { force: true }).catch(() => {});
    throw error;
  }
}

/**
 * The id every worker of a shared batch derives from the manifest's rows alone (their keys,
 * in any order): the same JSONL or CSV on two machines names the same batch; a manifest with
 * other rows names another (give `--batch` to keep one batch across edits).
 */
export function sharedBatchId(rowKeys: readonly string[]): string {
  const hash = createHash("sha256");
  for (const key of [...new Set(rowKeys)].sort()) hash.update(key).update("\n");
  return `m-${hash.digest("hex").slice(0, 20)}`;
}

/**
 * The shared batch a worker joins (or a dry run or `--status` reads): the id given, else the one
 * in the output folder's marker, else the one derived from the rows.
 */
export async function sharedBatchIdFor(options: {
  batchId?: string | undefined;
  outDir?: string | undefined;
  rowKeys: readonly string[];
}): Promise<string> {
  if (options.batchId !== undefined) return options.batchId;
  const marker = options.outDir === undefined ? undefined : await readMarker(options.outDir);
  return marker?.batchId ?? sharedBatchId(options.rowKeys);
}
