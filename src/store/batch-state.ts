// A batch's own state, in the job journal's SQLite file (its own tables, its own migration
// version under the module name "batch"). The journal stays the one source of truth for
// what was submitted (its intent row is written before every POST, tagged with the batch id
// and the row key); these tables add what only a batch knows: which manifest and output
// directory it belongs to, which process owns it right now, and per row the outcome (file,
// sha256, cost, failure reason).
//
// Identity: the batch id is stored in `<out>/.dreamina-batch.json`; when that file is gone,
// the batch whose output directory is the same real path (symlinks resolved) is taken up
// again, so deleting the marker (or the whole output directory) never leads to resubmitting
// finished rows. The owner lock is on the real folder too: no two live processes may run
// batches whose output directories share a real path or a device and inode, however the
// folder was spelled on their command lines.

import { randomUUID } from "node:crypto";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { realOutDir } from "../batch/output-files.js";
import { type Journal, type Migration, parseStoredJson } from "./journal.js";

export const BATCH_MODULE = "batch";
export const MARKER_FILE = ".dreamina-batch.json";

const BATCH_MIGRATIONS: readonly Migration[] = [
  `CREATE TABLE batches (
     batch_id TEXT PRIMARY KEY,
     out_dir TEXT NOT NULL,
     manifest_path TEXT,
     manifest_digest TEXT,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     owner_pid INTEGER,
     owner_host TEXT,
     owner_at INTEGER
   );
   CREATE INDEX batches_out_dir ON batches (out_dir);
   CREATE TABLE batch_rows (
     batch_id TEXT NOT NULL REFERENCES batches (batch_id),
     row_key TEXT NOT NULL,
     line INTEGER,
     name TEXT,
     state TEXT NOT NULL,
     request_id TEXT,
     estimate_usd REAL,
     cost_usd REAL,
     file TEXT,
     bytes INTEGER,
     sha256 TEXT,
     error_json TEXT,
     updated_at INTEGER NOT NULL,
     PRIMARY KEY (batch_id, row_key)
   );`,
  // The output directory's device and inode: the same folder reached by another path (a bind
  // mount, another letter case) is still the same folder.
  `ALTER TABLE batches ADD COLUMN out_dev_ino TEXT;
   CREATE INDEX batches_out_dev_ino ON batches (out_dev_ino);`,
];

/** A row's outcome as this batch records it (submission state itself lives in the journal). */
export type BatchRowState = "done" | "failed";

export interface BatchRowRecord {
  rowKey: string;
  line: number | undefined;
  name: string | undefined;
  state: BatchRowState;
  requestId: string | undefined;
  estimateUsd: number | undefined;
  costUsd: number | undefined;
  file: string | undefined;
  bytes: number | undefined;
  sha256: string | undefined;
  error: unknown;
  updatedAt: string;
}

export interface BatchInfo {
  batchId: string;
  outDir: string;
  manifestPath: string | undefined;
  manifestDigest: string | undefined;
  createdAt: string;
  /** Whether this run took up a batch that already existed. */
  resumed: boolean;
  /** Set when the manifest's content changed since the batch was last run. */
  previousDigest: string | undefined;
}

export class BatchLockedError extends Error {
  constructor(
    message: string,
    readonly pid: number,
    readonly host: string,
  ) {
    super(message);
    this.name = "BatchLockedError";
  }
}

interface RowSql {
  row_key: string;
  line: number | null;
  name: string | null;
  state: BatchRowState;
  request_id: string | null;
  estimate_usd: number | null;
  cost_usd: number | null;
  file: string | null;
  bytes: number | null;
  sha256: string | null;
  error_json: string | null;
  updated_at: number;
}

export interface OpenBatchOptions {
  outDir: string;
  manifestPath?: string | undefined;
  manifestDigest?: string | undefined;
  /** Use this batch id instead of the marker file's (or a new one). */
  batchId?: string | undefined;
  /** Refuse nothing: take the batch even if another live process owns it. Default false. */
  force?: boolean | undefined;
  /** Do not take ownership nor write the marker (a dry run only reads). */
  readOnly?: boolean | undefined;
}

export class BatchState {
  readonly journal: Journal;
  readonly info: BatchInfo;
  #owned = false;
  #heartbeat: NodeJS.Timeout | undefined;
  #upsertStatement: ReturnType<Journal["db"]["prepare"]> | undefined;

  private constructor(journal: Journal, info: BatchInfo) {
    this.journal = journal;
    this.info = info;
  }

  get batchId(): string {
    return this.info.batchId;
  }

  static migrate(journal: Journal): void {
    journal.migrate(BATCH_MODULE, BATCH_MIGRATIONS);
  }

  /** Finds (or creates) the batch for this output directory and takes ownership of it. */
  static async open(journal: Journal, options: OpenBatchOptions): Promise<BatchState> {
    BatchState.migrate(journal);
    const db = journal.db;
    // The real folder, made first (a dry run only reads, and creates nothing).
    const { path: outDir, devIno } = await realOutDir(options.outDir, { create: !options.readOnly });
    const marker = await readMarker(outDir);
    const now = Date.now();
    let batchId = options.batchId ?? marker?.batchId;
    type BatchSql = {
      batch_id: string;
      manifest_digest: string | null;
      created_at: number;
      owner_pid: number | null;
      owner_host: string | null;
    };
    const tx = db.transaction((): BatchInfo => {
      let row: BatchSql | undefined;
      if (batchId) row = db.prepare("SELECT * FROM batches WHERE batch_id = ?").get(batchId) as BatchSql;
      if (!row && !options.batchId) {
        row = db
          .prepare("SELECT * FROM batches WHERE out_dir = ? ORDER BY updated_at DESC LIMIT 1")
          .get(outDir) as BatchSql | undefined;
        if (row) batchId = row.batch_id;
      }
      if (!options.readOnly && !options.force) {
        // This batch's owner, and the owner of any other batch writing into the same folder.
        const owners = db
          .prepare(
            `SELECT batch_id, owner_pid, owner_host FROM batches
             WHERE owner_pid IS NOT NULL AND (batch_id = ? OR out_dir = ? OR out_dev_ino = ?)`,
          )
          .all(row?.batch_id ?? null, outDir, devIno ?? null) as Pick<
          BatchSql,
          "batch_id" | "owner_pid" | "owner_host"
        >[];
        for (const other of owners) {
          const owner = other.owner_pid;
          if (owner === null || owner === process.pid || other.owner_host !== hostname()) continue;
          if (!processAlive(owner)) continue;
          throw new BatchLockedError(
            `batch ${other.batch_id} (${outDir}) is being run by another process (pid ${owner}); ` +
              "wait for it to finish or stop it first",
            owner,
            other.owner_host ?? "",
          );
        }
      }
      if (!row) {
        batchId ??= `b-${randomUUID()}`;
        if (!options.readOnly) {
          db.prepare(
            `INSERT INTO batches (batch_id, out_dir, out_dev_ino, manifest_path, manifest_digest, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)`,
          ).run(
            batchId,
            outDir,
            devIno ?? null,
            options.manifestPath ?? null,
            options.manifestDigest ?? null,
            now,
            now,
          );
        }
      }
      if (!options.readOnly) {
        db.prepare(
          `UPDATE batches SET owner_pid = ?, owner_host = ?, owner_at = ?, updated_at = ?,
             out_dir = ?, out_dev_ino = ?,
             manifest_path = COALESCE(?, manifest_path), manifest_digest = COALESCE(?, manifest_digest)
           WHERE batch_id = ?`,
        ).run(
          process.pid,
          hostname(),
          now,
          now,
          outDir,
          devIno ?? null,
          options.manifestPath ?? null,
          options.manifestDigest ?? null,
          batchId,
        );
      }
      const previousDigest = row?.manifest_digest ?? undefined;
      return {
        batchId: batchId as string,
        outDir,
        manifestPath: options.manifestPath,
        manifestDigest: options.manifestDigest,
        createdAt: new Date(row?.created_at ?? now).toISOString(),
        resumed: row !== undefined,
        previousDigest:
          previousDigest !== undefined && previousDigest !== options.manifestDigest
            ? previousDigest
            : undefined,
      };
    });
    const info = tx.immediate();
    const state = new BatchState(journal, info);
    if (!options.readOnly) {
      state.#owned = true;
      try {
        await writeMarker(outDir, info);
      } catch (error) {
        // E.g. the disk is full: the caller cannot run this batch, so nobody owns it.
        state.release();
        throw error;
      }
      state.#heartbeat = setInterval(() => state.#beat(), 15_000);
      state.#heartbeat.unref();
    }
    return state;
  }

  /** Every row outcome recorded for this batch, by row key. */
  rows(): Map<string, BatchRowRecord> {
    const out = new Map<string, BatchRowRecord>();
    const rows = this.journal.db
      .prepare("SELECT * FROM batch_rows WHERE batch_id = ?")
      .all(this.batchId) as RowSql[];
    for (const r of rows) out.set(r.row_key, toRecord(r));
    return out;
  }

  markDone(
    rowKey: string,
    params: {
      line?: number | undefined;
      name?: string | undefined;
      requestId: string;
      estimateUsd?: number | undefined;
      costUsd?: number | undefined;
      file: string;
      bytes: number;
      sha256: string;
    },
  ): void {
    this.#upsert(rowKey, "done", params.line, params.name, {
      request_id: params.requestId,
      estimate_usd: params.estimateUsd ?? null,
      cost_usd: params.costUsd ?? null,
      file: params.file,
      bytes: params.bytes,
      sha256: params.sha256,
      error_json: null,
    });
  }

  markFailed(
    rowKey: string,
    params: {
      line?: number | undefined;
      name?: string | undefined;
      requestId?: string | undefined;
      estimateUsd?: number | undefined;
      costUsd?: number | undefined;
      error: unknown;
    },
  ): void {
    this.#upsert(rowKey, "failed", params.line, params.name, {
      request_id: params.requestId ?? null,
      estimate_usd: params.estimateUsd ?? null,
      cost_usd: params.costUsd ?? null,
      file: null,
      bytes: null,
      sha256: null,
      error_json: JSON.stringify(params.error ?? null),
    });
  }

  /** Forget a row's outcome (e.g. its file vanished and must be fetched again). */
  clearRow(rowKey: string): void {
    this.journal.db
      .prepare("DELETE FROM batch_rows WHERE batch_id = ? AND row_key = ?")
      .run(this.batchId, rowKey);
  }

  /** Gives the batch up (other processes may take it). */
  release(): void {
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
    if (!this.#owned) return;
    this.#owned = false;
    try {
      this.journal.db
        .prepare(
          "UPDATE batches SET owner_pid = NULL, owner_host = NULL WHERE batch_id = ? AND owner_pid = ?",
        )
        .run(this.batchId, process.pid);
    } catch {
      // The database may already be closed; a dead owner is detected by pid anyway.
    }
  }

  #beat(): void {
    try {
      this.journal.db
        .prepare("UPDATE batches SET owner_at = ? WHERE batch_id = ? AND owner_pid = ?")
        .run(Date.now(), this.batchId, process.pid);
    } catch {
      // Best effort.
    }
  }

  #upsert(
    rowKey: string,
    state: BatchRowState,
    line: number | undefined,
    name: string | undefined,
    fields: Record<string, string | number | null>,
  ): void {
    const now = Date.now();
    // Prepared once: preparing parses the SQL again every time, and this runs once per row.
    this.#upsertStatement ??= this.journal.db.prepare(
      `INSERT INTO batch_rows (batch_id, row_key, line, name, state, request_id, estimate_usd, cost_usd,
           file, bytes, sha256, error_json, updated_at)
         VALUES (@batch_id, @row_key, @line, @name, @state, @request_id, @estimate_usd, @cost_usd,
           @file, @bytes, @sha256, @error_json, @updated_at)
         ON CONFLICT (batch_id, row_key) DO UPDATE SET line = excluded.line, name = excluded.name,
           state = excluded.state, request_id = excluded.request_id, estimate_usd = excluded.estimate_usd,
           cost_usd = excluded.cost_usd, file = excluded.file, bytes = excluded.bytes,
           sha256 = excluded.sha256, error_json = excluded.error_json, updated_at = excluded.updated_at`,
    );
    this.#upsertStatement.run({
      batch_id: this.batchId,
      row_key: rowKey,
      line: line ?? null,
      name: name ?? null,
      state,
      updated_at: now,
      ...fields,
    });
  }
}

function toRecord(r: RowSql): BatchRowRecord {
  const error = parseStoredJson(r.error_json);
  return {
    rowKey: r.row_key,
    line: r.line ?? undefined,
    name: r.name ?? undefined,
    state: r.state,
    requestId: r.request_id ?? undefined,
    estimateUsd: r.estimate_usd ?? undefined,
    costUsd: r.cost_usd ?? undefined,
    file: r.file ?? undefined,
    bytes: r.bytes ?? undefined,
    sha256: r.sha256 ?? undefined,
    error,
    updatedAt: new Date(r.updated_at).toISOString(),
  };
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
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
