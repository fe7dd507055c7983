// One batch worked on by many workers at once (several machines, or several processes on one).
//
// Rows are claimed with leases: `SELECT … FOR UPDATE SKIP LOCKED` picks rows that are pending or
// whose lease ran out (or whose worker said it stopped), so two workers never wait on each other
// and never take the same row at once. A live worker's heartbeat extends all its leases; a killed
// worker's rows go to another after one lease. We chose plain SQL over a queue library (pg-boss):
// the claim must share a transaction with the intent row and the budget, which only our own
// tables can give, and it adds no dependency.
//
// Exactly-once across workers: the intent row of a batch row is written in a transaction that
// holds the batch row's lock and first checks that no earlier job of that row is alive (anything
// but `rejected` or `abandoned`), so a worker that took a row over finds the job its previous
// owner started and follows it (waiting is keyed by request id) instead of submitting it again;
// a job whose submit outcome is unknown is never resubmitted by anyone (only `supersedes`, on
// purpose). The batch's budget is reserved in that same transaction, so two workers can never
// overspend together; a refused submit gives its reservation back.

import type pg from "pg";
import type { BeginSubmitParams, JobRecord } from "../job-store.js";
import { parseStoredJson } from "../journal.js";
import { PostgresStoreError } from "./connect.js";
import { JOB_SELECT, type JobRow, type Liveness, toRecord } from "./rows.js";
import type { Session } from "./session.js";

export interface QueueRow {
  rowKey: string;
  line?: number | undefined;
  name?: string | undefined;
  /** The cost this row's submit reserves from the budget. */
  estimateUsd?: number | undefined;
  /** What a worker needs to run the row (its validated input, say): stored as JSON, no secrets. */
  payload?: unknown;
}

export interface ClaimedRow {
  rowKey: string;
  line: number | undefined;
  name: string | undefined;
  estimateUsd: number | undefined;
  payload: unknown;
  /** How many times a worker claimed it (1 the first time). */
  attempts: number;
  /**
   * The newest job of this row, if a worker (this one earlier, or a killed one) started one:
   * with a request id, follow it; `submission_unknown` (or `submitting` with a live owner
   * elsewhere), never submit again.
   */
  job: JobRecord | undefined;
}

export interface BatchProgress {
  /** Rows by state: pending, claimed, done, failed. */
  states: Record<string, number>;
  /** Who holds or held the rows: `host:pid` → rows claimed now, done, failed. */
  workers: { host: string; pid: number; claimed: number; done: number; failed: number }[];
  budgetUsd: number | undefined;
  reservedUsd: number;
}

const CLAIMABLE = `(r.state = 'pending' OR (r.state = 'claimed' AND (r.lease_until < clock_timestamp()
   OR r.worker_id IS NULL OR EXISTS (SELECT 1 FROM dreamina.workers w WHERE w.worker_id = r.worker_id
     AND w.stopped_at IS NOT NULL))))`;

/**
 * Adds rows to a batch's queue (rows already there are left as they are: enqueueing the same
 * file from every worker is safe). `budgetUsd`, when given, sets the batch's budget.
 */
export async function enqueueRows(
  session: Session,
  batchId: string,
  rows: readonly QueueRow[],
  options: { budgetUsd?: number | undefined; now: number },
): Promise<void> {
  await session.tx(async (client) => {
    await client.query(
      `INSERT INTO dreamina.batches (batch_id, budget_usd, created_at, updated_at) VALUES ($1, $2, $3, $3)
       ON CONFLICT (batch_id) DO UPDATE SET budget_usd = COALESCE($2, dreamina.batches.budget_usd)`,
      [batchId, options.budgetUsd ?? null, options.now],
    );
    // In slices: one statement per thousand rows, not one per row.
    for (let i = 0; i < rows.length; i += 1000) {
      const slice = rows.slice(i, i + 1000);
      await client.query(
        `INSERT INTO dreamina.batch_rows (batch_id, row_key, ord, line, name, state, payload_json, estimate_usd, updated_at)
         SELECT $1, k, o, l, n, 'pending', p, e, $2
           FROM unnest($3::text[], $4::int[], $5::int[], $6::text[], $7::text[], $8::float8[]) AS t(k, o, l, n, p, e)
         ON CONFLICT (batch_id, row_key) DO NOTHING`,
        [
          batchId,
          options.now,
          slice.map((r) => r.rowKey),
          slice.map((_, j) => i + j),
          slice.map((r) => r.line ?? null),
          slice.map((r) => r.name ?? null),
          slice.map((r) => (r.payload === undefined ? null : JSON.stringify(r.payload))),
          slice.map((r) => r.estimateUsd ?? null),
        ],
      );
    }
  });
}

/** Claims up to `limit` rows for this worker, in file order. Never blocks on another worker's rows. */
export async function claimRows(
  session: Session,
  live: Liveness,
  batchId: string,
  limit: number,
): Promise<ClaimedRow[]> {
  await session.register();
  type Claimed = {
    row_key: string;
    line: number | null;
    name: string | null;
    estimate_usd: number | null;
    payload_json: string | null;
    attempts: number;
  };
  const claimed = await session.query<Claimed>(
    `UPDATE dreamina.batch_rows r SET state = 'claimed', worker_id = $2, worker_host = $3, worker_pid = $4,
        lease_until = clock_timestamp() + make_interval(secs => $5::float8 / 1000), attempts = r.attempts + 1
      WHERE (r.batch_id, r.row_key) IN (
        SELECT r.batch_id, r.row_key FROM dreamina.batch_rows r
         WHERE r.batch_id = $1 AND ${CLAIMABLE}
         ORDER BY r.ord LIMIT $6 FOR UPDATE SKIP LOCKED)
      RETURNING r.row_key, r.line, r.name, r.estimate_usd, r.payload_json, r.attempts, r.ord`,
    [batchId, session.workerId, session.host, process.pid, session.leaseMs, Math.max(1, Math.floor(limit))],
  );
  if (claimed.rows.length === 0) return [];
  const jobs = await session.query<JobRow>(
    `${JOB_SELECT} WHERE j.batch_id = $1 AND j.row_key = ANY($2) ORDER BY j.local_id`,
    [batchId, claimed.rows.map((r) => r.row_key)],
  );
  const newest = new Map<string, JobRow>();
  for (const job of jobs.rows) newest.set(job.row_key as string, job);
  return claimed.rows.map((r) => {
    const job = newest.get(r.row_key);
    return {
      rowKey: r.row_key,
      line: r.line ?? undefined,
      name: r.name ?? undefined,
      estimateUsd: r.estimate_usd ?? undefined,
      payload: parseStoredJson(r.payload_json),
      attempts: r.attempts,
      job: job ? toRecord(job, live) : undefined,
    };
  });
}

/**
 * In the caller's transaction: checks that this worker holds the row and that no earlier job of
 * it is alive, then reserves the row's estimate from the budget. Throws `batch_row_not_held`,
 * `batch_row_submitted` or `budget_exceeded`; nothing is written then.
 */
export async function checkAndReserve(
  client: pg.PoolClient,
  session: Session,
  params: BeginSubmitParams & { batchId: string; rowKey: string; supersedes?: readonly number[] | undefined },
  estimateUsd: number | undefined,
): Promise<void> {
  const held = await client.query<{ worker_id: string | null; state: string }>(
    "SELECT worker_id, state FROM dreamina.batch_rows WHERE batch_id = $1 AND row_key = $2 FOR UPDATE",
    [params.batchId, params.rowKey],
  );
  const row = held.rows[0];
  if (row?.state !== "claimed" || row.worker_id !== session.workerId) {
    throw new PostgresStoreError(
      `row ${params.rowKey} of batch ${params.batchId} is not held by this worker (${row ? row.state : "no such row"}): not submitted`,
      { code: "batch_row_not_held" },
    );
  }
  const alive = await client.query<{ local_id: number; state: string; request_id: string | null }>(
    `SELECT local_id, state, request_id FROM dreamina.jobs
      WHERE batch_id = $1 AND row_key = $2 AND state NOT IN ('rejected', 'abandoned')
        AND NOT (local_id = ANY($3::bigint[]))`,
    [params.batchId, params.rowKey, params.supersedes ?? []],
  );
  const earlier = alive.rows[0];
  if (earlier) {
    throw new PostgresStoreError(
      `row ${params.rowKey} of batch ${params.batchId} was submitted already (job ${earlier.local_id}, ` +
        `${earlier.state}${earlier.request_id ? `, request ${earlier.request_id}` : ""}): not submitted again`,
      { code: "batch_row_submitted" },
    );
  }
  if (estimateUsd === undefined || estimateUsd <= 0) return;
  const reserved = await client.query<{ reserved_usd: number; budget_usd: number | null }>(
    `UPDATE dreamina.batches SET reserved_usd = reserved_usd + $2
      WHERE batch_id = $1 AND (budget_usd IS NULL OR reserved_usd + $2 <= budget_usd + 1e-9)
      RETURNING reserved_usd, budget_usd`,
    [params.batchId, estimateUsd],
  );
  if (reserved.rowCount === 0) {
    const b = await client.query<{ reserved_usd: number; budget_usd: number | null }>(
      "SELECT reserved_usd, budget_usd FROM dreamina.batches WHERE batch_id = $1",
      [params.batchId],
    );
    const now = b.rows[0];
    throw new PostgresStoreError(
      `the budget of batch ${params.batchId} is spent: $${(now?.reserved_usd ?? 0).toFixed(2)} of ` +
        `$${(now?.budget_usd ?? 0).toFixed(2)} reserved, row ${params.rowKey} needs $${estimateUsd.toFixed(2)}`,
      { code: "budget_exceeded" },
    );
  }
}

/** Marks the row's intent row on the batch row, in the caller's transaction. */
export async function linkRow(client: pg.PoolClient, batchId: string, rowKey: string, localId: number) {
  await client.query("UPDATE dreamina.batch_rows SET local_id = $3 WHERE batch_id = $1 AND row_key = $2", [
    batchId,
    rowKey,
    localId,
  ]);
}

/** A row's outcome (the same shape as the store's batch row outcome). */
export type RowOutcome =
  | {
      state: "done";
      requestId: string;
      file: string;
      bytes: number;
      sha256: string;
      line?: number | undefined;
      name?: string | undefined;
      estimateUsd?: number | undefined;
      costUsd?: number | undefined;
    }
  | {
      state: "failed";
      requestId?: string | undefined;
      error: unknown;
      line?: number | undefined;
      name?: string | undefined;
      estimateUsd?: number | undefined;
      costUsd?: number | undefined;
    };

/**
 * Records a row's outcome (creating the row when the batch did not queue it) and ends its lease.
 * A row already `done` is never turned `failed` by a worker that took it over and lost a race.
 */
export async function recordRowOutcome(
  client: pg.PoolClient,
  worker: { host: string; pid: number },
  batchId: string,
  rowKey: string,
  outcome: RowOutcome,
  now: number,
): Promise<void> {
  const done = outcome.state === "done" ? outcome : undefined;
  await client.query(
    `INSERT INTO dreamina.batches (batch_id, created_at, updated_at) VALUES ($1, $2, $2) ON CONFLICT DO NOTHING`,
    [batchId, now],
  );
  await client.query(
    `INSERT INTO dreamina.batch_rows AS r (batch_id, row_key, line, name, state, request_id, estimate_usd,
        cost_usd, file, bytes, sha256, error_json, worker_host, worker_pid, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
     ON CONFLICT (batch_id, row_key) DO UPDATE SET line = COALESCE(excluded.line, r.line),
       name = COALESCE(excluded.name, r.name), state = excluded.state, request_id = excluded.request_id,
       estimate_usd = COALESCE(excluded.estimate_usd, r.estimate_usd), cost_usd = excluded.cost_usd,
       file = excluded.file, bytes = excluded.bytes, sha256 = excluded.sha256, error_json = excluded.error_json,
       worker_id = NULL, lease_until = NULL, worker_host = excluded.worker_host,
       worker_pid = excluded.worker_pid, updated_at = excluded.updated_at
     WHERE NOT (r.state = 'done' AND excluded.state = 'failed')`,
    [
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
    ],
  );
}

/** Puts a row back in the queue (this worker stops early, gracefully). */
export async function releaseRow(session: Session, batchId: string, rowKey: string): Promise<void> {
  await session.query(
    `UPDATE dreamina.batch_rows SET state = 'pending', worker_id = NULL, lease_until = NULL
      WHERE batch_id = $1 AND row_key = $2 AND state = 'claimed' AND worker_id = $3`,
    [batchId, rowKey, session.workerId],
  );
}

/** Counts by state and by worker, and the budget: what `batch --status` shows. */
export async function batchProgress(session: Session, batchId: string): Promise<BatchProgress> {
  const [states, workers, batch] = await Promise.all([
    session.query<{ state: string; n: number }>(
      "SELECT state, count(*)::int AS n FROM dreamina.batch_rows WHERE batch_id = $1 GROUP BY state",
      [batchId],
    ),
    session.query<{ host: string; pid: number; claimed: number; done: number; failed: number }>(
      `SELECT worker_host AS host, worker_pid AS pid,
          count(*) FILTER (WHERE state = 'claimed')::int AS claimed,
          count(*) FILTER (WHERE state = 'done')::int AS done,
          count(*) FILTER (WHERE state = 'failed')::int AS failed
        FROM dreamina.batch_rows WHERE batch_id = $1 AND worker_host IS NOT NULL
        GROUP BY worker_host, worker_pid ORDER BY worker_host, worker_pid`,
      [batchId],
    ),
    session.query<{ budget_usd: number | null; reserved_usd: number }>(
      "SELECT budget_usd, reserved_usd FROM dreamina.batches WHERE batch_id = $1",
      [batchId],
    ),
  ]);
  return {
    states: Object.fromEntries(states.rows.map((r) => [r.state, r.n])),
    workers: workers.rows,
    budgetUsd: batch.rows[0]?.budget_usd ?? undefined,
    reservedUsd: batch.rows[0]?.reserved_usd ?? 0,
  };
}
