// The job state machine's writes in SQL. Every function here runs inside a transaction the
// caller opened (SqliteConnection.immediate); the decisions are transitions.ts's.

import { StoreError } from "../errors.js";
import { redactText, storedInput, storeError, storeJson } from "../redact.js";
import type { JournalState } from "../states.js";
import {
  awaitsSubmitOutcome,
  FINAL_STATES,
  isTerminal,
  nextState,
  queuePositionOf,
  toMillis,
  transitionChanged,
  transitionLabel,
} from "../transitions.js";
import type {
  BeginSubmitParams,
  FileParams,
  ResultObservation,
  StatusObservation,
  SubmitAcceptedParams,
} from "../types.js";
import type { SqliteConnection } from "./connection.js";

/** What a write needs of a row: not its stored input, result and errors. */
interface RowState {
  local_id: number;
  state: JournalState;
}

export function stateByLocalId(conn: SqliteConnection, localId: number): RowState | undefined {
  return conn.prepare("SELECT local_id, state FROM jobs WHERE local_id = ?").get(localId) as
    | RowState
    | undefined;
}

export function stateByRequestId(conn: SqliteConnection, requestId: string): RowState | undefined {
  return conn.prepare("SELECT local_id, state FROM jobs WHERE request_id = ?").get(requestId) as
    | RowState
    | undefined;
}

export function insertTransition(
  conn: SqliteConnection,
  localId: number,
  status: string,
  rawStatus: string | undefined,
  queuePosition: number | undefined,
  at: number,
): void {
  conn
    .prepare(
      "INSERT INTO transitions (local_id, status, raw_status, queue_position, at) VALUES (?, ?, ?, ?, ?)",
    )
    .run(localId, status, rawStatus ?? null, queuePosition ?? null, at);
}

/** The intent row and its first transition; earlier unknown submits it supersedes are given up. */
export function insertIntent(conn: SqliteConnection, params: BeginSubmitParams): number {
  const input = storedInput(params.input);
  const now = conn.now();
  for (const id of params.supersedes ?? []) {
    const row = stateByLocalId(conn, id);
    // Settled meanwhile: the new submit goes ahead regardless.
    if (row && awaitsSubmitOutcome(row.state)) {
      settleSubmit(conn, id, "abandoned", { message: "resubmitted by dreamina batch --resubmit-unknown" });
    }
  }
  const info = conn
    .prepare(
      `INSERT INTO jobs (model_id, base_url, batch_id, row_key, state, input_json, input_digest,
         prompt, frames, seed, created_at, updated_at, pid, host)
       VALUES (?, ?, ?, ?, 'submitting', ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    )
    .run(
      params.modelId,
      redactText(params.baseUrl),
      params.batchId ?? null,
      params.rowKey ?? null,
      input.json,
      input.digest,
      input.prompt,
      input.frames,
      input.seed,
      now,
      now,
      process.pid,
      conn.host,
    );
  const localId = Number(info.lastInsertRowid);
  insertTransition(conn, localId, "submitting", undefined, undefined, now);
  return localId;
}

export function acceptSubmit(conn: SqliteConnection, localId: number, params: SubmitAcceptedParams): void {
  const now = conn.now();
  const row = stateByLocalId(conn, localId);
  if (!row) throw new StoreError(`no journal row ${localId} (for request ${params.requestId})`);
  if (!awaitsSubmitOutcome(row.state) && row.state !== "submitted") {
    throw new StoreError(
      `journal row ${localId} is ${row.state}, not awaiting a submit outcome (request ${params.requestId})`,
    );
  }
  conn
    .prepare(
      `UPDATE jobs SET request_id = ?, state = 'submitted', status_url = ?, result_url = ?,
             cancel_url = ?, submitted_at = COALESCE(submitted_at, ?), updated_at = ?
           WHERE local_id = ?`,
    )
    .run(
      params.requestId,
      params.statusUrl ?? null,
      params.resultUrl ?? null,
      params.cancelUrl ?? null,
      now,
      now,
      localId,
    );
  insertTransition(conn, localId, "submitted", undefined, undefined, now);
}

/** Rejected, unknown or abandoned: only a row still awaiting its submit outcome. */
export function settleSubmit(
  conn: SqliteConnection,
  localId: number,
  state: JournalState,
  error: unknown,
): void {
  const now = conn.now();
  const row = stateByLocalId(conn, localId);
  if (!row) throw new StoreError(`no journal row ${localId}`);
  if (!awaitsSubmitOutcome(row.state)) {
    throw new StoreError(`journal row ${localId} is ${row.state}, not awaiting a submit outcome`);
  }
  conn
    .prepare(
      `UPDATE jobs SET state = ?, last_error_json = COALESCE(?, last_error_json), updated_at = ?,
             finished_at = CASE WHEN ? THEN COALESCE(finished_at, ?) ELSE finished_at END
           WHERE local_id = ?`,
    )
    .run(state, storeError(error), now, FINAL_STATES.includes(state) ? 1 : 0, now, localId);
  insertTransition(conn, localId, state, undefined, undefined, now);
}

/** A transition row only when the status or the queue position changed; the state moves forward only. */
function applyStatus(
  conn: SqliteConnection,
  row: RowState,
  observation: Pick<StatusObservation, "status" | "rawStatus" | "queuePosition">,
  at: number,
): void {
  const { status, rawStatus } = observation;
  const position = queuePositionOf(observation.queuePosition);
  const last = conn
    .prepare("SELECT status, queue_position FROM transitions WHERE local_id = ? ORDER BY id DESC LIMIT 1")
    .get(row.local_id) as { status: string; queue_position: number | null } | undefined;
  const label = transitionLabel(status, rawStatus);
  const previous = last && { status: last.status, queuePosition: last.queue_position ?? undefined };
  if (transitionChanged(previous, label, position)) {
    insertTransition(conn, row.local_id, label, rawStatus, position, at);
  }
  const state = nextState(row.state, status);
  conn
    .prepare(
      `UPDATE jobs SET state = ?, raw_status = COALESCE(?, raw_status), updated_at = ?,
           started_at = CASE WHEN ? = 'in_progress' THEN COALESCE(started_at, ?) ELSE started_at END,
           finished_at = CASE WHEN ? THEN COALESCE(finished_at, ?) ELSE finished_at END
         WHERE local_id = ?`,
    )
    .run(state, rawStatus ?? null, at, status, at, isTerminal(state) ? 1 : 0, at, row.local_id);
}

export function recordStatus(
  conn: SqliteConnection,
  requestId: string,
  observation: StatusObservation,
): boolean {
  const at = toMillis(observation.at, conn.now);
  const row = stateByRequestId(conn, requestId);
  if (!row) return false;
  applyStatus(conn, row, observation, at);
  return true;
}

export function recordResult(conn: SqliteConnection, requestId: string, result: ResultObservation): boolean {
  const at = toMillis(result.at, conn.now);
  const row = stateByRequestId(conn, requestId);
  if (!row) return false;
  applyStatus(conn, row, { status: result.status, rawStatus: result.rawStatus }, at);
  const urls = result.outputUrls && result.outputUrls.length > 0 ? result.outputUrls : undefined;
  conn
    .prepare(
      `UPDATE jobs SET
             output_urls_json = COALESCE(?, output_urls_json),
             job_error_json = COALESCE(?, job_error_json),
             cost = COALESCE(?, cost),
             service_created_at = COALESCE(?, service_created_at),
             service_finished_at = COALESCE(?, service_finished_at),
             result_json = COALESCE(?, result_json),
             updated_at = ?
           WHERE local_id = ?`,
    )
    .run(
      urls ? redactText(JSON.stringify(urls)) : null,
      result.error === undefined || result.error === null ? null : storeJson(result.error),
      typeof result.cost === "number" && Number.isFinite(result.cost) ? result.cost : null,
      result.createdAt ?? null,
      result.finishedAt ?? null,
      result.raw === undefined ? null : storeJson(result.raw),
      at,
      row.local_id,
    );
  return true;
}

export function recordError(conn: SqliteConnection, requestId: string, error: unknown): boolean {
  const info = conn
    .prepare("UPDATE jobs SET last_error_json = ?, updated_at = ? WHERE request_id = ?")
    .run(storeError(error), conn.now(), requestId);
  return info.changes > 0;
}

export function recordFile(conn: SqliteConnection, requestId: string, file: FileParams): boolean {
  const now = conn.now();
  const row = stateByRequestId(conn, requestId);
  if (!row) return false;
  conn
    .prepare("INSERT INTO files (local_id, path, url, bytes, sha256, at) VALUES (?, ?, ?, ?, ?, ?)")
    .run(
      row.local_id,
      file.path,
      file.url === undefined ? null : redactText(file.url),
      file.bytes ?? null,
      file.sha256 ?? null,
      now,
    );
  conn.prepare("UPDATE jobs SET updated_at = ? WHERE local_id = ?").run(now, row.local_id);
  return true;
}
