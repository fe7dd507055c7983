// Reading the shared store: one job with its history, lists, the submissions nobody can vouch
// for, and the run-time prior. Reads take no locks; a `submitting` row is judged as it is read.

import type { RunTimePrior } from "../../run/schedule.js";
import { JOB_TIMES_COLUMNS, jobTimesOf, jobTimesPage, type StoredJobTimes } from "../job-row.js";
import { parseStoredJson } from "../redact.js";
import type { JournalState } from "../states.js";
import { trimmedStats } from "../stats.js";
import type { BatchJobTimes, BatchJobTimesPage, JobRecord, JobRecordDetail, ListParams } from "../types.js";
import { iso, toMillis } from "./codec.js";
import { JOB_SELECT, type JobRow, type Liveness, toRecord } from "./rows.js";
import type { Session } from "./session.js";

async function findRow(session: Session, where: string, value: unknown): Promise<JobRow | undefined> {
  return (await session.query<JobRow>(`${JOB_SELECT} WHERE ${where}`, [value])).rows[0];
}

export async function getJob(
  session: Session,
  live: Liveness,
  id: string | number,
): Promise<JobRecordDetail | undefined> {
  let row: JobRow | undefined;
  if (typeof id === "number") row = await findRow(session, "j.local_id = $1", id);
  else {
    row = await findRow(session, "j.request_id = $1", id);
    if (!row && /^\d{1,15}$/.test(id)) row = await findRow(session, "j.local_id = $1", Number(id));
  }
  if (!row) return undefined;
  const [transitions, files] = await Promise.all([
    session.query<{
      status: string;
      raw_status: string | null;
      queue_position: number | null;
      at: number;
    }>(
      "SELECT status, raw_status, queue_position, at FROM dreamina.transitions WHERE local_id = $1 ORDER BY id",
      [row.local_id],
    ),
    session.query<{
      path: string;
      url: string | null;
      bytes: number | null;
      sha256: string | null;
      at: number;
    }>("SELECT path, url, bytes, sha256, at FROM dreamina.files WHERE local_id = $1 ORDER BY id", [
      row.local_id,
    ]),
  ]);
  const steps = transitions.rows.map((t) => ({
    status: t.status,
    rawStatus: t.raw_status ?? undefined,
    queuePosition: t.queue_position ?? undefined,
    at: iso(t.at),
  }));
  const queuePositions: number[] = [];
  for (const t of steps) {
    if (t.queuePosition !== undefined && queuePositions.at(-1) !== t.queuePosition)
      queuePositions.push(t.queuePosition);
  }
  return {
    ...toRecord(row, live),
    transitions: steps,
    queuePositions,
    files: files.rows.map((f) => ({
      path: f.path,
      url: f.url ?? undefined,
      bytes: f.bytes ?? undefined,
      sha256: f.sha256 ?? undefined,
      at: iso(f.at),
    })),
    result: parseStoredJson(row.result_json),
  };
}

export async function listJobs(
  session: Session,
  live: Liveness,
  params: ListParams = {},
): Promise<JobRecord[]> {
  const limit = Math.max(1, Math.min(10_000, Math.floor(params.limit ?? 50)));
  const where: string[] = [];
  const args: unknown[] = [];
  const states = params.state === undefined ? undefined : ([] as JournalState[]).concat(params.state);
  // A stored `submitting` row may be reported as `submission_unknown` and the other way round:
  // fetch both, filter after, and only then apply the limit.
  const judged = states?.some((s) => s === "submitting" || s === "submission_unknown") ?? false;
  if (states) {
    const stored = new Set<JournalState>(states);
    if (stored.has("submission_unknown")) stored.add("submitting");
    args.push([...stored]);
    where.push(`j.state = ANY($${args.length})`);
  }
  if (params.batchId !== undefined) {
    args.push(params.batchId);
    where.push(`j.batch_id = $${args.length}`);
  }
  if (params.since !== undefined) {
    args.push(toMillis(params.since, live.now));
    where.push(`j.created_at >= $${args.length}`);
  }
  let sql = `${JOB_SELECT} ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY j.created_at DESC, j.local_id DESC`;
  if (!judged) sql += ` LIMIT ${limit}`;
  const rows = await session.query<JobRow>(sql, args);
  const out: JobRecord[] = [];
  for (const row of rows.rows) {
    const record = toRecord(row, live);
    if (states && !states.includes(record.state)) continue;
    out.push(record);
    if (out.length >= limit) break;
  }
  return out;
}

export async function unresolvedJobs(session: Session, live: Liveness): Promise<JobRecord[]> {
  const rows = await session.query<JobRow>(
    `${JOB_SELECT} WHERE j.state IN ('submitting', 'submission_unknown') ORDER BY j.local_id`,
  );
  return rows.rows.map((r) => toRecord(r, live)).filter((r) => r.state === "submission_unknown");
}

export async function runTimePrior(
  session: Session,
  modelId: string,
  frames?: number,
  window = 50,
): Promise<RunTimePrior | undefined> {
  const rows = await session.query<{ ms: number }>(
    `SELECT finished_at - COALESCE(started_at, submitted_at) AS ms FROM dreamina.jobs
        WHERE model_id = $1 AND state = 'succeeded' AND ($2::integer IS NULL OR frames = $2)
          AND finished_at IS NOT NULL AND COALESCE(started_at, submitted_at) IS NOT NULL
        ORDER BY finished_at DESC LIMIT $3`,
    [modelId, frames ?? null, Math.max(1, Math.floor(window))],
  );
  return trimmedStats(rows.rows.map((r) => r.ms).filter((ms) => Number.isFinite(ms) && ms >= 0));
}

export async function batchJobs(session: Session, live: Liveness, batchId: string): Promise<JobRecord[]> {
  const rows = await session.query<JobRow>(
    `${JOB_SELECT} WHERE j.batch_id = $1 ORDER BY j.created_at DESC, j.local_id DESC`,
    [batchId],
  );
  return rows.rows.map((r) => toRecord(r, live));
}

/** A page of a batch's accepted requests with their times, by local id ascending. */
export async function batchJobTimes(
  session: Session,
  batchId: string,
  page?: BatchJobTimesPage,
): Promise<BatchJobTimes[]> {
  const { after, limit } = jobTimesPage(page);
  const rows = await session.query<StoredJobTimes>(
    `SELECT ${JOB_TIMES_COLUMNS} FROM dreamina.jobs
       WHERE batch_id = $1 AND request_id IS NOT NULL AND local_id > $2 ORDER BY local_id LIMIT $3`,
    [batchId, after, limit],
  );
  return rows.rows.map(jobTimesOf);
}
