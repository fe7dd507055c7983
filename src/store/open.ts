// Which backend a store spec names: a PostgreSQL URL (the shared store, loaded only when
// asked for, so that the SQLite default never loads the PostgreSQL driver), or a file path.

import { defaultJournalPath } from "../config/paths.js";
import { StoreError } from "./errors.js";
import type { JobStore } from "./job-store.js";
import { SqliteJobStore } from "./sqlite/index.js";

export interface OpenJobStoreOptions {
  /**
   * How long a writer waits for another process's lock (SQLite) or a lock/connection (PostgreSQL).
   * Default `$DREAMINA_JOURNAL_BUSY_TIMEOUT_MS`, else 10 s.
   */
  busyTimeoutMs?: number | undefined;
  /**
   * Where the store says what must not go unseen (a request id it had to keep outside the
   * database). Default: a line on stderr, never silenced.
   */
  onWarning?: ((message: string) => void) | undefined;
  /**
   * A `submitting` row older than this is reported as `submission_unknown` even if a process
   * with its pid still exists (pids are reused). Default 10 minutes: far above any submit timeout.
   */
  submitGraceMs?: number | undefined;
  /** Clock, for tests. */
  now?: (() => number) | undefined;
}

/** Whether a spec names a PostgreSQL server rather than a file. */
export function isPostgresUrl(spec: string): boolean {
  return /^postgres(?:ql)?:\/\//i.test(spec.trim());
}

/** The shape the PostgreSQL backend's module has (src/store/postgres/index.ts). */
interface PostgresModule {
  openPostgresJobStore(url: string, options: OpenJobStoreOptions): Promise<JobStore>;
}

/**
 * Opens a job store: an open store is returned as it is; a `postgres://` or `postgresql://` URL
 * opens the PostgreSQL store; anything else is a SQLite file path (default:
 * `$DREAMINA_HOME/journal.db`). The schema is created or migrated on first use.
 */
export async function openJobStore(
  spec?: string | JobStore,
  options: OpenJobStoreOptions = {},
): Promise<JobStore> {
  if (spec !== undefined && typeof spec !== "string") return spec;
  if (spec !== undefined && isPostgresUrl(spec)) {
    let backend: PostgresModule;
    try {
      // Loaded only for a PostgreSQL URL, so SQLite users never load `pg`.
      backend = await import("./postgres/index.js");
    } catch (error) {
      throw new StoreError("this build of dreamina-i2v has no PostgreSQL job store", {
        code: "store_unsupported",
        cause: error,
      });
    }
    return await backend.openPostgresJobStore(spec.trim(), options);
  }
  if (spec !== undefined && spec.trim() === "") {
    throw new StoreError("the job store is an empty path", { code: "store_unsupported" });
  }
  return SqliteJobStore.open(spec ?? defaultJournalPath(), options);
}
