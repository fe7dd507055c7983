// Reading jobs back: rows to records, one job with its history, lists, the run-time prior.

import type { Statement } from "better-sqlite3";
import {
  iso,
  JOB_TIMES_COLUMNS,
  jobRowToRecord,
  jobTimesOf,
  jobTimesPage,
  type StoredJobRow,
  type StoredJobTimes,
} from "../job-row.js";
import { parseStoredJson } from "../redact.js";
import type { JournalState } from "../states.js";
import { PRIOR_WINDOW, trimmedStats } from "../stats.js";
import { reportedState, toMillis } from "../transitions.js";
import type {
  BatchJobTimes,
  BatchJobTimesPage,
  JobRecord,
  JobRecordDetail,
  ListParams,
  RunTimePrior,
  Transition,
} from "../types.js";
import type { SqliteConnection } from "./connection.js";

type JobRow = StoredJobRow;

function toRecord(conn: SqliteConnection, row: JobRow): JobRecord {
  const state = reportedState(
    { state: row.state, createdAtMs: row.created_at, pid: row.pid ?? undefined, host: row.host ?? undefined },
    { nowMs: conn.now(), graceMs: conn.graceMs, host: conn.host },
  );
  return jobRowToRecord(row, state);
}

/** A string is a request id first, then (all digits) a local id; a number is a local id. */
export function getJob(conn: SqliteConnection, id: string | number): JobRecordDetail | undefined {
  const byLocal = (localId: number) =>
    conn.prepare("SELECT * FROM jobs WHERE local_id = ?").get(localId) as JobRow | undefined;
  let row: JobRow | undefined;
  if (typeof id === "number") row = byLocal(id);
  else {
    row = conn.prepare("SELECT * FROM jobs WHERE request_id = ?").get(id) as JobRow | undefined;
    if (!row && /^\d{1,15}$/.test(id)) row = byLocal(Number(id));
  }
  if (!row) return undefined;
  const transitions: Transition[] = (
    conn
      .prepare(
        "SELECT status, raw_status, queue_position, at FROM transitions WHERE local_id = ? ORDER BY id",
      )
      .all(row.local_id) as {
      status: string;
      raw_status: string | null;
      queue_position: number | null;
      at: number;
    }[]
  ).map((t) => ({
    status: t.status,
    rawStatus: t.raw_status ?? undefined,
    queuePosition: t.queue_position ?? undefined,
    at: iso(t.at),
  }));
  const queuePositions: number[] = [];
  for (const t of transitions) {
    if (t.queuePosition !== undefined && queuePositions.at(-1) !== t.queuePosition) {
      queuePositions.push(t.queuePosition);
    }
  }
  const files = (
    conn
      .prepare("SELECT path, url, bytes, sha256, at FROM files WHERE local_id = ? ORDER BY id")
      .all(row.local_id) as {
      path: string;
      url: string | null;
      bytes: number | null;
      sha256: string | null;
      at: number;
    }[]
  ).map((f) => ({
    path: f.path,
    url: f.url ?? undefined,
    bytes: f.bytes ?? undefined,
    sha256: f.sha256 ?? undefined,
    at: iso(f.at),
  }));
  return {
    ...toRecord(conn, row),
    transitions,
    queuePositions,
    files,
    result: parseStoredJson(row.result_json),
  };
}

function collect(
  conn: SqliteConnection,
  statement: Statement,
  args: unknown[],
  keep: (record: JobRecord) => boolean,
  limit: number,
): JobRecord[] {
  const out: JobRecord[] = [];
  for (const row of statement.iterate(...args) as IterableIterator<JobRow>) {
    const record = toRecord(conn, row);
    if (!keep(record)) continue;
    out.push(record);
    if (out.length >= limit) break;
  }
  return out;
}

/** Newest first. `state` filters on the reported state (a dead `submitting` row is `submission_unknown`). */
export function listJobs(conn: SqliteConnection, params: ListParams = {}): JobRecord[] {
  const limit = Math.max(1, Math.min(10_000, Math.floor(params.limit ?? 50)));
  const where: string[] = [];
  const args: unknown[] = [];
  const states = params.state === undefined ? undefined : ([] as JournalState[]).concat(params.state);
  if (states) {
    // A stored `submitting` row may be reported as `submission_unknown`: fetch both, filter after.
    const stored = new Set<JournalState>(states);
    if (stored.has("submission_unknown")) stored.add("submitting");
    where.push(`state IN (${[...stored].map(() => "?").join(", ")})`);
    args.push(...stored);
  }
  if (params.batchId !== undefined) {
    where.push("batch_id = ?");
    args.push(params.batchId);
  }
  if (params.since !== undefined) {
    where.push("created_at >= ?");
    args.push(toMillis(params.since, conn.now));
  }
  const sql =
    `SELECT * FROM jobs ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ` +
    "ORDER BY created_at DESC, local_id DESC";
  return collect(conn, conn.prepare(sql), args, (r) => !states || states.includes(r.state), limit);
}

/** Every job of a batch, newest first, no limit. */
export function batchJobs(conn: SqliteConnection, batchId: string): JobRecord[] {
  const statement = conn.prepare(
    "SELECT * FROM jobs WHERE batch_id = ? ORDER BY created_at DESC, local_id DESC",
  );
  return collect(conn, statement, [batchId], () => true, Number.POSITIVE_INFINITY);
}

/** A page of a batch's accepted requests with their times, by local id ascending. */
export function batchJobTimes(
  conn: SqliteConnection,
  batchId: string,
  page?: BatchJobTimesPage,
): BatchJobTimes[] {
  const { after, limit } = jobTimesPage(page);
  const rows = conn
    .prepare(
      `SELECT ${JOB_TIMES_COLUMNS} FROM jobs
         WHERE batch_id = ? AND request_id IS NOT NULL AND local_id > ? ORDER BY local_id LIMIT ?`,
    )
    .all(batchId, after, limit) as StoredJobTimes[];
  return rows.map(jobTimesOf);
}

/** Rows whose submit may or may not have been accepted, including `submitting` rows left by a crash. */
export function unresolvedSubmissions(conn: SqliteConnection): JobRecord[] {
  const statement = conn.prepare(
    "SELECT * FROM jobs WHERE state IN ('submitting', 'submission_unknown') ORDER BY local_id",
  );
  return collect(conn, statement, [], (r) => r.state === "submission_unknown", Number.POSITIVE_INFINITY);
}

/**
 * How long this model takes to run, from the last `window` succeeded jobs with these frames:
 * in_progress → terminal when in_progress was seen, else submit → terminal. The fastest and
 * slowest 10 % are dropped before mean and standard deviation (a job polled after a laptop
 * slept must not skew every estimate). Undefined when there is no history.
 */
export function runTimePrior(
  conn: SqliteConnection,
  modelId: string,
  frames: number | undefined,
  window = PRIOR_WINDOW,
): RunTimePrior | undefined {
  const rows = conn
    .prepare(
      `SELECT finished_at - COALESCE(started_at, submitted_at) AS ms FROM jobs
         WHERE model_id = ? AND state = 'succeeded' AND (? IS NULL OR frames = ?)
           AND finished_at IS NOT NULL AND COALESCE(started_at, submitted_at) IS NOT NULL
         ORDER BY finished_at DESC LIMIT ?`,
    )
    .all(modelId, frames ?? null, frames ?? null, Math.max(1, Math.floor(window))) as { ms: number }[];
  return trimmedStats(rows.map((r) => r.ms).filter((ms) => Number.isFinite(ms) && ms >= 0));
}
