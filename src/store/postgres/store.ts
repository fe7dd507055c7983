// The job store on PostgreSQL: the same journal as the SQLite one (same states, same rules, same
// stored forms), shared by every worker that points at the same database.
//
// Every read-then-write locks its job row (`FOR UPDATE`) inside one transaction, so two workers
// following the same request (a lease taken over, a `status` in another terminal) serialize on it
// instead of interleaving. The intent row's commit waits for the WAL flush whatever the server's
// `synchronous_commit` says: it must survive a server crash once the POST has gone out.

import type pg from "pg";
import type { JobStatusValue } from "../../api/types.js";
import type { RunTimePrior } from "../../run/schedule.js";
import type {
  BeginSubmitParams,
  FileParams,
  JobRecord,
  JobRecordDetail,
  JobStore,
  ListParams,
  ResultObservation,
  StatusObservation,
  SubmitAcceptedParams,
} from "../job-store.js";
import { FINAL_STATES, type JournalState } from "../journal.js";
import {
  inputDigest,
  isPlainObject,
  redactStored,
  redactText,
  storeError,
  storeJson,
  toMillis,
} from "./codec.js";
import { PostgresStoreError } from "./connect.js";
import { getJob, listJobs, runTimePrior, unresolvedJobs } from "./reads.js";
import { RecoveryFolder } from "./recovered.js";
import type { Liveness } from "./rows.js";
import type { Session } from "./session.js";

const TERMINAL_STATES: ReadonlySet<string> = new Set(["completed", "succeeded", "failed", "cancelled"]);
const STICKY_STATES: ReadonlySet<string> = new Set([
  "rejected",
  "succeeded",
  "failed",
  "cancelled",
  "abandoned",
]);

export interface PostgresStoreSettings {
  now: () => number;
  graceMs: number;
  warn: (message: string) => void;
  recoveryDir: string;
}

type RowState = { local_id: number; state: JournalState; request_id: string | null };

export class PostgresJobStore implements JobStore {
  readonly kind = "postgres" as const;
  readonly location: string;
  /** For the batch methods and the import, in this folder. */
  readonly session: Session;
  readonly live: Liveness;
  readonly #now: () => number;
  readonly #recovery: RecoveryFolder;

  constructor(session: Session, settings: PostgresStoreSettings) {
    this.session = session;
    this.location = session.location;
    this.#now = settings.now;
    this.live = {
      now: settings.now,
      graceMs: settings.graceMs,
      leaseMs: session.leaseMs,
      workerId: session.workerId,
      host: session.host,
    };
    this.#recovery = new RecoveryFolder(settings.recoveryDir, this.location, settings.warn);
  }

  /** Takes in request ids an earlier run had to keep outside the store. */
  async replayRecovered(): Promise<void> {
    await this.#recovery.replay((entry) => this.#applyRecovered(entry));
  }

  async beginSubmit(params: BeginSubmitParams): Promise<number> {
    await this.#beforeWrite();
    await this.session.register();
    return await this.session.tx((client) => this.insertIntent(client, params), true);
  }

  /** The intent row and its first transition, in the caller's transaction. */
  async insertIntent(
    client: pg.PoolClient,
    params: BeginSubmitParams,
    reservedUsd?: number,
  ): Promise<number> {
    const input = redactStored(params.input);
    const fields = (isPlainObject(params.input) ? params.input : {}) as Record<string, unknown>;
    const now = this.#now();
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
        process.pid,
        this.session.host,
        this.session.workerId,
        reservedUsd ?? null,
      ],
    );
    const localId = inserted.rows[0]!.local_id;
    await this.#transition(client, localId, "submitting", undefined, undefined, now);
    return localId;
  }

  /**
   * When the store cannot be written (the server went away), the id goes to a recovery file on
   * this machine and is announced on stderr; the next write (or open) takes it in. Throws, the
   * id in the message, only when that file cannot be written either.
   */
  async submitAccepted(localId: number, accepted: SubmitAcceptedParams): Promise<void> {
    let lastError: unknown;
    for (const pause of [0, 250, 1000]) {
      if (pause) await new Promise((r) => setTimeout(r, pause));
      try {
        await this.#recordAccepted(localId, accepted);
        return;
      } catch (error) {
        lastError = error;
        if ((error as { code?: string }).code !== "store_unavailable") break;
      }
    }
    const code = (lastError as { code?: string }).code;
    if (code === "store_no_row" || code === "store_wrong_state") throw lastError;
    this.#recovery.keep(localId, accepted, lastError, this.#now());
  }

  async #recordAccepted(localId: number, accepted: SubmitAcceptedParams): Promise<void> {
    await this.#beforeWrite();
    const now = this.#now();
    await this.session.tx(async (client) => {
      const row = await this.#lockLocal(client, localId);
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
      await this.#transition(client, localId, "submitted", undefined, undefined, now);
    }, true);
  }

  async #applyRecovered(entry: {
    localId: number;
    requestId: string;
    statusUrl?: string | undefined;
    resultUrl?: string | undefined;
    cancelUrl?: string | undefined;
    at: string;
  }): Promise<"applied" | "already" | "unmatched"> {
    return await this.session.tx(async (client) => {
      const known = await client.query("SELECT 1 FROM dreamina.jobs WHERE request_id = $1", [
        entry.requestId,
      ]);
      if (known.rowCount) return "already";
      const row = await this.#lockLocal(client, entry.localId);
      if (!row || row.request_id !== null) return "unmatched";
      const now = this.#now();
      const at = Number.isFinite(Date.parse(entry.at)) ? Date.parse(entry.at) : now;
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
      if (awaiting) await this.#transition(client, row.local_id, "submitted", undefined, undefined, at);
      return "applied";
    });
  }

  async submitRejected(localId: number, error: unknown): Promise<void> {
    await this.#settle(localId, "rejected", error);
  }

  async submitUnknown(localId: number, error: unknown): Promise<void> {
    await this.#settle(localId, "submission_unknown", error);
  }

  async markAbandoned(localId: number, reason?: string): Promise<void> {
    await this.#settle(localId, "abandoned", reason === undefined ? undefined : { message: reason });
  }

  async #settle(localId: number, state: JournalState, error: unknown): Promise<void> {
    await this.#beforeWrite();
    const now = this.#now();
    const stored = storeError(error);
    await this.session.tx(async (client) => {
      const row = await this.#lockLocal(client, localId);
      if (!row) throw noRow(localId);
      if (row.state !== "submitting" && row.state !== "submission_unknown") {
        throw wrongState(`job ${localId} is ${row.state}, not awaiting a submit outcome`);
      }
      const final = FINAL_STATES.includes(state);
      await client.query(
        `UPDATE dreamina.jobs SET state = $1, last_error_json = COALESCE($2, last_error_json), updated_at = $3,
           finished_at = CASE WHEN $4 THEN COALESCE(finished_at, $3) ELSE finished_at END WHERE local_id = $5`,
        [state, stored, now, final, localId],
      );
      await this.#transition(client, localId, state, undefined, undefined, now);
      // A refused submit cost nothing: its reservation goes back to the batch's budget.
      if (state === "rejected") await releaseReservation(client, localId);
    });
  }

  async recordStatus(requestId: string, observation: StatusObservation): Promise<boolean> {
    await this.#beforeWrite();
    const at = toMillis(observation.at, this.#now);
    return await this.session.tx(async (client) => {
      const row = await this.#lockRequest(client, requestId);
      if (!row) return false;
      await this.#applyStatus(
        client,
        row,
        observation.status,
        observation.rawStatus,
        observation.queuePosition,
        at,
      );
      return true;
    });
  }

  async recordResult(requestId: string, result: ResultObservation): Promise<boolean> {
    await this.#beforeWrite();
    const at = toMillis(result.at, this.#now);
    return await this.session.tx(async (client) => {
      const row = await this.#lockRequest(client, requestId);
      if (!row) return false;
      await this.#applyStatus(client, row, result.status, result.rawStatus, undefined, at);
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
    });
  }

  async recordError(requestId: string, error: unknown): Promise<boolean> {
    await this.#beforeWrite();
    const done = await this.session.query(
      "UPDATE dreamina.jobs SET last_error_json = $1, updated_at = $2 WHERE request_id = $3",
      [storeError(error), this.#now(), requestId],
    );
    return (done.rowCount ?? 0) > 0;
  }

  async recordFile(requestId: string, file: FileParams): Promise<boolean> {
    await this.#beforeWrite();
    const now = this.#now();
    const done = await this.session.query(
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

  async get(id: string | number): Promise<JobRecordDetail | undefined> {
    return await getJob(this.session, this.live, id);
  }

  async list(params: ListParams = {}): Promise<JobRecord[]> {
    return await listJobs(this.session, this.live, params);
  }

  async unresolvedSubmissions(): Promise<JobRecord[]> {
    return await unresolvedJobs(this.session, this.live);
  }

  async runTimePrior(modelId: string, frames?: number, window = 50): Promise<RunTimePrior | undefined> {
    return await runTimePrior(this.session, modelId, frames, window);
  }

  async close(): Promise<void> {
    await this.session.close();
  }

  async #beforeWrite(): Promise<void> {
    if (this.#recovery.pending) await this.replayRecovered().catch(() => {});
  }

  async #lockLocal(client: pg.PoolClient, localId: number): Promise<RowState | undefined> {
    const r = await client.query<RowState>(
      "SELECT local_id, state, request_id FROM dreamina.jobs WHERE local_id = $1 FOR UPDATE",
      [localId],
    );
    return r.rows[0];
  }

  async #lockRequest(client: pg.PoolClient, requestId: string): Promise<RowState | undefined> {
    const r = await client.query<RowState>(
      "SELECT local_id, state, request_id FROM dreamina.jobs WHERE request_id = $1 FOR UPDATE",
      [requestId],
    );
    return r.rows[0];
  }

  async #transition(
    client: pg.PoolClient,
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

  async #applyStatus(
    client: pg.PoolClient,
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
      await this.#transition(client, row.local_id, label, rawStatus, position, at);
    }
    let state = row.state;
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
}

/** Gives a refused job's reserved cost back to its batch (nothing when it reserved none). */
async function releaseReservation(client: pg.PoolClient, localId: number): Promise<void> {
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
