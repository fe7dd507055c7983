// One process's presence in the shared store: its pool, its transactions, and its worker row.
//
// A worker row (host, pid, a heartbeat by the server's clock) is written before this process's
// first intent row and refreshed every third of the lease. It is how another machine tells that
// the owner of a `submitting` row, or of a leased batch row, is gone: its heartbeat is older
// than the lease, or it said it stopped. The heartbeat also extends the leases this worker holds,
// so a live worker keeps its rows however long a job runs, and a killed one loses them after one
// lease.

import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type pg from "pg";
import type { DreaminaError } from "../../api/dreamina-error.js";
import { createPool, type ParsedStoreUrl, type PoolOptions, storeError } from "./connect.js";
import { migrate } from "./schema.js";

/** SQLSTATEs after which the same transaction may simply be run again. */
const RETRY_TX = new Set(["40001", "40P01"]);

export interface LeaseTimes {
  leaseMs: number;
  heartbeatMs?: number | undefined;
}

export class Session {
  readonly pool: pg.Pool;
  readonly location: string;
  readonly workerId = `w-${randomUUID()}`;
  readonly host = hostname();
  readonly leaseMs: number;
  /** 0: no heartbeat (a stalled worker, for tests). */
  readonly heartbeatMs: number;
  readonly #password: string | undefined;
  #registered: Promise<void> | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #closed = false;

  private constructor(parsed: ParsedStoreUrl, lease: LeaseTimes, pool: pg.Pool) {
    this.pool = pool;
    this.location = parsed.location;
    this.#password = parsed.password;
    this.leaseMs = lease.leaseMs;
    this.heartbeatMs = lease.heartbeatMs ?? Math.max(50, lease.leaseMs / 3);
  }

  /** Connects and creates or migrates the schema. */
  static async open(parsed: ParsedStoreUrl, lease: LeaseTimes, options: PoolOptions): Promise<Session> {
    const session = new Session(parsed, lease, createPool(parsed, options));
    try {
      const client = await session.pool.connect();
      try {
        await migrate(client, session.location);
      } finally {
        client.release();
      }
    } catch (error) {
      await session.pool.end().catch(() => {});
      throw session.error(error);
    }
    return session;
  }

  /** Any error as this store's DreaminaError, the password scrubbed. */
  error(error: unknown): DreaminaError {
    return storeError(error, this.location, this.#password);
  }

  async query<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>(sql, params);
    } catch (error) {
      throw this.error(error);
    }
  }

  /**
   * `fn` in one READ COMMITTED transaction on one connection; run again (whole) after a
   * serialization failure or a deadlock. `durable` makes the commit wait for the WAL flush even
   * on a server configured with `synchronous_commit = off`: used for the intent row.
   */
  async tx<T>(fn: (client: pg.PoolClient) => Promise<T>, durable = false): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      let client: pg.PoolClient;
      try {
        client = await this.pool.connect();
      } catch (error) {
        throw this.error(error);
      }
      let broken = false;
      try {
        await client.query("BEGIN");
        if (durable) await client.query("SET LOCAL synchronous_commit = on");
        const out = await fn(client);
        await client.query("COMMIT");
        return out;
      } catch (error) {
        await client.query("ROLLBACK").catch(() => {
          broken = true;
        });
        const code = (error as { code?: unknown }).code;
        if (typeof code === "string" && RETRY_TX.has(code) && attempt < 5) continue;
        throw this.error(error);
      } finally {
        client.release(broken);
      }
    }
  }

  /** Writes this worker's row (once) and starts its heartbeat. */
  register(): Promise<void> {
    this.#registered ??= (async () => {
      // Worker rows silent for a week are dropped on the way: every row they owned is past the
      // grace period by then, and reads as `submission_unknown` without them too.
      await this.query(
        `WITH old AS (DELETE FROM dreamina.workers WHERE heartbeat_at < clock_timestamp() - interval '7 days')
         INSERT INTO dreamina.workers (worker_id, host, pid) VALUES ($1, $2, $3)
         ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = clock_timestamp(), stopped_at = NULL`,
        [this.workerId, this.host, process.pid],
      );
      if (this.#closed || this.heartbeatMs <= 0) return;
      this.#heartbeat = setInterval(() => void this.beat().catch(() => {}), this.heartbeatMs);
      this.#heartbeat.unref();
    })().catch((error) => {
      this.#registered = undefined;
      throw error;
    });
    return this.#registered;
  }

  /** Refreshes the heartbeat and every lease this worker holds (rows and batches), in one statement. */
  async beat(): Promise<void> {
    await this.query(
      `WITH w AS (UPDATE dreamina.workers SET heartbeat_at = clock_timestamp() WHERE worker_id = $1),
            b AS (UPDATE dreamina.batches SET owner_until = clock_timestamp() + make_interval(secs => $2::float8 / 1000)
                   WHERE owner_worker_id = $1)
       UPDATE dreamina.batch_rows SET lease_until = clock_timestamp() + make_interval(secs => $2::float8 / 1000)
        WHERE worker_id = $1 AND state = 'claimed'`,
      [this.workerId, this.leaseMs],
    );
  }

  /** Stops the heartbeat (as a killed process would): for tests of lease expiry. */
  stopHeartbeat(): void {
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.stopHeartbeat();
    try {
      if (this.#registered) {
        await this.#registered.catch(() => {});
        // Said so, so that other machines need not wait a lease to know it.
        await this.pool
          .query("UPDATE dreamina.workers SET stopped_at = clock_timestamp() WHERE worker_id = $1", [
            this.workerId,
          ])
          .catch(() => {});
      }
    } finally {
      await this.pool.end().catch(() => {});
    }
  }
}
