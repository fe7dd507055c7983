// Request ids the SQLite file could not take when the service accepted them (the file locked
// past the busy timeout, a full or read-only disk): kept in files beside it (../recovery.ts),
// taken in at the next open or write. A request id is never lost.

import { readRecoveredSubmits } from "../recovery.js";
import { redactText } from "../redact.js";
import type { RecoveredSubmit, RecoveryReport, SubmitAcceptedParams } from "../types.js";
import type { SqliteConnection } from "./connection.js";
import { insertTransition, stateByRequestId } from "./jobs.js";

export interface AppliedRecovery extends RecoveryReport {
  /** Files whose id is in the journal once the transaction commits. */
  committed: string[];
}

/** Must run inside a transaction. */
export function applyRecovered(conn: SqliteConnection, dir: string): AppliedRecovery {
  const { entries, unreadable } = readRecoveredSubmits(dir);
  const applied: AppliedRecovery = { committed: [], replayed: [], unmatched: [], unreadable };
  for (const { file, entry } of entries) {
    const outcome = applyRecoveredSubmit(conn, entry);
    if (outcome === "unmatched") applied.unmatched.push({ ...entry, file });
    else {
      applied.committed.push(file);
      if (outcome === "applied") applied.replayed.push(entry);
    }
  }
  return applied;
}

function applyRecoveredSubmit(
  conn: SqliteConnection,
  entry: RecoveredSubmit,
): "applied" | "already" | "unmatched" {
  if (stateByRequestId(conn, entry.requestId)) return "already";
  const row = conn
    .prepare("SELECT local_id, state, request_id FROM jobs WHERE local_id = ?")
    .get(entry.localId) as { local_id: number; state: string; request_id: string | null } | undefined;
  if (!row || row.request_id !== null) return "unmatched";
  const now = conn.now();
  const at = Number.isFinite(Date.parse(entry.at)) ? Date.parse(entry.at) : now;
  // A row still awaiting its outcome becomes submitted; one settled meanwhile (abandoned by a
  // person) keeps its state but gets the id, so the job can still be found and fetched.
  const awaiting = row.state === "submitting" || row.state === "submission_unknown";
  conn
    .prepare(
      `UPDATE jobs SET request_id = ?, status_url = COALESCE(?, status_url),
             result_url = COALESCE(?, result_url), cancel_url = COALESCE(?, cancel_url),
             submitted_at = COALESCE(submitted_at, ?), updated_at = ?,
             state = CASE WHEN ? THEN 'submitted' ELSE state END
           WHERE local_id = ?`,
    )
    .run(
      entry.requestId,
      entry.statusUrl ?? null,
      entry.resultUrl ?? null,
      entry.cancelUrl ?? null,
      at,
      now,
      awaiting ? 1 : 0,
      row.local_id,
    );
  if (awaiting) insertTransition(conn, row.local_id, "submitted", undefined, undefined, at);
  return "applied";
}

/** The entry kept for an accepted submit the journal could not record. */
export function recoveredEntry(
  conn: SqliteConnection,
  localId: number,
  params: SubmitAcceptedParams,
  reason: string,
): RecoveredSubmit {
  return {
    kind: "submit_accepted",
    journal: conn.path,
    localId,
    requestId: params.requestId,
    statusUrl: params.statusUrl === undefined ? undefined : redactText(params.statusUrl),
    resultUrl: params.resultUrl === undefined ? undefined : redactText(params.resultUrl),
    cancelUrl: params.cancelUrl === undefined ? undefined : redactText(params.cancelUrl),
    at: new Date(conn.now()).toISOString(),
    pid: process.pid,
    host: conn.host,
    error: reason,
  };
}
