// The store's writes, each a few statements run inside a transaction the caller holds, so that
// one write (a status) or many (a batch's grouped observations) commit together. Each locks the
// job row it changes (`FOR UPDATE`): two workers following one request serialize on it.

import type pg from "pg";
import { StoreError } from "../errors.js";
import type { JournalState } from "../states.js";
import { FINAL_STATES } from "../transitions.js";
import type {
  BatchRowOutcome,
  BeginSubmitParams,
  FileParams,
  JobStoreWrite,
  ResultObservation,
  StatusObservation,
  SubmitAcceptedParams,
} from "../types.js";
import { redactText, storedInput, storeError, storeJson, toMillis } from "./codec.js";

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

/** model, base URL, batch, row, input, digest, prompt, frames, seed: as stored (redacted). */
export function intentArgs(params: BeginSubmitParams): unknown[] {
  const input = storedInput(params.input);
  return [
    params.modelId,
    redactText(params.baseUrl),
    params.batchId ?? null,
    params.rowKey ?? null,
    input.json,
    input.digest,
    input.prompt,
    input.frames,
    input.seed,
  ];
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
    // A row settled meanwhile is left as it is (the function answers with its state).
    await settle(
      client,
      earlier,
      "abandoned",
      { message: "superseded by a new submit of the same row" },
      now,
      true,
    );
  }
  const inserted = await client.query<{ id: number }>(
    "SELECT dreamina.job_intent($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) AS id",
    [...intentArgs(params), now, owner.pid, owner.host, owner.workerId, reservedUsd ?? null],
  );
  return inserted.rows[0]!.id;
}

export async function recordAccepted(
  client: Client,
  localId: number,
  accepted: SubmitAcceptedParams,
  now: number,
): Promise<void> {
  const r = await client.query<{ outcome: string }>(
    "SELECT dreamina.job_accepted($1, $2, $3, $4, $5, $6) AS outcome",
    [
      localId,
      accepted.requestId,
      accepted.statusUrl ?? null,
      accepted.resultUrl ?? null,
      accepted.cancelUrl ?? null,
      now,
    ],
  );
  const outcome = r.rows[0]?.outcome;
  if (outcome === "no_row") throw noRow(localId, ` (for request ${accepted.requestId})`);
  if (outcome !== "ok") {
    throw wrongState(
      `job ${localId} is ${outcome}, not awaiting a submit outcome (request ${accepted.requestId})`,
    );
  }
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

/**
 * Rejected, unknown or abandoned: only from a row still awaiting its submit outcome (`quiet`:
 * a row settled meanwhile is left as it is, without an error).
 */
export async function settle(
  client: Client,
  localId: number,
  state: JournalState,
  error: unknown,
  now: number,
  quiet = false,
): Promise<void> {
  const r = await client.query<{ outcome: string }>(
    "SELECT dreamina.job_settle($1, $2, $3, $4, $5) AS outcome",
    [localId, state, storeError(error), FINAL_STATES.includes(state), now],
  );
  const outcome = r.rows[0]?.outcome;
  if (quiet || outcome === "ok") return;
  if (outcome === "no_row") throw noRow(localId);
  throw wrongState(`job ${localId} is ${outcome}, not awaiting a submit outcome`);
}

export async function recordStatus(
  client: Client,
  requestId: string,
  observation: StatusObservation,
  at: number,
): Promise<boolean> {
  const position = Number.isInteger(observation.queuePosition) ? observation.queuePosition : null;
  const r = await client.query<{ ok: boolean }>(
    "SELECT dreamina.job_observed($1, $2, $3, $4, $5, false, NULL, NULL, NULL, NULL, NULL, NULL) AS ok",
    [requestId, observation.status, observation.rawStatus ?? null, position, at],
  );
  return r.rows[0]?.ok === true;
}

export async function recordResult(
  client: Client,
  requestId: string,
  result: ResultObservation,
  at: number,
): Promise<boolean> {
  const urls = result.outputUrls && result.outputUrls.length > 0 ? result.outputUrls : undefined;
  const r = await client.query<{ ok: boolean }>(
    "SELECT dreamina.job_observed($1, $2, $3, NULL, $4, true, $5, $6, $7, $8, $9, $10) AS ok",
    [
      requestId,
      result.status,
      result.rawStatus ?? null,
      at,
      urls ? redactText(JSON.stringify(urls)) : null,
      result.error === undefined || result.error === null ? null : storeJson(result.error),
      typeof result.cost === "number" && Number.isFinite(result.cost) ? result.cost : null,
      result.createdAt ?? null,
      result.finishedAt ?? null,
      result.raw === undefined ? null : storeJson(result.raw),
    ],
  );
  return r.rows[0]?.ok === true;
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

/** A batch row outcome's columns, as `dreamina.batch_row_outcome` takes them. */
export function rowOutcomeArgs(
  batchId: string,
  rowKey: string,
  outcome: BatchRowOutcome,
  worker: { host: string; pid: number },
  now: number,
): unknown[] {
  const done = outcome.state === "done" ? outcome : undefined;
  return [
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
    outcome.state === "failed" ? JSON.stringify(outcome.error ?? null) : null,
    worker.host,
    worker.pid,
    now,
  ];
}

/** One write as an element of `dreamina.apply_writes`'s array (encoded and redacted here). */
export function encodeWrite(
  w: JobStoreWrite,
  now: () => number,
  worker: { host: string; pid: number },
): Record<string, unknown> {
  switch (w.kind) {
    case "status": {
      const o = w.observation;
      const pos = Number.isInteger(o.queuePosition) ? o.queuePosition : null;
      return {
        k: "status",
        r: w.requestId,
        s: o.status,
        raw: o.rawStatus ?? null,
        pos,
        at: toMillis(o.at, now),
      };
    }
    case "result": {
      const r = w.result;
      const urls = r.outputUrls && r.outputUrls.length > 0 ? redactText(JSON.stringify(r.outputUrls)) : null;
      return {
        k: "result",
        r: w.requestId,
        s: r.status,
        raw: r.rawStatus ?? null,
        at: toMillis(r.at, now),
        urls,
        err: r.error === undefined || r.error === null ? null : storeJson(r.error),
        cost: typeof r.cost === "number" && Number.isFinite(r.cost) ? r.cost : null,
        sc: r.createdAt ?? null,
        sf: r.finishedAt ?? null,
        res: r.raw === undefined ? null : storeJson(r.raw),
      };
    }
    case "error":
      return { k: "error", r: w.requestId, err: storeError(w.error), at: now() };
    case "file":
      return {
        k: "file",
        r: w.requestId,
        path: w.file.path,
        url: w.file.url === undefined ? null : redactText(w.file.url),
        bytes: w.file.bytes ?? null,
        sha: w.file.sha256 ?? null,
        at: now(),
      };
    case "batch_row": {
      const [b, key, line, name, state, req, est, cost, file, bytes, sha, err, host, pid, at] =
        rowOutcomeArgs(w.batchId, w.rowKey, w.outcome, worker, now());
      return { k: "row", b, key, line, name, state, req, est, cost, file, bytes, sha, err, host, pid, at };
    }
  }
}

function noRow(localId: number, suffix = ""): StoreError {
  return new StoreError(`no job ${localId} in the store${suffix}`);
}

function wrongState(message: string): StoreError {
  return new StoreError(message);
}
