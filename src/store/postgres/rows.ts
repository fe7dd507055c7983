// Stored rows back to the records every backend returns, and the one judgement a reader makes:
// whether a row still `submitting` has an owner that may yet answer, or is `submission_unknown`.

import { parseStoredJson } from "../redact.js";
import type { JournalState } from "../states.js";
import type { JobRecord } from "../types.js";
import { iso, optIso } from "./codec.js";

export interface JobRow {
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
  worker_id: string | null;
  /** From the owner's worker row: it said it stopped. */
  owner_stopped: boolean | null;
  /** From the owner's worker row: milliseconds since its last heartbeat, by the server's clock. */
  owner_silent_ms: number | null;
}

/** Every job column plus what the owner's worker row says about it. */
export const JOB_SELECT = `SELECT j.*, w.stopped_at IS NOT NULL AS owner_stopped,
    (EXTRACT(EPOCH FROM clock_timestamp() - w.heartbeat_at) * 1000)::bigint AS owner_silent_ms
  FROM dreamina.jobs j LEFT JOIN dreamina.workers w ON w.worker_id = j.worker_id`;

export interface Liveness {
  now: () => number;
  /** A `submitting` row older than this is unknown whatever its owner says. */
  graceMs: number;
  /** An owner silent for longer than this is gone. */
  leaseMs: number;
  workerId: string;
  host: string;
}

export function reportedState(row: JobRow, live: Liveness): JournalState {
  if (row.state !== "submitting") return row.state;
  if (live.now() - row.created_at > live.graceMs) return "submission_unknown";
  if (row.worker_id !== null && row.worker_id === live.workerId) return "submitting";
  if (row.owner_stopped) return "submission_unknown";
  if (row.owner_silent_ms !== null && row.owner_silent_ms > live.leaseMs) return "submission_unknown";
  // A row with an owner id but no worker row left (removed by hand): nobody will answer it.
  if (row.worker_id !== null && row.owner_silent_ms === null) return "submission_unknown";
  if (row.host === live.host && row.pid !== null && !processAlive(row.pid)) return "submission_unknown";
  return "submitting";
}

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

export function toRecord(row: JobRow, live: Liveness): JobRecord {
  return {
    localId: row.local_id,
    requestId: row.request_id ?? undefined,
    modelId: row.model_id,
    baseUrl: row.base_url,
    batchId: row.batch_id ?? undefined,
    rowKey: row.row_key ?? undefined,
    state: reportedState(row, live),
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
