// The store's writes, each a few statements run inside a transaction the caller holds, so that
// one write (a status) or many (a batch's grouped observations) commit together. Each locks the
// job row it changes (`FOR UPDATE`): two workers following one request serialize on it.

import type pg from "pg";
import type { JobStatusValue } from "../../api/types.js";
import type {
  BeginSubmitParams,
  FileParams,
  ResultObservation,
  StatusObservation,
  SubmitAcceptedParams,
} from "../job-store.js";
import { FINAL_STATES, type JournalState } from "../journal.js";
import { inputDigest, isPlainObject, redactStored, redactText, storeError, storeJson } from "./codec.js";
import { PostgresStoreError } from "./connect.js";

const TERMINAL_STATES: ReadonlySet<string> = new Set(["completed", "succeeded", "failed", "cancelled"]);
const STICKY_STATES: ReadonlySet<string> = new Set(FINAL_STATES);

type Client = pg.PoolClient;
type RowState = { local_id: number; state: JournalState; request_id: string | null };

/** Who writes an intent row: recorded on it, so that others can tell when its owner is gone. */
export interface Owner {
  workerId: string;
  host: string;
  pid: number;
}

export async function lockLocal(client: Client, localId: number): Promise<RowState | undefined> {
  const r = await client.query<RowState>(
    "SELECT local_id, state, request_id FROM dreamina.jobs WHERE local_id = $1 FOR UPDATE",
    [localId],
  );
  return r.rows[0];
}

async function lockRequest(client: Client, requestId: string): Promise<RowState | undefined> {
  const r = await client.query<RowState>(
    "SELECT local_id, state, request_id FROM dreamina.jobs WHERE request_id = $1 FOR UPDATE",
    [requestId],
  );
  return r.rows[0];
}

export async function insertTransition(
  client: Client,
  localId: number,
  status: string,
  rawStatus: string | undefined,
  queuePosition: number | undefined,
  at: number,
): Promise<void> {
  await client.query(
    "INSERT INTO dreamina.transitions (local_id, status, raw_status, queue_position, at) VALUES ($1, $2, $3, $4, $5)",
    [localId, status, rawStatus ?? null, queuePosition ?? null, at],
  );
}

/** The intent row and its first transition; `supersedes` given up first. Returns the local id. */
export async function insertIntent(
  client: Client,
  owner: Owner,
  params: BeginSubmitParams & { supersedes?: readonly number[] | undefined },
  now: number,
  reservedUsd?: number,
): Promise<number> {
  for (const earlier of params.supersedes ?? []) {
    const row = await lockLocal(client, earlier);
    if (row && (row.state === "submitting" || row.state === "submission_unknown")) {
      await settle(
        client,
        earlier,
        "abandoned",
        { message: "superseded by a new submit of the same row" },
        now,
      );
    }
  }
  const input = redactStored(params.input);
  const fields = (isPlainObject(params.input) ? params.input : {}) as Record<string, unknown>;
  const inserted = await client.query<{ local_id: number }>(
    `INSERT INTO dreamina.jobs (model_id, base_url, batch_id, row_key, state, input_json, input_digest,
       prompt, frames, seed, created_at, updated_at, pid, host, worker_id, reserved_usd)
     VALUES ($1, $2, $3, $4, 'submitting', $5, $6, $7, $8, $9, $10, $10, $11, $12, $13, $14)
     RETURNING local_id`,
    [
      params.modelId,
      redactText(params.baseUrl),
      params.batchId ?? null,
      params.rowKey ?? null,
      redactText(JSON.stringify(input ?? null)),
      inputDigest(input),
      typeof fields.prompt === "string" ? redactText(fields.prompt) : null,
      Number.isInteger(fields.frames) ? (fields.frames as number) : null,
      Number.isInteger(fields.seed) ? (fields.seed as number) : null,
      now,
      owner.pid,
      owner.host,
      owner.workerId,
      reservedUsd ?? null,
    ],
  );
  const localId = inserted.rows[0]!.local_id;
  await insertTransition(client, localId, "submitting", undefined, undefined, now);
  return localId;
}

export async function recordAccepted(
  client: Client,
  localId: number,
  accepted: SubmitAcceptedParams,
  now: number,
): Promise<void> {
  const row = await lockLocal(client, localId);
  if (!row) throw noRow(localId, ` (for request ${accepted.requestId})`);
  if (row.state === "submitted" && row.request_id === accepted.requestId) return; // a retried commit
  if (row.state !== "submitting" && row.state !== "submission_unknown" && row.state !== "submitted") {
    throw wrongState(
      `job ${localId} is ${row.state}, not awaiting a submit outcome (request ${accepted.requestId})`,
    );
  }
  await client.query(
    `UPDATE dreamina.jobs SET request_id = $1, state = 'submitted', status_url = $2, result_url = $3,
       cancel_url = $4, submitted_at = COALESCE(submitted_at, $5), updated_at = $5 WHERE local_id = $6`,
    [
      accepted.requestId,
      accepted.statusUrl ?? null,
      accepted.resultUrl ?? null,
      accepted.cancelUrl ?? null,
      now,
      localId,
    ],
  );
  await insertTransition(client, localId, "submitted", undefined, undefined, now);
}

/** A request id kept in a recovery file, taken in: a row still awaiting it becomes `submitted`. */
export async function applyRecovered(
  client: Client,
  entry: SubmitAcceptedParams & { localId: number; at: string },
  now: number,
): Promise<"applied" | "already" | "unmatched"> {
  const known = await client.query("SELECT 1 FROM dreamina.jobs WHERE request_id = $1", [entry.requestId]);
  if (known.rowCount) return "already";
  const row = await lockLocal(client, entry.localId);
  if (!row || row.request_id !== null) return "unmatched";
  const at = Number.isFinite(Date.parse(entry.at)) ? Date.parse(entry.at) : now;
  // A row settled meanwhile (abandoned by a person) keeps its state but gets the id.
  const awaiting = row.state === "submitting" || row.state === "submission_unknown";
  await client.query(
    `UPDATE dreamina.jobs SET request_id = $1, status_url = COALESCE($2, status_url),
       result_url = COALESCE($3, result_url), cancel_url = COALESCE($4, cancel_url),
       submitted_at = COALESCE(submitted_at, $5), updated_at = $6,
       state = CASE WHEN $7 THEN 'submitted' ELSE state END
     WHERE local_id = $8`,
    [
      entry.requestId,
      entry.statusUrl ?? null,
      entry.resultUrl ?? null,
      entry.cancelUrl ?? null,
      at,
      now,
      awaiting,
      row.local_id,
    ],
  );
  if (awaiting) await insertTransition(client, row.local_id, "submitted", undefined, undefined, at);
  return "applied";
}

/** Rejected, unknown or abandoned: only from a row still awaiting its submit outcome. */
export async function settle(
  client: Client,
  localId: number,
  state: JournalState,
  error: unknown,
  now: number,
): Promise<void> {
  const row = await lockLocal(client, localId);
  if (!row) throw noRow(localId);
  if (row.state !== "submitting" && row.state !== "submission_unknown") {
    throw wrongState(`job ${localId} is ${row.state}, not awaiting a submit outcome`);
  }
  await client.query(
    `UPDATE dreamina.jobs SET state = $1, last_error_json = COALESCE($2, last_error_json), updated_at = $3,
       finished_at = CASE WHEN $4 THEN COALESCE(finished_at, $3) ELSE finished_at END WHERE local_id = $5`,
    [state, storeError(error), now, FINAL_STATES.includes(state), localId],
  );
  await insertTransition(client, localId, state, undefined, undefined, now);
  // A refused submit cost nothing: its reservation goes back to the batch's budget.
  if (state === "rejected") await releaseReservation(client, localId);
}

async function applyStatus(
  client: Client,
  row: RowState,
  status: JobStatusValue,
  rawStatus: string | undefined,
  queuePosition: number | undefined,
  at: number,
): Promise<void> {
  const position = Number.isInteger(queuePosition) ? queuePosition : undefined;
  const last = (
    await client.query<{ status: string; queue_position: number | null }>(
      "SELECT status, queue_position FROM dreamina.transitions WHERE local_id = $1 ORDER BY id DESC LIMIT 1",
      [row.local_id],
    )
  ).rows[0];
  const label = status === "unknown" ? `unknown:${rawStatus ?? ""}` : status;
  if (!last || last.status !== label || (last.queue_position ?? undefined) !== position) {
    await insertTransition(client, row.local_id, label, rawStatus, position, at);
  }
  let state = row.state;
  // An unknown status changes nothing we act on; a final state stays (a `completed` one settles);
  // a stale poll by another worker never takes a finished job back to running.
  if (status !== "unknown") {
    const settlesCompleted = row.state === "completed" && STICKY_STATES.has(status);
    if (!STICKY_STATES.has(row.state) || settlesCompleted) {
      if (!(TERMINAL_STATES.has(row.state) && !TERMINAL_STATES.has(status))) state = status as JournalState;
    }
  }
  await client.query(
    `UPDATE dreamina.jobs SET state = $1, raw_status = COALESCE($2, raw_status), updated_at = $3,
       started_at = CASE WHEN $4 = 'in_progress' THEN COALESCE(started_at, $3) ELSE started_at END,
       finished_at = CASE WHEN $5 THEN COALESCE(finished_at, $3) ELSE finished_at END
     WHERE local_id = $6`,
    [state, rawStatus ?? null, at, status, TERMINAL_STATES.has(state), row.local_id],
  );
}

export async function recordStatus(
  client: Client,
  requestId: string,
  observation: StatusObservation,
  at: number,
): Promise<boolean> {
  const row = await lockRequest(client, requestId);
  if (!row) return false;
  await applyStatus(client, row, observation.status, observation.rawStatus, observation.queuePosition, at);
  return true;
}

export async function recordResult(
  client: Client,
  requestId: string,
  result: ResultObservation,
  at: number,
): Promise<boolean> {
  const row = await lockRequest(client, requestId);
  if (!row) return false;
  await applyStatus(client, row, result.status, result.rawStatus, undefined, at);
  const urls = result.outputUrls && result.outputUrls.length > 0 ? result.outputUrls : undefined;
  await client.query(
    `UPDATE dreamina.jobs SET output_urls_json = COALESCE($1, output_urls_json),
       job_error_json = COALESCE($2, job_error_json), cost = COALESCE($3, cost),
       service_created_at = COALESCE($4, service_created_at),
       service_finished_at = COALESCE($5, service_finished_at),
       result_json = COALESCE($6, result_json), updated_at = $7
     WHERE local_id = $8`,
    [
      urls ? redactText(JSON.stringify(urls)) : null,
      result.error === undefined || result.error === null ? null : storeJson(result.error),
      typeof result.cost === "number" && Number.isFinite(result.cost) ? result.cost : null,
      result.createdAt ?? null,
      result.finishedAt ?? null,
      result.raw === undefined ? null : storeJson(result.raw),
      at,
      row.local_id,
    ],
  );
  return true;
}

export async function recordError(
  client: Client,
  requestId: string,
  error: unknown,
  now: number,
): Promise<boolean> {
  const done = await client.query(
    "UPDATE dreamina.jobs SET last_error_json = $1, updated_at = $2 WHERE request_id = $3",
    [storeError(error), now, requestId],
  );
  return (done.rowCount ?? 0) > 0;
}

export async function recordFile(
  client: Client,
  requestId: string,
  file: FileParams,
  now: number,
): Promise<boolean> {
  const done = await client.query(
    `WITH j AS (UPDATE dreamina.jobs SET updated_at = $6 WHERE request_id = $1 RETURNING local_id)
     INSERT INTO dreamina.files (local_id, path, url, bytes, sha256, at)
     SELECT local_id, $2, $3, $4, $5, $6 FROM j`,
    [
      requestId,
      file.path,
      file.url === undefined ? null : redactText(file.url),
      file.bytes ?? null,
      file.sha256 ?? null,
      now,
    ],
  );
  return (done.rowCount ?? 0) > 0;
}

/** Gives a refused job's reserved cost back to its batch (nothing when it reserved none). */
async function releaseReservation(client: Client, localId: number): Promise<void> {
  await client.query(
    `WITH j AS (UPDATE dreamina.jobs j SET reserved_usd = NULL FROM dreamina.jobs old
                 WHERE j.local_id = $1 AND old.local_id = j.local_id AND old.reserved_usd IS NOT NULL
                 RETURNING j.batch_id, old.reserved_usd AS usd)
     UPDATE dreamina.batches b SET reserved_usd = GREATEST(0, b.reserved_usd - j.usd) FROM j WHERE b.batch_id = j.batch_id`,
    [localId],
  );
}

function noRow(localId: number, suffix = ""): PostgresStoreError {
  return new PostgresStoreError(`no job ${localId} in the store${suffix}`, { code: "store_no_row" });
}

function wrongState(message: string): PostgresStoreError {
  return new PostgresStoreError(message, { code: "store_wrong_state" });
}
