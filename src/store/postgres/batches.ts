// A batch owned by one process at a time (the plain `dreamina batch` run, as on SQLite): found by
// id or by output folder, leased to this worker, refused to another while the lease is alive.
// The lease is renewed by the worker's heartbeat, so a killed owner frees its batch after one
// lease, on any machine. (A batch run by many workers together uses the row queue instead:
// batch-queue.ts.)

import { randomUUID } from "node:crypto";
import type pg from "pg";
import { BatchLockedError } from "../errors.js";
import { parseStoredJson } from "../redact.js";
import type { BatchInfo, BatchRowRecord, JoinBatchParams, OpenBatchParams } from "../types.js";
import type { Session } from "./session.js";

type BatchSql = {
  batch_id: string;
  manifest_digest: string | null;
  created_at: number;
};

export async function openBatch(session: Session, params: OpenBatchParams, now: number): Promise<BatchInfo> {
  if (!params.readOnly) await session.register();
  return await session.tx(async (client) => {
    let batchId = params.batchId;
    let row: BatchSql | undefined;
    if (batchId) {
      row = (
        await client.query<BatchSql>("SELECT * FROM dreamina.batches WHERE batch_id = $1 FOR UPDATE", [
          batchId,
        ])
      ).rows[0];
    }
    if (!row && !params.exactId && !params.batchId) {
      row = (
        await client.query<BatchSql>(
          "SELECT * FROM dreamina.batches WHERE out_dir = $1 ORDER BY updated_at DESC LIMIT 1 FOR UPDATE",
          [params.outDir],
        )
      ).rows[0];
      if (row) batchId = row.batch_id;
    }
    if (!params.readOnly && !params.force) await refuseIfLeased(client, session, row?.batch_id, params);
    if (!row) {
      batchId ??= `b-${randomUUID()}`;
      if (!params.readOnly) {
        await client.query(
          `INSERT INTO dreamina.batches (batch_id, out_dir, out_dev_ino, manifest_path, manifest_digest, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $6)`,
          [
            batchId,
            params.outDir,
            params.outDevIno ?? null,
            params.manifestPath ?? null,
            params.manifestDigest ?? null,
            now,
          ],
        );
      }
    }
    if (!params.readOnly) {
      await client.query(
        `UPDATE dreamina.batches SET owner_worker_id = $2, owner_host = $3, owner_pid = $4,
           owner_until = clock_timestamp() + make_interval(secs => $5::float8 / 1000), updated_at = $6,
           out_dir = $7, out_dev_ino = $8, manifest_path = COALESCE($9, manifest_path),
           manifest_digest = COALESCE($10, manifest_digest)
         WHERE batch_id = $1`,
        [
          batchId,
          session.workerId,
          session.host,
          process.pid,
          session.leaseMs,
          now,
          params.outDir,
          params.outDevIno ?? null,
          params.manifestPath ?? null,
          params.manifestDigest ?? null,
        ],
      );
    }
    const previous = row?.manifest_digest ?? undefined;
    return {
      batchId: batchId as string,
      outDir: params.outDir,
      manifestPath: params.manifestPath,
      manifestDigest: params.manifestDigest,
      createdAt: new Date(row?.created_at ?? now).toISOString(),
      resumed: row !== undefined,
      previousDigest: previous !== undefined && previous !== params.manifestDigest ? previous : undefined,
    };
  });
}

/**
 * Joins a batch run by many workers together: found by its id, or created with it (two workers
 * starting at once create it once). No lease: the rows are leased one by one (batch-queue.ts).
 */
export async function joinBatch(session: Session, params: JoinBatchParams, now: number): Promise<BatchInfo> {
  await session.register();
  return await session.tx(async (client) => {
    const inserted = await client.query(
      `INSERT INTO dreamina.batches (batch_id, out_dir, manifest_path, manifest_digest, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (batch_id) DO NOTHING`,
      [params.batchId, params.outDir, params.manifestPath ?? null, params.manifestDigest ?? null, now],
    );
    const row = (
      await client.query<BatchSql>("SELECT * FROM dreamina.batches WHERE batch_id = $1 FOR UPDATE", [
        params.batchId,
      ])
    ).rows[0];
    const previous = row?.manifest_digest ?? undefined;
    if (params.manifestDigest !== undefined && previous !== params.manifestDigest) {
      await client.query(
        "UPDATE dreamina.batches SET manifest_digest = $2, manifest_path = COALESCE($3, manifest_path), updated_at = $4 WHERE batch_id = $1",
        [params.batchId, params.manifestDigest, params.manifestPath ?? null, now],
      );
    }
    return {
      batchId: params.batchId,
      outDir: params.outDir,
      manifestPath: params.manifestPath,
      manifestDigest: params.manifestDigest,
      createdAt: new Date(row?.created_at ?? now).toISOString(),
      resumed: inserted.rowCount === 0,
      previousDigest: previous !== undefined && previous !== params.manifestDigest ? previous : undefined,
    };
  });
}

/**
 * The batch itself is refused while any other worker's lease on it is alive; another batch only
 * when it writes into the same folder on this machine (the same path on two machines is two
 * folders, unless they share a disk: then the batch id in its marker file is the same anyway).
 */
async function refuseIfLeased(
  client: pg.PoolClient,
  session: Session,
  batchId: string | undefined,
  params: OpenBatchParams,
): Promise<void> {
  const owners = await client.query<{ batch_id: string; owner_pid: number; owner_host: string }>(
    `SELECT b.batch_id, b.owner_pid, b.owner_host FROM dreamina.batches b
       LEFT JOIN dreamina.workers w ON w.worker_id = b.owner_worker_id
      WHERE b.owner_worker_id IS NOT NULL AND b.owner_worker_id <> $1
        AND b.owner_until > clock_timestamp() AND w.stopped_at IS NULL
        AND (b.batch_id = $2 OR (b.owner_host = $3 AND (b.out_dir = $4 OR b.out_dev_ino = $5)))`,
    [session.workerId, batchId ?? null, session.host, params.outDir, params.outDevIno ?? null],
  );
  for (const o of owners.rows) {
    if (o.owner_host === session.host && o.owner_pid !== process.pid && !processAlive(o.owner_pid)) continue;
    throw new BatchLockedError(
      `batch ${o.batch_id} (${params.outDir}) is being run by another process (pid ${o.owner_pid} on ${o.owner_host}); ` +
        "wait for it to finish or stop it first",
      o.owner_pid,
      o.owner_host,
    );
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

export async function renewBatchLease(session: Session, batchId: string): Promise<void> {
  await session.query(
    `UPDATE dreamina.batches SET owner_until = clock_timestamp() + make_interval(secs => $3::float8 / 1000)
      WHERE batch_id = $1 AND owner_worker_id = $2`,
    [batchId, session.workerId, session.leaseMs],
  );
}

export async function releaseBatch(session: Session, batchId: string): Promise<void> {
  await session.query(
    `UPDATE dreamina.batches SET owner_worker_id = NULL, owner_host = NULL, owner_pid = NULL, owner_until = NULL
      WHERE batch_id = $1 AND owner_worker_id = $2`,
    [batchId, session.workerId],
  );
}

type RowSql = {
  row_key: string;
  line: number | null;
  name: string | null;
  state: "done" | "failed";
  request_id: string | null;
  estimate_usd: number | null;
  cost_usd: number | null;
  file: string | null;
  bytes: number | null;
  sha256: string | null;
  error_json: string | null;
  updated_at: number;
};

/** Every row outcome recorded for the batch (rows still queued or leased have none yet). */
export async function batchRows(session: Session, batchId: string): Promise<Map<string, BatchRowRecord>> {
  const rows = await session.query<RowSql>(
    "SELECT * FROM dreamina.batch_rows WHERE batch_id = $1 AND state IN ('done', 'failed')",
    [batchId],
  );
  const out = new Map<string, BatchRowRecord>();
  for (const r of rows.rows) {
    out.set(r.row_key, {
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
      error: parseStoredJson(r.error_json),
      updatedAt: new Date(r.updated_at).toISOString(),
    });
  }
  return out;
}
