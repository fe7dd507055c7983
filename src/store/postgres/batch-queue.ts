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
// but `rejected`, `abandoned`, or over without a video: `cancelled`, `failed`), so a worker that took a row over finds the job its previous
// owner started and follows it (waiting is keyed by request id) instead of submitting it again;
// a job whose submit outcome is unknown is never resubmitted by anyone (only `supersedes`, on
// purpose). The batch's budget is reserved in that same transaction, so two workers can never
// overspend together; a refused submit gives its reservation back.

import type pg from "pg";
import { parseStoredJson } from "../redact.js";
import type {
  BatchQueueProgress,
  BatchRowOutcome,
  BeginSubmitParams,
  ClaimedRow,
  QueueRow,
} from "../types.js";
import { PostgresStoreError } from "./connect.js";
import { JOB_SELECT, type JobRow, type Liveness, toRecord } from "./rows.js";
import type { Session } from "./session.js";
import { intentArgs, rowOutcomeArgs } from "./writes.js";

const CLAIMABLE = `(r.state = 'pending' OR (r.state = 'claimed' AND (r.lease_until < clock_timestamp()
   OR r.worker_id IS NULL OR EXISTS (SELECT 1 FROM dreamina.workers w WHERE w.worker_id = r.worker_id
     AND w.stopped_at IS NOT NULL))))`;

/**
 * Adds rows to a batch's queue (rows already there are left as they are: enqueueing the same
 * file from every worker is safe). `budgetUsd`, when given, sets the batch's budget; `reopen`
 * puts failed rows back in the queue.
 */
export async function enqueueRows(
  session: Session,
  batchId: string,
  rows: readonly QueueRow[],
  options: { budgetUsd?: number | undefined; reopen?: readonly string[] | undefined; now: number },
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
    // Rows settled as failed that a worker was asked to run again (a retry, a download to
    // fetch again): back in the queue. A row done stays done.
    if (options.reopen && options.reopen.length > 0) {
      await client.query(
        `UPDATE dreamina.batch_rows SET state = 'pending', worker_id = NULL, lease_until = NULL, updated_at = $3
          WHERE batch_id = $1 AND row_key = ANY($2::text[]) AND state = 'failed'`,
        [batchId, options.reopen, options.now],
      );
    }
  });
}

/**
 * Claims up to `limit` rows for this worker, in file order, but those in `exclude` (rows this
 * worker cannot run: another worker's manifest has them). Never blocks on another worker's rows.
 */
export async function claimRows(
  session: Session,
  live: Liveness,
  batchId: string,
  limit: number,
  exclude: readonly string[] = [],
): Promise<ClaimedRow[]> {
  await session.register();
  type Claimed = {
    row_key: string;
    line: number | null;
    name: string | null;
    estimate_usd: number | null;
    payload_json: string | null;
    attempts: number;
    ord: number;
    job_id: number | null;
  };
  const claimed = await session.query<Claimed>(
    `UPDATE dreamina.batch_rows r SET state = 'claimed', worker_id = $2, worker_host = $3, worker_pid = $4,
        lease_until = clock_timestamp() + make_interval(secs => $5::float8 / 1000), attempts = r.attempts + 1
      WHERE (r.batch_id, r.row_key) IN (
        SELECT r.batch_id, r.row_key FROM dreamina.batch_rows r
         WHERE r.batch_id = $1 AND ${CLAIMABLE} AND NOT (r.row_key = ANY($7::text[]))
         ORDER BY r.ord LIMIT $6 FOR UPDATE SKIP LOCKED)
      RETURNING r.row_key, r.line, r.name, r.estimate_usd, r.payload_json, r.attempts, r.ord,
        (SELECT max(j.local_id) FROM dreamina.jobs j WHERE j.batch_id = r.batch_id AND j.row_key = r.row_key) AS job_id`,
    [
      batchId,
      session.workerId,
      session.host,
      process.pid,
      session.leaseMs,
      Math.max(1, Math.floor(limit)),
      exclude,
    ],
  );
  if (claimed.rows.length === 0) return [];
  // UPDATE … RETURNING gives no order: file order, as claimed.
  claimed.rows.sort((a, b) => a.ord - b.ord);
  // The newest job of each row, when there is one (a row first claimed has none: no query).
  const ids = claimed.rows.flatMap((r) => (r.job_id === null ? [] : [r.job_id]));
  const newest = new Map<string, JobRow>();
  if (ids.length > 0) {
    const jobs = await session.query<JobRow>(`${JOB_SELECT} WHERE j.local_id = ANY($1)`, [ids]);
    for (const job of jobs.rows) newest.set(job.row_key as string, job);
  }
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
 * The intent row of a claimed row, in one statement with the checks that this worker holds the
 * row and that no earlier job of it is alive, and with the budget reservation. Throws
 * `batch_row_not_held`, `batch_row_submitted` or `budget_exceeded`; nothing is written then.
 */
export async function rowIntent(
  session: Session,
  params: BeginSubmitParams & { batchId: string; rowKey: string; supersedes?: readonly number[] | undefined },
  estimateUsd: number | undefined,
  now: number,
): Promise<number> {
  type Outcome = { id?: number; refused?: string; state?: string; job?: number; request?: string | null } & {
    reserved?: number;
    budget?: number;
  };
  const r = await session.query<{ o: Outcome }>(
    `SELECT dreamina.row_intent($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) AS o`,
    [
      session.workerId,
      params.supersedes ?? [],
      estimateUsd ?? null,
      ...intentArgs(params),
      now,
      process.pid,
      session.host,
    ],
  );
  const o = r.rows[0]?.o ?? {};
  if (typeof o.id === "number") return o.id;
  const where = `row ${params.rowKey} of batch ${params.batchId}`;
  if (o.refused === "batch_row_submitted") {
    throw new PostgresStoreError(
      `${where} was submitted already (job ${o.job}, ${o.state}${o.request ? `, request ${o.request}` : ""}): not submitted again`,
      { code: "batch_row_submitted" },
    );
  }
  if (o.refused === "budget_exceeded") {
    throw new PostgresStoreError(
      `the budget of batch ${params.batchId} is spent: $${(o.reserved ?? 0).toFixed(2)} of $${(o.budget ?? 0).toFixed(2)} ` +
        `reserved, ${where} needs $${(estimateUsd ?? 0).toFixed(2)}`,
      { code: "budget_exceeded" },
    );
  }
  throw new PostgresStoreError(`${where} is not held by this worker (${o.state ?? "?"}): not submitted`, {
    code: "batch_row_not_held",
  });
}

/**
 * Records a row's outcome (creating the row when the batch did not queue it) and ends its lease.
 * A row already `done` is never turned `failed` by a worker that took it over and lost a race.
 */
export async function recordRowOutcome(
  client: pg.PoolClient,
  worker: { host: string; pid: number },
  batchId: string,
  rowKey: string,
  outcome: BatchRowOutcome,
  now: number,
): Promise<void> {
  await client.query(
    "SELECT dreamina.batch_row_outcome($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    rowOutcomeArgs(batchId, rowKey, outcome, worker, now),
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
export async function batchProgress(session: Session, batchId: string): Promise<BatchQueueProgress> {
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
