// Stored rows back to the records every backend returns, and the one judgement a reader makes:
// whether a row still `submitting` has an owner that may yet answer, or is `submission_unknown`.

import { jobRowToRecord, type StoredJobRow } from "../job-row.js";
import type { JournalState } from "../states.js";
import type { JobRecord } from "../types.js";

export interface JobRow extends StoredJobRow {
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
  return jobRowToRecord(row, reportedState(row, live));
}
