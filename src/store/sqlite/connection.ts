// One SQLite connection of the job store: its settings, its prepared statements, its
// transactions.
//
// Durability: WAL with synchronous=FULL. The write rate is tiny (an intent row, then a row per
// observed status change every few seconds at most, grouped by batches), so an fsync per commit
// costs nothing noticeable, and it makes the intent row durable even against power loss before
// the POST goes out, which NORMAL (durable against a process crash only) would not.
//
// Concurrency: several processes (a batch, a `status` in another terminal) may write at once.
// busy_timeout makes writers wait for each other; every read-then-write runs in a
// BEGIN IMMEDIATE transaction, because in WAL mode a deferred transaction that later wants to
// write fails at once with SQLITE_BUSY_SNAPSHOT instead of waiting.

import { mkdirSync } from "node:fs";
import { hostname } from "node:os";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { StoreError } from "../errors.js";
import { JOURNAL_MIGRATIONS, JOURNAL_MODULE, migrateModule } from "./migrations.js";

export type Db = Database.Database;

export interface SqliteConnectionOptions {
  /** How long a writer waits for another process's lock, in ms. */
  busyTimeoutMs?: number | undefined;
  /** A `submitting` row older than this is reported as `submission_unknown`. */
  submitGraceMs?: number | undefined;
  now?: (() => number) | undefined;
}

/** `$DREAMINA_JOURNAL_BUSY_TIMEOUT_MS`, when set. */
function busyTimeoutFromEnv(): number | undefined {
  const raw = process.env.DREAMINA_JOURNAL_BUSY_TIMEOUT_MS;
  if (raw === undefined || raw.trim() === "") return undefined;
  const ms = Number(raw);
  if (!Number.isInteger(ms) || ms < 0) {
    throw new StoreError(
      `DREAMINA_JOURNAL_BUSY_TIMEOUT_MS must be a whole number of milliseconds, 0 or more (got ${JSON.stringify(raw)})`,
      { code: "store_unsupported" },
    );
  }
  return ms;
}

export class SqliteConnection {
  readonly db: Db;
  readonly path: string;
  readonly now: () => number;
  readonly graceMs: number;
  readonly host = hostname();
  /**
   * Prepared statements by SQL text. Preparing parses and plans the SQL again every time; a
   * batch writes a dozen statements per row, so each is prepared once per connection.
   */
  readonly #statements = new Map<string, Database.Statement>();
  /** One transaction wrapper for every write (better-sqlite3 nests it as a savepoint). */
  readonly #tx: Database.Transaction<(fn: () => unknown) => unknown>;

  private constructor(db: Db, path: string, options: SqliteConnectionOptions) {
    this.db = db;
    this.path = path;
    this.now = options.now ?? Date.now;
    this.graceMs = options.submitGraceMs ?? 10 * 60_000;
    this.#tx = db.transaction((fn: () => unknown) => fn());
  }

  /** Opens (creating folders and the file if needed), sets it up and migrates the journal tables. */
  static open(path: string, options: SqliteConnectionOptions): SqliteConnection {
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    const db = new Database(path);
    try {
      // busy_timeout first: switching to WAL itself needs a lock another process may hold.
      const busyMs = options.busyTimeoutMs ?? busyTimeoutFromEnv() ?? 10_000;
      db.pragma(`busy_timeout = ${Math.max(0, Math.floor(busyMs))}`);
      const mode = db.pragma("journal_mode = WAL", { simple: true });
      if (path !== ":memory:" && mode !== "wal") {
        throw new StoreError(`could not put ${path} in WAL mode (got ${String(mode)})`);
      }
      db.pragma("synchronous = FULL");
      db.pragma("foreign_keys = ON");
      migrateModule(db, JOURNAL_MODULE, JOURNAL_MIGRATIONS);
    } catch (error) {
      db.close();
      throw error;
    }
    return new SqliteConnection(db, path, options);
  }

  prepare(sql: string): Database.Statement {
    let statement = this.#statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  /** `fn` in a BEGIN IMMEDIATE transaction, or a savepoint when one is already open. */
  immediate<T>(fn: () => T): T {
    return this.#tx.immediate(fn) as T;
  }

  get inTransaction(): boolean {
    return this.db.inTransaction;
  }

  get open(): boolean {
    return this.db.open;
  }

  /** The settings that make the guarantees, for diagnosis. */
  settings(): { journalMode: string; synchronous: number; busyTimeoutMs: number; foreignKeys: boolean } {
    return {
      journalMode: String(this.db.pragma("journal_mode", { simple: true })),
      synchronous: Number(this.db.pragma("synchronous", { simple: true })),
      busyTimeoutMs: Number(this.db.pragma("busy_timeout", { simple: true })),
      foreignKeys: Number(this.db.pragma("foreign_keys", { simple: true })) === 1,
    };
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

/** Whether an error is the storage's own (no room, no write access, a lock held too long, I/O). */
export function isStorageFailure(error: unknown): boolean {
  for (let e = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code !== "string") continue;
    if (code === "ENOSPC" || code === "EDQUOT" || code === "EROFS" || code === "EACCES") return true;
    if (/^SQLITE_(FULL|IOERR|READONLY|BUSY|LOCKED|CORRUPT|CANTOPEN|NOMEM|NOTADB)/.test(code)) return true;
  }
  return false;
}
