// The `jobs` table's columns as both backends store them, and the one conversion of a stored row
// into the record every backend returns. Only the reported state differs per backend (how it
// judges a `submitting` row's owner), so it is passed in.

import { parseStoredJson } from "./redact.js";
import type { JournalState } from "./states.js";
import type { BatchJobTimes, BatchJobTimesPage, JobRecord } from "./types.js";

export interface StoredJobRow {
  local_id: number;
  request_id: string | null;
  model_id: string;
  base_url: string;
  batch_id: string | null;
  row_key: string | null;
  state: JournalState;
  raw_status: string | null;
  input_json: string;
  input_digest: string;
  prompt: string | null;
  frames: number | null;
  seed: number | null;
  status_url: string | null;
  result_url: string | null;
  cancel_url: string | null;
  created_at: number;
  submitted_at: number | null;
  started_at: number | null;
  finished_at: number | null;
  updated_at: number;
  output_urls_json: string | null;
  cost: number | null;
  job_error_json: string | null;
  last_error_json: string | null;
  result_json: string | null;
  service_created_at: string | null;
  service_finished_at: string | null;
  pid: number | null;
  host: string | null;
}

export function iso(ms: number): string {
  return new Date(ms).toISOString();
}

export function optIso(ms: number | null): string | undefined {
  return ms === null ? undefined : iso(ms);
}

/** A stored row as a record; `state` is what the backend reports for it. */
export function jobRowToRecord(row: StoredJobRow, state: JournalState): JobRecord {
  return {
    localId: row.local_id,
    requestId: row.request_id ?? undefined,
    modelId: row.model_id,
    baseUrl: row.base_url,
    batchId: row.batch_id ?? undefined,
    rowKey: row.row_key ?? undefined,
    state,
    storedState: row.state,
    rawStatus: row.raw_status ?? undefined,
    input: parseStoredJson(row.input_json),
    inputDigest: row.input_digest,
    prompt: row.prompt ?? undefined,
    frames: row.frames ?? undefined,
    seed: row.seed ?? undefined,
    statusUrl: row.status_url ?? undefined,
    resultUrl: row.result_url ?? undefined,
    cancelUrl: row.cancel_url ?? undefined,
    createdAt: iso(row.created_at),
    submittedAt: optIso(row.submitted_at),
    startedAt: optIso(row.started_at),
    finishedAt: optIso(row.finished_at),
    updatedAt: iso(row.updated_at),
    outputUrls: (parseStoredJson(row.output_urls_json) as string[] | undefined) ?? [],
    cost: row.cost ?? undefined,
    jobError: parseStoredJson(row.job_error_json),
    lastError: parseStoredJson(row.last_error_json),
    serviceCreatedAt: row.service_created_at ?? undefined,
    serviceFinishedAt: row.service_finished_at ?? undefined,
    pid: row.pid ?? undefined,
    host: row.host ?? undefined,
  };
}

/** The columns {@link jobTimesOf} reads: the same names in both backends. */
export const JOB_TIMES_COLUMNS =
  "local_id, request_id, created_at, submitted_at, started_at, finished_at, cost";

export type StoredJobTimes = Pick<
  StoredJobRow,
  "local_id" | "created_at" | "submitted_at" | "started_at" | "finished_at" | "cost"
> & { request_id: string };

export function jobTimesOf(row: StoredJobTimes): BatchJobTimes {
  return {
    localId: row.local_id,
    requestId: row.request_id,
    createdAt: iso(row.created_at),
    submittedAt: optIso(row.submitted_at),
    startedAt: optIso(row.started_at),
    finishedAt: optIso(row.finished_at),
    cost: row.cost ?? undefined,
  };
}

/** A page's bounds, clamped: after local id (0: from the start), at most `limit` rows. */
export function jobTimesPage(page: BatchJobTimesPage = {}): { after: number; limit: number } {
  return {
    after: Math.max(0, Math.floor(page.afterLocalId ?? 0)),
    limit: Math.max(1, Math.min(10_000, Math.floor(page.limit ?? 1_000))),
  };
}
