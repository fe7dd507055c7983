// The shared job store on PostgreSQL: `openPostgresJobStore(url)` for `postgres://` URLs.
// Loaded lazily (only when such a URL is given), so the SQLite default never loads `pg`.

import { redactSecrets } from "../../api/redact.js";
import { PostgresStoreError, parseStoreUrl } from "./connect.js";
import { defaultRecoveryDir } from "./recovered.js";
import { Session } from "./session.js";
import { PostgresJobStore } from "./store.js";

export { SCHEMA_VERSION } from "./schema.js";
export { PostgresJobStore } from "./store.js";
export { PostgresStoreError };

export interface PostgresJobStoreOptions {
  /**
   * How long a worker may stay silent before its rows are another's: its leased batch rows are
   * taken over, its `submitting` rows reported `submission_unknown`. The heartbeat runs every
   * third of it. Default `$DREAMINA_STORE_LEASE_MS`, else 30 s.
   */
  leaseMs?: number | undefined;
  /** How often the heartbeat runs. Default a third of the lease; 0 never (a stalled worker, for tests). */
  heartbeatMs?: number | undefined;
  /** A `submitting` row older than this is `submission_unknown` whatever its owner says. Default 10 min. */
  submitGraceMs?: number | undefined;
  /** Most connections this process opens. Default 4. */
  maxConnections?: number | undefined;
  /** How long to wait for a connection. Default `busyTimeoutMs`, else 10 s. */
  connectTimeoutMs?: number | undefined;
  /** As for SQLite (openJobStore passes it): here, how long to wait for a connection. */
  busyTimeoutMs?: number | undefined;
  /** Where request ids go when the server cannot take them. Default under the dreamina home. */
  recoveryDir?: string | undefined;
  /** Where the store says what must not go unseen. Default: a line on stderr. */
  onWarning?: ((message: string) => void) | undefined;
  /** Clock for the rows' own times (tests). Leases and heartbeats use the server's clock. */
  now?: (() => number) | undefined;
}

/**
 * Connects to the PostgreSQL at `url`, creates or migrates its `dreamina` schema (safe when many
 * workers start at once), and takes in any request id an earlier run kept on this machine.
 * Errors are `PostgresStoreError`s whose messages never hold the password.
 */
export async function openPostgresJobStore(
  url: string,
  options: PostgresJobStoreOptions = {},
): Promise<PostgresJobStore> {
  const parsed = parseStoreUrl(url);
  const leaseMs = options.leaseMs ?? leaseFromEnv() ?? 30_000;
  const session = await Session.open(
    parsed,
    { leaseMs, heartbeatMs: options.heartbeatMs },
    {
      max: options.maxConnections,
      connectTimeoutMs: options.connectTimeoutMs ?? options.busyTimeoutMs,
    },
  );
  const store = new PostgresJobStore(session, {
    now: options.now ?? Date.now,
    graceMs: options.submitGraceMs ?? 10 * 60_000,
    warn: options.onWarning ?? ((message) => process.stderr.write(`warning: ${redactSecrets(message)}\n`)),
    recoveryDir: options.recoveryDir ?? defaultRecoveryDir(parsed.location),
  });
  // Ids kept here by an earlier run: taken in now, or (if that fails) at the next write.
  await store.replayIfPending().catch((error: unknown) => {
    (options.onWarning ?? (() => {}))(
      `request ids kept on this machine could not be taken in yet: ${String(error)}`,
    );
  });
  return store;
}

/** `DREAMINA_STORE_LEASE_MS`: a shorter lease hands a killed worker's rows over sooner. */
function leaseFromEnv(): number | undefined {
  const text = process.env.DREAMINA_STORE_LEASE_MS;
  if (text === undefined || text.trim() === "") return undefined;
  const ms = Number(text);
  if (!Number.isFinite(ms) || ms < 1000) {
    throw new PostgresStoreError(
      `DREAMINA_STORE_LEASE_MS must be a number of milliseconds, at least 1000 (got ${JSON.stringify(text)})`,
      { code: "store_unsupported" },
    );
  }
  return ms;
}
