// A batch's own tables, in the journal's SQLite file (module "batch", its own migration
// version). The jobs stay the one source of truth for what was submitted (tagged with the batch
// id and the row key); these add what only a batch knows: its output folder and manifest, which
// process holds its lease, and per row the outcome (file, sha256, cost, failure reason).
//
// The lease is held by a process (host and pid) and renewed by a heartbeat. On this machine a
// lease whose process is gone is free at once; a lease held on another machine is not checked
// (one SQLite file is one machine's).

import { BatchLockedError } from "../errors.js";
import { parseStoredJson, storeJson } from "../redact.js";
import { processAlive } from "../transitions.js";
import type { BatchInfo, BatchRowOutcome, BatchRowRecord, BatchRowState, OpenBatchParams } from "../types.js";
import type { SqliteConnection } from "./connection.js";

interface BatchSql {
  batch_id: string;
  manifest_digest: string | null;
  created_at: number;
  owner_pid: number | null;
  owner_host: string | null;
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

/** Must run inside a transaction (IMMEDIATE: it reads, then writes). */
export function openBatch(conn: SqliteConnection, params: OpenBatchParams, newId: () => string): BatchInfo {
  const now = conn.now();
  const { outDir } = params;
  let batchId = params.batchId;
  let row: BatchSql | undefined;
  if (batchId)
    row = conn.prepare("SELECT * FROM batches WHERE batch_id = ?").get(batchId) as BatchSql | undefined;
  if (!row && !params.exactId) {
    row = conn
      .prepare("SELECT * FROM batches WHERE out_dir = ? ORDER BY updated_at DESC LIMIT 1")
      .get(outDir) as BatchSql | undefined;
    if (row) batchId = row.batch_id;
  }
  if (!params.readOnly && !params.force) {
    // This batch's owner, and the owner of any other batch writing into the same folder.
    const owners = conn
      .prepare(
        `SELECT batch_id, owner_pid, owner_host FROM batches
         WHERE owner_pid IS NOT NULL AND (batch_id = ? OR out_dir = ? OR out_dev_ino = ?)`,
      )
      .all(row?.batch_id ?? null, outDir, params.outDevIno ?? null) as Pick<
      BatchSql,
      "batch_id" | "owner_pid" | "owner_host"
    >[];
    for (const other of owners) {
      const owner = other.owner_pid;
      if (owner === null || owner === process.pid || other.owner_host !== conn.host) continue;
      if (!processAlive(owner)) continue;
      throw new BatchLockedError(
        `batch ${other.batch_id} (${outDir}) is being run by another process (pid ${owner}); ` +
          "wait for it to finish or stop it first",
        owner,
        other.owner_host ?? "",
      );
    }
  }
  batchId ??= newId();
  if (!params.readOnly) {
    if (!row) {
      conn
        .prepare(
          `INSERT INTO batches (batch_id, out_dir, out_dev_ino, manifest_path, manifest_digest, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          batchId,
          outDir,
          params.outDevIno ?? null,
          params.manifestPath ?? null,
          params.manifestDigest ?? null,
          now,
          now,
        );
    }
    conn
      .prepare(
        `UPDATE batches SET owner_pid = ?, owner_host = ?, owner_at = ?, updated_at = ?,
           out_dir = ?, out_dev_ino = ?,
           manifest_path = COALESCE(?, manifest_path), manifest_digest = COALESCE(?, manifest_digest)
         WHERE batch_id = ?`,
      )
      .run(
        process.pid,
        conn.host,
        now,
        now,
        outDir,
        params.outDevIno ?? null,
        params.manifestPath ?? null,
        params.manifestDigest ?? null,
        batchId,
      );
  }
  const previousDigest = row?.manifest_digest ?? undefined;
  return {
    batchId,
    outDir,
    manifestPath: params.manifestPath,
    manifestDigest: params.manifestDigest,
    createdAt: new Date(row?.created_at ?? now).toISOString(),
    resumed: row !== undefined,
    previousDigest:
      previousDigest !== undefined && previousDigest !== params.manifestDigest ? previousDigest : undefined,
  };
}

export function renewLease(conn: SqliteConnection, batchId: string): void {
  conn
    .prepare("UPDATE batches SET owner_at = ? WHERE batch_id = ? AND owner_pid = ? AND owner_host = ?")
    .run(conn.now(), batchId, process.pid, conn.host);
}

export function releaseLease(conn: SqliteConnection, batchId: string): void {
  conn
    .prepare(
      "UPDATE batches SET owner_pid = NULL, owner_host = NULL WHERE batch_id = ? AND owner_pid = ? AND owner_host = ?",
    )
    .run(batchId, process.pid, conn.host);
}

export function batchRows(conn: SqliteConnection, batchId: string): Map<string, BatchRowRecord> {
  const out = new Map<string, BatchRowRecord>();
  const rows = conn.prepare("SELECT * FROM batch_rows WHERE batch_id = ?").all(batchId) as RowSql[];
  for (const r of rows) {
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

export function upsertBatchRow(
  conn: SqliteConnection,
  batchId: string,
  rowKey: string,
  outcome: BatchRowOutcome,
): void {
  const done = outcome.state === "done" ? outcome : undefined;
  conn
    .prepare(
      `INSERT INTO batch_rows (batch_id, row_key, line, name, state, request_id, estimate_usd, cost_usd,
           file, bytes, sha256, error_json, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (batch_id, row_key) DO UPDATE SET line = excluded.line, name = excluded.name,
           state = excluded.state, request_id = excluded.request_id, estimate_usd = excluded.estimate_usd,
           cost_usd = excluded.cost_usd, file = excluded.file, bytes = excluded.bytes,
           sha256 = excluded.sha256, error_json = excluded.error_json, updated_at = excluded.updated_at`,
    )
    .run(
      batchId,
      rowKey,
      outcome.line ?? null,
      outcome.name ?? null,
      outcome.state,
      outcome.requestId ?? null,
      outcome.estimateUsd ?? null,
      outcome.costUsd ?? null,
      done?.file ?? null,
      done?.bytes ?? null,
      done?.sha256 ?? null,
      outcome.state === "failed" ? storeJson(outcome.error ?? null) : null,
      conn.now(),
    );
}
